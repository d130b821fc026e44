//! `berth job push|push-many|list|show|retry|cancel|discard|delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Ctx, read_file};
use crate::exit::UsageError;
use crate::output;

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
        None => return Ok(json!({})),
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
            let body = json!({
                "queue": queue, "kind": kind, "args": parse_args(args)?, "priority": priority,
                "delay": delay, "run_at": run_at, "max_attempts": max_attempts,
                "unique_key": unique_key, "tags": tags,
            });
            let v = client.post("/v1/jobs", body).await?;
            if ctx.json {
                output::json(&v);
            } else if v["duplicate"].as_bool() == Some(true) {
                outln!(
                    "job {} already exists with that unique key ({})",
                    v["id"],
                    output::cell(&v["state"])
                );
            } else {
                outln!("pushed job {} ({})", v["id"], output::cell(&v["state"]));
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
                jobs.push(v);
            }
            if jobs.is_empty() {
                return Err(UsageError(format!("{} holds no jobs", file.display())).into());
            }
            let v = client
                .post("/v1/jobs/bulk", json!({ "jobs": jobs }))
                .await?;
            if ctx.json {
                output::json(&v);
            } else {
                let all = v["jobs"].as_array().map(Vec::len).unwrap_or(0);
                let dup = v["jobs"]
                    .as_array()
                    .map(|a| a.iter().filter(|j| j["duplicate"] == json!(true)).count())
                    .unwrap_or(0);
                outln!("pushed {} jobs ({} duplicates skipped)", all - dup, dup);
            }
        }
        JobCommand::List {
            queue,
            state,
            kind,
            tag,
            before,
            limit,
        } => {
            let mut q = vec![format!("limit={limit}")];
            for (k, v) in [
                ("queue", queue),
                ("state", state),
                ("kind", kind),
                ("tag", tag),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", super::encode(&v)));
                }
            }
            if let Some(b) = before {
                q.push(format!("before={b}"));
            }
            let v = client.get(&format!("/v1/jobs?{}", q.join("&"))).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_jobs(&v);
            }
        }
        JobCommand::Show { id } => {
            let v = client.get(&format!("/v1/jobs/{id}")).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_job(&v);
            }
        }
        JobCommand::Retry { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/retry"), json!({}))
                .await?,
        ),
        JobCommand::Cancel { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/cancel"), json!({}))
                .await?,
        ),
        JobCommand::Discard { id } => change(
            ctx,
            client
                .post(&format!("/v1/jobs/{id}/discard"), json!({}))
                .await?,
        ),
        JobCommand::Delete { id } => change(ctx, client.delete(&format!("/v1/jobs/{id}")).await?),
    }
    Ok(ExitCode::SUCCESS)
}

fn change(ctx: &Ctx, v: Value) {
    if ctx.json {
        output::json(&v);
    } else {
        let to = if v["to"].is_null() {
            "deleted".to_string()
        } else {
            output::cell(&v["to"])
        };
        outln!("job {}: {} → {}", v["id"], output::cell(&v["from"]), to);
    }
}

fn print_jobs(v: &Value) {
    let rows: Vec<Vec<String>> = v["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|j| {
            let last_error = j["errors"]
                .as_array()
                .and_then(|e| e.last())
                .map(|e| output::cell(&e["error"]))
                .unwrap_or_default();
            vec![
                output::cell(&j["id"]),
                output::cell(&j["queue"]),
                output::cell(&j["kind"]),
                output::cell(&j["state"]),
                format!("{}/{}", j["attempt"], j["max_attempts"]),
                output::cell(&j["scheduled_at"]),
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
    if let Some(next) = v["next_before"].as_i64() {
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

pub(crate) fn print_job(j: &Value) {
    let field = |k: &str| output::cell(&j[k]);
    outln!(
        "job {}  {}  on queue {}",
        field("id"),
        field("kind"),
        field("queue")
    );
    outln!("  state         {}", field("state"));
    outln!(
        "  attempt       {} of {}",
        field("attempt"),
        field("max_attempts")
    );
    outln!("  priority      {}", field("priority"));
    outln!("  created       {}", field("created_at"));
    outln!("  scheduled     {}", field("scheduled_at"));
    outln!(
        "  attempted     {} by {}",
        field("attempted_at"),
        field("attempted_by")
    );
    if !j["lease_expires_at"].is_null() {
        outln!("  lease until   {}", field("lease_expires_at"));
    }
    if !j["finalized_at"].is_null() {
        outln!("  finished      {}", field("finalized_at"));
    }
    if !j["unique_key"].is_null() {
        outln!("  unique key    {}", field("unique_key"));
    }
    if j["tags"].as_array().is_some_and(|t| !t.is_empty()) {
        outln!("  tags          {}", j["tags"]);
    }
    outln!("  args          {}", j["args"]);
    if !j["result"].is_null() {
        outln!("  result        {}", j["result"]);
    }
    for e in j["errors"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        outln!();
        outln!(
            "  attempt {} at {}: {}",
            e["attempt"],
            output::cell(&e["at"]),
            output::cell(&e["error"])
        );
        if let Some(out) = e["output"].as_str() {
            for line in out.lines() {
                outln!("    | {line}");
            }
        }
    }
    if let Some(out) = j["output"].as_str()
        && j["state"] == "completed"
    {
        outln!();
        outln!("  output of the last attempt:");
        for line in out.lines() {
            outln!("    | {line}");
        }
    }
}
