//! [`Runtime`]: the executors and maintenance of one berth, started together and stopped
//! together.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::error::{QueueError, Result};
use crate::executor::{run_executor, run_heartbeat};
use crate::handler::Handler;
use crate::handler::post::PostHandler;
use crate::handler::run::RunHandler;
use crate::leader::{self, Leadership};
use crate::maintenance;
use crate::queues::Queues;
use crate::spec::{HandlerSpec, QueueSpec};

/// From this concurrency on, a queue runs two executor pipelines.
const PIPELINE_SPLIT_AT: u32 = 64;

/// Running executors and maintenance loops.
pub struct Runtime {
    stop: CancellationToken,
    tasks: JoinSet<()>,
    heartbeat_stop: CancellationToken,
    leadership: Arc<Leadership>,
    executors: Arc<Executors>,
}

/// One queue's executors.
struct Lanes {
    spec: QueueSpec,
    /// A child of the runtime's stop: cancelled alone when a reload removes or changes
    /// the queue.
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Every queue's executors, and what starting one takes: kept for reloads.
struct Executors {
    queues: Queues,
    overrides: HashMap<String, Arc<dyn Handler>>,
    job_env: Vec<(String, String)>,
    release: Option<crate::ReleaseDir>,
    grace: Duration,
    stop: CancellationToken,
    lanes: Mutex<BTreeMap<String, Lanes>>,
    /// Executors of queues a reload removed, still finishing their jobs.
    retiring: Mutex<Vec<JoinHandle<()>>>,
    /// The queues as the config has them (before the concurrency overrides).
    configured: Mutex<Vec<QueueSpec>>,
    /// Concurrency set at run time (`POST /v1/queues/NAME/concurrency`), by queue.
    concurrency: Mutex<BTreeMap<String, u32>>,
}

/// The handler a queue's settings ask for; `None` for pull queues. `job_env` goes into the
/// environment of `run` processes.
pub fn handler_for(
    spec: &QueueSpec,
    job_env: &[(String, String)],
    release: Option<&crate::ReleaseDir>,
) -> Result<Option<Arc<dyn Handler>>> {
    Ok(match &spec.handler {
        HandlerSpec::Run { command } => {
            let mut h =
                RunHandler::with_env(command.clone(), job_env.to_vec()).timeout(spec.timeout);
            if let Some(r) = release {
                h = h.in_release(r.clone());
            }
            Some(Arc::new(h))
        }
        HandlerSpec::Post { url } => Some(Arc::new(
            PostHandler::new(url).map_err(QueueError::Invalid)?,
        )),
        HandlerSpec::Pull => None,
    })
}

/// The store setting that holds the queues' concurrency set at run time: a JSON object of
/// queue name to jobs at once on each node, which every node follows
/// ([`QueueControl::set_concurrency`]).
pub const CONCURRENCY_KEY: &str = "queue_concurrency";

/// What [`QueueControl::apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QueueChanges {
    /// Queues that are new; their executors run.
    pub added: Vec<String>,
    /// Queues that are gone; their executors stop taking jobs and finish the running
    /// ones (within the grace period). Their waiting jobs stay in the store.
    pub removed: Vec<String>,
    /// Queues whose settings changed; the new executors take over once the old ones
    /// have finished their running jobs (so a queue never runs more at once than either
    /// setting allows).
    pub changed: Vec<String>,
}

/// Whether executors started for `a` can run `b` as they are: the same concurrency,
/// handler, timeout and lease.
fn same_executor(a: &QueueSpec, b: &QueueSpec) -> bool {
    a.concurrency == b.concurrency
        && a.handler == b.handler
        && a.timeout == b.timeout
        && a.lease_ttl == b.lease_ttl
}

/// Changes the queues of a running berth (a reload). Cheap to clone.
#[derive(Clone)]
pub struct QueueControl(Arc<Executors>);

impl Executors {
    /// The handler of `spec`: an in-process override, or the configured one (`None`:
    /// a pull queue).
    fn handler(&self, spec: &QueueSpec) -> Result<Option<Arc<dyn Handler>>> {
        match self.overrides.get(&spec.name) {
            Some(h) => Ok(Some(h.clone())),
            None => handler_for(spec, &self.job_env, self.release.as_ref()),
        }
    }

