//! [`Runtime`]: the executors and maintenance of one berth, started together and stopped
//! together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
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
}

/// The handler a queue's settings ask for; `None` for pull queues. `job_env` goes into the
/// environment of `run` processes.
pub fn handler_for(
    spec: &QueueSpec,
    job_env: &[(String, String)],
) -> Result<Option<Arc<dyn Handler>>> {
    Ok(match &spec.handler {
        HandlerSpec::Run { command } => Some(Arc::new(
            RunHandler::with_env(command.clone(), job_env.to_vec()).timeout(spec.timeout),
        )),
        HandlerSpec::Post { url } => Some(Arc::new(
            PostHandler::new(url).map_err(QueueError::Invalid)?,
        )),
        HandlerSpec::Pull => None,
    })
}

/// How a runtime is started; `Default` is what `berth up` uses without a config.
#[derive(Clone)]
pub struct Options {
    /// In-process handlers replacing the configured ones, by queue (tests, benchmarks).
    pub handlers: HashMap<String, Arc<dyn Handler>>,
    /// Added to the environment of every `run` process.
    pub job_env: Vec<(String, String)>,
    /// How long running jobs may finish after `stop`.
    pub grace: Duration,
    /// How long the leader lease lasts unless renewed.
    pub leader_ttl: Duration,
    /// Work only the leader does (schedules, workflow deadlines).
    pub leader_tasks: Vec<Arc<dyn crate::LeaderTask>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            handlers: HashMap::new(),
            job_env: Vec::new(),
            grace: Duration::from_secs(30),
            leader_ttl: leader::DEFAULT_TTL,
            leader_tasks: Vec::new(),
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
            grace,
            leader_ttl,
            leader_tasks,
        } = options;
        let rescued = maintenance::rescue_orphans(&queues, queues.now()).await?;
        if rescued > 0 {
            tracing::warn!(
                rescued,
                "jobs left running by the previous run of this node will run again"
            );
        }
        let stop = CancellationToken::new();
        let heartbeat_stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let specs: Vec<_> = queues.specs().cloned().collect();
        for spec in specs {
            let handler = match overrides.remove(&spec.name) {
                Some(h) => h,
                None => match handler_for(&spec, &job_env)? {
                    Some(h) => h,
                    None => continue,
                },
            };
            // A busy queue gets two fetch-and-complete pipelines sharing its concurrency:
            // while one waits on a round trip to the store, the other works.
            let lanes: u32 = if spec.concurrency >= PIPELINE_SPLIT_AT {
                2
            } else {
                1
            };
            for lane in 0..lanes {
                let mut part = spec.clone();
                part.concurrency =
                    spec.concurrency / lanes + u32::from(lane < spec.concurrency % lanes);
                tasks.spawn(run_executor(
                    queues.clone(),
                    part,
                    handler.clone(),
                    stop.clone(),
                    grace,
                ));
            }
        }
        let leadership = Arc::new(Leadership::default());
        tasks.spawn(maintenance::run(
            queues.clone(),
            leadership.clone(),
            leader_tasks,
            stop.clone(),
        ));
        tasks.spawn(leader::run(
            queues.clone(),
            leadership.clone(),
            leader_ttl,
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
        })
    }

    /// Whether this node leads now.
    pub fn is_leader(&self) -> bool {
        self.leadership.is_leader()
    }

    /// Stops fetching, waits for running jobs up to the grace period, releases the rest,
    /// and returns when every outcome is written.
    pub async fn stop(mut self) {
        self.stop.cancel();
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
