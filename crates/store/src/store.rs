//! The `Store` trait: every persistent operation berth performs, shaped so that an
//! embedded SQLite file and a shared PostgreSQL database can both implement it.
//!
//! Rules every implementation keeps (the conformance suite checks them):
//! - time is passed in by the caller, never read from the system;
//! - a job leaves `running` only through a write naming the attempt it was leased under;
//! - writes are durable when the returned future resolves.

use std::path::Path;

use async_trait::async_trait;

use crate::archive::{ArchiveFilter, ArchiveSelect, ArchivedJob};
use crate::auth::{AuthDump, Lockout, NewToken, SessionRecord, TokenRecord, UserRecord};
use crate::budgets::BudgetState;
use crate::error::Result;
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

/// A request to lease jobs from one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The queue.
    pub queue: String,
    /// At most this many jobs.
    pub limit: u32,
    /// Who takes them (recorded as `attempted_by`).
    pub worker: String,
    /// The current time.
    pub now: Timestamp,
    /// When the leases expire unless heartbeats extend them.
    pub lease_until: Timestamp,
}

/// Jobs: enqueue, lease, finish, inspect and act on them, their queues, the archive.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts jobs in one transaction, in order. A job whose unique key matches a job that
    /// is not final is not inserted; its `Inserted` names the existing job.
    async fn insert(&self, jobs: Vec<NewJob>, now: Timestamp) -> Result<Vec<Inserted>>;

    /// Leases up to `limit` available jobs of a queue (lowest priority value first, then
    /// oldest), unless the queue is paused. Each starts a new attempt.
    async fn fetch(&self, req: FetchRequest) -> Result<Vec<LeasedJob>>;

    /// Extends the leases of running attempts. Returns, per attempt, whether it is still
    /// running under that attempt (false: the worker should stop).
    async fn heartbeat(
        &self,
        attempts: Vec<AttemptRef>,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<bool>>;

    /// Records how attempts ended, each only if the job is still running under that attempt.
    async fn finish(&self, finishes: Vec<Finish>, now: Timestamp) -> Result<Vec<Finished>>;

    /// Running attempts whose lease expired before `now` (all running ones when
    /// `expired_only` is false), at most `limit`.
    async fn running_leases(
        &self,
        now: Timestamp,
        expired_only: bool,
        limit: u32,
    ) -> Result<Vec<RunningLease>>;

    /// Makes scheduled and retryable jobs that are due by `now` available. Returns the
    /// queues that received jobs.
    async fn stage_due(&self, now: Timestamp) -> Result<Vec<String>>;

    /// When the next scheduled or retryable job becomes due, if any.
    async fn next_due(&self) -> Result<Option<Timestamp>>;

    /// Deletes up to `limit` jobs of a queue in a final state that reached it before
    /// `older_than`. Returns how many were deleted.
    async fn prune(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64>;

    /// One job with its history.
    async fn job(&self, id: i64) -> Result<Option<Job>>;

    /// The queue of each of these jobs that exists, as `(id, queue)` in any order (a
    /// worker's batched report is checked against the queue it names).
    async fn job_queues(&self, ids: Vec<i64>) -> Result<Vec<(i64, String)>>;

    /// Moves final jobs to the archive, at most `limit` (one job by id: refused when it is
    /// not final, or its batch runs, or its workflow runs or failed). Returns their ids.
    async fn archive_jobs(
        &self,
        select: ArchiveSelect,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<i64>>;

    /// Archived jobs matching a filter, most recently archived first.
    async fn archived_jobs(&self, filter: ArchiveFilter) -> Result<Vec<ArchivedJob>>;

    /// The archived job with this id (the most recently archived, should an id have come
    /// back).
    async fn archived_job(&self, id: i64) -> Result<Option<ArchivedJob>>;

    /// Jobs matching a filter, newest first.
    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>>;

    /// Cancels a job that is not final. A running attempt's later writes become stale.
    async fn cancel(&self, id: i64, now: Timestamp) -> Result<StateChange>;

    /// Discards a job that is not final.
    async fn discard(&self, id: i64, now: Timestamp) -> Result<StateChange>;

    /// Makes a job that is not running or available run again now, allowing one more
    /// attempt if it had used them all.
    async fn retry(&self, id: i64, now: Timestamp) -> Result<StateChange>;

    /// Deletes a job that is not running.
    async fn delete(&self, id: i64) -> Result<StateChange>;

    /// Counts per state for every queue that has jobs or a stored pause state.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>>;

    /// How many of the queue's jobs completed at or after each of `since` (a throughput
    /// over the last minutes): one count per time, in order.
    async fn completed_since(&self, queue: &str, since: Vec<Timestamp>) -> Result<Vec<u64>>;

    /// Pauses or resumes fetching from a queue.
    async fn set_paused(&self, queue: &str, paused: bool, now: Timestamp) -> Result<()>;

    /// Names of the paused queues.
    async fn paused_queues(&self) -> Result<Vec<String>>;

    /// Deletes a queue's jobs in the given states (never running ones). Returns the count.
    async fn purge(&self, queue: &str, states: Vec<JobState>) -> Result<u64>;

    /// Jobs with an id above `after_id`, oldest first, at most `limit`: the whole table,
    /// page by page, for copying it to another store.
    async fn export_jobs(&self, after_id: i64, limit: u32) -> Result<Vec<Job>>;

    /// Writes jobs exactly as exported (ids, states and history kept), in one
    /// transaction; later inserts get ids above every imported one.
    async fn import_jobs(&self, jobs: Vec<Job>) -> Result<()>;

    /// How many jobs the store holds.
    async fn count_jobs(&self) -> Result<u64>;

    /// Queues that received available jobs by a path other than this process's own
    /// enqueues: another process sharing the store (PostgreSQL's `LISTEN`), or the store
    /// itself (a workflow step released, a failed chunk split), pushed as they happen.
    /// `None` where the store has no such channel.
    fn wakeups(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }
}

/// Nodes: who is alive, the leader lease, and the events they record.
#[async_trait]
pub trait NodeStore: Send + Sync {
    /// Records that a node is alive (inserting it the first time).
    async fn node_heartbeat(&self, node: NodeInfo) -> Result<()>;

    /// Every node that reported, most recent first.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;

    /// Forgets nodes that have not reported since `before`. Returns how many.
    async fn prune_nodes(&self, before: Timestamp) -> Result<u64>;

    /// Renews `node`'s leader lease if it holds it under `term` and it has not expired,
    /// or takes it (with a new term) if it is free, expired, or held by a holder whose id
    /// starts with `predecessors` (this node's earlier runs, which the caller has proven
    /// gone: it holds their data dir's lock), so that a restart after a crash leads at
    /// once instead of waiting out its dead predecessor's lease. Returns the lease as it
    /// stands afterwards; `node` leads if it is the holder.
    async fn leader_elect(
        &self,
        node: &str,
        term: Option<i64>,
        predecessors: Option<&str>,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<LeaderLease>;

    /// Gives the lease up at once if `node` holds it under `term` (a clean stop), so the
    /// next node need not wait for it to expire.
    async fn leader_resign(&self, node: &str, term: i64) -> Result<()>;

    /// The lease as it stands.
    async fn leader(&self) -> Result<LeaderLease>;

    /// Records events, in order, in one transaction.
    async fn record_events(&self, events: Vec<NewEvent>) -> Result<()>;

    /// Recorded events that match `filter`, newest first.
    async fn events(&self, filter: EventFilter) -> Result<Vec<EventRecord>>;

    /// Forgets events that happened before `before`. Returns how many.
    async fn prune_events(&self, before: Timestamp) -> Result<u64>;
}

/// Schedules, batches and workflows (see [`flows`](crate::flows)).
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Every schedule's stored state.
    async fn schedules(&self) -> Result<Vec<ScheduleState>>;

    /// Makes sure a schedule has a state: inserts it with `next_at`, or, when its
    /// `signature` (the expression and time zone) changed, moves its next time to
    /// `next_at`. Returns the state as it stands afterwards.
    async fn schedule_prepare(
        &self,
        name: &str,
        signature: &str,
        next_at: Timestamp,
    ) -> Result<ScheduleState>;

    /// Fires a schedule in one transaction: stores its new next time and last run, and
    /// starts what it starts — only if the stored next time is still the expected one
    /// (`None` when another node, or an earlier call, fired it already).
    async fn schedule_fire(&self, fire: ScheduleFire, now: Timestamp) -> Result<Option<Fired>>;

    /// Pauses or resumes a schedule. Errors if it has no stored state.
    async fn schedule_set_paused(&self, name: &str, paused: bool) -> Result<ScheduleState>;

    /// Creates a batch and its jobs in one transaction.
    async fn batch_create(&self, batch: NewBatch, now: Timestamp) -> Result<Batch>;

    /// One batch.
    async fn batch(&self, id: i64) -> Result<Option<Batch>>;

    /// Batches matching a filter, newest first.
    async fn batches(&self, filter: BatchFilter) -> Result<Vec<Batch>>;

    /// A batch's failed (and cancelled) items with their errors, at most `limit`.
    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>>;

    /// Cancels every unfinished job of a batch. Returns the batch and the jobs cancelled
    /// (whose running attempts their executors should stop).
    async fn batch_cancel(&self, id: i64, now: Timestamp) -> Result<(Batch, Vec<i64>)>;

    /// Runs a batch's failed and cancelled jobs again, one more attempt each. Returns the
    /// batch and how many jobs will run again.
    async fn batch_retry_failed(&self, id: i64, now: Timestamp) -> Result<(Batch, u64)>;

    /// Starts a workflow: its steps' jobs, the roots available, the rest pending.
    async fn workflow_start(&self, workflow: NewWorkflow, now: Timestamp) -> Result<i64>;

    /// One workflow with its steps.
    async fn workflow(&self, id: i64) -> Result<Option<Workflow>>;

    /// Workflows matching a filter, newest first, without their steps.
    async fn workflows(&self, filter: WorkflowFilter) -> Result<Vec<Workflow>>;

    /// Cancels a running workflow and every unfinished step.
    async fn workflow_cancel(&self, id: i64, now: Timestamp) -> Result<Workflow>;

    /// Runs a failed or cancelled workflow again from its failed steps: those run again
    /// (one more attempt each), the steps cancelled with them wait for their parents
    /// again; completed steps keep their results. `deadline` is its new time limit.
    async fn workflow_retry(
        &self,
        id: i64,
        deadline: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Workflow>;

    /// Fails running workflows whose deadline passed by `now`. Returns their ids.
    async fn workflow_expire(&self, now: Timestamp) -> Result<Vec<i64>>;

    /// Forgets batches and workflows that finished before `before`. Returns how many.
    async fn prune_flows(&self, before: Timestamp) -> Result<u64>;

    /// Every schedule, batch and workflow, for copying the store.
    async fn export_flows(&self) -> Result<FlowsDump>;

    /// Writes what `export_flows` returned (ids kept), in one transaction.
    async fn import_flows(&self, dump: FlowsDump) -> Result<()>;
}

/// The gateway's users, API tokens and login sessions.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Adds a user; `Conflict` if the name is taken.
    async fn user_create(
        &self,
        name: &str,
        password_hash: &str,
        roles: Vec<String>,
        now: Timestamp,
    ) -> Result<UserRecord>;

    /// Changes a user's password (which also ends their sessions and any lockout) and/or
    /// roles; `NotFound` if there is no such user.
    async fn user_update(
        &self,
        name: &str,
        password_hash: Option<String>,
        roles: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<UserRecord>;

    /// Removes a user with their tokens and sessions; `NotFound` if there is none.
    async fn user_remove(&self, name: &str) -> Result<()>;

    /// One user.
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<UserRecord>>;

    /// Counts a failed login of `name` (nothing if there is no such user); returns until
    /// when the user is locked out, if this failure locked them.
    async fn login_failed(
        &self,
        name: &str,
        lockout: Lockout,
        now: Timestamp,
    ) -> Result<Option<Timestamp>>;

    /// A successful login: the count of failures starts over.
    async fn login_succeeded(&self, name: &str) -> Result<()>;

    /// Stores a token; `NotFound` if its user does not exist.
    async fn token_create(&self, token: NewToken) -> Result<()>;

    /// Deletes a token; `NotFound` if there is none with that id.
    async fn token_revoke(&self, id: &str) -> Result<()>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenRecord>>;

    /// The unexpired token with this secret hash, and its user.
    async fn token_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>>;

    /// Stores a session of `user` under the hash of its id.
    async fn session_create(
        &self,
        hash: &str,
        user: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;

    /// The unexpired session with this id hash, and its user.
    async fn session_user(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(SessionRecord, UserRecord)>>;

    /// Ends a session (logout); nothing if there is none.
    async fn session_delete(&self, hash: &str) -> Result<()>;

    /// Deletes sessions that ended before `now`.
    async fn prune_sessions(&self, now: Timestamp) -> Result<u64>;

    /// Users and tokens, for copying to another store.
    async fn export_auth(&self) -> Result<AuthDump>;

    /// Inserts what [`export_auth`](Self::export_auth) returned, into an empty store.
    async fn import_auth(&self, dump: AuthDump) -> Result<()>;
}

/// Budgets' spending.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Adds `delta` (millionths) to budget `name` in the period starting `period_start`
    /// and returns the budget's state after it.
    async fn budget_add(
        &self,
        name: &str,
        period_start: Timestamp,
        delta: i64,
        now: Timestamp,
    ) -> Result<BudgetState>;

    /// Raises budget `name`'s alert level for the period starting `period_start` to
    /// `level`; `true` only for the one call that raised it (so one node sends it).
    async fn budget_alert(&self, name: &str, period_start: Timestamp, level: i32) -> Result<bool>;

    /// Every budget's stored state, by name.
    async fn budgets(&self) -> Result<Vec<(String, BudgetState)>>;

    /// Starts budget `name` over: nothing spent in the period starting `period_start`.
    async fn budget_reset(&self, name: &str, period_start: Timestamp, now: Timestamp)
    -> Result<()>;
}

/// The store's settings: small JSON values kept across restarts and nodes (a queue's
/// run-time concurrency, maintenance mode, the deploy lock, …).
#[async_trait]
pub trait SettingStore: Send + Sync {
    /// A setting (JSON), if set.
    async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>>;

    /// Sets (or, with `None`, clears) a setting.
    async fn set_setting(
        &self,
        key: &str,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<()>;

    /// Sets (or, with `None`, clears) a setting only if it holds `expected` now (`None`:
    /// it is not set), in one step: a lock shared by every node (the deploy lock).
    /// Returns whether it was swapped.
    async fn swap_setting(
        &self,
        key: &str,
        expected: Option<serde_json::Value>,
        value: Option<serde_json::Value>,
        now: Timestamp,
    ) -> Result<bool>;
}

/// What ingests took in, and dead letters.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// How many messages (or dead letters) `filter` takes, per device and kind, most
    /// first (at most 10,000 pairs; `before_id` and `limit` are not used).
    async fn message_counts(&self, filter: MessageFilter) -> Result<Vec<MessageCount>>;

    /// Messages and dead letters kept per ingest, by ingest name (ingests with none are
    /// left out). Cheap: read from counts the store keeps as it writes.
    async fn message_totals(&self) -> Result<Vec<MessageTotals>>;

    /// Stores messages and dead letters in one transaction, in order, starting what each
    /// valid message starts. Returns their ids (`None` for a valid message that is not
    /// kept). Ids only grow, even after every message was pruned.
    async fn message_insert(&self, messages: Vec<NewMessage>) -> Result<Vec<MessageStored>>;

    /// One message or dead letter.
    async fn message(&self, id: i64) -> Result<Option<Message>>;

    /// Messages (or dead letters) matching a filter, newest first.
    async fn messages(&self, filter: MessageFilter) -> Result<Vec<Message>>;

    /// Writes the outcome of validating dead letter `id` again: with no errors it becomes
    /// a stored message and starts what `replay` starts; otherwise its errors are
    /// replaced. `NotFound` if there is no such message, `Conflict` if it is not dead.
    async fn message_replay(&self, id: i64, replay: Replay, now: Timestamp) -> Result<Message>;

    /// Deletes up to `limit` of an ingest's messages and dead letters received before
    /// `before`. Returns how many.
    async fn prune_messages(&self, ingest: &str, before: Timestamp, limit: u32) -> Result<u64>;

    /// Messages with an id above `after_id`, oldest first, at most `limit`, for copying.
    async fn export_messages(&self, after_id: i64, limit: u32) -> Result<Vec<Message>>;

    /// Writes messages exactly as exported (ids kept), in one transaction.
    async fn import_messages(&self, messages: Vec<Message>) -> Result<()>;
}

/// The notification outbox.
#[async_trait]
pub trait NotifyStore: Send + Sync {
    /// Routes up to [`crate::notices::ROUTE_BATCH`] unrouted events, oldest first: one
    /// delivery per route that takes each, and the events marked routed, in one
    /// transaction. Returns how many events were routed (fewer than the batch: none are left).
    async fn notify_route(&self, routes: Vec<NotifyRoute>, now: Timestamp) -> Result<u32>;

    /// A channel's unsent deliveries whose time has come, oldest first, at most `limit`.
    async fn notify_due(&self, channel: &str, now: Timestamp, limit: u32) -> Result<Vec<Delivery>>;

    /// Records that the channel took these deliveries.
    async fn notify_done(&self, ids: Vec<i64>, now: Timestamp) -> Result<()>;

    /// Records a failed try of these deliveries: tried again not before `next_at`.
    async fn notify_retry(&self, ids: Vec<i64>, error: String, next_at: Timestamp) -> Result<()>;

    /// Deliveries matching a filter, newest first.
    async fn notify_deliveries(&self, filter: DeliveryFilter) -> Result<Vec<Delivery>>;

    /// How many deliveries wait to be sent (or retried), per channel.
    async fn notify_pending(&self) -> Result<Vec<(String, u64)>>;

    /// Forgets deliveries sent before `sent_before`, and unsent ones of channels not in
    /// `channels` (they can never be sent). Returns how many.
    async fn notify_prune(&self, sent_before: Timestamp, channels: Vec<String>) -> Result<u64>;
}

/// Persistent state of berth: every store by concern, and what concerns the whole. See
/// the module docs for the rules. A crate that needs one concern asks for that trait.
#[async_trait]
pub trait Store:
    JobStore
    + NodeStore
    + FlowStore
    + AuthStore
    + BudgetStore
    + SettingStore
    + MessageStore
    + NotifyStore
    + 'static
{
    /// Writes a consistent copy of the whole store to the file `dest` while the store is in
    /// use (SQLite's backup API; `pg_dump` in its custom format for PostgreSQL).
    async fn snapshot(&self, dest: &Path) -> Result<SnapshotFormat>;
}

/// What kind of copy [`Store::snapshot`] wrote.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotFormat {
    /// An SQLite database file.
    Sqlite,
    /// A `pg_dump --format=custom` archive.
    PgDump,
}
