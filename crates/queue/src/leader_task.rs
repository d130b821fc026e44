//! [`LeaderTask`]: work that only the leader does beside the queue's own maintenance —
//! firing schedules, failing overdue workflows. The maintenance loop calls every task on
//! each pass while this node leads (at least once a second, sooner when a task asks).

use std::future::Future;
use std::pin::Pin;

use berth_store::Timestamp;

/// What a task's pass returns: when it next has something to do, if it knows.
pub type TickFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Timestamp>, String>> + Send + 'a>>;

/// Work for the leader only.
pub trait LeaderTask: Send + Sync + 'static {
    /// Its name, for logs.
    fn name(&self) -> &'static str;

    /// Does what is due by `now`.
    fn tick(&self, now: Timestamp) -> TickFuture<'_>;
}
