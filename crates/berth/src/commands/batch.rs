//! `berth batch run|list|show|cancel|retry-failed`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_api::client::Client;
use berth_api::types::FlowState;
use berth_api::types::{Batch, BatchCreateBody, BatchDetail, BatchList, BatchRetried};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;
use crate::output::{opt, time};
use berth_api::types::NoBody;

/// Batch subcommands.
#[derive(Debug, Subcommand)]
pub enum BatchCommand {
    /// Cut items into jobs of --job-size items and run them as one batch.
    Run(RunArgs),
    /// Batches, newest first.
    List {
        /// Only in this state: running, completed, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One batch with its counts and its failed items.
    Show {
        /// The batch id.
        id: i64,
    },
    /// Cancel the batch's unfinished jobs.
    Cancel {
        /// The batch id.
        id: i64,
    },
    /// Run the batch's failed and cancelled items again.
    RetryFailed {
        /// The batch id.
        id: i64,
        /// Wait for the batch to finish, as `run --wait` does.
        #[arg(long)]
        wait: bool,
    },
}

/// `berth batch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The jobs' kind.
    kind: String,
    /// The queue the jobs run on.
    #[arg(long)]
    queue: String,
    /// A file of items: a JSON array, or one item per line (a line that is JSON is read as
    /// JSON, any other line as a string). `-` reads standard input.
    #[arg(
        long,
        conflicts_with = "from_command",
        required_unless_present = "from_command"
    )]
    items: Option<PathBuf>,
    /// A shell command whose output lists the items, as --items reads a file.
    #[arg(long)]
    from_command: Option<String>,
    /// Items per job.
    #[arg(long, default_value_t = 100)]
    job_size: u32,
    /// Attempts per job (default: the queue's).
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Wait for the batch to finish, with a progress bar; exit 0 only if every item
    /// succeeded, otherwise exit 1 and list the failed items.
    #[arg(long)]
    wait: bool,
}

