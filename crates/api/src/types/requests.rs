//! Request bodies, query strings and path parameters, and the parsing of the values in
//! them.

use std::time::Duration;

use berth_queue::Enqueue;
use berth_store::{JobFilter, JobState, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// A job to push.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PushBody {
    /// The queue.
    pub queue: String,
    /// The kind.
    pub kind: String,
    /// The arguments (default `{}`).
    #[serde(default)]
    pub args: Option<Value>,
    /// Lower runs first.
    #[serde(default)]
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: Option<u32>,
    /// A delay such as "30s" or "1h".
    pub delay: Option<String>,
    /// An RFC 3339 time.
    pub run_at: Option<String>,
    /// A deduplication key.
    pub unique_key: Option<String>,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Several jobs to push at once, all or none.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// The jobs.
    pub jobs: Vec<PushBody>,
}

/// Parses a duration such as "30s", "5m" or "1h 30m".
pub fn duration(field: &str, v: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(v).map_err(|e| {
        ApiError::bad_request(
            "invalid",
            format!(
                "`{field}`: invalid duration {v:?} ({e}); expected e.g. \"30s\", \"5m\", \"1h\""
            ),
        )
    })
}

impl PushBody {
    /// Into the queue's request, checking the values.
    pub fn into_enqueue(self) -> Result<Enqueue, ApiError> {
        let delay = self
            .delay
            .as_deref()
            .map(|d| duration("delay", d))
            .transpose()?;
        let run_at = self
            .run_at
            .as_deref()
            .map(|t| t.parse::<Timestamp>())
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid", format!("`run_at`: {e}")))?;
        Ok(Enqueue {
            queue: self.queue,
            kind: self.kind,
            args: self
                .args
                .unwrap_or_else(|| Value::Object(Default::default())),
            priority: self.priority,
            max_attempts: self.max_attempts,
            delay,
            run_at,
            unique_key: self.unique_key,
            tags: self.tags,
        })
    }
}

/// `GET /v1/jobs` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Comma-separated states.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this tag.
    pub tag: Option<String>,
    /// Only jobs whose arguments, as JSON text, contain this (case-sensitive), e.g. a
    /// customer's address or an order number.
    pub args: Option<String>,
    /// Only jobs pushed at or after this: an RFC 3339 time or a duration ago ("1h").
    pub since: Option<String>,
    /// Only jobs pushed before this: an RFC 3339 time or a duration ago.
    pub until: Option<String>,
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<u32>,
}

impl ListQuery {
    /// Into the store's filter.
    pub fn into_filter(self) -> Result<JobFilter, ApiError> {
        let states = parse_states(self.state.as_deref())?;
        let args_contains = match self.args {
            Some(a) if a.len() > 1024 => {
                return Err(ApiError::bad_request(
                    "invalid",
                    "`args` (the text searched for) may be at most 1024 bytes",
                ));
            }
            Some(a) if a.is_empty() => None,
            other => other,
        };
        Ok(JobFilter {
            queue: self.queue,
            states,
            kind: self.kind,
            tag: self.tag,
            args_contains,
            created_after: self
                .since
                .as_deref()
                .map(|t| time("since", t))
                .transpose()?,
            created_before: self
                .until
                .as_deref()
                .map(|t| time("until", t))
                .transpose()?,
            before_id: self.before,
            limit: self.limit.unwrap_or(50).clamp(1, 1000),
        })
    }
}

/// An RFC 3339 time, or a duration before now, given as `name`.
pub fn time(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(Timestamp::now().minus(d));
    }
    text.parse::<Timestamp>().map_err(|_| {
        ApiError::bad_request(
            "invalid",
            format!(
                "{name} {text:?} is neither a duration such as \"1h\" nor a time such as \"2026-11-22T10:00:00Z\""
            ),
        )
    })
}

/// Parses "available,running" into states.
pub fn parse_states(v: Option<&str>) -> Result<Vec<JobState>, ApiError> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e: String| ApiError::bad_request("invalid", e))
        })
        .collect()
}

/// `POST /v1/queues/{name}/purge` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// States to delete (default: available, scheduled, retryable).
    #[serde(default)]
    pub states: Vec<JobState>,
}

/// `POST /v1/queues/{name}/lease` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseBody {
    /// The worker's name (recorded as `attempted_by`).
    pub worker: String,
    /// At most this many jobs (default 1).
    pub max: Option<u32>,
    /// Wait up to this long for a job, e.g. "30s" (default: do not wait; at most 5m).
    pub wait: Option<String>,
    /// Lease length, e.g. "60s" (default 60s); heartbeat before it ends.
    pub lease: Option<String>,
}

