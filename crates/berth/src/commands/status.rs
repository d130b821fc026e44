//! `berth status`: this berth and its queues.

use std::process::ExitCode;

use berth_api::types::{QueueList, Status};

use super::{Ctx, queue};
use crate::output;

/// Prints the status.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let status: Status = client.get("/v1/status").await?;
    if ctx.json {
        output::json(&status);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "berth {} — app `{}`, pid {}, up {}",
        status.version,
        status.app,
        status.pid,
        output::age(status.uptime_secs as f64)
    );
    outln!();
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            let mut role = Vec::new();
            if n.leader {
                role.push("leader");
            }
            if n.this {
                role.push("this node");
            }
            vec![
                n.node.id.clone(),
                n.node.host.clone(),
                n.node.pid.to_string(),
                n.node.version.clone(),
                format!("{} ago", output::age(n.last_seen_secs)),
                role.join(", "),
            ]
        })
        .collect();
    output::table(
        &["NODE", "HOST", "PID", "VERSION", "LAST SEEN", "ROLE"],
        &rows,
    );
    outln!();
    let queues: QueueList = client.get("/v1/queues").await?;
    queue::print_queues(&queues);
    Ok(ExitCode::SUCCESS)
}
