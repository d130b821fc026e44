//! The PostgreSQL store, for several berth nodes sharing one database.
//!
//! - [`pool`]: a small connection pool; connection errors name host, database and user,
//!   never the password;
//! - [`migrations`]: versioned, applied once under an advisory lock;
//! - [`jobs`]: fetch with a `FOR UPDATE SKIP LOCKED` CTE, completions batched through
//!   `unnest`, `pg_notify` when jobs become available;
//! - [`nodes`]: node heartbeats and the leader lease;
//! - the listener (this file): one connection that `LISTEN`s and turns notifications into
//!   wake-ups, reconnecting after a failure (and then waking every queue, since
//!   notifications may have been missed).

mod archive;
mod auth;
mod budgets;
pub(crate) mod dump;
mod events;
mod flows;
mod jobs;
mod messages;
mod migrations;
mod nodes;
mod notify;
mod pool;
mod tls;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config};

use crate::archive::{ArchiveFilter, ArchiveSelect, ArchivedJob};
use crate::auth::{AuthDump, Lockout, NewToken, SessionRecord, TokenRecord, UserRecord};
use crate::budgets::BudgetState;
use crate::error::{Result, StoreError};
use crate::flows::engine::{self, FlowDb};
use crate::flows::{
    Batch, BatchFailure, BatchFilter, Fired, FlowsDump, NewBatch, NewWorkflow, ScheduleFire,
    ScheduleState, Workflow, WorkflowFilter,
};
use crate::messages::{
    Message, MessageCount, MessageFilter, MessageStored, MessageTotals, NewMessage, Replay,
};
use crate::model::{
    AttemptRef, EventFilter, EventRecord, Finish, Finished, Inserted, Job, JobFilter, JobState,
    LeaderLease, LeasedJob, NewEvent, NewJob, NodeInfo, QueueStats, RunningLease, StateChange,
    Timestamp,
};
use crate::notices::{Delivery, DeliveryFilter, NotifyRoute};
use crate::store::{
    AuthStore, BudgetStore, FetchRequest, FlowStore, JobStore, MessageStore, NodeStore,
    NotifyStore, SettingStore, SnapshotFormat, Store,
};
use flows::Pg;
use pool::Pool;

pub use dump::restore as restore_dump;
pub use migrations::LATEST as SCHEMA_VERSION;

/// A wake-up that stands for every queue (after the listener reconnected).
pub const WAKE_ALL: &str = "*";

/// How a PostgreSQL store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections this node opens (besides the listener).
    pub max_connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
        }
    }
}

