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
        }));
    } else {
        println!(
            "{}: ok (app `{}`, {} queue{}: {})",
            config.path.display(),
            config.app.name,
            config.queues.len(),
            if config.queues.len() == 1 { "" } else { "s" },
            config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
