//! Maintenance: the work that keeps the job table moving and bounded.
//!
//! - the stager makes scheduled and retryable jobs available when due, and wakes their
//!   queues;
//! - the rescuer fails the attempts whose lease expired (their worker died or stopped
//!   heartbeating), so that they run again;
//! - at start, the orphan rescue does the same at once for attempts this berth's previous
//!   run left behind (the data dir lock proves that run is gone);
//! - the pruner deletes finished jobs older than their queue's retention.
//!
//! Each is a plain `async fn` over a given time, called by the loop in [`run`] and
//! directly by tests with a manual clock. The loop runs only on the node holding the
//! leader lease (see [`crate::leader`]); the orphan rescue runs on every node at start, for
//! its own attempts only.

use std::time::Duration;

use std::sync::Arc;

use berth_store::{Finish, JobState, Outcome, RunningLease, Timestamp};

use crate::leader::Leadership;
use crate::leader_task::LeaderTask;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::queues::Queues;

const BATCH: u32 = 1000;
/// How long recorded events are kept.
pub const EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long finished batches and workflows are kept (their jobs follow their queues'
/// retention).
pub const FLOW_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a silent node stays listed.
const NODE_RETENTION: Duration = Duration::from_secs(24 * 3600);
const RESCUE_EVERY: Duration = Duration::from_secs(5);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// The stager looks at least this often, and sooner when the next due job says so.
const STAGE_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// Makes due jobs available and wakes their queues. Returns how many queues got jobs.
pub async fn stage(queues: &Queues, now: Timestamp) -> Result<usize> {
    let woken = queues.store().stage_due(now).await?;
    for q in &woken {
        queues.wake(q);
    }
    Ok(woken.len())
}

/// Fails attempts whose lease expired before `now`; they run again after backoff, or are
/// discarded if it was their last attempt. Returns how many were rescued.
pub async fn rescue_expired(queues: &Queues, now: Timestamp) -> Result<usize> {
    // An attempt still alive in this process (after a clock jump, say) is not rescued:
    // the heartbeat task extends its lease.
    let here = queues.running_here();
    let leases = queues
        .store()
        .running_leases(now, true, BATCH)
        .await?
        .into_iter()
        .filter(|l| !here.contains(&l.attempt))
        .collect();
    rescue(queues, leases, now, |l, now| Outcome::LeaseExpired {
        error: format!(
            "lease expired at {}: {} stopped heartbeating",
            l.lease_expires_at,
            l.attempted_by.as_deref().unwrap_or("its worker")
        ),
        retry_at: now,
    })
    .await
}

/// Fails, at once, the attempts that a previous run of this node's executors left running
/// (the data dir lock proves that run is gone). Other nodes' attempts and pull workers'
/// leases are left to expire: those may still be at work.
pub async fn rescue_orphans(queues: &Queues, now: Timestamp) -> Result<usize> {
    // Only this node's own earlier runs: other nodes sharing the store are alive or will
    // be rescued by lease expiry.
    let prefix = format!("berth:{}:", queues.node_name());
    let mut total = 0;
    loop {
        let leases: Vec<RunningLease> = queues
            .store()
            .running_leases(now, false, 100_000)
            .await?
            .into_iter()
            .filter(|l| {
                l.attempted_by
                    .as_deref()
                    .is_some_and(|by| by.starts_with(&prefix) && by != queues.node_id())
            })
            .collect();
        if leases.is_empty() {
            return Ok(total);
        }
        total += rescue(queues, leases, now, |l, now| Outcome::Failed {
            error: format!(
                "berth stopped while this attempt ran ({})",
                l.attempted_by.as_deref().unwrap_or("unknown")
            ),
            output: None,
            retry_at: now,
        })
        .await?;
    }
}

async fn rescue(
    queues: &Queues,
    leases: Vec<RunningLease>,
    now: Timestamp,
    outcome: impl Fn(&RunningLease, Timestamp) -> Outcome,
) -> Result<usize> {
    if leases.is_empty() {
        return Ok(0);
    }
    // The attempt did not fail on its own: the outcomes retry it at once.
    let finishes: Vec<Finish> = leases
        .iter()
        .map(|l| Finish {
            attempt: l.attempt,
            outcome: outcome(l, now),
        })
        .collect();
    let results = queues.store().finish(finishes, now).await?;
    let rescued = results
        .iter()
        .filter(|r| matches!(r, berth_store::Finished::Applied(_)))
        .count();
    let mut queues_hit: Vec<&str> = leases.iter().map(|l| l.queue.as_str()).collect();
    queues_hit.sort_unstable();
    queues_hit.dedup();
    for q in queues_hit {
        queues.wake(q);
    }
    if rescued > 0 {
        tracing::warn!(
            rescued,
            "rescued attempts whose worker is gone; they will run again"
        );
    }
    Ok(rescued)
}

/// Deletes finished jobs older than their queue's retention. Returns how many.
pub async fn prune(queues: &Queues, now: Timestamp) -> Result<u64> {
    let mut total = 0;
    for spec in queues.specs() {
        for (state, keep) in [
            (JobState::Completed, spec.retention.completed),
            (JobState::Discarded, spec.retention.discarded),
            (JobState::Cancelled, spec.retention.cancelled),
            // A split chunk is kept as long as the failures it led to.
            (JobState::Split, spec.retention.discarded),
        ] {
            loop {
                let n = queues
                    .store()
                    .prune(&spec.name, state, now.minus(keep), 10_000)
                    .await?;
                total += n;
                if n < 10_000 {
                    break;
                }
            }
        }
    }
    if total > 0 {
        tracing::info!(pruned = total, "pruned finished jobs past their retention");
    }
    // Nodes silent for a day are gone; `berth status` forgets them.
    queues
        .store()
        .prune_nodes(now.minus(NODE_RETENTION))
        .await?;
    // Events (service starts, exits, …) are kept for a month.
    queues
        .store()
        .prune_events(now.minus(EVENT_RETENTION))
        .await?;
    queues
        .store()
        .prune_flows(now.minus(FLOW_RETENTION))
        .await?;
    // Login sessions that ended are of no use to anyone.
    queues.store().prune_sessions(now).await?;
    Ok(total)
}

/// Runs stager, rescuer, pruner and the other crates' leader tasks until `stop` is
/// cancelled, while this node leads.
pub async fn run(
    queues: Queues,
    leadership: Arc<Leadership>,
    tasks: Vec<Arc<dyn LeaderTask>>,
    stop: CancellationToken,
) {
    let mut last_rescue = tokio::time::Instant::now();
    let mut last_prune = tokio::time::Instant::now() - PRUNE_EVERY;
    // After the store was unreachable, every lease may look expired although its worker
    // is alive and only waiting to heartbeat again: rescue nothing until the store has
    // answered for a whole lease TTL, time enough for every live worker to renew.
    let mut healthy_since = tokio::time::Instant::now();
    loop {
        if !leadership.is_leader() {
            // Also look again after a while: a change just before this wait began is
            // not announced twice.
            tokio::select! {
                _ = leadership.changed() => continue,
                _ = tokio::time::sleep(STAGE_AT_MOST_EVERY) => continue,
                _ = stop.cancelled() => return,
            }
        }
        let now = queues.now();
        if let Err(e) = stage(&queues, now).await {
            tracing::error!(error = %e, "staging due jobs failed");
            healthy_since = tokio::time::Instant::now();
        }
        if last_rescue.elapsed() >= RESCUE_EVERY && healthy_since.elapsed() >= queues.lease_ttl() {
            last_rescue = tokio::time::Instant::now();
            if let Err(e) = rescue_expired(&queues, now).await {
                tracing::error!(error = %e, "rescuing expired leases failed");
                healthy_since = tokio::time::Instant::now();
            }
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = tokio::time::Instant::now();
            if let Err(e) = prune(&queues, now).await {
                tracing::error!(error = %e, "pruning failed");
            }
        }
        let mut wait = STAGE_AT_MOST_EVERY;
        for task in &tasks {
            match task.tick(now).await {
                Ok(Some(next)) => {
                    wait = wait.min(next.since(queues.now()).max(Duration::from_millis(5)))
                }
                Ok(None) => {}
                Err(e) => tracing::error!(task = task.name(), error = %e, "a leader task failed"),
            }
        }
        if let Ok(Some(next)) = queues.store().next_due().await {
            let until = next.since(queues.now());
            wait = wait.min(until.max(Duration::from_millis(5)));
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}
