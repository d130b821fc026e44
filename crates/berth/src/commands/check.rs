//! `berth check`: validates the config.

use std::process::ExitCode;

use serde_json::json;

use super::Ctx;
use crate::output;

/// Validates the config and summarises it.
pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    if let Some(spec) = berth_server::gateway::gateway_spec(
        &config,
        berth_gateway::Clock::system(),
        "check",
        berth_gateway::HookSink(std::sync::Arc::new(
            berth_server::ingest::Webhooks::default(),
        )),
    )? {
        berth_gateway::check(&spec)?;
    }
    if ctx.json {
        output::json(&json!({
            "ok": true,
            "file": config.path,
            "app": config.app.name,
            "data_dir": config.app.data_dir,
            "queues": config.queues.keys().collect::<Vec<_>>(),
            "services": config.services.keys().collect::<Vec<_>>(),
            "gateway": config.gateway.as_ref().map(|g| json!({
                "listen": g.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "routes": g.routes.len(),
            })),
        }));
    } else {
        let gateway = match &config.gateway {
            Some(g) => format!(
                ", gateway on {} with {} route{}",
                g.listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                g.routes.len(),
                if g.routes.len() == 1 { "" } else { "s" }
            ),
            None => String::new(),
        };
        outln!(
            "{}: ok (app `{}`, {}, {}{gateway})",
            config.path.display(),
            config.app.name,
            count("queue", config.queues.keys()),
            count("service", config.services.keys()),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `2 queues (default, emails)`, `1 service (web)`, `0 services`.
fn count<'a>(noun: &str, names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let n = names.len();
    let plural = if n == 1 { "" } else { "s" };
    if n == 0 {
        return format!("0 {noun}s");
    }
    let names: Vec<&str> = names.map(String::as_str).collect();
    format!("{n} {noun}{plural} ({})", names.join(", "))
}