/// The shared store.
pub struct PostgresStore {
    pool: Arc<Pool>,
    /// The connection settings, for `pg_dump`.
    dsn: Dsn,
    describe: String,
    wake_tx: broadcast::Sender<String>,
    listener: tokio::task::JoinHandle<()>,
    /// When the kept counts were last folded (see [`jobs::fold_counts`]); `None`: never.
    folded: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the leader folds the kept counts' signed rows.
const FOLD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Where a store is and how to reach it: tokio-postgres's settings, and berth's TLS.
#[derive(Clone)]
pub(crate) struct Dsn {
    pub(crate) config: Config,
    pub(crate) tls: tls::Tls,
}

impl Dsn {
    /// Opens one connection; the caller drives the connection half.
    pub(crate) async fn connect(
        &self,
    ) -> std::result::Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tls::Stream<tokio_postgres::Socket>>,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

/// Parses a `postgres://` URL, with errors that never repeat the password.
pub(crate) fn parse_url(url: &str) -> Result<Dsn> {
    let (rest, tls) = tls::split(url)?;
    let mut config = Config::from_str(&rest).map_err(|e| {
        StoreError::Invalid(format!(
            "the store URL is not valid ({e}); expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        ))
    })?;
    config.ssl_mode(tls.ssl_mode());
    Ok(Dsn { config, tls })
}

impl PostgresStore {
    /// Connects, applies migrations (once, even when several nodes start together) and
    /// starts listening for wake-ups.
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self> {
        let Dsn { mut config, tls } = parse_url(url)?;
        // Fail fast on an unreachable server, and notice a dead peer on an idle
        // connection in seconds rather than the kernel's hours, unless the URL says.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.keepalives(true);
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(30));
        }
        let describe = pool::describe(&config);
        let dsn = Dsn { config, tls };
        let pool = Arc::new(Pool::new(dsn.clone(), options.max_connections.max(2)));
        {
            let mut c = pool.get().await?;
            migrations::migrate(&mut c, &describe).await?;
        }
        let (wake_tx, _) = broadcast::channel(1024);
        let listener = tokio::spawn(listen(dsn.clone(), wake_tx.clone()));
        Ok(Self {
            pool,
            dsn,
            describe,
            wake_tx,
            listener,
            folded: std::sync::Mutex::new(None),
        })
    }

    /// Where this store lives, in words safe to print.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    async fn in_tx<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'a> FnOnce(
            &'a tokio_postgres::Transaction<'a>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>,
        >,
    {
        let mut c = self.pool.get().await?;
        let tx = c
            .transaction()
            .await
            .map_err(|e| StoreError::db("starting a transaction", e))?;
        let out = f(&tx).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::db("committing", e))?;
        Ok(out)
    }
}

impl PostgresStore {
    /// A transaction whose flow hooks may make jobs available: their queues are announced
    /// with `NOTIFY`, delivered at the commit.
    async fn waking_tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: for<'a> FnOnce(
                &'a tokio_postgres::Transaction<'a>,
                &'a mut Vec<String>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T>> + Send + 'a>,
            > + Send,
    {
        let mut c = self.pool.get().await?;
        let tx = c
            .transaction()
            .await
            .map_err(|e| StoreError::db("starting a transaction", e))?;
        let mut woken = Vec::new();
        let out = f(&tx, &mut woken).await?;
        jobs::notify(&tx, &woken).await?;
        tx.commit()
            .await
            .map_err(|e| StoreError::db("committing", e))?;
        Ok(out)
    }

    /// Cancels or discards a job, and moves its batch or workflow.
    async fn finalize(
        &self,
        id: i64,
        to: JobState,
        action: &'static str,
        now: Timestamp,
    ) -> Result<StateChange> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::finalize(&Pg(tx), id, to, action, now, woken).await })
        })
        .await
    }
}

/// Keeps one connection listening on the jobs channel; reconnects after failures.
async fn listen(dsn: Dsn, tx: broadcast::Sender<String>) {
    let mut failures = 0u32;
    loop {
        match dsn.connect().await {
            Ok((client, mut connection)) => {
                let forward = tx.clone();
                // Drives the connection (the LISTEN below needs it) and forwards
                // notifications.
                let driver = tokio::spawn(async move {
                    loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                let _ = forward.send(n.payload().to_string());
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "the PostgreSQL listener lost its connection");
                                return;
                            }
                            None => return,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {}", jobs::CHANNEL))
                    .await
                    .is_ok()
                {
                    if failures > 0 {
                        tracing::info!("the PostgreSQL listener is back");
                    }
                    failures = 0;
                    // Notifications sent while we were away are lost: look everywhere.
                    let _ = tx.send(WAKE_ALL.to_string());
                    let _ = driver.await;
                } else {
                    driver.abort();
                }
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "the PostgreSQL listener cannot connect; retrying");
                }
            }
        }
        failures += 1;
        tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))).await;
    }
}

macro_rules! with_client {
    ($self:ident, $c:ident => $body:expr) => {{
        let $c = $self.pool.get().await?;
        $body
    }};
}

