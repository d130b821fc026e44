//! `berth queue list|pause|resume|purge`.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::Ctx;
use crate::output;

/// Queue subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every queue with its jobs per state and the age of its oldest waiting job.
    List,
    /// One queue: jobs per state, oldest waiting job, handler, and jobs completed over
    /// the last 1, 5 and 15 minutes.
    Show {
        /// The queue.
        name: String,
    },
    /// Stop handing out this queue's jobs (running ones finish).
    Pause {
        /// The queue.
        name: String,
    },
    /// Hand out this queue's jobs again.
    Resume {
        /// The queue.
        name: String,
    },
    /// Delete this queue's waiting jobs.
    Purge {
        /// The queue.
        name: String,
        /// States to delete (default: available, scheduled, retryable).
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
        /// Really delete (purge cannot be undone).
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a queue subcommand.
pub async fn run(ctx: &Ctx, cmd: QueueCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let answer = match cmd {
        QueueCommand::List => {
            let v = client.get("/v1/queues").await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_queues(&v);
            }
            return Ok(ExitCode::SUCCESS);
        }
        QueueCommand::Show { name } => {
            let v = client
                .get(&format!("/v1/queues/{}", super::encode(&name)))
                .await?;
            if ctx.json {
                output::json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "queue {}{}",
                name,
                if v["paused"] == true { " (paused)" } else { "" }
            );
            if v["configured"] == true {
                outln!(
                    "  handler:        {}, concurrency {}, {} attempts",
                    output::cell(&v["handler"]),
                    v["concurrency"],
                    v["max_attempts"]
                );
            } else {
                outln!("  handler:        none (not in the config; its jobs wait)");
            }
            let counts: Vec<String> = v["counts"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, n)| n.as_u64() != Some(0))
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect()
                })
                .unwrap_or_default();
            outln!(
                "  jobs:           {}",
                if counts.is_empty() {
                    "none".to_owned()
                } else {
                    counts.join(", ")
                }
            );
            outln!(
                "  oldest waiting: {}",
                v["oldest_available_age_secs"]
                    .as_f64()
                    .map(|s| format!(
                        "{} ago",
                        humantime::format_duration(std::time::Duration::from_secs(s as u64))
                    ))
                    .unwrap_or_else(|| "-".into())
            );
            let c = &v["completed"];
            outln!(
                "  completed:      {} in the last minute, {} in 5 minutes ({:.1}/min), {} in 15 minutes",
                c["last_1m"],
                c["last_5m"],
                c["per_minute_5m"].as_f64().unwrap_or(0.0),
                c["last_15m"]
            );
            return Ok(ExitCode::SUCCESS);
        }
        QueueCommand::Pause { name } => {
            client
                .post(&format!("/v1/queues/{name}/pause"), json!({}))
                .await?;
            json!({"queue": name, "paused": true, "message": format!("queue `{name}` paused")})
        }
        QueueCommand::Resume { name } => {
            client
                .post(&format!("/v1/queues/{name}/resume"), json!({}))
                .await?;
            json!({"queue": name, "paused": false, "message": format!("queue `{name}` resumed")})
        }
        QueueCommand::Purge { name, states, yes } => {
            if !yes {
                bail!(crate::exit::UsageError(format!(
                    "purging deletes the waiting jobs of `{name}` for good; add --yes to confirm"
                )));
            }
            let v = client
                .post(
                    &format!("/v1/queues/{name}/purge"),
                    json!({ "states": states }),
                )
                .await?;
            json!({"queue": name, "deleted": v["deleted"], "message": format!("deleted {} jobs from `{name}`", v["deleted"])})
        }
    };
    if ctx.json {
        output::json(&answer);
    } else {
        outln!("{}", output::cell(&answer["message"]));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the queue table from a `/v1/queues` answer.
pub fn print_queues(v: &Value) {
    let states = [
        "available",
        "scheduled",
        "running",
        "retryable",
        "completed",
        "discarded",
        "split",
        "cancelled",
    ];
    let mut header = vec!["QUEUE", "PAUSED"];
    let upper: Vec<String> = states.iter().map(|s| s.to_uppercase()).collect();
    header.extend(upper.iter().map(String::as_str));
    header.push("OLDEST WAITING");
    let rows: Vec<Vec<String>> = v["queues"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|q| {
            let mut row = vec![
                output::cell(&q["name"]),
                if q["paused"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ];
            row.extend(states.iter().map(|s| output::cell(&q["counts"][s])));
            row.push(
                q["oldest_available_age_secs"]
                    .as_f64()
                    .map(output::age)
                    .unwrap_or_else(|| "-".into()),
            );
            row
        })
        .collect();
    if rows.is_empty() {
        outln!("no queues: add a [queue.NAME] table to berth.toml");
    } else {
        output::table(&header, &rows);
    }
}
