//! The executor: runs one queue's jobs in this process through its handler.
//!
//! One loop per queue fetches as many jobs as it has free slots (its concurrency), starts
//! a task per job, and goes back for more as slots free up; with nothing to fetch it
//! sleeps until the queue is woken or a poll interval passes. Each task runs its handler
//! under the queue's timeout and hands the outcome to the completer, which writes many
//! outcomes in one store call. A heartbeat task extends the leases of running attempts
//! and stops any whose lease was lost (cancelled or rescued elsewhere); it is shared by
//! all executors of the process.
//!
//! Shutdown: stop fetching, wait up to the grace period for running attempts, then stop
//! the rest and release them (back to `available`, attempt not counted), flush the
//! completer.

use std::sync::Arc;
use std::time::Duration;

use berth_store::{AttemptRef, FetchRequest, Finish, Finished, JobState, LeasedJob, Outcome};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::handler::{Handler, HandlerOutcome};
use crate::queues::{Queues, Tracked};
use crate::spec::QueueSpec;

/// How long a lease lasts without a heartbeat, unless `Queues::with_lease_ttl` says
/// otherwise.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// How often an idle executor looks for jobs that arrived without waking it.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The most jobs one fetch takes.
const MAX_FETCH: usize = 1000;
/// How long after the queue's timeout the executor stops a handler that enforces the
/// timeout itself but has not returned.
const TIMEOUT_BACKSTOP: Duration = Duration::from_secs(5);
/// The most outcomes one store call writes.
const MAX_COMPLETE: usize = 2000;

/// Runs `spec`'s jobs through `handler` until `stop` is cancelled, then drains. When
/// berth stops (`shutdown`), running attempts get up to `grace` and the rest are
/// released; when only this executor stops (a reload changed or removed its queue),
/// they run to their end, unless berth stops meanwhile.
pub async fn run_executor(
    queues: Queues,
    spec: QueueSpec,
    handler: Arc<dyn Handler>,
    stop: CancellationToken,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let concurrency = spec.concurrency.max(1) as usize;
    let slots = Arc::new(Semaphore::new(concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
    let completer = tokio::spawn(run_completer(queues.clone(), spec.name.clone(), done_rx));
    // Cancelled after the grace period: running attempts are then released.
    let abandon = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let waker = queues.waker(&spec.name);
    let timeout = if handler.enforces_timeout() {
        spec.timeout + TIMEOUT_BACKSTOP
    } else {
        spec.timeout
    };
    let mut failures = 0u32;
    let lease_ttl = queues.lease_ttl_of(&spec.name);

    tracing::info!(queue = %spec.name, concurrency, "executor started");
    loop {
        if stop.is_cancelled() {
            break;
        }
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let mut permits = first;
        let extra = slots.available_permits().min(MAX_FETCH - 1);
        if extra > 0
            && let Ok(more) = slots.clone().try_acquire_many_owned(extra as u32)
        {
            permits.merge(more);
        }
        // Registered before the fetch, so a wake-up between an empty fetch and the wait is
        // not lost.
        let notified = waker.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = queues.now();
        let fetched = queues
            .store()
            .fetch(FetchRequest {
                queue: spec.name.clone(),
                limit: permits.num_permits() as u32,
                worker: queues.node_id().to_string(),
                now,
                lease_until: now.plus(lease_ttl),
            })
            .await;
        let jobs = match fetched {
            Ok(jobs) => {
                failures = 0;
                jobs
            }
            Err(e) => {
                failures += 1;
                let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
                tracing::error!(queue = %spec.name, error = %e, "fetching jobs failed; retrying in {pause:?}");
                drop(permits);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = stop.cancelled() => break,
                }
            }
        };
        while tasks.try_join_next().is_some() {}
        if jobs.is_empty() {
            drop(permits);
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = notified => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            continue;
        }
        for job in jobs {
            let permit = permits.split(1).expect("one permit per fetched job");
            let metrics = queues.metrics();
            metrics.started(&job.queue, job.attempt, now.since(job.created_at));
            metrics.busy(&job.queue, 1);
            let tracked = queues.track(
                AttemptRef {
                    id: job.id,
                    attempt: job.attempt,
                },
                lease_ttl,
            );
            let ctx = Attempt {
                queues: queues.clone(),
                handler: handler.clone(),
                timeout,
                done: done_tx.clone(),
                tracked,
                abandon: abandon.clone(),
            };
            tasks.spawn(async move {
                ctx.run(job).await;
                drop(permit);
            });
        }
    }

    // Retired by a reload: the running attempts finish as they would have.
    if !shutdown.is_cancelled() {
        tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => {}
            _ = shutdown.cancelled() => {}
        }
    }
    // Drain: wait for running attempts up to the grace period, then release the rest.
    let running = concurrency - slots.available_permits();
    if running > 0 {
        tracing::info!(queue = %spec.name, running, "waiting up to {grace:?} for running jobs");
    }
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(queue = %spec.name, left = tasks.len(), "grace period over; releasing running jobs");
        abandon.cancel();
        while tasks.join_next().await.is_some() {}
    }
    drop(done_tx);
    let _ = completer.await;
    tracing::info!(queue = %spec.name, "executor stopped");
}

/// One attempt in flight.
struct Attempt {
    queues: Queues,
    handler: Arc<dyn Handler>,
    timeout: Duration,
    done: mpsc::UnboundedSender<Done>,
    /// Cancelled when the job is cancelled or its lease is lost: the outcome is moot.
    tracked: Tracked,
    /// Cancelled when shutdown's grace period is over: release the job.
    abandon: CancellationToken,
}