#[async_trait]
impl JobStore for PostgresStore {
    async fn insert(&self, new: Vec<NewJob>, now: Timestamp) -> Result<Vec<Inserted>> {
        self.in_tx(move |tx| Box::pin(async move { engine::insert(&Pg(tx), &new, now).await }))
            .await
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<LeasedJob>> {
        with_client!(self, c => jobs::fetch(&*c, &req).await)
    }

    async fn heartbeat(
        &self,
        attempts: Vec<AttemptRef>,
        lease_until: Timestamp,
        _now: Timestamp,
    ) -> Result<Vec<bool>> {
        with_client!(self, c => jobs::heartbeat(&*c, &attempts, lease_until).await)
    }

    async fn finish(&self, finishes: Vec<Finish>, now: Timestamp) -> Result<Vec<Finished>> {
        let out = self
            .in_tx(move |tx| {
                Box::pin(async move {
                    let (out, touched) = jobs::finish(tx, &finishes, now).await?;
                    if !touched.is_empty() {
                        let mut woken = Vec::new();
                        engine::after_final(&Pg(tx), &touched, now, &mut woken).await?;
                        jobs::notify(tx, &woken).await?;
                    }
                    Ok(out)
                })
            })
            .await?;
        Ok(out.into_iter().map(|(f, _)| f).collect())
    }

    async fn running_leases(
        &self,
        now: Timestamp,
        expired_only: bool,
        limit: u32,
    ) -> Result<Vec<RunningLease>> {
        with_client!(self, c => jobs::running_leases(&*c, now, expired_only, limit).await)
    }

    async fn stage_due(&self, now: Timestamp) -> Result<Vec<String>> {
        let woken = self
            .in_tx(move |tx| Box::pin(async move { jobs::stage_due(tx, now).await }))
            .await?;
        // The leader stages at least each second: the beat that keeps the kept counts'
        // rows few. Outside the staging transaction, and a failure only waits for the
        // next beat.
        let due = {
            let mut folded = self.folded.lock().unwrap_or_else(|e| e.into_inner());
            let due = folded.is_none_or(|t| t.elapsed() >= FOLD_EVERY);
            if due {
                *folded = Some(std::time::Instant::now());
            }
            due
        };
        if due {
            let folded = match self.pool.get().await {
                Ok(c) => jobs::fold_counts(&*c).await,
                Err(e) => Err(e),
            };
            if let Err(e) = folded {
                tracing::warn!(error = %e, "cannot fold the kept counts; trying again in a second");
            }
        }
        Ok(woken)
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        with_client!(self, c => jobs::next_due(&*c).await)
    }

    async fn prune(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64> {
        with_client!(self, c => engine::prune(&Pg(&*c), queue, state, older_than, limit).await)
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        with_client!(self, c => jobs::job(&*c, id).await)
    }

    async fn archive_jobs(
        &self,
        select: ArchiveSelect,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        self.in_tx(move |tx| {
            Box::pin(async move { archive::archive(tx, &select, limit, now).await })
        })
        .await
    }

    async fn archived_jobs(&self, filter: ArchiveFilter) -> Result<Vec<ArchivedJob>> {
        with_client!(self, c => archive::list(&*c, &filter).await)
    }

    async fn archived_job(&self, id: i64) -> Result<Option<ArchivedJob>> {
        with_client!(self, c => archive::get(&*c, id).await)
    }

    async fn job_queues(&self, ids: Vec<i64>) -> Result<Vec<(i64, String)>> {
        with_client!(self, c => jobs::job_queues(&*c, &ids).await)
    }

    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>> {
        with_client!(self, c => jobs::list_jobs(&*c, &filter).await)
    }

    async fn cancel(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        self.finalize(id, JobState::Cancelled, "cancel", now).await
    }

    async fn discard(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        self.finalize(id, JobState::Discarded, "discard", now).await
    }

    async fn retry(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::retry(&Pg(tx), id, now, woken).await })
        })
        .await
    }

    async fn delete(&self, id: i64) -> Result<StateChange> {
        self.in_tx(move |tx| Box::pin(async move { engine::delete(&Pg(tx), id).await }))
            .await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        with_client!(self, c => jobs::queue_stats(&*c).await)
    }

    async fn completed_since(&self, queue: &str, since: Vec<Timestamp>) -> Result<Vec<u64>> {
        with_client!(self, c => {
            let mut out = Vec::new();
            for t in &since {
                let n: i64 = c
                    .query_one(
                        "SELECT count(*) FROM berth_jobs WHERE queue = $1 AND state = 'completed' \
                         AND finalized_at >= $2",
                        &[&queue, &t.0],
                    )
                    .await
                    .map_err(|e| StoreError::db("counting completed jobs", e))?
                    .get(0);
                out.push(n as u64);
            }
            Ok(out)
        })
    }

    async fn set_paused(&self, queue: &str, paused: bool, now: Timestamp) -> Result<()> {
        let queue = queue.to_string();
        self.in_tx(move |tx| {
            Box::pin(async move { jobs::set_paused(tx, &queue, paused, now).await })
        })
        .await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        with_client!(self, c => jobs::paused(&*c).await)
    }

    async fn purge(&self, queue: &str, states: Vec<JobState>) -> Result<u64> {
        with_client!(self, c => engine::purge(&Pg(&*c), queue, &states).await)
    }

    async fn export_jobs(&self, after_id: i64, limit: u32) -> Result<Vec<Job>> {
        with_client!(self, c => jobs::export(&*c, after_id, limit).await)
    }

    async fn import_jobs(&self, imported: Vec<Job>) -> Result<()> {
        self.in_tx(move |tx| Box::pin(async move { jobs::import(tx, &imported).await }))
            .await
    }

    async fn count_jobs(&self) -> Result<u64> {
        with_client!(self, c => jobs::count(&*c).await)
    }

    fn wakeups(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.wake_tx.subscribe())
    }
}

