//! Records what the supervisor reports (starts, exits, restarts, crash loops, health)
//! in the store, and in berth's log.
//!
//! Events are written in batches as they come. While the store cannot be written, they
//! wait in memory (up to [`BACKLOG`]; beyond that the oldest are dropped, with a
//! warning) and are written once it can.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use berth_store::{NewEvent, NodeStore, Timestamp};
use berth_supervise::{Event, EventKind};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The most events kept in memory while the store is unreachable.
const BACKLOG: usize = 10_000;

/// How long to wait before writing again after a failed write.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts the recorder. Once `stop` is cancelled it writes what it has and ends.
pub fn record(
    store: Arc<dyn NodeStore>,
    node: String,
    mut events: broadcast::Receiver<Event>,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut pending: VecDeque<NewEvent> = VecDeque::new();
        let mut stopping = false;
        loop {
            if pending.is_empty() && !stopping {
                tokio::select! {
                    e = events.recv() => match e {
                        Ok(e) => pending.push_back(to_record(&e, &node)),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "service events came faster than they were recorded; some were not recorded");
                        }
                        Err(broadcast::error::RecvError::Closed) => stopping = true,
                    },
                    _ = stop.cancelled() => stopping = true,
                }
            }
            // Take whatever else is waiting, for one write.
            while let Ok(e) = events.try_recv() {
                pending.push_back(to_record(&e, &node));
            }
            while pending.len() > BACKLOG {
                pending.pop_front();
            }
            if pending.is_empty() {
                if stopping {
                    return;
                }
                continue;
            }
            let batch: Vec<NewEvent> = pending.iter().cloned().collect();
            match store.record_events(batch).await {
                Ok(()) => pending.clear(),
                Err(e) if stopping => {
                    tracing::warn!(error = %e, lost = pending.len(), "cannot record the last service events");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, waiting = pending.len(), "cannot record service events; will retry");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                        _ = stop.cancelled() => stopping = true,
                    }
                }
            }
        }
    })
}

/// The stored form of a supervisor event, also written to berth's log.
fn to_record(e: &Event, node: &str) -> NewEvent {
    let message = e.kind.to_string();
    match &e.kind {
        EventKind::Exited(_) | EventKind::CrashLoop | EventKind::Unhealthy { .. } => {
            tracing::warn!(service = %e.service, instance = e.instance, "{message}");
        }
        _ => tracing::info!(service = %e.service, instance = e.instance, "{message}"),
    }
    NewEvent {
        at: Timestamp::from_system(e.at),
        node: node.to_owned(),
        source: "service".into(),
        subject: e.service.clone(),
        instance: Some(e.instance),
        kind: e.kind.name().into(),
        message,
    }
}
