//! The API's answers. Each route answers with one of these (or a record the store
//! defines, re-exported by [`crate::types`]); an error is always an [`ErrorBody`].

use berth_deploy::Release;
use berth_queue::batches::BatchReport;
use berth_schedule::ScheduleInfo;
use berth_store::{
    ArchivedJob, Batch, Delivery, EventRecord, Inserted, Job, JobState, LeaderLease, LeasedJob,
    MessageCount, NodeInfo, QueueStats, Timestamp, Workflow,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`invalid`, `not_found`, `unknown_queue`, …).
    pub code: String,
    /// A sentence for people: what was wrong and what would be right.
    pub message: String,
}

/// `GET /v1/status`: who this berth is and how its queues stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    /// This node's name.
    pub node_name: String,
    /// Every node sharing the store.
    pub nodes: Vec<NodeStatus>,
    /// The leader lease.
    pub leader: LeaderLease,
    /// The app's name from the config.
    pub app: String,
    /// berth's version.
    pub version: String,
    /// This node's id.
    pub node: String,
    /// This berth's process id.
    pub pid: u32,
    /// Seconds since this berth started.
    pub uptime_secs: u64,
    /// The time now, as the queues read it.
    pub now: Timestamp,
    /// Each queue's counts.
    pub queues: Vec<QueueStats>,
}

/// A node as `GET /v1/status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeStatus {
    /// As it last reported itself.
    #[serde(flatten)]
    pub node: NodeInfo,
    /// Seconds since it last reported.
    pub last_seen_secs: f64,
    /// Whether it holds the leader lease.
    pub leader: bool,
    /// Whether it is the node that answered.
    pub this: bool,
}

/// `POST /v1/jobs/bulk`: each job's id, in the order given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InsertedJobs {
    /// One per job pushed.
    pub jobs: Vec<Inserted>,
}

/// A page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// `POST /v1/jobs/actions`: what one action on a filter did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ActionOutcome {
    /// The action.
    pub action: String,
    /// Jobs the filter took.
    pub matched: u64,
    /// Jobs the action was applied to.
    pub done: u64,
    /// Jobs it did not apply to (a running job for `delete`, …) or that moved on.
    pub skipped: u64,
    /// Whether `max` stopped it before the filter's last job.
    pub more: bool,
}

/// `POST /v1/archive`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Archived {
    /// Jobs moved to the archive.
    pub archived: u64,
}

/// A page of archived jobs, last archived first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchivePage {
    /// The jobs.
    pub jobs: Vec<ArchivedJob>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// `GET /v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueList {
    /// Every queue that is configured or holds jobs.
    pub queues: Vec<QueueView>,
}

/// A queue's counts, as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueView {
    /// Its counts.
    #[serde(flatten)]
    pub stats: QueueStats,
    /// Seconds the oldest available job has waited.
    pub oldest_available_age_secs: Option<f64>,
    /// Whether the config names it (jobs may remain in a queue removed from it).
    pub configured: bool,
    /// Its jobs run at once on each node, as this node runs them now (the config's, or
    /// the one set at run time); absent for pull queues (their workers choose) and
    /// queues not in the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// `GET /v1/queues/{name}`: a queue's counts, how it is handled, and its recent pace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueDetail {
    /// Its counts.
    #[serde(flatten)]
    pub view: QueueView,
    /// `run: COMMAND`, `post: URL` or `pull` (configured queues only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// The concurrency set at run time over the config's (`POST
    /// /v1/queues/{name}/concurrency`), which every node follows within a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_override: Option<u32>,
    /// Attempts allowed per job (configured queues only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Jobs completed lately.
    pub completed: Completed,
}

/// Jobs of a queue completed over the last 1, 5 and 15 minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Completed {
    /// In the last minute.
    pub last_1m: u64,
    /// In the last 5 minutes.
    pub last_5m: u64,
    /// In the last 15 minutes.
    pub last_15m: u64,
    /// The last 5 minutes' average per minute.
    pub per_minute_5m: f64,
}

/// `POST /v1/queues/{name}/pause` and `/resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueuePaused {
    /// The queue.
    pub queue: String,
    /// Whether fetching is paused now.
    pub paused: bool,
}

/// `POST /v1/queues/{name}/concurrency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueConcurrency {
    /// The queue.
    pub queue: String,
    /// The concurrency set at run time; `null`: the config's again. Every node applies
    /// it within a second; running jobs finish under the old one first.
    pub concurrency: Option<u32>,
}

/// `POST /v1/queues/{name}/purge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Purged {
    /// The queue.
    pub queue: String,
    /// Jobs deleted.
    pub deleted: u64,
}

/// `POST /v1/queues/{name}/lease`: the jobs leased (none when nothing came in time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Leased {
    /// The leased jobs.
    pub jobs: Vec<LeasedJob>,
}

/// `POST /v1/queues/{name}/report`: how each reported attempt was taken, and the jobs
/// leased after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reported {
    /// One per reported attempt, in order.
    pub done: Vec<AttemptOutcome>,
    /// The jobs leased after (with `lease`).
    pub jobs: Vec<LeasedJob>,
}

