//! Leadership: which node runs the work only one node may do (staging due jobs, rescuing
//! expired leases, pruning; schedules later).
//!
//! Every node runs [`run`]: it reports itself in the nodes table and, every third of the
//! lease's TTL, renews the leader lease if it holds it (only within its own term) or
//! takes it if it is free or expired. A node that stops renewing — killed, partitioned,
//! paused — loses the lease when it expires and another node takes it under a new term.
//! On a clean stop the leader resigns, so the next one need not wait; after a crash, the
//! node's next run takes its dead predecessor's lease at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use berth_store::NodeInfo;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::queues::{Queues, hostname};

/// How long the leader lease lasts unless renewed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// Whether this node leads, as the election loop last found.
#[derive(Debug, Default)]
pub struct Leadership {
    leader: AtomicBool,
    /// The term of the lease this node holds (0: none).
    term: AtomicI64,
    /// Until when, by this process's own monotonic clock, the lease it last wrote holds
    /// (less a margin): a node whose election calls hang stops leading on its own
    /// before another node may take the lease.
    valid_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    changed: Notify,
}

impl Leadership {
    /// True while this node holds the leader lease and the lease it last wrote has not
    /// run out.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
            && self
                .valid_until
                .lock()
                .expect("leadership poisoned")
                .is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// Resolves at the next change of leadership.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn set(&self, leader: bool, term: i64, valid_until: Option<tokio::time::Instant>) {
        *self.valid_until.lock().expect("leadership poisoned") = valid_until.filter(|_| leader);
        let was = self.leader.swap(leader, Ordering::SeqCst);
        self.term
            .store(if leader { term } else { 0 }, Ordering::SeqCst);
        if was != leader {
            self.changed.notify_waiters();
        }
    }

    fn term(&self) -> Option<i64> {
        match self.term.load(Ordering::SeqCst) {
            0 => None,
            t => Some(t),
        }
    }
}

/// Reports this node and keeps or seeks the leader lease until `stop`; then resigns.
pub async fn run(
    queues: Queues,
    leadership: Arc<Leadership>,
    ttl: Duration,
    predecessor: Option<String>,
    stop: CancellationToken,
) {
    let name = queues.node_name().to_string();
    // The lease's holder is this boot's id, not the node's name: a twin started from a
    // copied data dir, or this node's previous run, can never renew it.
    let holder = queues.node_id().to_string();
    // The run of this node that held the data dir's lock before this one (its boot's
    // holder id begins `berth:NAME:PID-`) is dead: the lock proves it. A lease it still
    // holds is taken at once rather than waited out, or schedules planned in the gap
    // would fire late, in a burst. Only that run: a live twin of the same name (a copied
    // data dir elsewhere) is never displaced.
    let predecessors = predecessor;
    let started_at = queues.now();
    let every = ttl / 3;
    // Each store call must answer well within the lease, or this node stops leading.
    let call_limit = every;
    loop {
        let now = queues.now();
        let node = NodeInfo {
            id: name.clone(),
            host: hostname(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at,
            heartbeat_at: now,
        };
        match tokio::time::timeout(call_limit, queues.store().node_heartbeat(node)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "recording this node's heartbeat failed"),
            Err(_) => tracing::warn!("recording this node's heartbeat timed out"),
        }
        // Counted from before the call: the lease we may write lasts until now + ttl at
        // the latest, by our clock; stop leading a little before that.
        let deadline = tokio::time::Instant::now() + ttl.mul_f64(0.8);
        let elected = tokio::time::timeout(
            call_limit,
            queues.store().leader_elect(
                &holder,
                leadership.term(),
                predecessors.as_deref(),
                ttl,
                now,
            ),
        )
        .await;
        match elected {
            Ok(Ok(lease)) => {
                // Only a lease this call just wrote counts: its expiry is exactly the one
                // asked for. A row that merely names us (an earlier term we lost track
                // of) does not.
                let leads = lease.holder.as_deref() == Some(holder.as_str())
                    && lease.expires_at == now.plus(ttl);
                if leads != leadership.is_leader() {
                    if leads {
                        tracing::info!(term = lease.term, "this node is now the leader");
                    } else {
                        tracing::warn!(
                            holder = lease.holder.as_deref().unwrap_or("nobody"),
                            "this node is no longer the leader"
                        );
                    }
                }
                leadership.set(leads, lease.term, Some(deadline));
            }
            failed => {
                // Unable to renew: stop leading before the lease may go to another.
                if leadership.is_leader() {
                    match failed {
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "cannot renew the leader lease; stepping down")
                        }
                        _ => tracing::warn!("renewing the leader lease timed out; stepping down"),
                    }
                }
                leadership.set(false, 0, None);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => break,
        }
    }
    if let Some(term) = leadership.term() {
        leadership.set(false, 0, None);
        if let Err(e) = queues.store().leader_resign(&holder, term).await {
            tracing::warn!(error = %e, "resigning the leader lease failed; it will expire");
        }
    }
}
