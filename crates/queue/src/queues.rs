//! [`Queues`]: the one handle through which the daemon, the API and the tests use the
//! queues: enqueue, the pull API for external workers, and the admin actions. It wakes
//! the executors and long-polling workers of a queue when jobs arrive on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use berth_store::{
    AttemptRef, FetchRequest, Finish, Finished, Inserted, Job, JobFilter, JobState, LeasedJob,
    NewJob, Outcome, QueueStats, StateChange, Store, Timestamp,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::error::{QueueError, Result};
use crate::spec::{HandlerSpec, QueueSpec};

/// The longest delay a job may be given.
const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Enqueue {
    /// The queue; must be configured.
    pub queue: String,
    /// What kind of work it is.
    pub kind: String,
    /// Its arguments.
    pub args: Value,
    /// Lower runs first (default 0).
    pub priority: i32,
    /// Attempts allowed (default: the queue's).
    pub max_attempts: Option<u32>,
    /// Run after this delay.
    pub delay: Option<Duration>,
    /// Run at this time.
    pub run_at: Option<Timestamp>,
    /// Deduplicate among jobs that are not final.
    pub unique_key: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
}

/// How a worker reports an attempt over the pull API.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Done, with an optional result.
    Complete(Option<Value>),
    /// Failed; retried after the queue's backoff unless `retry` is false or it was the last
    /// attempt. `retry_after` retries then without counting a failure.
    Fail {
        /// Why.
        error: String,
        /// False: discard now.
        retry: bool,
        /// Retry after this delay, not counting a failure.
        retry_after: Option<Duration>,
    },
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The configured queues, replaced whole by a reload ([`Queues::set_specs`]); readers
    /// take the current map and keep it for as long as they need.
    specs: RwLock<Arc<BTreeMap<String, Arc<QueueSpec>>>>,
    /// Each queue's wake-up; a queue a reload adds gets one, and one it removes keeps
    /// its own (so nothing waiting on it is lost).
    wakes: RwLock<BTreeMap<String, Arc<Notify>>>,
    /// Attempts running in this process, so that cancel can stop them at once. Keyed by
    /// attempt, not job: a rescued job may run again here while its old attempt is still
    /// being stopped.
    running: Mutex<HashMap<AttemptRef, (CancellationToken, Duration)>>,
    /// This berth's worker id; its executors' leases carry it.
    pub(crate) node: String,
    /// The node's stable name (the leader lease's holder).
    pub(crate) node_name: String,
    /// Cancelled when berth stops: no more leases for external workers.
    closed: CancellationToken,
    /// How long this node's executors' leases last without a heartbeat.
    lease_ttl: Duration,
    /// What this process counts of its queues, for `/metrics`.
    pub(crate) metrics: crate::metrics::JobMetrics,
}

/// The queues of one berth. Cheap to clone.
#[derive(Clone)]
pub struct Queues {
    pub(crate) inner: Arc<Inner>,
}