    /// Starts `spec`'s executors, after `before` (the executors they replace) ended.
    fn start(
        &self,
        spec: &QueueSpec,
        handler: Option<Arc<dyn Handler>>,
        before: Vec<JoinHandle<()>>,
    ) -> Lanes {
        let stop = self.stop.child_token();
        let mut tasks = Vec::new();
        if let Some(handler) = handler {
            // A busy queue gets two fetch-and-complete pipelines sharing its concurrency:
            // while one waits on a round trip to the store, the other works.
            let lanes: u32 = if spec.concurrency >= PIPELINE_SPLIT_AT {
                2
            } else {
                1
            };
            let mut parts = Vec::new();
            for lane in 0..lanes {
                let mut part = spec.clone();
                part.concurrency =
                    spec.concurrency / lanes + u32::from(lane < spec.concurrency % lanes);
                parts.push(part);
            }
            let (queues, grace, stop, shutdown) = (
                self.queues.clone(),
                self.grace,
                stop.clone(),
                self.stop.clone(),
            );
            let handler = handler.clone();
            tasks.push(tokio::spawn(async move {
                for old in before {
                    let _ = old.await;
                }
                if stop.is_cancelled() {
                    return;
                }
                let mut running = JoinSet::new();
                for part in parts {
                    running.spawn(run_executor(
                        queues.clone(),
                        part,
                        handler.clone(),
                        stop.clone(),
                        shutdown.clone(),
                        grace,
                    ));
                }
                while running.join_next().await.is_some() {}
            }));
        } else if !before.is_empty() {
            // A queue that became a pull queue: its old executors still finish.
            self.retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(before);
        }
        Lanes {
            spec: spec.clone(),
            stop,
            tasks,
        }
    }
}

impl QueueControl {
    /// Makes the queues `specs`: new ones start, removed ones stop (their running jobs
    /// finish within the grace period, their waiting ones stay in the store), changed
    /// ones hand over to executors with the new settings once their running jobs are
    /// done. A handler that cannot be made (a bad URL) fails the whole call before
    /// anything changed.
    pub fn apply(&self, specs: Vec<QueueSpec>) -> Result<QueueChanges> {
        // Held throughout: a change of the overrides meanwhile waits, then builds on these.
        let mut configured = self.0.configured.lock().unwrap_or_else(|e| e.into_inner());
        let changes = self.apply_with_overrides(specs.clone())?;
        *configured = specs;
        Ok(changes)
    }

    /// Sets each named queue's concurrency on this node over the config's (a queue not
    /// named gets its configured one back); the queues whose concurrency changed hand
    /// over to new executors once their running jobs are done, as on a reload. The
    /// overrides outlive reloads. A queue named but not configured is ignored.
    pub fn set_concurrency(&self, overrides: BTreeMap<String, u32>) -> Result<QueueChanges> {
        let configured = self.0.configured.lock().unwrap_or_else(|e| e.into_inner());
        let before = {
            let mut current = self.0.concurrency.lock().unwrap_or_else(|e| e.into_inner());
            if *current == overrides {
                return Ok(QueueChanges::default());
            }
            std::mem::replace(&mut *current, overrides)
        };
        let applied = self.apply_with_overrides(configured.clone());
        if applied.is_err() {
            // Not applied: the next call tries again.
            *self.0.concurrency.lock().unwrap_or_else(|e| e.into_inner()) = before;
        }
        applied
    }

    /// The concurrency each queue runs with now, where it differs from the config's.
    pub fn concurrency_overrides(&self) -> BTreeMap<String, u32> {
        self.0
            .concurrency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn apply_with_overrides(&self, mut specs: Vec<QueueSpec>) -> Result<QueueChanges> {
        {
            let overrides = self.0.concurrency.lock().unwrap_or_else(|e| e.into_inner());
            for spec in &mut specs {
                if let Some(n) = overrides.get(&spec.name) {
                    spec.concurrency = *n;
                }
            }
        }
        let ex = &self.0;
        let mut lanes = ex.lanes.lock().unwrap_or_else(|e| e.into_inner());
        ex.retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| !h.is_finished());
        // Executors are replaced only when what they hold changed; the rest of a queue's
        // settings (retries, backoff, retention) are read from the queues at each use.
        let mut handlers = HashMap::new();
        for spec in &specs {
            if lanes
                .get(&spec.name)
                .is_none_or(|l| !same_executor(&l.spec, spec))
            {
                handlers.insert(spec.name.clone(), ex.handler(spec)?);
            }
        }
        ex.queues.set_specs(specs.clone());
        let mut changes = QueueChanges::default();
        let wanted: BTreeMap<&str, &QueueSpec> =
            specs.iter().map(|s| (s.name.as_str(), s)).collect();
        let gone: Vec<String> = lanes
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = lanes.remove(&name) {
                tracing::info!(queue = %name, "reload: the queue is gone; its executors finish");
                old.stop.cancel();
                ex.retiring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(old.tasks);
                changes.removed.push(name);
            }
        }
        for (name, spec) in wanted {
            let Some(handler) = handlers.remove(name) else {
                continue;
            };
            let before = match lanes.remove(name) {
                Some(old) => {
                    tracing::info!(queue = %name, "reload: the queue changed; new executors take over once its running jobs are done");
                    old.stop.cancel();
                    changes.changed.push(name.to_owned());
                    old.tasks
                }
                None => {
                    tracing::info!(queue = %name, "reload: a new queue");
                    changes.added.push(name.to_owned());
                    Vec::new()
                }
            };
            lanes.insert(name.to_owned(), ex.start(spec, handler, before));
        }
        Ok(changes)
    }
}

