//! `berth budget list|reset NAME`: what each `[budget.NAME]` has spent this period, and
//! starting one over. `list` shows what the running gateway enforces (its limits as of
//! the last start or reload), or, without a running berth, what the file and the store
//! say; `reset` writes the store directly, and running gateways see it within a second.

use std::process::ExitCode;

use anyhow::bail;
use berth_store::Timestamp;
use clap::Subcommand;
use serde_json::json;

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
            let running = match ctx.client()?.get("/v1/budgets").await {
                Ok(v) if v["gateway"] == true => Some(v),
                Ok(_) => None,
                // Not running, or a berth from before `GET /v1/budgets`: the file's.
                Err(berth_api::client::ClientError::Unreachable { .. }) => None,
                Err(berth_api::client::ClientError::Api { status, .. }) if status == 404 => None,
                Err(e) => return Err(e.into()),
            };
            let mut items = match &running {
                // What the running gateway enforces, which a file edited since the last
                // reload does not change.
                Some(v) => v["budgets"].as_array().cloned().unwrap_or_default(),
                None => from_file(&config, store.as_ref(), now).await?,
            };
            let mut rows = Vec::new();
            for b in &mut items {
                let (spent, limit) = (
                    b["spent"].as_f64().unwrap_or(0.0),
                    b["limit"].as_f64().unwrap_or(0.0),
                );
                let share = if limit > 0.0 {
                    spent * 100.0 / limit
                } else {
                    0.0
                };
                b["percent"] = json!((share * 10.0).round() / 10.0);
                rows.push(vec![
                    output::cell(&b["name"]),
                    format!("{spent}"),
                    format!("{limit}"),
                    format!("{share:.1}%"),
                    output::cell(&b["period"]),
                    output::cell(&b["resets_at"]),
                ]);
            }
            // Where the file says otherwise, say so: it takes effect at `berth reload`.
            let mut pending = Vec::new();
            if running.is_some() {
                for b in config.budgets.values() {
                    match items.iter().find(|i| i["name"] == b.name.as_str()) {
                        Some(i) if i["limit"].as_f64() != Some(b.limit) => pending.push(format!(
                            "budget `{}`: the file says a limit of {}; berth enforces {} until `berth reload`",
                            b.name,
                            b.limit,
                            output::cell(&i["limit"])
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
                output::json(&json!(items));
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
                output::json(&json!({"reset": name}));
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
) -> anyhow::Result<Vec<serde_json::Value>> {
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
        items.push(json!({
            "name": b.name,
            "spent": spent,
            "limit": b.limit,
            "cost_per_request": spec.cost_per_request as f64 / 1_000_000.0,
            "period": period,
            "period_start": start.to_string(),
            "resets_at": next.to_string(),
        }));
    }
    Ok(items)
}