/// One attempt's outcome in `POST /v1/queues/{name}/report`: a completion, or a failure
/// when `error` is present.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportItem {
    /// The job.
    pub id: i64,
    /// The attempt from the lease.
    pub attempt: u32,
    /// The result to store (completions only).
    pub result: Option<Value>,
    /// Why it failed; present: a failure.
    pub error: Option<String>,
    /// False: discard now instead of retrying (failures only; default true).
    pub retry: Option<bool>,
    /// Retry after this delay without counting a failure (failures only).
    pub retry_after: Option<String>,
}

/// What to lease in the same call as a report.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaseNext {
    /// At most this many jobs (default 1).
    pub max: Option<u32>,
    /// Wait up to this long for a job, e.g. "30s" (default: do not wait; at most 5m).
    pub wait: Option<String>,
    /// Lease length (default 60s).
    pub lease: Option<String>,
}

/// `POST /v1/queues/{name}/report` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The worker's name (recorded as `attempted_by` of what it leases).
    pub worker: String,
    /// How attempts ended (at most 1000).
    #[serde(default)]
    pub done: Vec<ReportItem>,
    /// Lease the next jobs after recording `done`.
    pub lease: Option<LeaseNext>,
}

/// One attempt in `POST /v1/queues/{name}/heartbeat`.
#[derive(Debug, Clone, Copy, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttemptItem {
    /// The job.
    pub id: i64,
    /// The attempt from the lease.
    pub attempt: u32,
}

/// `POST /v1/queues/{name}/heartbeat` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatManyBody {
    /// The attempts whose leases to extend (at most 1000).
    pub jobs: Vec<AttemptItem>,
    /// New lease length (default 60s).
    pub lease: Option<String>,
}

/// `POST /v1/jobs/{id}/heartbeat` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The attempt from the lease.
    pub attempt: u32,
    /// New lease length (default 60s).
    pub lease: Option<String>,
}

/// `POST /v1/jobs/{id}/complete` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The attempt from the lease.
    pub attempt: u32,
    /// The result to store.
    pub result: Option<Value>,
}

/// `POST /v1/jobs/{id}/fail` body.
#[derive(Debug, Clone, Deserialize, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// The attempt from the lease.
    pub attempt: u32,
    /// Why it failed.
    pub error: String,
    /// False: discard now instead of retrying (default true).
    pub retry: Option<bool>,
    /// Retry after this delay without counting a failure, e.g. "5m".
    pub retry_after: Option<String>,
}

/// `POST /v1/jobs/actions` body: an action and the filter of the jobs it applies to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobActionBody {
    /// `retry`, `cancel`, `discard` or `delete`.
    pub action: String,
    /// Only this queue's jobs.
    pub queue: Option<String>,
    /// Only jobs in these states (comma-separated).
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only jobs whose arguments, as JSON text, contain this.
    pub args: Option<String>,
    /// Only jobs pushed at or after this: an RFC 3339 time or a duration ago ("1h").
    pub since: Option<String>,
    /// Only jobs pushed before this.
    pub until: Option<String>,
    /// At most this many jobs acted on (default 10,000, at most 100,000).
    pub max: Option<u64>,
}

/// `POST /v1/archive` body: one job, or a queue's and/or some states' final jobs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveBody {
    /// One job (it must be final).
    pub id: Option<i64>,
    /// Every final job of this queue.
    pub queue: Option<String>,
    /// Only final jobs in these states.
    #[serde(default)]
    pub states: Vec<String>,
}

/// `GET /v1/archive` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveQuery {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this final state.
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Page cursor: archived before this (`next_before` of the previous page).
    pub before: Option<i64>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<u32>,
}

/// `POST /v1/batches` body: a batch to create.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchCreateBody {
    /// The queue its jobs run on.
    pub queue: String,
    /// Its jobs' kind.
    pub kind: String,
    /// The items, any JSON each; a job gets `job_size` of them.
    pub items: Vec<Value>,
    /// Items per job.
    pub job_size: u32,
    /// Attempts per job (default: the queue's).
    pub max_attempts: Option<u32>,
    /// Its jobs' priority; lower runs first.
    #[serde(default)]
    pub priority: i32,
}

/// `GET /v1/batches` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchQuery {
    /// Only batches in this state (`running`, `completed`, `failed`, `cancelled`).
    pub state: Option<String>,
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u32>,
}