/// How a runtime is started; `Default` is what `berth up` uses without a config.
#[derive(Clone)]
pub struct Options {
    /// In-process handlers replacing the configured ones, by queue (tests, benchmarks).
    pub handlers: HashMap<String, Arc<dyn Handler>>,
    /// Added to the environment of every `run` process.
    pub job_env: Vec<(String, String)>,
    /// The release `run` processes start in, when berth deploys the application.
    pub release: Option<crate::ReleaseDir>,
    /// How long running jobs may finish after `stop`.
    pub grace: Duration,
    /// How long the leader lease lasts unless renewed.
    pub leader_ttl: Duration,
    /// Work only the leader does (schedules, workflow deadlines).
    pub leader_tasks: Vec<Arc<dyn crate::LeaderTask>>,
    /// The pid of this node's previous run, which the data dir's lock proves dead: a
    /// leader lease that run still holds is taken at once.
    pub previous_pid: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
            job_env: Vec::new(),
            release: None,
            grace: Duration::from_secs(30),
            leader_ttl: leader::DEFAULT_TTL,
            leader_tasks: Vec::new(),
            previous_pid: None,
        }
    }
}

impl Runtime {
    /// Rescues what this node's previous run left running, then starts an executor for
    /// every queue that berth runs itself, the election loop and the maintenance loop
    /// (which works only while this node leads).
    pub async fn start(queues: Queues, options: Options) -> Result<Runtime> {
        let Options {
            handlers: mut overrides,
            job_env,
            release,
            grace,
            leader_ttl,
            leader_tasks,
            previous_pid,
        } = options;
        let rescued = maintenance::rescue_orphans(&queues, queues.now()).await?;
        if rescued > 0 {
            tracing::warn!(
                rescued,
                "jobs left running by the previous run of this node will run again"
            );
        }
        // The concurrency set at run time, over the config's, before any executor starts:
        // a restart never runs more at once than it says (the server follows it after).
        let configured: Vec<QueueSpec> = queues.specs().iter().map(|s| (**s).clone()).collect();
        let concurrency: BTreeMap<String, u32> = match queues.store().setting(CONCURRENCY_KEY).await
        {
            Ok(Some(v)) => serde_json::from_value(v).unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        if !concurrency.is_empty() {
            let mut effective = configured.clone();
            for spec in &mut effective {
                if let Some(n) = concurrency.get(&spec.name) {
                    spec.concurrency = *n;
                }
            }
            queues.set_specs(effective);
        }
        let stop = CancellationToken::new();
        let heartbeat_stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let executors = Arc::new(Executors {
            queues: queues.clone(),
            overrides: std::mem::take(&mut overrides),
            job_env,
            release,
            grace,
            stop: stop.clone(),
            lanes: Mutex::new(BTreeMap::new()),
            retiring: Mutex::new(Vec::new()),
            configured: Mutex::new(configured),
            concurrency: Mutex::new(concurrency),
        });
        {
            let mut lanes = executors.lanes.lock().unwrap_or_else(|e| e.into_inner());
            for spec in queues.specs() {
                let handler = executors.handler(&spec)?;
                lanes.insert(
                    spec.name.clone(),
                    executors.start(&spec, handler, Vec::new()),
                );
            }
        }
        let leadership = Arc::new(Leadership::default());
        tasks.spawn(maintenance::run(
            queues.clone(),
            leadership.clone(),
            leader_tasks,
            stop.clone(),
        ));
        let predecessor = previous_pid.map(|pid| format!("berth:{}:{pid}-", queues.node_name()));
        tasks.spawn(leader::run(
            queues.clone(),
            leadership.clone(),
            leader_ttl,
            predecessor,
            stop.clone(),
        ));
        // Wake-ups from the store: other processes sharing it (PostgreSQL's NOTIFY), and
        // jobs it made available itself (workflow steps released, failed chunks split).
        if let Some(mut rx) = queues.store().wakeups() {
            let (q, stop) = (queues.clone(), stop.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        m = rx.recv() => match m {
                            Ok(queue) if queue == berth_store::postgres::WAKE_ALL => q.wake_all(),
                            Ok(queue) => q.wake(&queue),
                            // Missed some: wake every queue.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => q.wake_all(),
                            Err(_) => return,
                        },
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        tokio::spawn(run_heartbeat(queues.clone(), heartbeat_stop.clone()));
        Ok(Runtime {
            stop,
            tasks,
            heartbeat_stop,
            leadership,
            executors,
        })
    }

    /// The handle a reload changes the queues through.
    pub fn queue_control(&self) -> QueueControl {
        QueueControl(self.executors.clone())
    }

    /// Whether this node leads now.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Stops fetching, waits for running jobs up to the grace period, releases the rest,
    /// and returns when every outcome is written.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let mut executors: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .executors
                .lanes
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
        .into_values()
        .flat_map(|l| l.tasks)
        .collect();
        executors.extend(std::mem::take(
            &mut *self
                .executors
                .retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        ));
        for e in executors {
            let _ = e.await;
        }
        while self.tasks.join_next().await.is_some() {}
        self.heartbeat_stop.cancel();
    }
}

impl Drop for Runtime {
    /// A runtime dropped without `stop` (a second signal, a failed start) stops its loops
    /// at once; what was running is rescued on the next start.
    fn drop(&mut self) {
        self.stop.cancel();
        self.heartbeat_stop.cancel();
    }
}
