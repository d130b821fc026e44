//! The embedded SQLite store.
//!
//! One writer connection on its own thread does every write, in group transactions (see
//! [`writer`]). Reads run on a small pool of read-only connections in tokio's blocking
//! pool, so a long listing never waits behind the writer, nor the writer behind it (WAL).

mod archive;
mod auth;
mod budgets;
mod counts;
mod events;
mod flows;
mod jobs;
mod messages;
mod migrations;
mod nodes;
mod notify;
pub(crate) mod snapshot;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use crate::archive::{ArchiveFilter, ArchiveSelect, ArchivedJob};
use crate::auth::{AuthDump, Lockout, NewToken, SessionRecord, TokenRecord, UserRecord};
use crate::budgets::BudgetState;
use crate::error::{Result, StoreError};
use crate::flows::engine::{self, FlowDb, run_ready};
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
use flows::Lite;
use writer::Writer;

pub use migrations::{APPLICATION_ID, LATEST as SCHEMA_VERSION};

/// How an SQLite store is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (true, the default): a commit survives power loss. `NORMAL`
    /// (false): it survives a crash of berth but may be lost with the machine's power.
    pub durable: bool,
    /// How long a statement waits for a lock held by another program (a backup, say).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durable: true,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The embedded store: one SQLite file in WAL mode.
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    /// The writer thread, joined by [`SqliteStore::close`].
    thread: std::thread::JoinHandle<()>,
    readers: Arc<ReaderPool>,
    /// Queues that received available jobs inside the store (a workflow step released,
    /// a failed chunk split), announced after the commit.
    wake_tx: tokio::sync::broadcast::Sender<String>,
}

struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

/// Readers kept open between reads.
const MAX_IDLE_READERS: usize = 4;

