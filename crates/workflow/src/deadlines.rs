//! [`Deadlines`]: the leader task that fails workflows past their time limit.

use berth_queue::{LeaderTask, TickFuture};
use berth_store::Timestamp;

use crate::workflows::Workflows;

/// Fails overdue workflows; runs on the leader only.
pub struct Deadlines(pub Workflows);

impl LeaderTask for Deadlines {
    fn name(&self) -> &'static str {
        "workflow deadlines"
    }

    fn tick(&self, now: Timestamp) -> TickFuture<'_> {
        Box::pin(async move {
            self.0.expire(now).await.map_err(|e| e.to_string())?;
            Ok(None)
        })
    }
}