/// How one reported attempt was taken: its job's new `state`, or `error:
/// "stale_attempt"` when the attempt no longer runs (nothing was recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AttemptOutcome {
    /// The job.
    pub id: i64,
    /// Its state now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
    /// `stale_attempt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /v1/queues/{name}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeats {
    /// One per attempt, in order.
    pub jobs: Vec<Heartbeat>,
}

/// One extended lease, or `error: "stale_attempt"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Heartbeat {
    /// The job.
    pub id: i64,
    /// The attempt.
    pub attempt: u32,
    /// When the lease ends now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// `stale_attempt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/services`: every instance of every service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceList {
    /// The instances.
    pub services: Vec<Instance>,
}

/// One instance as the API shows it; CPU and memory are its whole process tree's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Instance {
    /// Its service.
    pub service: String,
    /// Its number, from 0.
    pub instance: u32,
    /// The running process, if any.
    pub pid: Option<u32>,
    /// `starting`, `running`, `backoff`, `stopping`, `stopped`, `failed`, …
    pub state: String,
    /// Seconds since its process started.
    pub uptime_secs: Option<f64>,
    /// Restarts after an exit.
    pub restarts: u32,
    /// Its port, if the service has ports.
    pub port: Option<u16>,
    /// CPU, % of one core, averaged over the process's life so far.
    pub cpu_percent: Option<f64>,
    /// Resident memory.
    pub rss_bytes: Option<u64>,
    /// Proportional memory (shared pages divided among their users), where readable.
    pub pss_bytes: Option<u64>,
    /// Processes in its tree.
    pub processes: Option<u32>,
    /// How the last process ended.
    pub last_exit: Option<String>,
}

/// `POST /v1/services/{name}/start`, `/stop` and `/restart`: the instances after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceInstances {
    /// The service.
    pub service: String,
    /// Its instances.
    pub instances: Vec<Instance>,
}

/// `POST /v1/services/{name}/signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Signalled {
    /// The service.
    pub service: String,
    /// The signal sent, e.g. `SIGHUP`.
    pub signal: String,
}

/// `GET /v1/services/{name}/logs`: the last lines, all instances interleaved by time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceLogs {
    /// The service.
    pub service: String,
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
}

/// One line of a service's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LogLine {
    /// The instance that wrote it.
    pub instance: u32,
    /// The line, starting with its RFC 3339 stamp.
    pub line: String,
}

/// `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventList {
    /// The events, newest first.
    pub events: Vec<EventRecord>,
}

/// `POST /v1/reload`: what changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ReloadReport {
    /// Services started.
    pub added: Vec<String>,
    /// Services stopped.
    pub removed: Vec<String>,
    /// Services rolled onto their new settings.
    pub restarted: Vec<String>,
    /// Services left as they were.
    pub unchanged: Vec<String>,
    /// What could not be applied, and why.
    pub failed: Vec<ReloadFailure>,
    /// Other sections applied live.
    pub applied: Vec<String>,
    /// Changes that take effect only when berth restarts.
    pub not_applied: Vec<String>,
}

/// A service or section a reload could not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadFailure {
    /// The service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The section, e.g. `[gateway]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Why.
    pub error: String,
}

/// `GET /v1/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleList {
    /// The schedules.
    pub schedules: Vec<ScheduleInfo>,
}

/// `POST /v1/schedules/{name}/run`: what the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ScheduleRun {
    /// The schedule.
    pub schedule: String,
    /// The job it enqueued.
    pub job_id: Option<i64>,
    /// The workflow it started.
    pub workflow_id: Option<i64>,
}

/// `GET /v1/batches`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchList {
    /// The batches, newest first.
    pub batches: Vec<Batch>,
}

/// `POST /v1/batches/{id}/retry-failed`: the batch, and how many jobs run again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BatchRetried {
    /// The batch.
    #[serde(flatten)]
    pub batch: Batch,
    /// Jobs set to run again.
    pub retried_jobs: u64,
}

/// The re-exported batch with its failures (`GET /v1/batches/{id}`).
pub type BatchDetail = BatchReport;

/// `GET /v1/workflows`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowList {
    /// The workflows, newest first.
    pub workflows: Vec<Workflow>,
}

/// `POST /v1/workflows`: the workflow, and whether it was already running under the
/// same `unique_key` (then nothing new started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowStarted {
    /// The workflow.
    #[serde(flatten)]
    pub workflow: Workflow,
    /// Whether it existed already.
    pub duplicate: bool,
}

/// `GET /v1/gateway`: the gateway's listeners and each route's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayStatus {
    /// The addresses it listens on.
    pub listen: Vec<String>,
    /// Whether it serves TLS.
    pub tls: bool,
    /// The plain-HTTP address that redirects to HTTPS, if any.
    pub http: Option<String>,
    /// Each route's counts since berth started.
    pub routes: Vec<RouteCounts>,
}