impl ReaderPool {
    fn take(&self) -> Result<Connection> {
        if let Some(c) = self.idle.lock().expect("reader pool poisoned").pop() {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Open {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| StoreError::db("configuring a reader", e))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("reader pool poisoned");
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, checks that it is a berth
    /// database this build can read, and applies migrations. A file that is not a berth
    /// database, or one written by a newer berth, is refused and left untouched.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Self> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(options.busy_timeout).map_err(open_err)?;
        // Check before the first write (switching to WAL writes the header).
        migrations::check(&conn, path)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536;",
            if options.durable { "FULL" } else { "NORMAL" }
        ))
        .map_err(open_err)?;
        migrations::migrate(&mut conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        let (writer, thread) = Writer::spawn(conn).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            detail: format!("cannot start the writer thread: {e}"),
        })?;
        Ok(Self {
            wake_tx: tokio::sync::broadcast::channel(1024).0,
            path: path.to_path_buf(),
            writer,
            thread,
            readers: Arc::new(ReaderPool {
                path: path.to_path_buf(),
                busy_timeout: options.busy_timeout,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection and waits until the writer thread has ended: afterwards
    /// the files may be moved or replaced (dropping the store closes them a moment later,
    /// on the writer thread, and a connection closing after its files were replaced
    /// could checkpoint into, or remove, the new ones' WAL).
    pub fn close(self) {
        let Self {
            writer,
            thread,
            readers,
            ..
        } = self;
        drop(writer);
        readers.idle.lock().expect("reader pool poisoned").clear();
        drop(readers);
        let _ = thread.join();
    }

    /// Runs a write that may make jobs available, and announces their queues once it is
    /// committed.
    async fn write_waking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<String>) -> Result<T> + Send + 'static,
    {
        let (out, mut woken) = self
            .writer
            .write(move |c| {
                let mut woken = Vec::new();
                let out = f(c, &mut woken)?;
                Ok((out, woken))
            })
            .await?;
        woken.sort();
        woken.dedup();
        for q in woken {
            let _ = self.wake_tx.send(q);
        }
        Ok(out)
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.give_back(conn);
            out
        })
        .await
        .map_err(|e| StoreError::db("running a read", e))?
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert(&self, new: Vec<NewJob>, now: Timestamp) -> Result<Vec<Inserted>> {
        // The engine refuses bad input (naming the job) before anything is written.
        self.writer
            .write(move |c| run_ready(engine::insert(&Lite(c), &new, now)))
            .await
    }

    async fn fetch(&self, req: FetchRequest) -> Result<Vec<LeasedJob>> {
        self.writer.write(move |c| jobs::fetch(c, &req)).await
    }

    async fn heartbeat(
        &self,
        attempts: Vec<AttemptRef>,
        lease_until: Timestamp,
        _now: Timestamp,
    ) -> Result<Vec<bool>> {
        self.writer
            .write(move |c| jobs::heartbeat(c, &attempts, lease_until))
            .await
    }

    async fn finish(&self, finishes: Vec<Finish>, now: Timestamp) -> Result<Vec<Finished>> {
        self.write_waking(move |c, woken| {
            let (out, touched) = jobs::finish(c, &finishes, now)?;
            if !touched.is_empty() {
                run_ready(engine::after_final(&Lite(c), &touched, now, woken))?;
            }
            Ok(out)
        })
        .await
    }

    async fn running_leases(
        &self,
        now: Timestamp,
        expired_only: bool,
        limit: u32,
    ) -> Result<Vec<RunningLease>> {
        self.read(move |c| jobs::running_leases(c, now, expired_only, limit))
            .await
    }

    async fn stage_due(&self, now: Timestamp) -> Result<Vec<String>> {
        self.writer.write(move |c| jobs::stage_due(c, now)).await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>> {
        self.read(jobs::next_due).await
    }

    async fn prune(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64> {
        let queue = queue.to_string();
        self.writer
            .write(move |c| run_ready(engine::prune(&Lite(c), &queue, state, older_than, limit)))
            .await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>> {
        self.read(move |c| jobs::job(c, id)).await
    }

    async fn archive_jobs(
        &self,
        select: ArchiveSelect,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        self.writer
            .write(move |c| archive::archive(c, &select, limit, now))
            .await
    }

    async fn archived_jobs(&self, filter: ArchiveFilter) -> Result<Vec<ArchivedJob>> {
        self.read(move |c| archive::list(c, &filter)).await
    }

    async fn archived_job(&self, id: i64) -> Result<Option<ArchivedJob>> {
        self.read(move |c| archive::get(c, id)).await
    }

    async fn job_queues(&self, ids: Vec<i64>) -> Result<Vec<(i64, String)>> {
        self.read(move |c| jobs::job_queues(c, &ids)).await
    }

    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>> {
        self.read(move |c| jobs::list_jobs(c, &filter)).await
    }

    async fn cancel(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        let to = JobState::Cancelled;
        self.write_waking(move |c, woken| {
            run_ready(engine::finalize(&Lite(c), id, to, "cancel", now, woken))
        })
        .await
    }

    async fn discard(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        let to = JobState::Discarded;
        self.write_waking(move |c, woken| {
            run_ready(engine::finalize(&Lite(c), id, to, "discard", now, woken))
        })
        .await
    }

    async fn retry(&self, id: i64, now: Timestamp) -> Result<StateChange> {
        self.write_waking(move |c, woken| run_ready(engine::retry(&Lite(c), id, now, woken)))
            .await
    }

    async fn delete(&self, id: i64) -> Result<StateChange> {
        self.writer
            .write(move |c| run_ready(engine::delete(&Lite(c), id)))
            .await
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        self.read(jobs::queue_stats).await
    }

    async fn completed_since(&self, queue: &str, since: Vec<Timestamp>) -> Result<Vec<u64>> {
        let queue = queue.to_owned();
        self.read(move |c| {
            since
                .iter()
                .map(|t| {
                    c.prepare_cached(
                        "SELECT count(*) FROM jobs WHERE queue = ?1 AND state = 'completed' \
                         AND finalized_at >= ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(rusqlite::params![queue, t.0], |r| r.get::<_, i64>(0))
                    })
                    .map(|n| n as u64)
                    .map_err(|e| StoreError::db("counting completed jobs", e))
                })
                .collect()
        })
        .await
    }

    async fn set_paused(&self, queue: &str, paused: bool, now: Timestamp) -> Result<()> {
        let queue = queue.to_string();
        self.writer
            .write(move |c| jobs::set_paused(c, &queue, paused, now))
            .await
    }

    async fn paused_queues(&self) -> Result<Vec<String>> {
        self.read(jobs::paused).await
    }

    async fn purge(&self, queue: &str, states: Vec<JobState>) -> Result<u64> {
        let queue = queue.to_string();
        self.writer
            .write(move |c| run_ready(engine::purge(&Lite(c), &queue, &states)))
            .await
    }

    async fn export_jobs(&self, after_id: i64, limit: u32) -> Result<Vec<Job>> {
        self.read(move |c| jobs::export(c, after_id, limit)).await
    }

    async fn import_jobs(&self, imported: Vec<Job>) -> Result<()> {
        self.writer.write(move |c| jobs::import(c, &imported)).await
    }

    async fn count_jobs(&self) -> Result<u64> {
        self.read(jobs::count).await
    }

    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.wake_tx.subscribe())
    }
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn record_events(&self, events: Vec<NewEvent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.writer.write(move |c| events::record(c, &events)).await
    }

    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRecord>> {
        self.read(move |c| events::list(c, &filter)).await
    }

    async fn prune_events(&self, before: Timestamp) -> Result<u64> {
        self.writer.write(move |c| events::prune(c, before)).await
    }

    async fn node_heartbeat(&self, node: NodeInfo) -> Result<()> {
        self.writer.write(move |c| nodes::heartbeat(c, &node)).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.read(nodes::nodes).await
    }

    async fn prune_nodes(&self, before: Timestamp) -> Result<u64> {
        self.writer.write(move |c| nodes::prune(c, before)).await
    }

    async fn leader_elect(
        &self,
        node: &str,
        term: Option<i64>,
        predecessors: Option<&str>,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<LeaderLease> {
        let node = node.to_string();
        let predecessors = predecessors.map(str::to_string);
        self.writer
            .write(move |c| nodes::elect(c, &node, term, predecessors.as_deref(), ttl, now))
            .await
    }

    async fn leader_resign(&self, node: &str, term: i64) -> Result<()> {
        let node = node.to_string();
        self.writer
            .write(move |c| nodes::resign(c, &node, term))
            .await
    }

    async fn leader(&self) -> Result<LeaderLease> {
        self.read(nodes::leader).await
    }
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        self.read(|c| run_ready(Lite(c).schedules())).await
    }

    async fn schedule_prepare(
        &self,
        name: &str,
        signature: &str,
        next_at: Timestamp,
    ) -> Result<ScheduleState> {
        let (name, signature) = (name.to_string(), signature.to_string());
        self.writer
            .write(move |c| {
                run_ready(engine::schedule_prepare(
                    &Lite(c),
                    &name,
                    &signature,
                    next_at,
                ))
            })
            .await
    }

    async fn schedule_fire(&self, fire: ScheduleFire, now: Timestamp) -> Result<Option<Fired>> {
        self.write_waking(move |c, woken| {
            run_ready(engine::schedule_fire(&Lite(c), &fire, now, woken))
        })
        .await
    }

    async fn schedule_set_paused(&self, name: &str, paused: bool) -> Result<ScheduleState> {
        let name = name.to_string();
        self.writer
            .write(move |c| run_ready(engine::schedule_set_paused(&Lite(c), &name, paused)))
            .await
    }

    async fn batch_create(&self, batch: NewBatch, now: Timestamp) -> Result<Batch> {
        self.write_waking(move |c, woken| {
            run_ready(engine::batch_create(&Lite(c), &batch, now, woken))
        })
        .await
    }

    async fn batch(&self, id: i64) -> Result<Option<Batch>> {
        self.read(move |c| run_ready(Lite(c).batch(id, false)))
            .await
    }

    async fn batches(&self, filter: BatchFilter) -> Result<Vec<Batch>> {
        self.read(move |c| run_ready(Lite(c).batches(&filter)))
            .await
    }

    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>> {
        self.read(move |c| run_ready(Lite(c).batch_failures(id, limit)))
            .await
    }

    async fn batch_cancel(&self, id: i64, now: Timestamp) -> Result<(Batch, Vec<i64>)> {
        self.writer
            .write(move |c| run_ready(engine::batch_cancel(&Lite(c), id, now)))
            .await
    }

    async fn batch_retry_failed(&self, id: i64, now: Timestamp) -> Result<(Batch, u64)> {
        self.write_waking(move |c, woken| {
            run_ready(engine::batch_retry_failed(&Lite(c), id, now, woken))
        })
        .await
    }

    async fn workflow_start(&self, workflow: NewWorkflow, now: Timestamp) -> Result<i64> {
        self.write_waking(move |c, woken| {
            run_ready(engine::workflow_start(&Lite(c), &workflow, now, woken))
        })
        .await
    }

    async fn workflow(&self, id: i64) -> Result<Option<Workflow>> {
        self.read(move |c| run_ready(engine::workflow(&Lite(c), id)))
            .await
    }

    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>> {
        self.read(move |c| run_ready(Lite(c).workflows(&filter)))
            .await
    }

    async fn workflow_cancel(&self, id: i64, now: Timestamp) -> Result<Workflow> {
        self.writer
            .write(move |c| run_ready(engine::workflow_cancel(&Lite(c), id, now)))
            .await
    }

    async fn workflow_retry(
        &self,
        id: i64,
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Workflow> {
        self.write_waking(move |c, woken| {
            run_ready(engine::workflow_retry(&Lite(c), id, deadline, now, woken))
        })
        .await
    }

    async fn workflow_expire(&self, now: Timestamp) -> Result<Vec<i64>> {
        self.writer
            .write(move |c| run_ready(engine::workflow_expire(&Lite(c), now)))
            .await
    }

    async fn prune_flows(&self, before: Timestamp) -> Result<u64> {
        self.writer
            .write(move |c| run_ready(Lite(c).prune_flows(before)))
            .await
    }

    async fn export_flows(&self) -> Result<FlowsDump> {
        self.read(|c| run_ready(engine::export(&Lite(c)))).await
    }

    async fn import_flows(&self, dump: FlowsDump) -> Result<()> {
        self.writer
            .write(move |c| run_ready(Lite(c).import_rows(&dump)))
            .await
    }
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn user_create(
        &self,
        name: &str,
        password_hash: &str,
        roles: Vec<String>,
        now: Timestamp,
    ) -> Result<UserRecord> {
        let (name, hash) = (name.to_owned(), password_hash.to_owned());
        self.writer
            .write(move |c| auth::user_create(c, &name, &hash, roles, now))
            .await
    }

    async fn user_update(
        &self,
        name: &str,
        password_hash: Option<String>,
        roles: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<UserRecord> {
        let name = name.to_owned();
        self.writer
            .write(move |c| auth::user_update(c, &name, password_hash.as_deref(), roles, now))
            .await
    }

    async fn user_remove(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |c| auth::user_remove(c, &name))
            .await
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let name = name.to_owned();
        self.read(move |c| auth::user(c, &name)).await
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        self.read(auth::users).await
    }

    async fn login_failed(
        &self,
        name: &str,
        lockout: Lockout,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let name = name.to_owned();
        self.writer
            .write(move |c| auth::login_failed(c, &name, lockout, now))
            .await
    }

    async fn login_succeeded(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |c| auth::login_succeeded(c, &name))
            .await
    }

    async fn token_create(&self, token: NewToken) -> Result<()> {
        self.writer
            .write(move |c| auth::token_create(c, &token))
            .await
    }

    async fn token_revoke(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.writer.write(move |c| auth::token_revoke(c, &id)).await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(auth::tokens).await
    }

    async fn token_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>> {
        let hash = hash.to_owned();
        self.read(move |c| auth::token_user(c, &hash, now)).await
    }

    async fn session_create(
        &self,
        hash: &str,
        user: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let (hash, user) = (hash.to_owned(), user.to_owned());
        self.writer
            .write(move |c| auth::session_create(c, &hash, &user, expires_at, now))
            .await
    }

    async fn session_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, UserRecord)>> {
        let hash = hash.to_owned();
        self.read(move |c| auth::session_user(c, &hash, now)).await
    }

    async fn session_delete(&self, hash: &str) -> Result<()> {
        let hash = hash.to_owned();
        self.writer
            .write(move |c| auth::session_delete(c, &hash))
            .await
    }

    async fn prune_sessions(&self, now: Timestamp) -> Result<u64> {
        self.writer
            .write(move |c| auth::prune_sessions(c, now))
            .await
    }

    async fn export_auth(&self) -> Result<AuthDump> {
        self.read(auth::export).await
    }

    async fn import_auth(&self, dump: AuthDump) -> Result<()> {
        self.writer.write(move |c| auth::import(c, &dump)).await
    }
}

