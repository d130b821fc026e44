//! `berth workflow start|list|show|cancel|retry`.

use std::process::ExitCode;
use std::time::Duration;

use berth_api::types::FlowState;
use berth_api::types::{Workflow, WorkflowList, WorkflowStartBody, WorkflowStarted};
use clap::Subcommand;
use serde::Serialize;

use super::{Ctx, encode};
use crate::output;
use crate::output::{opt, opt_time, time};
use berth_api::types::NoBody;

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
    match cmd {
        WorkflowCommand::Start {
            name,
            args,
            wait,
            unique_key,
        } => {
            let body = WorkflowStartBody {
                name,
                args: Some(super::job::parse_args(args)?),
                unique_key,
            };
            let started: WorkflowStarted = client.post("/v1/workflows", &body).await?;
            if started.duplicate && !ctx.json {
                errln!(
                    "workflow {} with this unique key runs already: not started again",
                    started.workflow.id
                );
            }
            if !wait {
                show(ctx, &started, &started.workflow);
                return Ok(ExitCode::SUCCESS);
            }
            let state = if started.workflow.state == FlowState::Running {
                let id = started.workflow.id;
                let w = loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let w: Workflow = client.get(&format!("/v1/workflows/{id}")).await?;
                    if w.state != FlowState::Running {
                        break w;
                    }
                };
                show(ctx, &w, &w);
                w.state
            } else {
                show(ctx, &started, &started.workflow);
                started.workflow.state
            };
            Ok(if state == FlowState::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        WorkflowCommand::List { name, state, limit } => {
            let mut path = format!("/v1/workflows?limit={limit}");
            if let Some(n) = name {
                path.push_str(&format!("&name={}", encode(&n)));
            }
            if let Some(s) = state {
                path.push_str(&format!("&state={}", encode(&s)));
            }
            let v: WorkflowList = client.get(&path).await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_list(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Show { id } => {
            let w: Workflow = client.get(&format!("/v1/workflows/{id}")).await?;
            show(ctx, &w, &w);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Cancel { id } => {
            let w: Workflow = client
                .post(&format!("/v1/workflows/{id}/cancel"), &NoBody {})
                .await?;
            show(ctx, &w, &w);
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Retry { id } => {
            let w: Workflow = client
                .post(&format!("/v1/workflows/{id}/retry"), &NoBody {})
                .await?;
            show(ctx, &w, &w);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Shows `answer` with `--json`, else workflow `v` with its steps.
fn show(ctx: &Ctx, answer: &impl Serialize, v: &Workflow) {
    if ctx.json {
        output::json(answer);
        return;
    }
    outln!(
        "workflow {} ({}): {}{}",
        v.id,
        v.name,
        v.state,
        v.error
            .as_deref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    );
    outln!(
        "started by {} at {}{}",
        v.started_by,
        time(v.created_at),
        v.unique_key
            .as_deref()
            .map(|k| format!(", unique key {k}"))
            .unwrap_or_default()
    );
    let rows: Vec<Vec<String>> = v
        .steps
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.job_id.to_string(),
                s.state
                    .map(|st| st.to_string())
                    .unwrap_or_else(|| "pruned".into()),
                s.attempt.to_string(),
                if s.parents.is_empty() {
                    "-".into()
                } else {
                    s.parents.join(",")
                },
                opt(s.error.as_deref()),
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

fn print_list(v: &WorkflowList) {
    let rows: Vec<Vec<String>> = v
        .workflows
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.name.clone(),
                w.state.to_string(),
                w.started_by.clone(),
                time(w.created_at),
                opt_time(w.finalized_at),
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
