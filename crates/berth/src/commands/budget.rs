//! `berth budget list|reset NAME`: what each `[budget.NAME]` has spent this period, and
//! starting one over. These read and write the store directly, with or without a
//! running berth; running gateways see a reset within a second.

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
            let stored = store.budgets().await?;
            let mut rows = Vec::new();
            let mut items = Vec::new();
            for b in config.budgets.values() {
                let spec = berth_server::gateway::budget_spec(b)?;
                let (start, next) = berth_gateway::period_bounds(&spec, now);
                let spent = stored
                    .iter()
                    .find(|(n, s)| *n == b.name && s.period_start >= start)
                    .map_or(0, |(_, s)| s.spent) as f64
                    / 1_000_000.0;
                let share = spent * 100.0 / b.limit;
                let period = match b.period {
                    berth_config::BudgetPeriod::Day => "day",
                    berth_config::BudgetPeriod::Month => "month",
                };
                items.push(json!({
                    "name": b.name,
                    "spent": spent,
                    "limit": b.limit,
                    "percent": (share * 10.0).round() / 10.0,
                    "period": period,
                    "resets_at": next.to_string(),
                }));
                rows.push(vec![
                    b.name.clone(),
                    format!("{spent}"),
                    format!("{}", b.limit),
                    format!("{share:.1}%"),
                    period.to_owned(),
                    next.to_string(),
                ]);
            }
            if ctx.json {
                output::json(&json!(items));
            } else {
                output::table(
                    &["BUDGET", "SPENT", "LIMIT", "USED", "PERIOD", "RESETS"],
                    &rows,
                );
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