#[async_trait]
impl NodeStore for PostgresStore {
    async fn record_events(&self, events: Vec<NewEvent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        with_client!(self, c => events::record(&*c, &events).await)
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRecord>> {
        with_client!(self, c => events::list(&*c, &filter).await)
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        with_client!(self, c => events::prune(&*c, before).await)
    }

    async fn node_heartbeat(&self, node: NodeInfo) -> Result<()> {
        with_client!(self, c => nodes::heartbeat(&*c, &node).await)
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        with_client!(self, c => nodes::nodes(&*c).await)
    }

    async fn prune_nodes(&self, before: Timestamp) -> Result<u64> {
        with_client!(self, c => nodes::prune(&*c, before).await)
    }

    async fn leader_elect(
        &self,
        node: &str,
        term: Option<i64>,
        predecessors: Option<&str>,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<LeaderLease> {
        with_client!(self, c => nodes::elect(&*c, node, term, predecessors, ttl, now).await)
    }

    async fn leader_resign(&self, node: &str, term: i64) -> Result<()> {
        with_client!(self, c => nodes::resign(&*c, node, term).await)
    }

    async fn leader(&self) -> Result<LeaderLease> {
        with_client!(self, c => nodes::leader(&*c).await)
    }
}

#[async_trait]
impl FlowStore for PostgresStore {
    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        with_client!(self, c => Pg(&*c).schedules().await)
    }

    async fn schedule_prepare(
        &self,
        name: &str,
        signature: &str,
        next_at: Timestamp,
    ) -> Result<ScheduleState> {
        with_client!(self, c => engine::schedule_prepare(&Pg(&*c), name, signature, next_at).await)
    }

    async fn schedule_fire(&self, fire: ScheduleFire, now: Timestamp) -> Result<Option<Fired>> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::schedule_fire(&Pg(tx), &fire, now, woken).await })
        })
        .await
    }

    async fn schedule_set_paused(&self, name: &str, paused: bool) -> Result<ScheduleState> {
        with_client!(self, c => engine::schedule_set_paused(&Pg(&*c), name, paused).await)
    }

    async fn batch_create(&self, batch: NewBatch, now: Timestamp) -> Result<Batch> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::batch_create(&Pg(tx), &batch, now, woken).await })
        })
        .await
    }

    async fn batch(&self, id: i64) -> Result<Option<Batch>> {
        with_client!(self, c => Pg(&*c).batch(id, false).await)
    }

    async fn batches(&self, filter: BatchFilter) -> Result<Vec<Batch>> {
        with_client!(self, c => Pg(&*c).batches(&filter).await)
    }

    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>> {
        with_client!(self, c => Pg(&*c).batch_failures(id, limit).await)
    }

    async fn batch_cancel(&self, id: i64, now: Timestamp) -> Result<(Batch, Vec<i64>)> {
        self.in_tx(move |tx| Box::pin(async move { engine::batch_cancel(&Pg(tx), id, now).await }))
            .await
    }

    async fn batch_retry_failed(&self, id: i64, now: Timestamp) -> Result<(Batch, u64)> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::batch_retry_failed(&Pg(tx), id, now, woken).await })
        })
        .await
    }

    async fn workflow_start(&self, workflow: NewWorkflow, now: Timestamp) -> Result<i64> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::workflow_start(&Pg(tx), &workflow, now, woken).await })
        })
        .await
    }

    async fn workflow(&self, id: i64) -> Result<Option<Workflow>> {
        with_client!(self, c => engine::workflow(&Pg(&*c), id).await)
    }

    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>> {
        with_client!(self, c => Pg(&*c).workflows(&filter).await)
    }

    async fn workflow_cancel(&self, id: i64, now: Timestamp) -> Result<Workflow> {
        self.in_tx(move |tx| {
            Box::pin(async move { engine::workflow_cancel(&Pg(tx), id, now).await })
        })
        .await
    }

    async fn workflow_retry(
        &self,
        id: i64,
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Workflow> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { engine::workflow_retry(&Pg(tx), id, deadline, now, woken).await })
        })
        .await
    }

    async fn workflow_expire(&self, now: Timestamp) -> Result<Vec<i64>> {
        self.in_tx(move |tx| Box::pin(async move { engine::workflow_expire(&Pg(tx), now).await }))
            .await
    }

    async fn prune_flows(&self, before: Timestamp) -> Result<u64> {
        with_client!(self, c => Pg(&*c).prune_flows(before).await)
    }

    async fn export_flows(&self) -> Result<FlowsDump> {
        with_client!(self, c => engine::export(&Pg(&*c)).await)
    }

    async fn import_flows(&self, dump: FlowsDump) -> Result<()> {
        self.in_tx(move |tx| Box::pin(async move { Pg(tx).import_rows(&dump).await }))
            .await
    }
}