#[async_trait]
impl BudgetStore for SqliteStore {
    async fn budget_add(
        &self,
        name: &str,
        period_start: Timestamp,
        delta: i64,
        now: Timestamp,
    ) -> Result<BudgetState> {
        let name = name.to_owned();
        self.writer
            .write(move |c| budgets::budget_add(c, &name, period_start, delta, now))
            .await
    }

    async fn budget_alert(&self, name: &str, period_start: Timestamp, level: i32) -> Result<bool> {
        let name = name.to_owned();
        self.writer
            .write(move |c| budgets::budget_alert(c, &name, period_start, level))
            .await
    }

    async fn budgets(&self) -> Result<Vec<(String, BudgetState)>> {
        self.read(budgets::budgets).await
    }

    async fn budget_reset(
        &self,
        name: &str,
        period_start: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |c| budgets::budget_reset(c, &name, period_start, now))
            .await
    }
}

#[async_trait]
impl SettingStore for SqliteStore {
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let key = key.to_owned();
        self.read(move |c| budgets::setting(c, &key)).await
    }

    async fn set_setting(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<()> {
        let key = key.to_owned();
        self.writer
            .write(move |c| budgets::set_setting(c, &key, value.as_ref(), now))
            .await
    }

    async fn swap_setting(
        &self,
        key: &str,
        expected: Option<serde_json::Value>,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<bool> {
        let key = key.to_owned();
        self.writer
            .write(move |c| budgets::swap_setting(c, &key, expected.as_ref(), value.as_ref(), now))
            .await
    }
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn message_insert(&self, new: Vec<NewMessage>) -> Result<Vec<MessageStored>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.write_waking(move |c, woken| messages::insert(c, &new, woken))
            .await
    }

    async fn message(&self, id: i64) -> Result<Option<Message>> {
        self.read(move |c| messages::get(c, id)).await
    }

    async fn messages(&self, filter: MessageFilter) -> Result<Vec<Message>> {
        self.read(move |c| messages::list(c, &filter)).await
    }

    async fn message_counts(&self, filter: MessageFilter) -> Result<Vec<MessageCount>> {
        self.read(move |c| messages::counts(c, &filter)).await
    }

    async fn message_totals(&self) -> Result<Vec<MessageTotals>> {
        self.read(messages::totals).await
    }

    async fn message_replay(&self, id: i64, replay: Replay, now: Timestamp) -> Result<Message> {
        self.write_waking(move |c, woken| messages::replay(c, id, &replay, now, woken))
            .await
    }

    async fn prune_messages(&self, ingest: &str, before: Timestamp, limit: u32) -> Result<u64> {
        let ingest = ingest.to_string();
        self.writer
            .write(move |c| messages::prune(c, &ingest, before, limit))
            .await
    }

    async fn export_messages(&self, after_id: i64, limit: u32) -> Result<Vec<Message>> {
        self.read(move |c| messages::export(c, after_id, limit))
            .await
    }

    async fn import_messages(&self, new: Vec<Message>) -> Result<()> {
        self.writer.write(move |c| messages::import(c, &new)).await
    }
}

