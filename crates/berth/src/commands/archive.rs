//! `berth archive add|list|show|export`: failed (or any final) work kept aside, outside
//! the live table and its pruning.

use std::io::Write;
use std::process::ExitCode;

use berth_api::types::{ArchiveBody, ArchivePage, Archived, ArchivedJob};
use clap::{Args, Subcommand};

use super::{Ctx, encode};
use crate::output;
use crate::output::time;

/// Archive subcommands.
#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Move final jobs to the archive: one (`--job`), or a queue's and/or some states'
    /// (default: `--state discarded`, the failed work). Jobs of a running batch, and
    /// steps of a running or failed workflow, stay.
    Add {
        /// This job only.
        #[arg(long, conflicts_with_all = ["queue", "state"])]
        job: Option<i64>,
        /// Only this queue's jobs.
        #[arg(long)]
        queue: Option<String>,
        /// Only jobs in this final state (repeatable: completed, discarded, cancelled,
        /// split; default discarded).
        #[arg(long)]
        state: Vec<String>,
    },
    /// Archived jobs, most recently archived first.
    List(Filter),
    /// One archived job with its whole history.
    Show {
        /// The job's id.
        id: i64,
    },
    /// Every archived job matching the filters as JSON lines (one job per line) on
    /// standard output, oldest first of each page.
    Export {
        /// Only this queue's.
        #[arg(long)]
        queue: Option<String>,
        /// Only this state.
        #[arg(long)]
        state: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
    },
}

/// Which archived jobs.
#[derive(Debug, Args)]
pub struct Filter {
    /// Only this queue's.
    #[arg(long)]
    queue: Option<String>,
    /// Only this state.
    #[arg(long)]
    state: Option<String>,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Only those archived before this entry (the next page, as the listing says).
    #[arg(long)]
    before: Option<i64>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

fn query(queue: &Option<String>, state: &Option<String>, kind: &Option<String>) -> String {
    [("queue", queue), ("state", state), ("kind", kind)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("&{k}={}", encode(v))))
        .collect()
}

/// Runs an archive subcommand.
pub async fn run(ctx: &Ctx, cmd: ArchiveCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        ArchiveCommand::Add { job, queue, state } => {
            let body = match job {
                Some(id) => ArchiveBody {
                    id: Some(id),
                    ..ArchiveBody::default()
                },
                None => {
                    let states = if state.is_empty() {
                        vec!["discarded".to_owned()]
                    } else {
                        state
                    };
                    ArchiveBody {
                        id: None,
                        queue,
                        states,
                    }
                }
            };
            let v: Archived = client.post("/v1/archive", &body).await?;
            if ctx.json {
                output::json(&v);
            } else {
                outln!("archived {} job(s)", v.archived);
            }
        }
        ArchiveCommand::List(f) => {
            let mut path = format!(
                "/v1/archive?limit={}{}",
                f.limit,
                query(&f.queue, &f.state, &f.kind)
            );
            if let Some(b) = f.before {
                path.push_str(&format!("&before={b}"));
            }
            let v: ArchivePage = client.get(&path).await?;
            if ctx.json {
                output::json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            print_list(&v);
        }
        ArchiveCommand::Show { id } => {
            let v: ArchivedJob = client.get(&format!("/v1/archive/{id}")).await?;
            if ctx.json {
                output::json(&v);
            } else {
                super::job::print_job(&v.job);
                outln!("  archived      {}", time(v.archived_at));
            }
        }
        ArchiveCommand::Export { queue, state, kind } => {
            let filters = query(&queue, &state, &kind);
            let mut before: Option<i64> = None;
            let mut n = 0u64;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            loop {
                let mut path = format!("/v1/archive?limit=1000{filters}");
                if let Some(b) = before {
                    path.push_str(&format!("&before={b}"));
                }
                let v: ArchivePage = client.get(&path).await?;
                for j in &v.jobs {
                    // Keys in alphabetical order, as every JSON line berth prints.
                    serde_json::to_writer(&mut out, &serde_json::to_value(j)?)?;
                    writeln!(out)?;
                    n += 1;
                }
                match v.next_before {
                    Some(b) => before = Some(b),
                    None => break,
                }
            }
            out.flush()?;
            eprintln!("exported {n} archived job(s)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_list(v: &ArchivePage) {
    let rows: Vec<Vec<String>> = v
        .jobs
        .iter()
        .map(|a| {
            let j = &a.job;
            let last_error = j
                .errors
                .last()
                .and_then(|e| e.error.lines().next())
                .unwrap_or("")
                .chars()
                .take(60)
                .collect::<String>();
            vec![
                j.id.to_string(),
                j.queue.clone(),
                j.kind.clone(),
                j.state.to_string(),
                time(a.archived_at),
                last_error,
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!("no archived jobs match");
        return;
    }
    output::table(
        &["ID", "QUEUE", "KIND", "STATE", "ARCHIVED", "LAST ERROR"],
        &rows,
    );
    if let Some(next) = v.next_before {
        outln!("(more: --before {next})");
    }
}
