//! Request bodies and query strings, and the parsing of the values in them.

use std::time::Duration;

use berth_queue::Enqueue;
use berth_store::{JobFilter, JobState, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// A job to push.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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
    /// Page cursor: ids below this.
    pub before: Option<i64>,
    /// Page size (default 50, at most 1000).
    pub limit: Option<u32>,
}

impl ListQuery {
    /// Into the store's filter.
    pub fn into_filter(self) -> Result<JobFilter, ApiError> {
        let states = parse_states(self.state.as_deref())?;
        Ok(JobFilter {
            queue: self.queue,
            states,
            kind: self.kind,
            tag: self.tag,
            before_id: self.before,
            limit: self.limit.unwrap_or(50).clamp(1, 1000),
        })
    }
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// States to delete (default: available, scheduled, retryable).
    #[serde(default)]
    pub states: Vec<JobState>,
}

/// `POST /v1/queues/{name}/lease` body.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptItem {
    /// The job.
    pub id: i64,
    /// The attempt from the lease.
    pub attempt: u32,
}

/// `POST /v1/queues/{name}/heartbeat` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatManyBody {
    /// The attempts whose leases to extend (at most 1000).
    pub jobs: Vec<AttemptItem>,
    /// New lease length (default 60s).
    pub lease: Option<String>,
}

/// `POST /v1/jobs/{id}/heartbeat` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// The attempt from the lease.
    pub attempt: u32,
    /// New lease length (default 60s).
    pub lease: Option<String>,
}

/// `POST /v1/jobs/{id}/complete` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The attempt from the lease.
    pub attempt: u32,
    /// The result to store.
    pub result: Option<Value>,
}

/// `POST /v1/jobs/{id}/fail` body.
#[derive(Debug, Clone, Deserialize)]
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
