//! `berth check`: validates the config.

use std::process::ExitCode;

use serde_json::json;

use super::Ctx;
use crate::output;

/// Validates the config and summarises it.
pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    if ctx.json {
        output::json(&json!({
            "ok": true,
            "file": config.path,
            "app": config.app.name,
            "data_dir": config.app.data_dir,
            "queues": config.queues.keys().collect::<Vec<_>>(),
            "services": config.services.keys().collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "{}: ok (app `{}`, {}, {})",
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