/// Runs a batch subcommand.
pub async fn run(ctx: &Ctx, cmd: BatchCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        BatchCommand::Run(args) => {
            let text = match (&args.items, &args.from_command) {
                (Some(path), _) => read_items_file(path)?,
                (None, Some(cmd)) => run_items_command(cmd)?,
                (None, None) => unreachable!("clap requires one of them"),
            };
            let items = parse_items(&text)?;
            let count = items.len();
            let body = BatchCreateBody {
                queue: args.queue,
                kind: args.kind,
                items,
                job_size: args.job_size,
                max_attempts: args.max_attempts,
                priority: 0,
            };
            let v: Batch = client.post("/v1/batches", &body).await?;
            if !ctx.json {
                let jobs = (count as u64).div_ceil(u64::from(args.job_size.max(1)));
                errln!(
                    "batch {}: {count} items in {jobs} jobs of up to {} on queue {}",
                    v.id,
                    args.job_size,
                    body.queue
                );
            }
            finish(ctx, &client, &v, &v, args.wait).await
        }
        BatchCommand::List { state, limit } => {
            let mut path = format!("/v1/batches?limit={limit}");
            if let Some(s) = state {
                path.push_str(&format!("&state={}", super::encode(&s)));
            }
            let v: BatchList = client.get(&path).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_batches(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        BatchCommand::Show { id } => {
            let v: BatchDetail = client.get(&format!("/v1/batches/{id}")).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_batch(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        BatchCommand::Cancel { id } => {
            let v: Batch = client
                .post(&format!("/v1/batches/{id}/cancel"), &NoBody {})
                .await?;
            finish(ctx, &client, &v, &v, false).await
        }
        BatchCommand::RetryFailed { id, wait } => {
            let v: BatchRetried = client
                .post(&format!("/v1/batches/{id}/retry-failed"), &NoBody {})
                .await?;
            if !ctx.json {
                errln!("batch {id}: {} jobs will run again", v.retried_jobs);
            }
            finish(ctx, &client, &v, &v.batch, wait).await
        }
    }
}

/// Shows `answer` (about `batch`), or with `wait`, waits for the batch to end and shows
/// it then: exit 0 only if it completed.
async fn finish(
    ctx: &Ctx,
    client: &Client,
    answer: &impl Serialize,
    batch: &Batch,
    wait: bool,
) -> anyhow::Result<ExitCode> {
    if !wait {
        if ctx.json {
            output::json(answer);
        } else {
            outln!("{}", summary(batch));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let done = wait_for(client, batch.id, !ctx.json).await?;
    if ctx.json {
        output::json(&done);
    } else {
        print_batch(&done);
    }
    Ok(if done.batch.state == FlowState::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_items_file(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the items from standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the items file {}", path.display()))
}

fn run_items_command(cmd: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run `{cmd}`"))?;
    if !out.status.success() {
        bail!(UsageError(format!(
            "the items command `{cmd}` failed ({}); no batch was created",
            out.status
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| {
        UsageError(format!(
            "the items command `{cmd}` printed text that is not UTF-8"
        ))
        .into()
    })
}

/// A JSON array, or one item per line: a line that is JSON is that value, any other line
/// the string itself. Blank lines are skipped.
fn parse_items(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(items)) => check_nonempty(items),
            Ok(_) | Err(_) => {
                let e = serde_json::from_str::<Vec<Value>>(trimmed).err();
                bail!(UsageError(format!(
                    "the items start with `[` but are not a JSON array ({}); give a JSON array or one item per line",
                    e.map(|e| e.to_string()).unwrap_or_default()
                )))
            }
        };
    }
    let items = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l.trim()).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect();
    check_nonempty(items)
}

fn check_nonempty(items: Vec<Value>) -> anyhow::Result<Vec<Value>> {
    if items.is_empty() {
        bail!(UsageError(
            "there are no items: give a JSON array or one item per line".into()
        ));
    }
    Ok(items)
}

/// Polls the batch until it ends, drawing a progress bar on a terminal.
async fn wait_for(client: &Client, id: i64, people: bool) -> anyhow::Result<BatchDetail> {
    let tty = people && std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let v: BatchDetail = client.get(&format!("/v1/batches/{id}")).await?;
        let b = &v.batch;
        let (total, done, failed, cancelled) = (
            b.total_items,
            b.done_items,
            b.failed_items,
            b.cancelled_items,
        );
        let finished = done + failed + cancelled;
        let line = progress_line(total, finished, failed);
        if tty {
            err!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if people && line != last_line {
            errln!("{line}");
        }
        last_line = line;
        if b.state != FlowState::Running {
            if tty {
                errln!();
            }
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn progress_line(total: u64, finished: u64, failed: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (finished * WIDTH).checked_div(total).unwrap_or(0);
    format!(
        "[{}{}] {finished}/{total} items, {failed} failed",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize)
    )
}

fn summary(b: &Batch) -> String {
    format!(
        "batch {}: {} — {} of {} items done, {} failed, {} cancelled",
        b.id, b.state, b.done_items, b.total_items, b.failed_items, b.cancelled_items
    )
}

fn print_batch(v: &BatchDetail) {
    outln!("{}", summary(&v.batch));
    if v.failures.is_empty() {
        return;
    }
    outln!("failed items:");
    for f in &v.failures {
        for item in &f.items {
            outln!(
                "  {}  (job {}, {}): {}",
                item,
                f.job_id,
                f.state,
                opt(f.error.as_deref())
            );
        }
    }
}

fn print_batches(v: &BatchList) {
    let rows: Vec<Vec<String>> = v
        .batches
        .iter()
        .map(|b| {
            vec![
                b.id.to_string(),
                b.kind.clone(),
                b.queue.clone(),
                b.state.to_string(),
                format!("{}/{}", b.done_items, b.total_items),
                b.failed_items.to_string(),
                time(b.created_at),
            ]
        })
        .collect();
    output::table(
        &[
            "BATCH", "KIND", "QUEUE", "STATE", "DONE", "FAILED", "CREATED",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn items_from_an_array_or_lines() {
        assert_eq!(
            parse_items(" [1, \"a\"]").unwrap(),
            vec![json!(1), json!("a")]
        );
        assert_eq!(
            parse_items("a b\n\n{\"x\": 1}\n42\n").unwrap(),
            vec![json!("a b"), json!({"x": 1}), json!(42)]
        );
        assert!(
            parse_items("[1,")
                .unwrap_err()
                .to_string()
                .contains("not a JSON array")
        );
        assert!(
            parse_items("\n \n")
                .unwrap_err()
                .to_string()
                .contains("no items")
        );
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Mutated items files (berth-mutate): taken as items (never none) or refused with
        /// what to give instead; a line-per-item file keeps one item per non-blank line.
        #[test]
        fn a_mutated_items_file_is_read_or_refused_clearly(text in berth_mutate::mutated_text(
            vec![
                "[1, \"a\", {\"id\": 7, \"tags\": [\"x\"]}, null, 2.5e3]".into(),
                "alice@example.org\nbob@example.org\n\n{\"id\": 3}\n42\n".into(),
                "  [\n  {\"path\": \"/srv/in/a.csv\"},\n  {\"path\": \"/srv/in/b.csv\"}\n]\n".into(),
            ],
            6,
        )) {
            match parse_items(&text) {
                Ok(items) => {
                    prop_assert!(!items.is_empty());
                    if !text.trim_start().starts_with('[') {
                        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
                        prop_assert_eq!(items.len(), lines);
                    }
                }
                Err(e) => {
                    let m = e.to_string();
                    prop_assert!(m.contains("give a JSON array or one item per line"), "{}", m);
                }
            }
        }
    }

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(
            progress_line(10, 5, 1),
            format!(
                "[{}{}] 5/10 items, 1 failed",
                "#".repeat(15),
                "-".repeat(15)
            )
        );
        assert_eq!(
            progress_line(0, 0, 0),
            format!("[{}] 0/0 items, 0 failed", "-".repeat(30))
        );
    }
}
