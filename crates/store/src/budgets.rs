//! Budgets' stored spending and the store's settings (small JSON values berth keeps
//! across restarts and nodes: run-time queue concurrency, maintenance mode, the deploy
//! lock, …).

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// A budget's spending in its current period, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BudgetState {
    /// When the period the spending belongs to began.
    pub period_start: Timestamp,
    /// Spent so far, in millionths of the budget's unit.
    pub spent: i64,
    /// The highest alert already sent for this period: 0, 80 or 100 (percent).
    pub alerted: i32,
}

/// The new state after adding `delta` spent in the period starting `period_start` to
/// `old`: a newer period starts over; an older one (a node whose clock lags) adds to
/// the current.
pub(crate) fn budget_after(
    old: Option<BudgetState>,
    period_start: Timestamp,
    delta: i64,
) -> BudgetState {
    match old {
        Some(old) if old.period_start >= period_start => BudgetState {
            spent: old.spent.saturating_add(delta),
            ..old
        },
        _ => BudgetState {
            period_start,
            spent: delta,
            alerted: 0,
        },
    }
}
