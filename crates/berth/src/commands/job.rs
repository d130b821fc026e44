//! `berth job push|push-many|list|show|retry|cancel|discard|delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use berth_api::types::{
    BulkBody, Inserted, InsertedJobs, Job, JobPage, JobState, NoBody, PushBody, StateChange,
};
use clap::Subcommand;
use serde_json::Value;

use super::{Ctx, read_file};
use crate::exit::UsageError;
use crate::output::{self, opt, opt_time, time};

/// Job subcommands.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Push one job.
    Push {
        /// The queue.
        queue: String,
        /// The job's kind.
        kind: String,
        /// The args as JSON (default `{}`); `-` reads them from stdin.
        args: Option<String>,
        /// Lower runs first.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Run after this delay, e.g. 30s, 5m, 1h.
        #[arg(long, conflicts_with = "run_at")]
        delay: Option<String>,
        /// Run at this time (RFC 3339, e.g. 2026-12-01T08:00:00Z).
        #[arg(long)]
        run_at: Option<String>,
        /// Attempts allowed (default: the queue's).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Do not push if a job with this key is waiting or running.
        #[arg(long)]
        unique_key: Option<String>,
        /// A label (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Push many jobs from a file of JSON lines (one job per line: queue, kind, args, …),
    /// all or none.
    PushMany {
        /// The file (`-` for stdin).
        file: PathBuf,
    },
    /// List jobs, newest first.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only these states (comma separated).
        #[arg(long)]
        state: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only jobs whose arguments, as JSON text, contain this (case-sensitive).
        #[arg(long, value_name = "TEXT")]
        args: Option<String>,
        /// Only jobs pushed since this: a duration ago ("1h") or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only jobs pushed before this: a duration ago or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        until: Option<String>,
        /// Only ids below this (the next page).
        #[arg(long)]
        before: Option<i64>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one job with every attempt's error and output.
    Show {
        /// The job id.
        id: i64,
    },
    /// Run a finished, failed or waiting job again now.
    Retry {
        /// The job id.
        id: i64,
    },
    /// Cancel a job that has not finished (a running one is stopped).
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Discard a job that has not finished.
    Discard {
        /// The job id.
        id: i64,
    },
    /// Delete a job that is not running.
    Delete {
        /// The job id.
        id: i64,
    },
}

/// `--args`: JSON given inline, or `-` to read it from stdin; `{}` when absent.
pub(crate) fn parse_args(raw: Option<String>) -> anyhow::Result<Value> {
    let text = match raw.as_deref() {
        None => return Ok(Value::Object(Default::default())),
        Some("-") => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
        Some(t) => t.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "--args is not valid JSON ({e}); give an object such as '{{\"user\": 42}}'"
        ))
        .into()
    })
}

/// Runs a job subcommand.
pub async fn run(ctx: &Ctx, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        JobCommand::Push {
            queue,
            kind,
            args,
            priority,
            delay,
            run_at,
            max_attempts,
            unique_key,
            tags,
        } => {
            let body = PushBody {
                queue,
                kind,
                args: Some(parse_args(args)?),
                priority,
                max_attempts,
                delay,
                run_at,
                unique_key,
                tags,
            };
            let v: Inserted = client.post("/v1/jobs", &body).await?;
            if ctx.json {
                output::json(&v);
            } else if v.duplicate {
                outln!(
                    "job {} already exists with that unique key ({})",
                    v.id,
                    v.state
                );
            } else {
                outln!("pushed job {} ({})", v.id, v.state);
            }
        }
        JobCommand::PushMany { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
            } else {
                read_file(&file)?
            };
            let mut jobs = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    UsageError(format!(
                        "{}:{}: not valid JSON ({e}); expected one job per line, e.g. {{\"queue\": \"default\", \"kind\": \"email\", \"args\": {{}}}}",
                        file.display(),
                        n + 1
                    ))
                })?;
                let job: PushBody = serde_json::from_value(v).map_err(|e| {
                    UsageError(format!(
                        "{}:{}: not a job ({e}); expected one job per line, e.g. {{\"queue\": \"default\", \"kind\": \"email\", \"args\": {{}}}}",
                        file.display(),
                        n + 1
                    ))
                })?;
                jobs.push(job);
            }
            if jobs.is_empty() {
                return Err(UsageError(format!("{} holds no jobs", file.display())).into());
            }
            let v: InsertedJobs = client.post("/v1/jobs/bulk", &BulkBody { jobs }).await?;
            if ctx.json {
                output::json(&v);
            } else {
                let all = v.jobs.len();
                let dup = v.jobs.iter().filter(|j| j.duplicate).count();
                outln!("pushed {} jobs ({} duplicates skipped)", all - dup, dup);
            }
        }
        JobCommand::List {
            queue,
            state,
            kind,
            tag,
            args,
            since,
            until,
            before,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("queue", queue),
                ("state", state),
                ("kind", kind),
                ("tag", tag),
                ("args", args),
                ("since", since),
                ("until", until),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", super::encode(&v)));
                }
            }
            if let Some(b) = before {
                q.push(format!("before={b}"));
            }
            let v: JobPage = client.get(&format!("/v1/jobs?{}", q.join("&"))).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_jobs(&v);
            }
        }
        JobCommand::Show { id } => {
            let v: Job = client.get(&format!("/v1/jobs/{id}")).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_job(&v);
            }
        }
        JobCommand::Retry { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/retry"), &NoBody {})
                .await?,
        ),
        JobCommand::Cancel { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/cancel"), &NoBody {})
                .await?,
        ),
        JobCommand::Discard { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/discard"), &NoBody {})
                .await?,
        ),
        JobCommand::Delete { id } => change(ctx, client.delete(&format!("/v1/jobs/{id}")).await?),
    }
    Ok(ExitCode::SUCCESS)
}