/// `POST /v1/workflows` body: a workflow to start.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStartBody {
    /// The configured workflow's name.
    pub name: String,
    /// Its input (default `{}`).
    #[serde(default)]
    pub args: Option<Value>,
    /// While a workflow started with this key runs, another start returns it.
    #[serde(default)]
    pub unique_key: Option<String>,
}

/// `GET /v1/workflows` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowQuery {
    /// Only this workflow.
    pub name: Option<String>,
    /// Only workflows in this state.
    pub state: Option<String>,
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u32>,
}

/// `GET /v1/notifications` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Only this channel.
    pub channel: Option<String>,
    /// `true`: only those waiting; `false`: only those sent.
    pub pending: Option<bool>,
    /// At most this many (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// `GET /v1/messages` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Only this ingest's.
    pub ingest: Option<String>,
    /// Only this device's.
    pub device: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// `true`: dead letters; `false` (default): accepted messages.
    pub dead: Option<bool>,
    /// Received at or after this: an RFC 3339 time or a duration ago ("1h").
    pub since: Option<String>,
    /// Received before this: an RFC 3339 time or a duration ago.
    pub until: Option<String>,
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Page size (default 50).
    pub limit: Option<u32>,
}

/// `GET /v1/messages/counts` query: the listing's filters, without paging.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageCountQuery {
    /// Only this ingest's.
    pub ingest: Option<String>,
    /// Only this device's.
    pub device: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// `true`: dead letters; `false` (default): accepted messages.
    pub dead: Option<bool>,
    /// Received at or after this: an RFC 3339 time or a duration ago ("1h").
    pub since: Option<String>,
    /// Received before this: an RFC 3339 time or a duration ago.
    pub until: Option<String>,
}

/// `GET /v1/messages/stream` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageStreamQuery {
    /// Only this ingest's.
    pub ingest: Option<String>,
    /// Only this device's.
    pub device: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only dead letters (`true`) or only accepted messages (`false`); both without it.
    pub dead: Option<bool>,
}

/// `GET /v1/services/{name}/logs` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// How many of the last lines (default 100, at most 10,000).
    pub lines: Option<u32>,
}

/// `POST /v1/services/{name}/signal` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    /// `HUP`, `SIGHUP`, `usr1`, … (with or without `SIG`).
    pub signal: String,
}

/// `GET /v1/events` query.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this source (`service`, `queue`, `deploy`, `dashboard`, …).
    pub source: Option<String>,
    /// Only this subject (a service's, queue's or release's name).
    pub subject: Option<String>,
    /// Only these kinds (comma-separated).
    pub kind: Option<String>,
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Only events since this: an RFC 3339 time or a duration ago ("1h").
    pub since: Option<String>,
    /// At most this many (default 100, at most 10,000).
    pub limit: Option<u32>,
}

/// `POST /v1/maintenance` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    /// The sentence the 503 page shows.
    pub message: Option<String>,
}

/// `POST /v1/deploys` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// A git ref, or an absolute path of a directory or archive; the configured ref
    /// without it.
    pub source: Option<String>,
    /// Who asks (shown in `berth releases`).
    pub by: Option<String>,
}

/// `POST /v1/rollback` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The release to go back to; the one before the live one without it.
    pub to: Option<String>,
    /// Who asks (shown in `berth releases`).
    pub by: Option<String>,
    /// Whether the databases may be restored (with `restore_on_rollback`); default true.
    pub restore: Option<bool>,
}

/// A job's, batch's, workflow's or message's id in the path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct IdPath {
    /// The id (a number).
    #[schemars(with = "i64")]
    pub id: String,
}

/// A queue's, service's, schedule's or budget's name in the path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct NamePath {
    /// The name.
    pub name: String,
}

/// A backup archive's id in the path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct BackupPath {
    /// The archive's id, as `GET /v1/backups` lists it, e.g. `20261206T031500Z`.
    pub id: String,
}

/// A release's id in the path.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ReleasePath {
    /// The release's id, e.g. `20261206-101500-a1b2c3d4e5`.
    pub id: String,
}

/// The body of a POST that takes none: `{}`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// `POST /v1/backups` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// Also remove the archives the `keep` tiers no longer keep (default true).
    pub prune: Option<bool>,
}

/// `POST /v1/queues/{name}/concurrency` body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyBody {
    /// Jobs of the queue at once on each node (1 to 10,000), over the config's; `null`:
    /// back to the config's.
    pub concurrency: Option<u32>,
}
