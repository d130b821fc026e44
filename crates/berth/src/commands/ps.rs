//! `berth ps`: every service instance with its pid, state, uptime, restarts, port, and
//! its whole process tree's process count, CPU and memory.

use std::process::ExitCode;

use super::Ctx;
use crate::output;

/// Prints the services' instances.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let v = ctx.client()?.get("/v1/services").await?;
    if ctx.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let instances = v["services"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if instances.is_empty() {
        outln!("no services: add a [service.NAME] table to berth.toml");
    } else {
        print(instances);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints instances (as the API lists them) as a table.
pub fn print(instances: &[serde_json::Value]) {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|s| {
            vec![
                output::cell(&s["service"]),
                output::cell(&s["instance"]),
                output::cell(&s["pid"]),
                output::cell(&s["state"]),
                s["uptime_secs"]
                    .as_f64()
                    .map(output::age)
                    .unwrap_or_else(|| "-".into()),
                output::cell(&s["restarts"]),
                output::cell(&s["port"]),
                output::cell(&s["processes"]),
                s["cpu_percent"]
                    .as_f64()
                    .map(|c| format!("{c:.1}%"))
                    .unwrap_or_else(|| "-".into()),
                // The tree's proportional memory (shared pages counted once), else the
                // sum of its processes' resident memory.
                s["pss_bytes"]
                    .as_u64()
                    .or_else(|| s["rss_bytes"].as_u64())
                    .map(|b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
                    .unwrap_or_else(|| "-".into()),
                output::cell(&s["last_exit"]),
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