fn change(ctx: &Ctx, v: StateChange) {
    if ctx.json {
        output::json(&v);
    } else {
        let to = match v.to {
            Some(s) => s.to_string(),
            None => "deleted".to_string(),
        };
        outln!("job {}: {} → {}", v.id, v.from, to);
    }
}

fn print_jobs(v: &JobPage) {
    let rows: Vec<Vec<String>> = v
        .jobs
        .iter()
        .map(|j| {
            let last_error = j.errors.last().map(|e| e.error.clone()).unwrap_or_default();
            vec![
                j.id.to_string(),
                j.queue.clone(),
                j.kind.clone(),
                j.state.to_string(),
                format!("{}/{}", j.attempt, j.max_attempts),
                time(j.scheduled_at),
                truncate(&last_error, 60),
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!("no jobs match");
        return;
    }
    output::table(
        &[
            "ID",
            "QUEUE",
            "KIND",
            "STATE",
            "ATTEMPT",
            "SCHEDULED",
            "LAST ERROR",
        ],
        &rows,
    );
    if let Some(next) = v.next_before {
        outln!("(more: --before {next})");
    }
}

fn truncate(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > n {
        format!("{}…", line.chars().take(n).collect::<String>())
    } else {
        line.to_string()
    }
}

pub(crate) fn print_job(j: &Job) {
    outln!("job {}  {}  on queue {}", j.id, j.kind, j.queue);
    outln!("  state         {}", j.state);
    outln!("  attempt       {} of {}", j.attempt, j.max_attempts);
    outln!("  priority      {}", j.priority);
    outln!("  created       {}", time(j.created_at));
    outln!("  scheduled     {}", time(j.scheduled_at));
    outln!(
        "  attempted     {} by {}",
        opt_time(j.attempted_at),
        opt(j.attempted_by.as_deref())
    );
    if let Some(t) = j.lease_expires_at {
        outln!("  lease until   {}", time(t));
    }
    if let Some(t) = j.finalized_at {
        outln!("  finished      {}", time(t));
    }
    if let Some(k) = &j.unique_key {
        outln!("  unique key    {k}");
    }
    if !j.tags.is_empty() {
        outln!(
            "  tags          {}",
            serde_json::to_string(&j.tags).expect("strings serialize")
        );
    }
    outln!("  args          {}", j.args);
    if let Some(r) = &j.result {
        outln!("  result        {r}");
    }
    for e in &j.errors {
        outln!();
        outln!("  attempt {} at {}: {}", e.attempt, time(e.at), e.error);
        if let Some(out) = &e.output {
            for line in out.lines() {
                outln!("    | {line}");
            }
        }
    }
    if let Some(out) = &j.output
        && j.state == JobState::Completed
    {
        outln!();
        outln!("  output of the last attempt:");
        for line in out.lines() {
            outln!("    | {line}");
        }
    }
}