#[async_trait]
impl AuthStore for PostgresStore {
    async fn user_create(
        &self,
        name: &str,
        password_hash: &str,
        roles: Vec<String>,
        now: Timestamp,
    ) -> Result<UserRecord> {
        with_client!(self, c => auth::user_create(&*c, name, password_hash, roles, now).await)
    }

    async fn user_update(
        &self,
        name: &str,
        password_hash: Option<String>,
        roles: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<UserRecord> {
        let name = name.to_owned();
        self.in_tx(move |tx| {
            Box::pin(async move {
                auth::user_update(tx, &name, password_hash.as_deref(), roles, now).await
            })
        })
        .await
    }

    async fn user_remove(&self, name: &str) -> Result<()> {
        with_client!(self, c => auth::user_remove(&*c, name).await)
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        with_client!(self, c => auth::user(&*c, name).await)
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        with_client!(self, c => auth::users(&*c).await)
    }

    async fn login_failed(
        &self,
        name: &str,
        lockout: Lockout,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let name = name.to_owned();
        self.in_tx(move |tx| {
            Box::pin(async move { auth::login_failed(tx, &name, lockout, now).await })
        })
        .await
    }

    async fn login_succeeded(&self, name: &str) -> Result<()> {
        with_client!(self, c => auth::login_succeeded(&*c, name).await)
    }

    async fn token_create(&self, token: NewToken) -> Result<()> {
        with_client!(self, c => auth::token_create(&*c, &token).await)
    }

    async fn token_revoke(&self, id: &str) -> Result<()> {
        with_client!(self, c => auth::token_revoke(&*c, id).await)
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        with_client!(self, c => auth::tokens(&*c).await)
    }

    async fn token_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>> {
        with_client!(self, c => auth::token_user(&*c, hash, now).await)
    }

    async fn session_create(
        &self,
        hash: &str,
        user: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        with_client!(self, c => auth::session_create(&*c, hash, user, expires_at, now).await)
    }

    async fn session_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
        with_client!(self, c => auth::session_user(&*c, hash, now).await)
    }

    async fn session_delete(&self, hash: &str) -> Result<()> {
        with_client!(self, c => auth::session_delete(&*c, hash).await)
    }

    async fn prune_sessions(&self, now: Timestamp) -> Result<u64> {
        with_client!(self, c => auth::prune_sessions(&*c, now).await)
    }

    async fn export_auth(&self) -> Result<AuthDump> {
        with_client!(self, c => auth::export(&*c).await)
    }

    async fn import_auth(&self, dump: AuthDump) -> Result<()> {
        self.in_tx(move |tx| Box::pin(async move { auth::import(tx, &dump).await }))
            .await
    }
}

#[async_trait]
impl BudgetStore for PostgresStore {
    async fn budget_add(
        &self,
        name: &str,
        period_start: Timestamp,
        delta: i64,
        now: Timestamp,
    ) -> Result<BudgetState> {
        with_client!(self, c => budgets::budget_add(&*c, name, period_start, delta, now).await)
    }

