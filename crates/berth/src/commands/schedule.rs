//! `berth schedule list|run|pause|resume`.

use std::process::ExitCode;

use berth_api::types::{ScheduleInfo, ScheduleList, ScheduleRun};
use clap::Subcommand;

use super::Said;
use super::{Ctx, encode};
use crate::output;
use crate::output::{opt_time, time};
use berth_api::types::NoBody;

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
    match cmd {
        ScheduleCommand::List => {
            let v: ScheduleList = client.get("/v1/schedules").await?;
            if ctx.json {
                output::json(&v);
            } else {
                print_schedules(&v);
            }
        }
        ScheduleCommand::Run { name } => {
            let v: ScheduleRun = client
                .post(&format!("/v1/schedules/{}/run", encode(&name)), &NoBody {})
                .await?;
            let what = match (v.job_id, v.workflow_id) {
                (Some(j), _) => format!("job {j}"),
                (_, Some(w)) => format!("workflow {w}"),
                _ => "nothing".into(),
            };
            Said {
                answer: v,
                message: format!("schedule `{name}` started {what}"),
            }
            .print(ctx);
        }
        ScheduleCommand::Pause { name } => pause(&client, &name, true).await?.print(ctx),
        ScheduleCommand::Resume { name } => pause(&client, &name, false).await?.print(ctx),
    }
    Ok(ExitCode::SUCCESS)
}

async fn pause(
    client: &berth_api::client::Client,
    name: &str,
    paused: bool,
) -> anyhow::Result<Said<ScheduleInfo>> {
    let verb = if paused { "pause" } else { "resume" };
    let v: ScheduleInfo = client
        .post(
            &format!("/v1/schedules/{}/{verb}", encode(name)),
            &NoBody {},
        )
        .await?;
    let message = format!(
        "schedule `{name}` {}; next planned run {}",
        if paused { "paused" } else { "resumed" },
        time(v.next_at)
    );
    Ok(Said { answer: v, message })
}

fn print_schedules(v: &ScheduleList) {
    let rows: Vec<Vec<String>> = v
        .schedules
        .iter()
        .map(|s| {
            let last = s.last.as_ref();
            vec![
                s.name.clone(),
                format!("{} ({})", s.cron, s.timezone),
                s.target.clone(),
                if s.paused {
                    "paused".into()
                } else {
                    time(s.next_at)
                },
                opt_time(last.map(|l| l.planned_at)),
                match last {
                    None => "-".into(),
                    Some(l) => l.outcome.clone().unwrap_or_else(|| "pruned".into()),
                },
                s.skipped.to_string(),
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
