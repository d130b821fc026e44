//! The values that cross the `Store` boundary: jobs, their states, what is asked of the
//! store and what it answers.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A point in time: microseconds since the Unix epoch, UTC.
///
/// Every store call takes the time from its caller (an injectable clock), never from the
/// system, so that tests can move time without sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The latest time berth stores: the end of year 9999, the last one RFC 3339 can
    /// write. Arithmetic saturates here, so a huge delay cannot make a time unprintable.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// The system's current time.
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    /// Converts a `SystemTime`; times before 1970 clamp to the epoch, after 9999 to `MAX`.
    pub fn from_system(t: SystemTime) -> Self {
        let micros = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Self(i64::try_from(micros).unwrap_or(i64::MAX)).min(Self::MAX)
    }

    /// This time as a `SystemTime`.
    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.0.clamp(0, Self::MAX.0) as u64)
    }

    /// This time plus `d`, saturating at `MAX`.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
        .min(Self::MAX)
    }

    /// This time minus `d`, saturating.
    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }

    /// How long after `earlier` this time is (zero if it is not after).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_millis(self.to_system()))
    }
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_rfc3339_weak(s)
            .map(Self::from_system)
            .map_err(|e| {
                format!("invalid time {s:?}: {e}; expected RFC 3339 such as 2026-01-31T12:00:00Z")
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_micros(self.to_system()).to_string())
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "An RFC 3339 time in UTC, with microseconds."
        })
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a job is in its life. See `docs/job-states.md` for the transitions.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// A workflow step whose parents have not finished.
    Pending,
    /// Waiting for its `scheduled_at` time.
    Scheduled,
    /// Ready to be fetched.
    Available,
    /// Leased by a worker; leaves this state only by a write under the same attempt.
    Running,
    /// Failed an attempt; runs again at `scheduled_at`.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Failed its last attempt, or was discarded by hand.
    Discarded,
    /// Cancelled before it finished.
    Cancelled,
    /// A batch's chunk of several items that failed its last attempt and was split into
    /// smaller chunks (named in its result's `split_into`): not failed work itself.
    Split,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 9] = [
        JobState::Pending,
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
        JobState::Split,
    ];

    /// The name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
            JobState::Split => "split",
        }
    }

    /// Whether the job is done for good (it has a `finalized_at`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Discarded | JobState::Cancelled | JobState::Split
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown job state {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A job as stored, with its whole history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    /// Unique, increasing id.
    pub id: i64,
    /// The queue it runs on.
    pub queue: String,
    /// What kind of work it is; handlers may branch on it.
    pub kind: String,
    /// The arguments, as given at enqueue.
    pub args: Value,
    /// Where it is in its life.
    pub state: JobState,
    /// Lower runs first.
    pub priority: i32,
    /// How many attempts have started (0 before the first).
    pub attempt: u32,
    /// Attempts allowed before it is discarded.
    pub max_attempts: u32,
    /// When it may run (next).
    pub scheduled_at: Timestamp,
    /// When the current or last attempt started.
    pub attempted_at: Option<Timestamp>,
    /// Who runs or ran the current or last attempt.
    pub attempted_by: Option<String>,
    /// When the running attempt's lease expires unless heartbeats extend it.
    pub lease_expires_at: Option<Timestamp>,
    /// When it reached a final state.
    pub finalized_at: Option<Timestamp>,
    /// One entry per failed (or retried) attempt.
    pub errors: Vec<AttemptError>,
    /// What the handler returned when it completed.
    pub result: Option<Value>,
    /// The last attempt's output (bounded).
    pub output: Option<String>,
    /// While a job with this key is not final, another insert with it is a duplicate.
    pub unique_key: Option<String>,
    /// The batch it belongs to.
    pub batch_id: Option<i64>,
    /// The workflow it belongs to.
    pub workflow_id: Option<i64>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// When it was inserted.
    pub created_at: Timestamp,
}

