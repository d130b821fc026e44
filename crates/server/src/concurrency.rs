//! Queue concurrency set at run time (`POST /v1/queues/NAME/concurrency`, the dashboard,
//! `berth queue concurrency`): the store's setting [`CONCURRENCY_KEY`], which every node
//! reads each second and applies over its config. It outlives reloads and restarts until
//! it is set back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_queue::{CONCURRENCY_KEY, QueueControl};
use berth_store::SettingStore;
use tokio_util::sync::CancellationToken;

/// Follows the setting until `stop`.
pub async fn follow(store: Arc<dyn SettingStore>, control: QueueControl, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unreadable = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let overrides = match store.setting(CONCURRENCY_KEY).await {
            Ok(None) => BTreeMap::new(),
            Ok(Some(v)) => match serde_json::from_value::<BTreeMap<String, u32>>(v) {
                Ok(m) => m,
                Err(e) => {
                    if !unreadable {
                        tracing::warn!(error = %e, "the queues' concurrency setting does not read; it is ignored");
                    }
                    unreadable = true;
                    continue;
                }
            },
            // The store away: what runs stays as it is.
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the queues' concurrency setting");
                continue;
            }
        };
        unreadable = false;
        match control.set_concurrency(overrides) {
            Ok(changes) if !changes.changed.is_empty() => tracing::info!(
                queues = %changes.changed.join(", "),
                "queue concurrency set at run time: new executors take over once the running jobs are done"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot apply the queues' concurrency setting"),
        }
    }
}
