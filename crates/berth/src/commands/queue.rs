//! `berth queue list|pause|resume|purge`.

use std::process::ExitCode;

use anyhow::bail;
use berth_api::types::{
    ConcurrencyBody, JobState, PurgeBody, Purged, QueueConcurrency, QueueDetail, QueueList,
    QueuePaused,
};
use clap::Subcommand;

use super::Ctx;
use super::Said;
use crate::exit::UsageError;
use crate::output;
use crate::output::opt;
use berth_api::types::NoBody;

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
    /// Set how many of this queue's jobs run at once on each node, over the config's,
    /// until set back (every node follows within a second; running jobs finish first).
    Concurrency {
        /// The queue.
        name: String,
        /// Jobs at once on each node (1 to 10000).
        #[arg(required_unless_present = "reset", conflicts_with = "reset")]
        jobs: Option<u32>,
        /// Back to the config's concurrency.
        #[arg(long)]
        reset: bool,
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
    match cmd {
        QueueCommand::List => {
            let v: QueueList = client.get("/v1/queues").await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_queues(&v);
            }
        }
        QueueCommand::Show { name } => {
            let v: QueueDetail = client
                .get(&format!("/v1/queues/{}", super::encode(&name)))
                .await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_queue(&name, &v);
            }
        }
        QueueCommand::Pause { name } => {
            let v: QueuePaused = client
                .post(&format!("/v1/queues/{name}/pause"), &NoBody {})
                .await?;
            Said {
                answer: v,
                message: format!("queue `{name}` paused"),
            }
            .print(ctx);
        }
        QueueCommand::Resume { name } => {
            let v: QueuePaused = client
                .post(&format!("/v1/queues/{name}/resume"), &NoBody {})
                .await?;
            Said {
                answer: v,
                message: format!("queue `{name}` resumed"),
            }
            .print(ctx);
        }
        QueueCommand::Concurrency { name, jobs, reset } => {
            let body = ConcurrencyBody {
                concurrency: jobs.filter(|_| !reset),
            };
            let v: QueueConcurrency = client
                .post(
                    &format!("/v1/queues/{}/concurrency", super::encode(&name)),
                    &body,
                )
                .await?;
            let message = match v.concurrency {
                Some(n) => format!(
                    "queue `{name}` runs {n} jobs at once on each node from now on (over the config's, until `berth queue concurrency {name} --reset`)"
                ),
                None => format!("queue `{name}` runs with the config's concurrency again"),
            };
            Said { answer: v, message }.print(ctx);
        }
        QueueCommand::Purge { name, states, yes } => {
            if !yes {
                bail!(UsageError(format!(
                    "purging deletes the waiting jobs of `{name}` for good; add --yes to confirm"
                )));
            }
            let states = states
                .iter()
                .map(|s| s.parse::<JobState>().map_err(UsageError))
                .collect::<Result<Vec<_>, _>>()?;
            let v: Purged = client
                .post(&format!("/v1/queues/{name}/purge"), &PurgeBody { states })
                .await?;
            let message = format!("deleted {} jobs from `{name}`", v.deleted);
            Said { answer: v, message }.print(ctx);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one queue from a `/v1/queues/{name}` answer.
fn print_queue(name: &str, v: &QueueDetail) {
    let stats = &v.view.stats;
    outln!(
        "queue {}{}",
        name,
        if stats.paused { " (paused)" } else { "" }
    );
    if v.view.configured {
        outln!(
            "  handler:        {}, concurrency {}{}, {} attempts",
            opt(v.handler.as_deref()),
            opt(v.view.concurrency),
            match v.concurrency_override {
                Some(n) if v.view.concurrency == Some(n) => " (set at run time)".to_owned(),
                Some(n) => format!(" (set to {n} at run time: applied within a second)"),
                None => String::new(),
            },
            opt(v.max_attempts)
        );
    } else {
        outln!("  handler:        none (not in the config; its jobs wait)");
    }
    // By the states' names, as before.
    let mut counts: Vec<(&str, u64)> = stats
        .counts
        .iter()
        .filter(|(_, n)| **n != 0)
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    counts.sort();
    let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
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
        v.view
            .oldest_available_age_secs
            .map(|s| format!(
                "{} ago",
                humantime::format_duration(std::time::Duration::from_secs(s as u64))
            ))
            .unwrap_or_else(|| "-".into())
    );
    let c = &v.completed;
    outln!(
        "  completed:      {} in the last minute, {} in 5 minutes ({:.1}/min), {} in 15 minutes",
        c.last_1m,
        c.last_5m,
        c.per_minute_5m,
        c.last_15m
    );
}

/// Prints the queue table from a `/v1/queues` answer.
pub fn print_queues(v: &QueueList) {
    let states = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Split,
        JobState::Cancelled,
    ];
    let mut header = vec!["QUEUE", "PAUSED"];
    let upper: Vec<String> = states.iter().map(|s| s.as_str().to_uppercase()).collect();
    header.extend(upper.iter().map(String::as_str));
    header.push("OLDEST WAITING");
    let rows: Vec<Vec<String>> = v
        .queues
        .iter()
        .map(|q| {
            let mut row = vec![
                q.stats.name.clone(),
                if q.stats.paused { "yes" } else { "no" }.to_string(),
            ];
            row.extend(states.iter().map(|s| opt(q.stats.counts.get(s))));
            row.push(
                q.oldest_available_age_secs
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