#[async_trait]
impl NotifyStore for SqliteStore {
    async fn notify_route(&self, routes: Vec<NotifyRoute>, now: Timestamp) -> Result<u32> {
        self.writer
            .write(move |c| notify::route(c, &routes, now))
            .await
    }

    async fn notify_due(&self, channel: &str, now: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
        let channel = channel.to_owned();
        self.read(move |c| notify::due(c, &channel, now, limit))
            .await
    }

    async fn notify_done(&self, ids: Vec<i64>, now: Timestamp) -> Result<()> {
        self.writer.write(move |c| notify::done(c, &ids, now)).await
    }

    async fn notify_retry(&self, ids: Vec<i64>, error: String, next_at: Timestamp) -> Result<()> {
        self.writer
            .write(move |c| notify::retry(c, &ids, &error, next_at))
            .await
    }

    async fn notify_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>> {
        self.read(move |c| notify::list(c, &filter)).await
    }

    async fn notify_pending(&self) -> Result<Vec<(String, u64)>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT channel, count(*) FROM notify_deliveries WHERE sent_at IS NULL \
                 GROUP BY channel ORDER BY channel",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                    .collect()
            })
            .map_err(|e| StoreError::db("counting pending notifications", e))
        })
        .await
    }

    async fn notify_prune(&self, sent_before: Timestamp, channels: Vec<String>) -> Result<u64> {
        self.writer
            .write(move |c| notify::prune(c, sent_before, &channels))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self, dest: &Path) -> Result<SnapshotFormat> {
        let dest = dest.to_path_buf();
        self.read(move |c| snapshot::write(c, &dest)).await?;
        Ok(SnapshotFormat::Sqlite)
    }
}
