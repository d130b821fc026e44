//! Budgets: a spending limit per calendar day or month, enforced before a request
//! reaches the service.
//!
//! Each node keeps every budget's spending in memory: what the store held at the last
//! flush plus what this node charged since. A request is refused at once, with a JSON
//! error naming the budget, the amounts and when it resets, when the budget is spent.
//! Every [`FLUSH_EVERY`] (and at stop) the charges are added to the store, which returns
//! the total of every node; so several nodes overshoot a limit by at most what they let
//! through in one flush interval, and a restart loses at most that much. Crossing 80% and
//! 100% records a `budget.80` / `budget.100` event once per period (the store decides
//! which node sends it).
//!
//! Amounts are kept in millionths of the budget's unit, so sums are exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_store::{BudgetState, NewEvent, Store, Timestamp};
use hyper::Response;
use hyper::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use jiff::tz::TimeZone;
use jiff::{ToSpan, Zoned};
use serde_json::json;

use crate::body::{Body, full};
use crate::spec::{BudgetSpec, Clock, Period};

/// How often charges go to the store and the totals come back.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Millionths of a unit.
const MICROS: f64 = 1_000_000.0;

/// One budget's spending, as this node sees it.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Replaced by a reload (a new limit, cost or period); what was spent stays.
    spec: RwLock<Arc<BudgetSpec>>,
    local: Mutex<Local>,
}

#[derive(Debug, Clone, Copy)]
struct Local {
    period_start: Timestamp,
    /// The store's total at the last flush.
    stored: i64,
    /// Charged here since the last flush.
    pending: i64,
    /// Being flushed now: still spent until the store's answer counts it.
    flushing: i64,
}

impl Local {
    /// Nothing spent yet in the period that starts at `start`.
    fn new(start: Timestamp) -> Self {
        Self {
            period_start: start,
            stored: 0,
            pending: 0,
            flushing: 0,
        }
    }

    /// Starts over when `start` begins a later period than the one counted.
    fn roll(&mut self, start: Timestamp) {
        if self.period_start < start {
            *self = Self::new(start);
        }
    }
}

impl Budget {
    fn new(spec: &BudgetSpec, now: Timestamp) -> Self {
        let (start, _) = period_bounds(spec, now);
        Self {
            spec: RwLock::new(Arc::new(spec.clone())),
            local: Mutex::new(Local::new(start)),
        }
    }

    /// The settings in force.
    pub(crate) fn spec(&self) -> Arc<BudgetSpec> {
        self.spec.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether a request may go through now; charges its `cost_per_request` if so.
    pub(crate) fn admit(&self, now: Timestamp) -> Result<(), Box<Response<Body>>> {
        let spec = self.spec();
        let (start, next) = period_bounds(&spec, now);
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.roll(start);
        let spent = local
            .stored
            .saturating_add(local.pending)
            .saturating_add(local.flushing);
        let cost = spec.cost_per_request;
        let over = if cost > 0 {
            spent.saturating_add(cost) > spec.limit
        } else {
            spent >= spec.limit
        };
        if over {
            return Err(Box::new(refusal(&spec, spent, now, next)));
        }
        local.pending = local.pending.saturating_add(cost);
        Ok(())
    }

    /// Charges what the service reported in the response's cost header (removed from the
    /// response, as it is meant for berth).
    pub(crate) fn charge_reported(&self, headers: &mut HeaderMap, now: Timestamp) {
        let spec = self.spec();
        let Some(name) = &spec.cost_header else {
            return;
        };
        let Some(value) = headers.remove(name) else {
            return;
        };
        let cost = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c >= 0.0);
        let Some(cost) = cost else {
            tracing::warn!(budget = %spec.name, header = %name, "the service reported a cost that is not a number of zero or more; nothing charged");
            return;
        };
        let (start, _) = period_bounds(&spec, now);
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.roll(start);
        // A cost beyond the whole limit is the limit: enough to spend it.
        let micros = (cost * MICROS).round().min(spec.limit as f64) as i64;
        local.pending = local.pending.saturating_add(micros);
    }
}