/// One gateway route's counts since berth started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RouteCounts {
    /// Its host (if any) and path prefix.
    pub route: String,
    /// `static`, `proxy`, `redirect`, `api`, `dashboard`, …
    pub target: String,
    /// Requests answered.
    pub requests: u64,
    /// … with a 2xx status.
    pub status_2xx: u64,
    /// … with a 3xx status.
    pub status_3xx: u64,
    /// … with a 4xx status.
    pub status_4xx: u64,
    /// … with a 5xx status.
    pub status_5xx: u64,
    /// Mean time to answer, in milliseconds.
    pub mean_ms: f64,
}

/// `GET /v1/budgets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetList {
    /// Whether this berth runs a gateway.
    pub gateway: bool,
    /// The budgets as this node's gateway enforces them now.
    pub budgets: Vec<BudgetStatus>,
}

/// A budget as enforced: amounts in the config's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetStatus {
    /// Its name.
    pub name: String,
    /// The most spent per period.
    pub limit: f64,
    /// What one request costs.
    pub cost_per_request: f64,
    /// `day` or `month`.
    pub period: String,
    /// Spent this period, as this node counts it.
    pub spent: f64,
    /// When this period started.
    pub period_start: String,
    /// When the next one starts.
    pub resets_at: String,
}

/// `POST /v1/budgets/{name}/reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetReset {
    /// The budget.
    pub reset: String,
    /// The period it reset.
    pub period_start: Timestamp,
}

/// `GET`, `POST` and `DELETE /v1/maintenance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Maintenance {
    /// Whether maintenance mode is on.
    pub maintenance: bool,
    /// Its setting, while on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<MaintenanceSetting>,
}

/// Maintenance mode's setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MaintenanceSetting {
    /// The sentence the 503 page shows.
    #[serde(default)]
    pub message: Option<String>,
    /// When it was turned on.
    #[serde(default)]
    pub since: Option<String>,
}

/// A message or dead letter as the API shows it: its bytes as `payload_text` (UTF-8) or
/// `payload_hex`, and, when they are JSON, parsed as `payload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageView {
    /// Its id, increasing in arrival order.
    pub id: i64,
    /// The ingest that took it in.
    pub ingest: String,
    /// The device it came from.
    pub device: Option<String>,
    /// The topic, file name or path it came from.
    pub topic: String,
    /// Its kind.
    pub kind: Option<String>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// A dead letter: refused, with `errors` saying why.
    pub dead: bool,
    /// Why it was refused.
    pub errors: Vec<String>,
    /// The job started with it.
    pub job_id: Option<i64>,
    /// The workflow started with it.
    pub workflow_id: Option<i64>,
    /// When it was last replayed.
    pub replayed_at: Option<Timestamp>,
    /// Resends with its key dropped as duplicates.
    pub duplicates: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The payload parsed, when it is JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// The payload, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_text: Option<String>,
    /// The payload in hex, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<MessageView>,
    /// Pass as `before` for the next page; `null` on the last.
    pub next_before: Option<i64>,
}

/// `GET /v1/messages/counts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageCounts {
    /// Per device and kind, most first.
    pub counts: Vec<MessageCount>,
    /// All of them.
    pub total: u64,
}

/// `GET /v1/notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NotificationList {
    /// The deliveries, newest first.
    pub notifications: Vec<Delivery>,
}

/// `GET /v1/releases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseList {
    /// Where the releases live.
    pub dir: String,
    /// The live release.
    pub current: Option<String>,
    /// The releases, oldest first.
    pub releases: Vec<ReleaseView>,
}

/// A release's record with its state as shown (`live`, `previous`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseView {
    /// The record.
    #[serde(flatten)]
    pub release: Release,
    /// Its state as shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_state: Option<String>,
}

/// `GET /v1/backups`: the archives in the backup dir, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupList {
    /// The backup dir.
    pub dir: String,
    /// Whether a backup is being made now (by the schedule or by `POST /v1/backups`).
    pub running: bool,
    /// The archives, oldest first.
    pub backups: Vec<BackupInfo>,
}

/// One archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupInfo {
    /// Its id (the UTC time it was made, `YYYYMMDDTHHMMSSZ`).
    pub id: String,
    /// The file.
    pub path: String,
    /// When it was made.
    pub created: Timestamp,
    /// Its size in bytes.
    pub bytes: u64,
    /// Whether the `keep` tiers keep it (`false`: the next prune removes it).
    pub kept: bool,
    /// What it holds, in words ("store, 2 dirs, …"); `null` for archives of older berths.
    pub parts: Option<String>,
}

/// `POST /v1/backups`: a backup was started; it runs on after the answer, and ends with
/// a `backup` event (`completed` or `failed`) and the archive in `GET /v1/backups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BackupStarted {
    /// Where the archive is being written.
    pub dir: String,
    /// Whether the archives the tiers no longer keep are removed after.
    pub prune: bool,
}

/// `POST /v1/backups/{id}/verify`: the archive was read whole and every entry matched its
/// checksum (a damaged archive is an error answer, `backup_damaged`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupVerified {
    /// The archive.
    pub id: String,
    /// The app it was made of.
    pub app: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// The berth that made it.
    pub berth_version: String,
    /// Files in it.
    pub files: u64,
    /// Their bytes, uncompressed.
    pub bytes: u64,
    /// The application databases in it, by name.
    pub databases: Vec<String>,
}