/// What went wrong in one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptError {
    /// Which attempt.
    pub attempt: u32,
    /// When it ended.
    pub at: Timestamp,
    /// Why it failed, in a sentence.
    pub error: String,
    /// What the handler printed (bounded), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A job to insert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewJob {
    /// The queue to run it on.
    pub queue: String,
    /// What kind of work it is.
    pub kind: String,
    /// The arguments (any JSON).
    pub args: Value,
    /// Lower runs first.
    pub priority: i32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Run no earlier than this; `None` means now.
    pub scheduled_at: Option<Timestamp>,
    /// Deduplication key among jobs that are not final.
    pub unique_key: Option<String>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// The batch it belongs to.
    pub batch_id: Option<i64>,
    /// The workflow it belongs to.
    pub workflow_id: Option<i64>,
}

impl NewJob {
    /// A job with defaults: priority 0, the given attempts, to run now.
    pub fn new(queue: impl Into<String>, kind: impl Into<String>, args: Value) -> Self {
        Self {
            queue: queue.into(),
            kind: kind.into(),
            args,
            priority: 0,
            max_attempts: 25,
            scheduled_at: None,
            unique_key: None,
            tags: Vec::new(),
            batch_id: None,
            workflow_id: None,
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inserted {
    /// The new job's id, or the existing job's id for a duplicate.
    pub id: i64,
    /// True when a job with the same unique key already existed and nothing was inserted.
    pub duplicate: bool,
    /// The job's state after the insert.
    pub state: JobState,
}

/// A job handed to a worker under a lease: what the worker needs to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeasedJob {
    /// The job id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: Value,
    /// The attempt this lease is for; every later write about it must name it.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its priority.
    pub priority: i32,
    /// When the lease expires unless a heartbeat extends it.
    pub lease_expires_at: Timestamp,
    /// When it was inserted.
    pub created_at: Timestamp,
    /// The workflow it is a step of, if any (its queue, `workflow.NAME.STEP`, names the
    /// step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<i64>,
}

impl LeasedJob {
    /// The workflow and step this job is, from its queue `workflow.NAME.STEP`.
    pub fn workflow_step(&self) -> Option<(i64, &str)> {
        let id = self.workflow_id?;
        let step = self.queue.strip_prefix("workflow.")?.split_once('.')?.1;
        Some((id, step))
    }
}

/// Which attempt of which job a write is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRef {
    /// The job id.
    pub id: i64,
    /// The attempt number from the lease.
    pub attempt: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// It succeeded.
    Completed {
        /// What the handler returned.
        result: Option<Value>,
        /// What it printed (bounded).
        output: Option<String>,
    },
    /// It failed; retried at `retry_at` unless this was the last attempt.
    Failed {
        /// Why.
        error: String,
        /// What it printed (bounded).
        output: Option<String>,
        /// When to try again.
        retry_at: Timestamp,
    },
    /// It failed and must not be retried.
    Discard {
        /// Why.
        error: String,
        /// What it printed (bounded).
        output: Option<String>,
    },
    /// The handler asked to run again later; the attempt does not count against the limit.
    Snooze {
        /// Why (recorded in the errors list).
        reason: String,
        /// What it printed (bounded).
        output: Option<String>,
        /// When to try again.
        until: Timestamp,
    },
    /// The worker stopped heartbeating: like `Failed`, but written only if the lease has
    /// indeed expired by `now` — a heartbeat that landed since the rescuer looked wins.
    LeaseExpired {
        /// Why.
        error: String,
        /// When to try again.
        retry_at: Timestamp,
    },
    /// The attempt never really ran (berth is shutting down): back to available, the
    /// attempt not counted against the limit (`max_attempts` grows by one, the attempt
    /// number does not go back, so it stays a fencing token).
    Release,
}

/// One attempt's end, as written by `Store::finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finish {
    /// Which attempt.
    pub attempt: AttemptRef,
    /// How it ended.
    pub outcome: Outcome,
}