/// The answer to a request refused because the budget is spent.
fn refusal(s: &BudgetSpec, spent: i64, now: Timestamp, next: Timestamp) -> Response<Body> {
    let period = match s.period {
        Period::Day => "day",
        Period::Month => "month",
    };
    let resets = next.to_string();
    let body = json!({
        "error": "budget_exhausted",
        "budget": s.name,
        "limit": s.limit as f64 / MICROS,
        "spent": spent as f64 / MICROS,
        "period": period,
        "resets_at": resets,
        "message": format!(
            "budget `{}` is spent: {} of {} this {period}; it resets at {resets}",
            s.name,
            spent as f64 / MICROS,
            s.limit as f64 / MICROS
        ),
    });
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = s.status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    let wait = next.since(now).as_secs().max(1);
    if let Ok(v) = HeaderValue::try_from(wait.to_string()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

impl Budget {
    /// What this node charged since the last flush, taken for a flush.
    fn take_pending(&self) -> (Timestamp, i64) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        let pending = std::mem::take(&mut local.pending);
        local.flushing = pending;
        (local.period_start, pending)
    }

    /// After a flush: the store's total (or, if the flush failed, the charges back).
    fn settle(&self, period_start: Timestamp, flushed: i64, state: Option<BudgetState>) {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        local.flushing = 0;
        match state {
            Some(state) if state.period_start >= local.period_start => {
                if state.period_start > local.period_start {
                    // Another node is in a newer period already: so are we.
                    local.pending = 0;
                }
                local.period_start = state.period_start;
                local.stored = state.spent;
            }
            Some(_) => {}
            None if local.period_start == period_start => {
                local.pending = local.pending.saturating_add(flushed)
            }
            None => {}
        }
    }
}

/// Budgets as a reload would make them (see [`Budgets::prepare`]).
#[derive(Default)]
pub(crate) struct Prepared {
    pub(crate) by_name: HashMap<String, Arc<Budget>>,
    /// Budgets that stay, with their new settings.
    specs: Vec<(Arc<Budget>, Arc<BudgetSpec>)>,
    /// Budgets that stay but count from a new period (their period or zone changed).
    restarted: Vec<(Arc<Budget>, Local)>,
}

/// Every budget, by name, with the flusher's state.
pub(crate) struct Budgets {
    /// Replaced by a reload: new budgets added, removed ones dropped.
    by_name: RwLock<HashMap<String, Arc<Budget>>>,
    store: Arc<dyn Store>,
    clock: Clock,
    node: String,
}

impl Budgets {
    /// The budgets, with what the store holds for their current periods, so that a
    /// restart does not forget what was spent.
    pub(crate) async fn load(
        specs: &[BudgetSpec],
        store: Arc<dyn Store>,
        clock: Clock,
        node: String,
    ) -> Result<Self, berth_store::StoreError> {
        let this = Self {
            by_name: RwLock::new(HashMap::new()),
            store,
            clock,
            node,
        };
        this.reload(specs).await?;
        Ok(this)
    }

    /// Makes the budgets `specs` at once (at start).
    pub(crate) async fn reload(&self, specs: &[BudgetSpec]) -> Result<(), berth_store::StoreError> {
        let prepared = self.prepare(specs).await?;
        self.commit(prepared);
        Ok(())
    }

    /// What the budgets `specs` would be (a reload), without changing anything yet: a
    /// budget that stays is the same one (it keeps what it spent); a new one, or one whose
    /// period or time zone changed, starts from what the store holds for its current
    /// period; a removed one is left out (its row stays in the store). The routes of a
    /// reload are built against this, and [`Budgets::commit`] puts it in force.
    pub(crate) async fn prepare(
        &self,
        specs: &[BudgetSpec],
    ) -> Result<Prepared, berth_store::StoreError> {
        let now = self.clock.now();
        let current = self.all();
        let restarts = |s: &BudgetSpec| {
            current.get(&s.name).is_none_or(|b| {
                let was = b.spec();
                was.period != s.period || was.tz != s.tz
            })
        };
        let stored: HashMap<String, BudgetState> = if specs.iter().any(restarts) {
            self.store.budgets().await?.into_iter().collect()
        } else {
            HashMap::new()
        };
        let mut out = Prepared::default();
        for spec in specs {
            let budget = match current.get(&spec.name) {
                Some(b) => {
                    if restarts(spec) {
                        // Counted again from the new period's start, as the store has it.
                        let (start, _) = period_bounds(spec, now);
                        let mut local = Local::new(start);
                        if let Some(state) = stored.get(&spec.name)
                            && state.period_start >= start
                        {
                            local.period_start = state.period_start;
                            local.stored = state.spent;
                        }
                        out.restarted.push((b.clone(), local));
                    }
                    out.specs.push((b.clone(), Arc::new(spec.clone())));
                    b.clone()
                }
                None => {
                    let b = Budget::new(spec, now);
                    if let Some(state) = stored.get(&spec.name) {
                        let mut local = b.local.lock().unwrap_or_else(|e| e.into_inner());
                        if state.period_start >= local.period_start {
                            local.period_start = state.period_start;
                            local.stored = state.spent;
                        }
                    }
                    Arc::new(b)
                }
            };
            out.by_name.insert(spec.name.clone(), budget);
        }
        Ok(out)
    }

    /// Puts prepared budgets in force.
    pub(crate) fn commit(&self, prepared: Prepared) {
        for (b, spec) in prepared.specs {
            *b.spec.write().unwrap_or_else(|e| e.into_inner()) = spec;
        }
        for (b, fresh) in prepared.restarted {
            let mut local = b.local.lock().unwrap_or_else(|e| e.into_inner());
            // Charges not yet flushed count in the new period.
            let pending = local.pending;
            *local = fresh;
            local.pending = pending;
        }
        *self.by_name.write().unwrap_or_else(|e| e.into_inner()) = prepared.by_name;
    }

    /// Every budget, by name.
    fn all(&self) -> HashMap<String, Arc<Budget>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Budget>> {
        self.by_name
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Each budget's settings in force and what this node counts as spent in its
    /// current period, in millionths, by name.
    pub(crate) fn enforced(&self) -> Vec<(Arc<BudgetSpec>, Timestamp, i64)> {
        let mut out: Vec<_> = self
            .all()
            .into_values()
            .map(|b| {
                let local = *b.local.lock().unwrap_or_else(|e| e.into_inner());
                let spent = local
                    .stored
                    .saturating_add(local.pending)
                    .saturating_add(local.flushing);
                (b.spec(), local.period_start, spent)
            })
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Sends every budget's charges to the store and takes the totals back; records the
    /// 80% and 100% events this node is first to see.
    pub(crate) async fn flush(&self) {
        if self.all().is_empty() {
            return;
        }
        let now = self.clock.now();
        // `None` when the store cannot be read: then a budget keeps what it knew.
        let stored: Option<HashMap<String, BudgetState>> = match self.store.budgets().await {
            Ok(all) => Some(all.into_iter().collect()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the budgets");
                None
            }
        };
        for (name, budget) in &self.all() {
            let (period_start, pending) = budget.take_pending();
            let state = if pending > 0 {
                match self
                    .store
                    .budget_add(name, period_start, pending, now)
                    .await
                {
                    Ok(state) => Some(state),
                    Err(e) => {
                        tracing::warn!(budget = %name, error = %e, "cannot record a budget's spending; it is kept for the next try");
                        None
                    }
                }
            } else {
                // Nothing to add; another node's spending (or a reset) may have moved it.
                stored.as_ref().map(|all| {
                    all.get(name)
                        .copied()
                        .filter(|s| s.period_start >= period_start)
                        .unwrap_or(BudgetState {
                            period_start,
                            spent: 0,
                            alerted: 0,
                        })
                })
            };
            budget.settle(period_start, pending, state);
            if let Some(state) = state {
                self.alert(budget, state, now).await;
            }
        }
    }

    async fn alert(&self, budget: &Budget, state: BudgetState, now: Timestamp) {
        let spec = budget.spec();
        let limit = spec.limit;
        let percent = (state.spent as f64 * 100.0 / limit as f64).floor() as i64;
        let level = if percent >= 100 {
            100
        } else if percent >= 80 {
            80
        } else {
            return;
        };
        if state.alerted >= level {
            return;
        }
        let raised = self
            .store
            .budget_alert(&spec.name, state.period_start, level)
            .await
            .unwrap_or(false);
        if !raised {
            return;
        }
        let message = format!(
            "budget `{}` is at {percent}%: {} of {}",
            spec.name,
            state.spent as f64 / MICROS,
            limit as f64 / MICROS
        );
        tracing::warn!(budget = %spec.name, percent, "{message}");
        let event = NewEvent {
            at: now,
            node: self.node.clone(),
            source: "budget".into(),
            subject: spec.name.clone(),
            instance: None,
            kind: format!("budget.{level}"),
            message,
        };
        if let Err(e) = self.store.record_events(vec![event]).await {
            tracing::warn!(error = %e, "cannot record a budget event");
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `stop`, then once more.
    pub(crate) fn spawn_flusher(
        self: Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(FLUSH_EVERY) => {}
                }
                self.flush().await;
            }
            self.flush().await;
        })
    }
}

/// The start of the period `now` falls in, and the start of the next, in the budget's
/// time zone.
pub fn period_bounds(spec: &BudgetSpec, now: Timestamp) -> (Timestamp, Timestamp) {
    bounds(spec.period, &spec.tz, now).unwrap_or((now, now.plus(Duration::from_secs(86_400))))
}

fn bounds(period: Period, tz: &TimeZone, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let zoned: Zoned = jiff::Timestamp::from_microsecond(now.0)
        .ok()?
        .to_zoned(tz.clone());
    let start = match period {
        Period::Day => zoned.start_of_day().ok()?,
        Period::Month => zoned.first_of_month().ok()?.start_of_day().ok()?,
    };
    let next = match period {
        Period::Day => start.checked_add(1.day()).ok()?.start_of_day().ok()?,
        Period::Month => start.checked_add(1.month()).ok()?.start_of_day().ok()?,
    };
    let micros = |z: &Zoned| Timestamp(z.timestamp().as_microsecond());
    Some((micros(&start), micros(&next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp(text.parse::<jiff::Timestamp>().unwrap().as_microsecond())
    }

    #[test]
    fn periods_follow_the_calendar_of_their_zone() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        // 2026-03-29 02:30 UTC is 04:30 CEST, the day the clocks moved.
        let (start, next) = bounds(Period::Day, &berlin, ts("2026-03-29T02:30:00Z")).unwrap();
        assert_eq!(
            (start, next),
            (ts("2026-03-28T23:00:00Z"), ts("2026-03-29T22:00:00Z"))
        );
        let (start, next) =
            bounds(Period::Month, &TimeZone::UTC, ts("2026-02-14T12:00:00Z")).unwrap();
        assert_eq!(
            (start, next),
            (ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z"))
        );
        let (start, _) = bounds(Period::Month, &berlin, ts("2026-10-31T23:30:00Z")).unwrap();
        assert_eq!(
            start,
            ts("2026-10-31T23:00:00Z"),
            "already November in Berlin"
        );
    }
}
