//! `berth budget list|reset NAME`: what each `[budget.NAME]` has spent this period, and
//! starting one over. `list` shows what the running gateway enforces (its limits as of
//! the last start or reload), or, without a running berth, what the file and the store
//! say; `reset` writes the store directly, and running gateways see it within a second.

use std::process::ExitCode;

use anyhow::bail;
use berth_api::types::{BudgetList, BudgetStatus, Timestamp};
use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use super::user::store;
use crate::exit::UsageError;
use crate::output;

/// Budget subcommands.
#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Each budget: spent, limit, share and when it resets.
    List,
    /// Start a budget over: nothing spent in the current period.
    Reset {
        /// The budget.
        name: String,
    },
}

/// Runs a budget subcommand.
pub async fn run(ctx: &Ctx, cmd: BudgetCommand) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    let store = store(ctx).await?;
    let now = Timestamp::now();
    match cmd {
        BudgetCommand::List => {
            // What the running gateway enforces, which a file edited since the last
            // reload does not change.
            let enforced = match ctx.client()?.get::<BudgetList>("/v1/budgets").await {
                Ok(v) if v.gateway => Some(v.budgets),
                Ok(_) => None,
                // Not running, or a berth from before `GET /v1/budgets`: the file's.
                Err(berth_api::client::ClientError::Unreachable { .. }) => None,
                Err(berth_api::client::ClientError::Api { status, .. }) if status == 404 => None,
                Err(e) => return Err(e.into()),
            };
            let statuses = match &enforced {
                Some(budgets) => budgets.clone(),
                None => from_file(&config, store.as_ref(), now).await?,
            };
            let mut items = Vec::new();
            let mut rows = Vec::new();
            for status in statuses {
                let (spent, limit) = (status.spent, status.limit);
                let share = if limit > 0.0 {
                    spent * 100.0 / limit
                } else {
                    0.0
                };
                rows.push(vec![
                    status.name.clone(),
                    format!("{spent}"),
                    format!("{limit}"),
                    format!("{share:.1}%"),
                    status.period.clone(),
                    status.resets_at.clone(),
                ]);
                items.push(Shown {
                    status,
                    percent: (share * 10.0).round() / 10.0,
                });
            }
            // Where the file says otherwise, say so: it takes effect at `berth reload`.
            let mut pending = Vec::new();
            if let Some(enforced) = &enforced {
                for b in config.budgets.values() {
                    match enforced.iter().find(|i| i.name == b.name) {
                        Some(i) if i.limit != b.limit => pending.push(format!(
                            "budget `{}`: the file says a limit of {}; berth enforces {} until `berth reload`",
                            b.name,
                            b.limit,
                            // As the API wrote it (`10.0`, not `10`).
                            serde_json::to_string(&i.limit).unwrap_or_default()
                        )),
                        None => pending.push(format!(
                            "budget `{}` is in the file but not enforced until `berth reload`",
                            b.name
                        )),
                        _ => {}
                    }
                }
            }
            if ctx.json {
                output::json(&items);
            } else {
                output::table(
                    &["BUDGET", "SPENT", "LIMIT", "USED", "PERIOD", "RESETS"],
                    &rows,
                );
                for p in &pending {
                    errln!("note: {p}");
                }
            }
        }
        BudgetCommand::Reset { name } => {
            let Some(b) = config.budgets.get(&name) else {
                let known: Vec<&str> = config.budgets.keys().map(String::as_str).collect();
                bail!(UsageError(format!(
                    "no [budget.{name}] in {}; expected one of: {}",
                    config.path.display(),
                    if known.is_empty() {
                        "(none)".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            let spec = berth_server::gateway::budget_spec(b)?;
            let (start, _) = berth_gateway::period_bounds(&spec, now);
            store.budget_reset(&name, start, now).await?;
            if ctx.json {
                output::json(&Reset { reset: &name });
            } else {
                outln!("budget `{name}` starts over: nothing spent since {start}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The budgets as the config file describes them, with what the store holds as spent:
/// what a berth started now would enforce.
async fn from_file(
    config: &berth_config::Config,
    store: &dyn berth_store::Store,
    now: Timestamp,
) -> anyhow::Result<Vec<BudgetStatus>> {
    let stored = store.budgets().await?;
    let mut items = Vec::new();
    for b in config.budgets.values() {
        let spec = berth_server::gateway::budget_spec(b)?;
        let (start, next) = berth_gateway::period_bounds(&spec, now);
        let spent = stored
            .iter()
            .find(|(n, s)| *n == b.name && s.period_start >= start)
            .map_or(0, |(_, s)| s.spent) as f64
            / 1_000_000.0;
        let period = match b.period {
            berth_config::BudgetPeriod::Day => "day",
            berth_config::BudgetPeriod::Month => "month",
        };
        items.push(BudgetStatus {
            name: b.name.clone(),
            limit: b.limit,
            cost_per_request: spec.cost_per_request as f64 / 1_000_000.0,
            period: period.to_owned(),
            spent,
            period_start: start.to_string(),
            resets_at: next.to_string(),
        });
    }
    Ok(items)
}

/// A budget as `berth budget list --json` shows it: as enforced, with the share spent.
#[derive(Debug, Serialize)]
struct Shown {
    #[serde(flatten)]
    status: BudgetStatus,
    /// Spent, in % of the limit, to one decimal.
    percent: f64,
}

/// What `berth budget reset --json` prints.
#[derive(Debug, Serialize)]
struct Reset<'a> {
    reset: &'a str,
}
