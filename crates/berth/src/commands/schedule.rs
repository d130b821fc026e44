//! `berth schedule list|run|pause|resume`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use super::{Ctx, encode};
use crate::output;

/// Schedule subcommands.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every schedule with its next run, its last run and how that went.
    List,
    /// Start a run now (the next planned run stays as it is).
    Run {
        /// The schedule.
        name: String,
    },
    /// Stop starting runs; planned times pass and count as skipped.
    Pause {
        /// The schedule.
        name: String,
    },
    /// Start runs again from the next planned time.
    Resume {
        /// The schedule.
        name: String,
    },
}

/// Runs a schedule subcommand.
pub async fn run(ctx: &Ctx, cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let answer = match cmd {
        ScheduleCommand::List => {
            let v = client.get("/v1/schedules").await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_schedules(&v);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ScheduleCommand::Run { name } => {
            let v = client
                .post(&format!("/v1/schedules/{}/run", encode(&name)), json!({}))
                .await?;
            let what = match (v["job_id"].as_i64(), v["workflow_id"].as_i64()) {
                (Some(j), _) => format!("job {j}"),
                (_, Some(w)) => format!("workflow {w}"),
                _ => "nothing".into(),
            };
            let mut v = v;
            v["message"] = json!(format!("schedule `{name}` started {what}"));
            v
        }
        ScheduleCommand::Pause { name } => pause(&client, &name, true).await?,
        ScheduleCommand::Resume { name } => pause(&client, &name, false).await?,
    };
    if ctx.json {
        output::json(&answer);
    } else {
        outln!("{}", output::cell(&answer["message"]));
    }
    Ok(ExitCode::SUCCESS)
}

async fn pause(
    client: &berth_api::client::Client,
    name: &str,
    paused: bool,
) -> anyhow::Result<Value> {
    let verb = if paused { "pause" } else { "resume" };
    let mut v = client
        .post(&format!("/v1/schedules/{}/{verb}", encode(name)), json!({}))
        .await?;
    v["message"] = json!(format!(
        "schedule `{name}` {}; next planned run {}",
        if paused { "paused" } else { "resumed" },
        output::cell(&v["next_at"])
    ));
    Ok(v)
}

fn print_schedules(v: &Value) {
    let rows: Vec<Vec<String>> = v["schedules"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let last = &s["last"];
            vec![
                output::cell(&s["name"]),
                format!(
                    "{} ({})",
                    output::cell(&s["cron"]),
                    output::cell(&s["timezone"])
                ),
                output::cell(&s["target"]),
                if s["paused"].as_bool() == Some(true) {
                    "paused".into()
                } else {
                    output::cell(&s["next_at"])
                },
                output::cell(&last["planned_at"]),
                match (&last["outcome"], last.is_null()) {
                    (_, true) => "-".into(),
                    (Value::Null, false) => "pruned".into(),
                    (o, false) => output::cell(o),
                },
                output::cell(&s["skipped"]),
            ]
        })
        .collect();
    output::table(
        &[
            "SCHEDULE", "CRON", "STARTS", "NEXT", "LAST", "OUTCOME", "SKIPPED",
        ],
        &rows,
    );
}
