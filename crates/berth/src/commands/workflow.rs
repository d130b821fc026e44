//! `berth workflow start|list|show|cancel|retry`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use super::{Ctx, encode};
use crate::output;

/// Workflow subcommands.
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Start a workflow of berth.toml.
    Start {
        /// The workflow's name.
        name: String,
        /// Its input, as JSON (default {}); `-` reads it from stdin.
        #[arg(long)]
        args: Option<String>,
        /// Wait until it finishes; exit 0 only if it completed.
        #[arg(long)]
        wait: bool,
        /// While a workflow started with this key runs, start nothing and show that one
        /// (a retried script cannot start two).
        #[arg(long)]
        unique_key: Option<String>,
    },
    /// Workflows, newest first.
    List {
        /// Only of this name.
        #[arg(long)]
        name: Option<String>,
        /// Only in this state: running, completed, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One workflow with its steps.
    Show {
        /// The workflow id.
        id: i64,
    },
    /// Cancel a running workflow and its unfinished steps.
    Cancel {
        /// The workflow id.
        id: i64,
    },
    /// Run a failed or cancelled workflow again from its failed steps.
    Retry {
        /// The workflow id.
        id: i64,
    },
}

/// Runs a workflow subcommand.
pub async fn run(ctx: &Ctx, cmd: WorkflowCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let v = match cmd {
        WorkflowCommand::Start {
            name,
            args,
            wait,
            unique_key,
        } => {
            let input = super::job::parse_args(args)?;
            let mut v = client
                .post(
                    "/v1/workflows",
                    json!({ "name": name, "args": input, "unique_key": unique_key }),
                )
                .await?;
            if v["duplicate"] == true && !ctx.json {
                errln!(
                    "workflow {} with this unique key runs already: not started again",
                    v["id"]
                );
            }
            if wait {
                let id = v["id"].as_i64().unwrap_or(0);
                while v["state"] == "running" {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    v = client.get(&format!("/v1/workflows/{id}")).await?;
                }
                show(ctx, &v);
                return Ok(if v["state"] == "completed" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            v
        }
        WorkflowCommand::List { name, state, limit } => {
            let mut path = format!("/v1/workflows?limit={limit}");
            if let Some(n) = name {
                path.push_str(&format!("&name={}", encode(&n)));
            }
            if let Some(s) = state {
                path.push_str(&format!("&state={}", encode(&s)));
            }
            let v = client.get(&path).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_list(&v);
            }
            return Ok(ExitCode::SUCCESS);
        }
        WorkflowCommand::Show { id } => client.get(&format!("/v1/workflows/{id}")).await?,
        WorkflowCommand::Cancel { id } => {
            client
                .post(&format!("/v1/workflows/{id}/cancel"), json!({}))
                .await?
        }
        WorkflowCommand::Retry { id } => {
            client
                .post(&format!("/v1/workflows/{id}/retry"), json!({}))
                .await?
        }
    };
    if v["id"].is_null() {
        bail!("the API answered without a workflow");
    }
    show(ctx, &v);
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, v: &Value) {
    if ctx.json {
        output::json(v);
        return;
    }
    outln!(
        "workflow {} ({}): {}{}",
        v["id"],
        output::cell(&v["name"]),
        output::cell(&v["state"]),
        v["error"]
            .as_str()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    );
    outln!(
        "started by {} at {}{}",
        output::cell(&v["started_by"]),
        output::cell(&v["created_at"]),
        v["unique_key"]
            .as_str()
            .map(|k| format!(", unique key {k}"))
            .unwrap_or_default()
    );
    let rows: Vec<Vec<String>> = v["steps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let parents: Vec<String> = s["parents"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(output::cell)
                .collect();
            vec![
                output::cell(&s["name"]),
                output::cell(&s["job_id"]),
                match &s["state"] {
                    Value::Null => "pruned".into(),
                    st => output::cell(st),
                },
                output::cell(&s["attempt"]),
                if parents.is_empty() {
                    "-".into()
                } else {
                    parents.join(",")
                },
                output::cell(&s["error"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(
            &["STEP", "JOB", "STATE", "ATTEMPT", "PARENTS", "LAST ERROR"],
            &rows,
        );
    }
}

fn print_list(v: &Value) {
    let rows: Vec<Vec<String>> = v["workflows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| {
            vec![
                output::cell(&w["id"]),
                output::cell(&w["name"]),
                output::cell(&w["state"]),
                output::cell(&w["started_by"]),
                output::cell(&w["created_at"]),
                output::cell(&w["finalized_at"]),
            ]
        })
        .collect();
    output::table(
        &[
            "WORKFLOW",
            "NAME",
            "STATE",
            "STARTED BY",
            "STARTED",
            "FINISHED",
        ],
        &rows,
    );
}