/// What `Store::finish` did with one `Finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Finished {
    /// Written; the job is now in this state.
    Applied(JobState),
    /// Not written: the job is no longer running under that attempt (rescued, cancelled,
    /// deleted or already finished). A late completion never overwrites a newer attempt.
    Stale,
}

/// A running job's lease, as seen by the rescuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunningLease {
    /// Which attempt.
    pub attempt: AttemptRef,
    /// Its queue.
    pub queue: String,
    /// Who holds it.
    pub attempted_by: Option<String>,
    /// When it expires.
    pub lease_expires_at: Timestamp,
}

/// Filters for listing jobs; newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only these states (empty: all).
    pub states: Vec<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only jobs with an id below this (the cursor from the previous page).
    pub before_id: Option<i64>,
    /// Only jobs whose arguments, as JSON text, contain this (case-sensitive). It reads
    /// each candidate job's arguments: narrow it with a queue, state or time when the
    /// store holds millions.
    #[serde(default)]
    pub args_contains: Option<String>,
    /// Only jobs created (pushed) at or after this.
    #[serde(default)]
    pub created_after: Option<Timestamp>,
    /// Only jobs created before this.
    #[serde(default)]
    pub created_before: Option<Timestamp>,
    /// At most this many (the store caps it at 1000).
    pub limit: u32,
}

/// Counts for one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Whether fetching is paused.
    pub paused: bool,
    /// Jobs per state (every state present, zero included).
    pub counts: std::collections::BTreeMap<JobState, u64>,
    /// When the oldest available job became due.
    pub oldest_available_at: Option<Timestamp>,
}

/// What an admin action did to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StateChange {
    /// The job.
    pub id: i64,
    /// Its state before.
    pub from: JobState,
    /// Its state after (`None` when deleted).
    pub to: Option<JobState>,
}

/// Something that happened, to be recorded: a service instance started, exited,
/// crash-looped… Kept for people (`berth events`), the notifier and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewEvent {
    /// When it happened.
    pub at: Timestamp,
    /// The node it happened on.
    pub node: String,
    /// What part of berth reports it: `service`, …
    pub source: String,
    /// What it happened to: a service's name, …
    pub subject: String,
    /// The instance, for a service event.
    pub instance: Option<u32>,
    /// A short lowercase name: `started`, `exited`, `crashloop`, …
    pub kind: String,
    /// A sentence for people.
    pub message: String,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventRecord {
    /// Increasing with the order events were recorded in.
    pub id: i64,
    /// The event.
    #[serde(flatten)]
    pub event: NewEvent,
}

/// Which events to list: all filters must match; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only from this source.
    pub source: Option<String>,
    /// Only about this subject.
    pub subject: Option<String>,
    /// Only of these kinds (any, when empty).
    pub kinds: Vec<String>,
    /// Only older than this id (paging backwards).
    pub before_id: Option<i64>,
    /// Only at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many.
    pub limit: u32,
}

/// A berth process sharing the store, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeInfo {
    /// The node's id (stable across restarts of the same data dir).
    pub id: String,
    /// The host it runs on.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its berth version.
    pub version: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it last reported.
    pub heartbeat_at: Timestamp,
}

/// The leader lease: which node runs the work only one node may run (staging, rescue,
/// pruning, schedules), under which term, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LeaderLease {
    /// The node holding it (`None` before anyone took it, or after a resignation).
    pub holder: Option<String>,
    /// Grows by one at every change of holder.
    pub term: i64,
    /// The holder must renew before this.
    pub expires_at: Timestamp,
}

impl LeaderLease {
    /// Whether node `name` holds it, unexpired at `now` (the holder names the node's
    /// boot: `berth:NAME:BOOT`).
    pub fn held_by(&self, name: &str, now: Timestamp) -> bool {
        self.expires_at > now
            && self.holder.as_deref().is_some_and(|h| {
                h.strip_prefix("berth:")
                    .and_then(|rest| rest.strip_prefix(name))
                    .is_some_and(|rest| rest.starts_with(':'))
            })
    }
}