impl Queues {
    /// The queues described by `specs`, over `store`, reading time from `clock`, for a
    /// node named after this host.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, specs: Vec<QueueSpec>) -> Self {
        Self::for_node(store, clock, specs, &hostname())
    }

    /// The same for the node `node_name`: a name stable across restarts of one data dir,
    /// unique among the nodes sharing a store. Its executors' leases carry
    /// `berth:NODE_NAME:BOOT`, so that after a restart the node knows which running
    /// attempts were its own.
    pub fn for_node(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        specs: Vec<QueueSpec>,
        node_name: &str,
    ) -> Self {
        let specs: BTreeMap<String, Arc<QueueSpec>> = specs
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect();
        let wakes = specs
            .keys()
            .map(|k| (k.clone(), Arc::new(Notify::new())))
            .collect();
        let node = format!(
            "berth:{node_name}:{}-{:06x}",
            std::process::id(),
            fastrand::u32(..0x100_0000)
        );
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                specs: RwLock::new(Arc::new(specs)),
                wakes: RwLock::new(wakes),
                running: Mutex::new(HashMap::new()),
                node,
                node_name: node_name.to_string(),
                closed: CancellationToken::new(),
                lease_ttl: crate::executor::LEASE_TTL,
                metrics: Default::default(),
            }),
        }
    }

    /// The same queues with leases of `ttl` for this node's executors: how long after a
    /// node dies its attempts are rescued by another. Call before anything runs.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.lease_ttl = ttl.max(Duration::from_secs(1));
        }
        self
    }

    /// How long this node's executors' leases last without a heartbeat.
    pub fn lease_ttl(&self) -> Duration {
        self.inner.lease_ttl
    }

    /// How long the leases of a queue's attempts last: its own heartbeat timeout, or the
    /// node's.
    pub fn lease_ttl_of(&self, queue: &str) -> Duration {
        self.current()
            .get(queue)
            .and_then(|s| s.lease_ttl)
            .unwrap_or(self.inner.lease_ttl)
    }

    /// The shortest lease any queue's attempts hold: heartbeats go out at a third of it.
    pub(crate) fn shortest_lease_ttl(&self) -> Duration {
        self.current()
            .values()
            .filter_map(|s| s.lease_ttl)
            .fold(self.inner.lease_ttl, Duration::min)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The current time of this berth's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// This berth's worker id (the `attempted_by` of the jobs its executors run).
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// This node's stable name.
    pub fn node_name(&self) -> &str {
        &self.inner.node_name
    }

    /// The configured queues as they stand.
    fn current(&self) -> Arc<BTreeMap<String, Arc<QueueSpec>>> {
        self.inner
            .specs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The configured queues, in name order.
    pub fn specs(&self) -> Vec<Arc<QueueSpec>> {
        self.current().values().cloned().collect()
    }

    /// One queue's settings, or an error naming the configured ones.
    pub fn spec(&self, name: &str) -> Result<Arc<QueueSpec>> {
        let specs = self.current();
        specs
            .get(name)
            .cloned()
            .ok_or_else(|| QueueError::unknown_queue(name, specs.keys()))
    }

    /// Replaces the configured queues (a reload): pushes, leases and the admin actions
    /// take the new settings at once. The executors are the runtime's to change
    /// ([`crate::Runtime::apply_queues`]).
    pub(crate) fn set_specs(&self, specs: Vec<QueueSpec>) {
        let specs: BTreeMap<String, Arc<QueueSpec>> = specs
            .into_iter()
            .map(|s| (s.name.clone(), Arc::new(s)))
            .collect();
        {
            let mut wakes = self.inner.wakes.write().unwrap_or_else(|e| e.into_inner());
            for name in specs.keys() {
                wakes
                    .entry(name.clone())
                    .or_insert_with(|| Arc::new(Notify::new()));
            }
        }
        *self.inner.specs.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(specs);
    }

    /// Stops handing jobs to external workers: long polls answer at once with nothing.
    /// Called when berth begins to stop.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Wakes every queue's executor and waiting workers (after wake-ups may have been
    /// missed).
    pub fn wake_all(&self) {
        for n in self
            .inner
            .wakes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            n.notify_waiters();
        }
    }

    /// Wakes whoever waits for jobs on `queue`.
    pub fn wake(&self, queue: &str) {
        if let Some(n) = self
            .inner
            .wakes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(queue)
        {
            n.notify_waiters();
        }
    }

    pub(crate) fn waker(&self, queue: &str) -> Arc<Notify> {
        self.inner
            .wakes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(queue)
            .cloned()
            .unwrap_or_else(|| Arc::new(Notify::new()))
    }

    /// Inserts jobs (all or none), then wakes their queues.
    pub async fn enqueue(&self, jobs: Vec<Enqueue>) -> Result<Vec<Inserted>> {
        let now = self.now();
        let mut new = Vec::with_capacity(jobs.len());
        // In a batch, every error names the job it is about.
        let many = jobs.len() > 1;
        for (i, e) in jobs.into_iter().enumerate() {
            let at = |msg: String| {
                QueueError::Invalid(if many { format!("job {i}: {msg}") } else { msg })
            };
            let spec = match self.spec(&e.queue) {
                Ok(s) => s,
                Err(e) if many => return Err(at(e.to_string())),
                Err(e) => return Err(e),
            };
            if e.kind.trim().is_empty() {
                return Err(at("`kind` must not be empty".into()));
            }
            if e.delay.is_some() && e.run_at.is_some() {
                return Err(at("give `delay` or `run_at`, not both".into()));
            }
            if e.delay.is_some_and(|d| d > MAX_DELAY) {
                return Err(at("`delay` may be at most 100 years".into()));
            }
            if e.max_attempts == Some(0) {
                return Err(at("`max_attempts` must be at least 1".into()));
            }
            let scheduled_at = match (e.delay, e.run_at) {
                (Some(d), _) => Some(now.plus(d)),
                (_, Some(t)) => Some(t),
                _ => None,
            };
            new.push(NewJob {
                queue: e.queue,
                kind: e.kind,
                args: e.args,
                priority: e.priority,
                max_attempts: e.max_attempts.unwrap_or(spec.max_attempts),
                scheduled_at,
                unique_key: e.unique_key,
                tags: e.tags,
                batch_id: None,
                workflow_id: None,
            });
        }
        let queues: Vec<String> = new.iter().map(|j| j.queue.clone()).collect();
        let inserted = self.inner.store.insert(new, now).await?;
        let mut woken: Vec<&String> = Vec::new();
        for (q, ins) in queues.iter().zip(&inserted) {
            if !ins.duplicate {
                self.inner.metrics.enqueued(q);
            }
            if ins.state == JobState::Available && !woken.contains(&q) {
                self.wake(q);
                woken.push(q);
            }
        }
        Ok(inserted)
    }

    /// Leases up to `max` jobs of a pull queue for an external worker, waiting up to
    /// `wait` for the first one.
    pub async fn lease(
        &self,
        queue: &str,
        worker: &str,
        max: u32,
        wait: Duration,
        lease: Duration,
    ) -> Result<Vec<LeasedJob>> {
        let spec = self.spec(queue)?;
        if spec.handler != HandlerSpec::Pull {
            return Err(QueueError::Invalid(format!(
                "queue `{queue}` is run by berth itself (its handler is not \"pull\"); only pull queues can be leased by workers"
            )));
        }
        if max == 0 || max > 1000 {
            return Err(QueueError::Invalid(
                "`max` must be between 1 and 1000".into(),
            ));
        }
        let lease = capped(&spec, lease);
        let deadline = tokio::time::Instant::now() + wait;
        let waker = self.waker(queue);
        loop {
            if self.inner.closed.is_cancelled() {
                return Ok(Vec::new());
            }
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.now();
            let jobs = self
                .fetch_for_caller(FetchRequest {
                    queue: queue.to_string(),
                    limit: max,
                    worker: format!("worker:{worker}"),
                    now,
                    lease_until: now.plus(lease),
                })
                .await?;
            if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
                for j in &jobs {
                    self.inner
                        .metrics
                        .started(&j.queue, j.attempt, now.since(j.created_at));
                }
                return Ok(jobs);
            }
            // Poll now and then as well: a job may become available by a path that does
            // not wake this process (another node, a retry becoming due).
            let tick = deadline.min(tokio::time::Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(tick) => {}
                _ = self.inner.closed.cancelled() => return Ok(Vec::new()),
            }
        }
    }

    /// Fetches on a task of its own: if the caller goes away meanwhile (a worker that hung
    /// up on its long poll), the jobs it would have been handed go back to the queue at
    /// once instead of waiting, leased to nobody, for their lease to expire.
    async fn fetch_for_caller(&self, req: FetchRequest) -> Result<Vec<LeasedJob>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let now = req.now;
            let queue = req.queue.clone();
            let fetched = this.inner.store.fetch(req).await;
            if let Err(Ok(jobs)) = tx.send(fetched) {
                let back: Vec<Finish> = jobs
                    .iter()
                    .map(|j| Finish {
                        attempt: AttemptRef {
                            id: j.id,
                            attempt: j.attempt,
                        },
                        outcome: Outcome::Release,
                    })
                    .collect();
                if !back.is_empty() && this.inner.store.finish(back, now).await.is_ok() {
                    this.wake(&queue);
                }
            }
        });
        rx.await
            .map_err(|_| berth_store::StoreError::Closed)?
            .map_err(Into::into)
    }

    /// Extends an external worker's lease. False: the attempt is no longer current.
    /// The lease is capped as at [`Self::lease`] (a step's `heartbeat_timeout`).
    pub async fn heartbeat(&self, attempt: AttemptRef, lease: Duration) -> Result<bool> {
        let job = self.pulled_job(attempt.id).await?;
        let lease = self
            .spec(&job.queue)
            .map_or(lease, |spec| capped(&spec, lease));
        let now = self.now();
        let r = self
            .inner
            .store
            .heartbeat(vec![attempt], now.plus(lease), now)
            .await?;
        Ok(r.first().copied().unwrap_or(false))
    }

    /// Records how an external worker's attempt ended.
    pub async fn report(&self, attempt: AttemptRef, report: Report) -> Result<Finished> {
        let now = self.now();
        let job = self.pulled_job(attempt.id).await?;
        let finish = Finish {
            attempt,
            outcome: self.outcome_of(report, &job.queue, attempt.attempt, now),
        };
        let r = self.inner.store.finish(vec![finish.clone()], now).await?;
        self.count_ended(&job.queue, std::slice::from_ref(&finish), &r);
        if matches!(r[0], Finished::Applied(JobState::Available)) {
            self.wake(&job.queue);
        }
        Ok(r[0])
    }

    /// Records how many attempts of jobs leased from the pull queue `queue` ended, in one
    /// write; each only if its job still runs under that attempt. Nothing is recorded if
    /// any of them is on another queue. A job that does not exist is `Stale`, and no
    /// write names it.
    pub async fn report_many(
        &self,
        queue: &str,
        reports: Vec<(AttemptRef, Report)>,
    ) -> Result<Vec<Finished>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let (_, exist) = self
            .pulled_queue(queue, reports.iter().map(|(a, _)| a.id).collect())
            .await?;
        let now = self.now();
        let ids: Vec<i64> = reports.iter().map(|(a, _)| a.id).collect();
        let finishes: Vec<Finish> = reports
            .into_iter()
            .filter(|(a, _)| exist.contains(&a.id))
            .map(|(attempt, report)| Finish {
                attempt,
                outcome: self.outcome_of(report, queue, attempt.attempt, now),
            })
            .collect();
        let written = if finishes.is_empty() {
            Vec::new()
        } else {
            self.inner.store.finish(finishes.clone(), now).await?
        };
        self.count_ended(queue, &finishes, &written);
        if written.contains(&Finished::Applied(JobState::Available)) {
            self.wake(queue);
        }
        // In the order asked, a job that did not exist as stale.
        let mut written = written.into_iter();
        Ok(ids
            .iter()
            .map(|id| {
                if exist.contains(id) {
                    written.next().unwrap_or(Finished::Stale)
                } else {
                    Finished::Stale
                }
            })
            .collect())
    }

    /// What this process counts of its queues (`/metrics`).
    pub fn metrics(&self) -> &crate::metrics::JobMetrics {
        &self.inner.metrics
    }

    /// Counts the recorded outcomes of attempts of `queue` (snoozes and releases are not
    /// attempts that ended).
    pub(crate) fn count_ended(&self, queue: &str, finishes: &[Finish], results: &[Finished]) {
        for (f, r) in finishes.iter().zip(results) {
            let Finished::Applied(state) = r else {
                continue;
            };
            match f.outcome {
                Outcome::Completed { .. } => self.inner.metrics.ended(queue, true, false),
                Outcome::Failed { .. } | Outcome::Discard { .. } | Outcome::LeaseExpired { .. } => {
                    self.inner
                        .metrics
                        .ended(queue, false, *state == JobState::Discarded);
                }
                Outcome::Snooze { .. } | Outcome::Release => {}
            }
        }
    }

    /// Extends the leases of many attempts on the pull queue `queue` at once; per attempt,
    /// false if it is no longer current; and when the extended leases end. Refused whole
    /// if any is on another queue.
    pub async fn heartbeat_many(
        &self,
        queue: &str,
        attempts: Vec<AttemptRef>,
        lease: Duration,
    ) -> Result<(Vec<bool>, Timestamp)> {
        let (spec, exist) = self
            .pulled_queue(queue, attempts.iter().map(|a| a.id).collect())
            .await?;
        let now = self.now();
        let until = now.plus(capped(&spec, lease));
        let known: Vec<AttemptRef> = attempts
            .iter()
            .copied()
            .filter(|a| exist.contains(&a.id))
            .collect();
        let mut extended = if known.is_empty() {
            Vec::new()
        } else {
            self.inner.store.heartbeat(known, until, now).await?
        }
        .into_iter();
        let answers = attempts
            .iter()
            .map(|a| exist.contains(&a.id) && extended.next().unwrap_or(false))
            .collect();
        Ok((answers, until))
    }

    /// Checks that `queue` is a pull queue and that each of `ids` that exists is on it;
    /// answers which of them exist. A job that does not exist is never written by the
    /// call (its id could be taken meanwhile by a job of another queue).
    async fn pulled_queue(
        &self,
        queue: &str,
        ids: Vec<i64>,
    ) -> Result<(Arc<QueueSpec>, std::collections::HashSet<i64>)> {
        let spec = self.spec(queue)?;
        if spec.handler != HandlerSpec::Pull {
            return Err(QueueError::Invalid(format!(
                "queue `{queue}` is run by berth itself (its handler is not \"pull\"); workers report only on jobs they leased from a pull queue"
            )));
        }
        if ids.len() > 1000 {
            return Err(QueueError::Invalid(format!(
                "{} jobs in one call; report on at most 1000 at once",
                ids.len()
            )));
        }
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        if let Some(twice) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(QueueError::Invalid(format!(
                "job {twice} is named twice in one call; report each attempt once"
            )));
        }
        let found = self.inner.store.job_queues(ids).await?;
        if let Some((id, other)) = found.iter().find(|(_, q)| q != queue) {
            return Err(QueueError::Invalid(format!(
                "job {id} is on queue `{other}`, not `{queue}`; nothing was recorded (report each job on the queue it was leased from)"
            )));
        }
        Ok((spec, found.into_iter().map(|(id, _)| id).collect()))
    }

    /// What a worker's report means for the job's attempt.
    fn outcome_of(&self, report: Report, queue: &str, attempt: u32, now: Timestamp) -> Outcome {
        match report {
            Report::Complete(result) => Outcome::Completed {
                result,
                output: None,
            },
            Report::Fail {
                error,
                retry: false,
                ..
            } => Outcome::Discard {
                error,
                output: None,
            },
            Report::Fail {
                error,
                retry_after: Some(after),
                ..
            } => Outcome::Snooze {
                reason: error,
                output: None,
                until: now.plus(after),
            },
            Report::Fail { error, .. } => Outcome::Failed {
                error,
                output: None,
                retry_at: self.retry_at(queue, attempt, now),
            },
        }
    }

    async fn pulled_job(&self, id: i64) -> Result<Job> {
        let job = self.job(id).await?;
        if self
            .spec(&job.queue)
            .is_ok_and(|s| s.handler != HandlerSpec::Pull)
        {
            return Err(QueueError::Invalid(format!(
                "job {id} is on queue `{}`, which berth runs itself; workers report only on jobs they leased from a pull queue",
                job.queue
            )));
        }
        Ok(job)
    }

    /// When a failed attempt of a job on `queue` should run again.
    pub(crate) fn retry_at(&self, queue: &str, attempt: u32, now: Timestamp) -> Timestamp {
        let backoff = self
            .current()
            .get(queue)
            .map(|s| s.backoff)
            .unwrap_or_default();
        now.plus(backoff.delay(attempt, &mut fastrand::Rng::new()))
    }

    /// Records an attempt as running in this process until the returned guard drops
    /// (however the attempt's task ends, a panic included).
    pub(crate) fn track(&self, attempt: AttemptRef, ttl: Duration) -> Tracked {
        let token = CancellationToken::new();
        self.running().insert(attempt, (token.clone(), ttl));
        Tracked {
            queues: self.clone(),
            attempt,
            token,
        }
    }

    fn running(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<AttemptRef, (CancellationToken, Duration)>> {
        // Held only for map operations, never across an await.
        self.inner.running.lock().expect("running map poisoned")
    }

    pub(crate) fn running_here(&self) -> Vec<AttemptRef> {
        self.running().keys().copied().collect()
    }

    /// The attempts running in this process with their lease lengths.
    pub(crate) fn running_with_ttl(&self) -> Vec<(AttemptRef, Duration)> {
        self.running().iter().map(|(a, (_, d))| (*a, *d)).collect()
    }

    /// Stops one attempt running in this process (its lease was lost).
    pub(crate) fn abort_attempt(&self, attempt: AttemptRef) {
        if let Some((t, _)) = self.running().get(&attempt) {
            t.cancel();
        }
    }

    /// Stops every attempt of a job running in this process (it was cancelled or
    /// discarded, alone or with its batch or workflow).
    pub fn abort_job(&self, id: i64) {
        for (a, (t, _)) in self.running().iter() {
            if a.id == id {
                t.cancel();
            }
        }
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Job> {
        self.inner
            .store
            .job(id)
            .await?
            .ok_or(QueueError::Store(berth_store::StoreError::JobNotFound(id)))
    }

    /// Jobs matching a filter, newest first.
    pub async fn list(&self, filter: JobFilter) -> Result<Vec<Job>> {
        Ok(self.inner.store.list_jobs(filter).await?)
    }

    /// Cancels a job; if it runs in this process, its handler is stopped.
    pub async fn cancel(&self, id: i64) -> Result<StateChange> {
        let ch = self.inner.store.cancel(id, self.now()).await?;
        self.abort_job(id);
        Ok(ch)
    }

    /// Discards a job that is not final; if it runs in this process, its handler is stopped.
    pub async fn discard(&self, id: i64) -> Result<StateChange> {
        let ch = self.inner.store.discard(id, self.now()).await?;
        self.abort_job(id);
        Ok(ch)
    }

    /// Runs a job again now.
    pub async fn retry(&self, id: i64) -> Result<StateChange> {
        let ch = self.inner.store.retry(id, self.now()).await?;
        if let Ok(job) = self.job(id).await {
            self.wake(&job.queue);
        }
        Ok(ch)
    }

    /// Deletes a job that is not running.
    pub async fn delete(&self, id: i64) -> Result<StateChange> {
        Ok(self.inner.store.delete(id).await?)
    }

    /// Counts for every configured queue (and any other queue that has jobs).
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        let mut stats = self.inner.store.queue_stats().await?;
        for name in self.current().keys() {
            if !stats.iter().any(|s| &s.name == name) {
                stats.push(QueueStats {
                    name: name.clone(),
                    paused: false,
                    counts: JobState::ALL.iter().map(|s| (*s, 0)).collect(),
                    oldest_available_at: None,
                });
            }
        }
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    /// Pauses or resumes a configured queue.
    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        self.spec(queue)?;
        self.inner
            .store
            .set_paused(queue, paused, self.now())
            .await?;
        if !paused {
            self.wake(queue);
        }
        Ok(())
    }

    /// Deletes a queue's waiting jobs in the given states (default: available, scheduled,
    /// retryable).
    pub async fn purge(&self, queue: &str, states: Vec<JobState>) -> Result<u64> {
        self.spec(queue)?;
        let states = if states.is_empty() {
            vec![
                JobState::Available,
                JobState::Scheduled,
                JobState::Retryable,
            ]
        } else {
            states
        };
        Ok(self.inner.store.purge(queue, states).await?)
    }
}

/// This host's name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// An attempt running in this process; dropping it forgets the attempt.
pub(crate) struct Tracked {
    queues: Queues,
    attempt: AttemptRef,
    /// Cancelled when the attempt must stop: the job was cancelled or its lease lost.
    pub(crate) token: CancellationToken,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.queues.running().remove(&self.attempt);
    }
}

/// A worker's asked-for lease, no longer than the queue's own lease TTL (a workflow
/// step's `heartbeat_timeout`), so that a worker must heartbeat within it.
fn capped(spec: &QueueSpec, asked: Duration) -> Duration {
    spec.lease_ttl.map_or(asked, |cap| asked.min(cap))
}
