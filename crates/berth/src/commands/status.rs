//! `berth status`: this berth and its queues.

use std::process::ExitCode;

use super::{Ctx, queue};
use crate::output;

/// Prints the status.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let status = client.get("/v1/status").await?;
    if ctx.json {
        output::json(&status);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "berth {} — app `{}`, pid {}, up {}",
        output::cell(&status["version"]),
        output::cell(&status["app"]),
        output::cell(&status["pid"]),
        output::age(status["uptime_secs"].as_f64().unwrap_or(0.0))
    );
    outln!();
    let rows: Vec<Vec<String>> = status["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let mut role = Vec::new();
            if n["leader"] == true {
                role.push("leader");
            }
            if n["this"] == true {
                role.push("this node");
            }
            vec![
                output::cell(&n["id"]),
                output::cell(&n["host"]),
                output::cell(&n["pid"]),
                output::cell(&n["version"]),
                format!(
                    "{} ago",
                    output::age(n["last_seen_secs"].as_f64().unwrap_or(0.0))
                ),
                role.join(", "),
            ]
        })
        .collect();
    output::table(
        &["NODE", "HOST", "PID", "VERSION", "LAST SEEN", "ROLE"],
        &rows,
    );
    outln!();
    let queues = client.get("/v1/queues").await?;
    queue::print_queues(&queues);
    Ok(ExitCode::SUCCESS)
}
