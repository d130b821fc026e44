//! `berth ps`: every service instance with its pid, state, uptime, restarts, port, and
//! its whole process tree's process count, CPU and memory.

use std::process::ExitCode;

use berth_api::types::{Instance, ServiceList};

use super::Ctx;
use crate::output;
use crate::output::opt;

/// Prints the services' instances.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let v: ServiceList = ctx.client()?.get("/v1/services").await?;
    if ctx.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    if v.services.is_empty() {
        outln!("no services: add a [service.NAME] table to berth.toml");
    } else {
        print(&v.services);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints instances (as the API lists them) as a table.
pub fn print(instances: &[Instance]) {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|s| {
            vec![
                s.service.clone(),
                s.instance.to_string(),
                opt(s.pid),
                s.state.clone(),
                s.uptime_secs.map(output::age).unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                opt(s.port),
                opt(s.processes),
                s.cpu_percent
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                // The tree's proportional memory (shared pages counted once), else the
                // sum of its processes' resident memory.
                s.pss_bytes
                    .or(s.rss_bytes)
                    .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
                    .unwrap_or_else(|| "-".into()),
                opt(s.last_exit.as_deref()),
            ]
        })
        .collect();
    output::table(
        &[
            "SERVICE",
            "INSTANCE",
            "PID",
            "STATE",
            "UPTIME",
            "RESTARTS",
            "PORT",
            "PROCS",
            "CPU",
            "MEMORY",
            "LAST EXIT",
        ],
        &rows,
    );
}