    async fn budget_alert(&self, name: &str, period_start: Timestamp, level: i32) -> Result<bool> {
        with_client!(self, c => budgets::budget_alert(&*c, name, period_start, level).await)
    }

    async fn budgets(&self) -> Result<Vec<(String, BudgetState)>> {
        with_client!(self, c => budgets::budgets(&*c).await)
    }

    async fn budget_reset(
        &self,
        name: &str,
        period_start: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        with_client!(self, c => budgets::budget_reset(&*c, name, period_start, now).await)
    }
}

#[async_trait]
impl SettingStore for PostgresStore {
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        with_client!(self, c => budgets::setting(&*c, key).await)
    }

    async fn set_setting(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<()> {
        with_client!(self, c => budgets::set_setting(&*c, key, value.as_ref(), now).await)
    }

    async fn swap_setting(
        &self,
        key: &str,
        expected: Option<serde_json::Value>,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<bool> {
        with_client!(self, c => budgets::swap_setting(&*c, key, expected.as_ref(), value.as_ref(), now).await)
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn message_insert(&self, new: Vec<NewMessage>) -> Result<Vec<MessageStored>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { messages::insert(tx, &new, woken).await })
        })
        .await
    }

    async fn message(&self, id: i64) -> Result<Option<Message>> {
        with_client!(self, c => messages::get(&*c, id).await)
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<Message>> {
        with_client!(self, c => messages::list(&*c, &filter).await)
    }

    async fn message_counts(&self, filter: MessageFilter) -> Result<Vec<MessageCount>> {
        with_client!(self, c => messages::counts(&*c, &filter).await)
    }

    async fn message_totals(&self) -> Result<Vec<MessageTotals>> {
        with_client!(self, c => messages::totals(&*c).await)
    }

    async fn message_replay(&self, id: i64, replay: Replay, now: Timestamp) -> Result<Message> {
        self.waking_tx(move |tx, woken| {
            Box::pin(async move { messages::replay(tx, id, &replay, now, woken).await })
        })
        .await
    }

    async fn prune_messages(&self, ingest: &str, before: Timestamp, limit: u32) -> Result<u64> {
        with_client!(self, c => messages::prune(&*c, ingest, before, limit).await)
    }

    async fn export_messages(&self, after_id: i64, limit: u32) -> Result<Vec<Message>> {
        with_client!(self, c => messages::export(&*c, after_id, limit).await)
    }

    async fn import_messages(&self, new: Vec<Message>) -> Result<()> {
        self.in_tx(move |tx| Box::pin(async move { messages::import(tx, &new).await }))
            .await
    }
}

#[async_trait]
impl NotifyStore for PostgresStore {
    async fn notify_route(&self, routes: Vec<NotifyRoute>, now: Timestamp) -> Result<u32> {
        self.in_tx(move |tx| Box::pin(async move { notify::route(tx, &routes, now).await }))
            .await
    }

    async fn notify_due(&self, channel: &str, now: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
        with_client!(self, c => notify::due(&*c, channel, now, limit).await)
    }

    async fn notify_done(&self, ids: Vec<i64>, now: Timestamp) -> Result<()> {
        with_client!(self, c => notify::done(&*c, &ids, now).await)
    }

    async fn notify_retry(&self, ids: Vec<i64>, error: String, next_at: Timestamp) -> Result<()> {
        with_client!(self, c => notify::retry(&*c, &ids, &error, next_at).await)
    }

    async fn notify_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>> {
        with_client!(self, c => notify::list(&*c, &filter).await)
    }

    async fn notify_pending(&self) -> Result<Vec<(String, u64)>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT channel, count(*) FROM berth_notify_deliveries WHERE sent_at IS NULL \
                 GROUP BY channel ORDER BY channel",
                &[],
            )
            .await
            .map_err(|e| StoreError::db("counting pending notifications", e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn notify_prune(&self, sent_before: Timestamp, channels: Vec<String>) -> Result<u64> {
        with_client!(self, c => notify::prune(&*c, sent_before, &channels).await)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn snapshot(&self, dest: &std::path::Path) -> Result<SnapshotFormat> {
        dump::snapshot(&self.dsn, dest).await?;
        Ok(SnapshotFormat::PgDump)
    }
}