impl Attempt {
    async fn run(self, job: LeasedJob) {
        let attempt = AttemptRef {
            id: job.id,
            attempt: job.attempt,
        };
        let queue = job.queue.clone();
        let started = std::time::Instant::now();
        let outcome = tokio::select! {
            o = self.handler.handle(job) => Some(map_outcome(&self.queues, &queue, attempt.attempt, o)),
            _ = tokio::time::sleep(self.timeout) => Some(Outcome::Failed {
                error: format!("timed out after {}", humanize(self.timeout)),
                output: None,
                retry_at: self.queues.retry_at(&queue, attempt.attempt, self.queues.now()),
            }),
            _ = self.abandon.cancelled() => Some(Outcome::Release),
            _ = self.tracked.token.cancelled() => None,
        };
        let metrics = self.queues.metrics();
        metrics.busy(&queue, -1);
        if matches!(
            outcome,
            Some(Outcome::Completed { .. } | Outcome::Failed { .. } | Outcome::Snooze { .. })
        ) {
            metrics.ran(&queue, started.elapsed());
        }
        // The attempt stays tracked — its lease heartbeated — until the completer has
        // written its outcome, however long the store takes to come back.
        if let Some(outcome) = outcome {
            let _ = self.done.send((Finish { attempt, outcome }, self.tracked));
        }
    }
}

fn map_outcome(queues: &Queues, queue: &str, attempt: u32, o: HandlerOutcome) -> Outcome {
    let now = queues.now();
    match o {
        HandlerOutcome::Completed { result, output } => Outcome::Completed { result, output },
        HandlerOutcome::Failed { error, output } => Outcome::Failed {
            error,
            output,
            retry_at: queues.retry_at(queue, attempt, now),
        },
        HandlerOutcome::Retry {
            reason,
            output,
            after,
        } => Outcome::Snooze {
            reason,
            output,
            until: match after {
                Some(d) => now.plus(d),
                None => queues.retry_at(queue, attempt, now),
            },
        },
    }
}

pub(crate) fn humanize(d: Duration) -> String {
    if d.as_secs() > 0 && d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

/// An outcome to write, with the attempt's tracking (dropped once it is written).
type Done = (Finish, Tracked);

/// Writes outcomes in batches: whatever has arrived while the previous write ran. A write
/// that fails is retried while the leases can still be held (the attempts stay tracked, so
/// heartbeats extend them); only after twice the lease TTL of failures — when the leases
/// have run out anyway and the jobs will run again — is it given up.
async fn run_completer(queues: Queues, queue: String, mut rx: mpsc::UnboundedReceiver<Done>) {
    let mut batch: Vec<Done> = Vec::with_capacity(MAX_COMPLETE);
    while rx.recv_many(&mut batch, MAX_COMPLETE).await > 0 {
        let finishes: Vec<Finish> = batch.iter().map(|(f, _)| f.clone()).collect();
        let give_up = tokio::time::Instant::now() + queues.lease_ttl() * 2;
        let mut pause = Duration::from_millis(100);
        loop {
            match queues.store().finish(finishes.clone(), queues.now()).await {
                Ok(results) => {
                    report(&finishes, &results);
                    queues.count_ended(&queue, &finishes, &results);
                    break;
                }
                Err(e) if tokio::time::Instant::now() < give_up => {
                    tracing::error!(error = %e, jobs = finishes.len(), "recording job outcomes failed; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = finishes.len(), "giving up recording job outcomes; their leases have run out and they will run again");
                    break;
                }
            }
        }
        batch.clear();
    }
}

fn report(batch: &[Finish], results: &[Finished]) {
    for (f, r) in batch.iter().zip(results) {
        match (r, &f.outcome) {
            (Finished::Applied(JobState::Discarded), Outcome::Failed { error, .. }) => {
                tracing::warn!(job = f.attempt.id, attempt = f.attempt.attempt, %error, "job discarded after its last attempt");
            }
            (Finished::Applied(JobState::Retryable), Outcome::Failed { error, .. }) => {
                tracing::info!(job = f.attempt.id, attempt = f.attempt.attempt, %error, "job attempt failed; will retry");
            }
            (Finished::Stale, _) => {
                tracing::info!(
                    job = f.attempt.id,
                    attempt = f.attempt.attempt,
                    "outcome not recorded: the job was cancelled or rescued meanwhile"
                );
            }
            _ => {}
        }
    }
}

/// Extends the leases of this process's running attempts (each by its own queue's lease
/// length), and stops those that lost theirs.
pub(crate) async fn run_heartbeat(queues: Queues, stop: CancellationToken) {
    let mut wait = queues.shortest_lease_ttl() / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        // Worked out on every pass: a reload may add a queue with a shorter lease.
        wait = queues.shortest_lease_ttl() / 3;
        let mut by_ttl: std::collections::BTreeMap<Duration, Vec<AttemptRef>> = Default::default();
        for (a, ttl) in queues.running_with_ttl() {
            by_ttl.entry(ttl).or_default().push(a);
        }
        for (ttl, mut attempts) in by_ttl {
            // In id order, as every batched write takes its row locks, so that two of them
            // never wait on each other.
            attempts.sort_unstable_by_key(|a| a.id);
            let now = queues.now();
            match queues
                .store()
                .heartbeat(attempts.clone(), now.plus(ttl), now)
                .await
            {
                Ok(alive) => {
                    for (a, ok) in attempts.iter().zip(alive) {
                        if !ok {
                            tracing::warn!(
                                job = a.id,
                                attempt = a.attempt,
                                "lease lost (cancelled or rescued); stopping the attempt"
                            );
                            queues.abort_attempt(*a);
                        }
                    }
                }
                Err(e) => {
                    // Try again soon: the leases run out while the store is away.
                    tracing::error!(error = %e, "extending leases failed; retrying in 1s");
                    wait = Duration::from_secs(1);
                }
            }
        }
    }
}
