//! Schedules, batches and workflows as stored: the values crossing the `Store` boundary,
//! and the rules both backends apply when a job of a batch or a workflow reaches a final
//! state (so that the two SQL dialects cannot drift apart).
//!
//! - A **schedule** keeps its next planned time in the store; firing is a compare-and-set
//!   on that time, so that two nodes (or a leader and its successor) never fire the same
//!   planned time twice.
//! - A **batch** is a set of items cut into jobs of `job_size` items. Its counters move in
//!   the same transaction as its jobs: a chunk that fails its last attempt is split in
//!   halves, down to single items, so one bad item does not fail its neighbours.
//! - A **workflow** is a graph of steps, each a job. A step waits in `pending` until its
//!   parents have finished; it then receives their results. A required step that fails
//!   fails the workflow and cancels what has not finished.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::model::{JobState, NewEvent, NewJob, Timestamp};

pub(crate) mod engine;

/// Where a batch or a workflow is in its life.
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
pub enum FlowState {
    /// Jobs are still waiting or running.
    Running,
    /// Every item or step succeeded.
    Completed,
    /// Finished with failed items, or a required step failed (or the workflow timed out).
    Failed,
    /// Cancelled by hand.
    Cancelled,
}

impl FlowState {
    /// Every state.
    pub const ALL: [FlowState; 4] = [
        FlowState::Running,
        FlowState::Completed,
        FlowState::Failed,
        FlowState::Cancelled,
    ];

    /// The name used in the database, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Running => "running",
            FlowState::Completed => "completed",
            FlowState::Failed => "failed",
            FlowState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for FlowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlowState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FlowState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}; expected one of running, completed, failed, cancelled"
                )
            })
    }
}

// ---------------------------------------------------------------------------------------
// Schedules

/// A schedule's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleState {
    /// The schedule's name (`[schedule.NAME]`).
    pub name: String,
    /// What the next run time was computed from (the cron expression and time zone);
    /// when the config changes it, the next run is computed afresh.
    pub signature: String,
    /// The next planned run time.
    pub next_at: Timestamp,
    /// The planned time of the last run started (by the timer or by hand).
    pub last_planned_at: Option<Timestamp>,
    /// When the last run was started.
    pub last_fired_at: Option<Timestamp>,
    /// The job the last run enqueued.
    pub last_job_id: Option<i64>,
    /// The workflow the last run started.
    pub last_workflow_id: Option<i64>,
    /// Planned runs skipped (overlap or catch-up policy), in all.
    pub skipped: u64,
    /// Paused schedules fire nothing; their planned times pass.
    pub paused: bool,
}

/// What a schedule run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Start {
    /// A job.
    Job(NewJob),
    /// A workflow.
    Workflow(NewWorkflow),
}

/// One firing of a schedule, written in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleFire {
    /// The schedule.
    pub name: String,
    /// Fire only if the stored next time is still this one (`None`: a run by hand, which
    /// leaves the next time alone).
    pub expect_next: Option<Timestamp>,
    /// The next planned time to store (ignored for a run by hand).
    pub next_at: Timestamp,
    /// The planned time this run stands for.
    pub planned: Timestamp,
    /// What to start; `None` records planned runs as skipped instead.
    pub start: Option<Start>,
    /// How many planned times this firing skips.
    pub skipped: u64,
}

/// What a firing started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fired {
    /// The job enqueued.
    pub job_id: Option<i64>,
    /// The workflow started.
    pub workflow_id: Option<i64>,
}

// ---------------------------------------------------------------------------------------
// Batches

/// A batch to create: items cut into jobs of `job_size` items, each job's args
/// `{"items": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewBatch {
    /// The queue its jobs run on.
    pub queue: String,
    /// The jobs' kind.
    pub kind: String,
    /// The items (any JSON values).
    pub items: Vec<Value>,
    /// Items per job (at least 1).
    pub job_size: u32,
    /// Attempts per job (and per split half).
    pub max_attempts: u32,
    /// The jobs' priority.
    pub priority: i32,
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Batch {
    /// Its id.
    pub id: i64,
    /// The queue its jobs run on.
    pub queue: String,
    /// The jobs' kind.
    pub kind: String,
    /// Where it is.
    pub state: FlowState,
    /// Items in all.
    pub total_items: u64,
    /// Items per job at the start.
    pub job_size: u32,
    /// Attempts per job.
    pub max_attempts: u32,
    /// Items whose job completed.
    pub done_items: u64,
    /// Items whose single-item job failed its last attempt (or discarded by hand).
    pub failed_items: u64,
    /// Items whose job was cancelled.
    pub cancelled_items: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its last item finished.
    pub finalized_at: Option<Timestamp>,
}

impl Batch {
    /// Items not finished yet.
    pub fn pending_items(&self) -> u64 {
        self.total_items
            .saturating_sub(self.done_items + self.failed_items + self.cancelled_items)
    }
}

/// A failed item of a batch: the job that failed, its items and its last error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BatchFailure {
    /// The job.
    pub job_id: i64,
    /// Its items (one, unless it was discarded by hand).
    pub items: Vec<Value>,
    /// Its last error.
    pub error: Option<String>,
    /// Discarded or cancelled.
    pub state: JobState,
}

/// Which batches to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFilter {
    /// Only in this state.
    pub state: Option<FlowState>,
    /// Only with an id below this.
    pub before_id: Option<i64>,
    /// At most this many (capped at 1000).
    pub limit: u32,
}

// ---------------------------------------------------------------------------------------
// Workflows

/// One step of a workflow to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewStep {
    /// Its name, unique in the workflow.
    pub name: String,
    /// The queue that runs it.
    pub queue: String,
    /// Its job's kind.
    pub kind: String,
    /// The steps that must finish first.
    pub parents: Vec<String>,
    /// A failure of an optional step lets its children run (with a null result).
    pub optional: bool,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Its job's priority.
    pub priority: i32,
}

/// A workflow to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewWorkflow {
    /// The workflow's name (`[workflow.NAME]`).
    pub name: String,
    /// Its input, handed to every step.
    pub input: Value,
    /// Its steps, parents named before children or not: the store orders nothing.
    pub steps: Vec<NewStep>,
    /// The whole workflow fails if it has not finished by then.
    pub deadline: Option<Timestamp>,
    /// Who started it: `cli`, `api`, `schedule:NAME`, …
    pub started_by: String,
    /// While a workflow with this key runs, a start with the same key starts nothing and
    /// answers that workflow's id (as a job's unique key does).
    pub unique_key: Option<String>,
}

/// A step as stored, with its job's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkflowStep {
    /// Its name.
    pub name: String,
    /// Its job (the job may have been pruned since).
    pub job_id: i64,
    /// Its parents.
    pub parents: Vec<String>,
    /// Whether its failure lets the workflow go on.
    pub optional: bool,
    /// Its job's state (`None`: the job was pruned).
    pub state: Option<JobState>,
    /// Attempts started.
    pub attempt: u32,
    /// What it returned.
    pub result: Option<Value>,
    /// Its last error.
    pub error: Option<String>,
}

/// A workflow as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Workflow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Where it is.
    pub state: FlowState,
    /// Its input.
    pub input: Value,
    /// When completed: every step's result, by step name.
    pub result: Option<Value>,
    /// When failed: why.
    pub error: Option<String>,
    /// Who started it.
    pub started_by: String,
    /// When it started.
    pub created_at: Timestamp,
    /// When it times out.
    pub deadline: Option<Timestamp>,
    /// When it finished.
    pub finalized_at: Option<Timestamp>,
    /// Its unique key, if it was started with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Its steps (empty in listings).
    pub steps: Vec<WorkflowStep>,
}

/// Which workflows to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkflowFilter {
    /// Only the one with this unique key (running or not).
    pub unique_key: Option<String>,
    /// Only of this name.
    pub name: Option<String>,
    /// Only in this state.
    pub state: Option<FlowState>,
    /// Only with an id below this.
    pub before_id: Option<i64>,
    /// At most this many (capped at 1000).
    pub limit: u32,
}

/// Everything about schedules, batches and workflows, for copying a store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowsDump {
    /// Schedule states.
    pub schedules: Vec<ScheduleState>,
    /// Batches.
    pub batches: Vec<Batch>,
    /// Workflows, with their steps.
    pub workflows: Vec<Workflow>,
}

// ---------------------------------------------------------------------------------------
// Rules shared by both backends.

/// Checks a firing before anything is written.
pub(crate) fn may_fire(f: &ScheduleFire) -> crate::Result<()> {
    match &f.start {
        Some(Start::Job(j)) => crate::rules::may_insert(std::slice::from_ref(j)),
        Some(Start::Workflow(w)) => may_start_workflow(w),
        None => Ok(()),
    }
}

/// Checks a batch before anything is written.
pub(crate) fn may_create_batch(b: &NewBatch) -> crate::Result<()> {
    let wrong = if b.items.is_empty() {
        "a batch needs at least one item"
    } else if b.job_size == 0 {
        "the job size must be at least 1"
    } else if b.max_attempts == 0 {
        "max_attempts must be at least 1"
    } else if b.queue.is_empty() || b.kind.is_empty() {
        "a batch needs a queue and a kind"
    } else {
        return Ok(());
    };
    Err(crate::StoreError::Invalid(wrong.into()))
}

/// The jobs of a new batch.
pub(crate) fn batch_jobs(b: &NewBatch, batch_id: i64) -> Vec<NewJob> {
    b.items
        .chunks(b.job_size as usize)
        .map(|chunk| batch_job(b.queue.clone(), b.kind.clone(), b, chunk.to_vec(), batch_id))
        .collect()
}

fn batch_job(queue: String, kind: String, b: &NewBatch, items: Vec<Value>, id: i64) -> NewJob {
    let mut job = NewJob::new(queue, kind, json!({ "items": items }));
    job.max_attempts = b.max_attempts;
    job.priority = b.priority;
    job.batch_id = Some(id);
    job
}

/// The items of a batch job's args.
pub(crate) fn batch_items(args: &Value) -> Vec<Value> {
    match args.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => vec![args.clone()],
    }
}

/// The two halves a failed chunk is split into.
pub(crate) fn split_halves(
    queue: &str,
    kind: &str,
    items: &[Value],
    max_attempts: u32,
    priority: i32,
    batch_id: i64,
) -> [NewJob; 2] {
    let mid = items.len().div_ceil(2);
    let half = |part: &[Value]| {
        let mut job = NewJob::new(queue, kind, json!({ "items": part }));
        job.max_attempts = max_attempts;
        job.priority = priority;
        job.batch_id = Some(batch_id);
        job
    };
    [half(&items[..mid]), half(&items[mid..])]
}

/// What a batch job's final state does to its batch's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BatchMove {
    /// Add to done.
    Done(u64),
    /// Add to failed.
    Failed(u64),
    /// Add to cancelled.
    Cancelled(u64),
    /// Split into halves (nothing counted yet).
    Split,
}

/// Whether a job of batch `batch_id` with `args` that failed its last attempt is split
/// (a chunk of several items) rather than failed: it then records no `job.discarded`.
pub(crate) fn splits_when_failed(batch_id: Option<i64>, args: &Value) -> bool {
    batch_id.is_some()
        && batch_move(JobState::Discarded, batch_items(args).len() as u64, true)
            == Some(BatchMove::Split)
}

/// How a batch job's new final state moves its batch. `by_attempts`: it failed its last
/// attempt (rather than being discarded by hand), which splits a chunk of several items.
pub(crate) fn batch_move(state: JobState, items: u64, by_attempts: bool) -> Option<BatchMove> {
    match state {
        JobState::Completed => Some(BatchMove::Done(items)),
        JobState::Discarded if by_attempts && items > 1 => Some(BatchMove::Split),
        JobState::Discarded => Some(BatchMove::Failed(items)),
        JobState::Cancelled => Some(BatchMove::Cancelled(items)),
        _ => None,
    }
}

impl BatchMove {
    /// The batch counter this move adds to and by how much (`None`: a split).
    pub(crate) fn count(self) -> Option<(&'static str, i64)> {
        let (state, n) = match self {
            BatchMove::Done(n) => (JobState::Completed, n),
            BatchMove::Failed(n) => (JobState::Discarded, n),
            BatchMove::Cancelled(n) => (JobState::Cancelled, n),
            BatchMove::Split => return None,
        };
        counter(state).map(|c| (c, n as i64))
    }
}

/// The batch counter a job in a final state is counted in.
pub(crate) fn counter(state: JobState) -> Option<&'static str> {
    match state {
        JobState::Completed => Some("done_items"),
        JobState::Discarded => Some("failed_items"),
        JobState::Cancelled => Some("cancelled_items"),
        _ => None,
    }
}

/// What retrying a job of a batch or a workflow by hand does, decided before anything is
/// written: refused (a step, a completed or split chunk), nothing (not a batch's failed
/// job), or its items leave a counter of its batch: `(batch, counter, items)`.
pub(crate) fn retry_by_hand(
    job: i64,
    batch_id: Option<i64>,
    workflow_id: Option<i64>,
    state: JobState,
    args: &Value,
    result: Option<&Value>,
) -> crate::Result<Option<(i64, &'static str, i64)>> {
    if let Some(w) = workflow_id {
        return Err(step_retry_refused(job, w));
    }
    let Some(b) = batch_id else { return Ok(None) };
    match state {
        JobState::Completed => Err(done_retry_refused(job, b)),
        JobState::Split => Err(split_retry_refused(job, b, result.unwrap_or(&Value::Null))),
        JobState::Discarded | JobState::Cancelled => match result {
            Some(r) => Err(split_retry_refused(job, b, r)),
            None => Ok(counter(state).map(|c| (b, c, batch_items(args).len() as i64))),
        },
        _ => Ok(None),
    }
}

/// The state a batch ends in once nothing is pending, and its event.
pub(crate) fn batch_end(b: &Batch, now: Timestamp) -> Option<(FlowState, NewEvent)> {
    if b.state != FlowState::Running || b.pending_items() > 0 {
        return None;
    }
    let state = if b.failed_items > 0 {
        FlowState::Failed
    } else if b.cancelled_items > 0 {
        FlowState::Cancelled
    } else {
        FlowState::Completed
    };
    let message = format!(
        "batch {} ({} on queue {}) {}: {} of {} items done, {} failed, {} cancelled",
        b.id,
        b.kind,
        b.queue,
        state,
        b.done_items,
        b.total_items,
        b.failed_items,
        b.cancelled_items
    );
    Some((state, flow_event("batch", &b.kind, state, message, now)))
}

/// An event about a batch or a workflow.
pub(crate) fn flow_event(
    source: &str,
    subject: &str,
    state: FlowState,
    message: String,
    now: Timestamp,
) -> NewEvent {
    NewEvent {
        at: now,
        node: "-".into(),
        source: source.into(),
        subject: subject.into(),
        instance: None,
        kind: state.as_str().into(),
        message,
    }
}

/// A job that reached (or left) a final state and belongs to a batch or a workflow: what
/// the backends hand to their flow hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touched {
    pub id: i64,
    pub state: JobState,
    pub batch_id: Option<i64>,
    pub workflow_id: Option<i64>,
    /// It failed its last attempt (rather than being discarded or cancelled by hand).
    pub by_attempts: bool,
}

impl Touched {
    /// The hook's view of a job a write just moved, if it reached a final state and
    /// belongs to a batch or a workflow.
    pub(crate) fn of_final(
        id: i64,
        state: JobState,
        batch_id: Option<i64>,
        workflow_id: Option<i64>,
        by_attempts: bool,
    ) -> Option<Touched> {
        (state.is_final() && (batch_id.is_some() || workflow_id.is_some())).then_some(Touched {
            id,
            state,
            batch_id,
            workflow_id,
            by_attempts,
        })
    }
}

/// The conflict for retrying a workflow's step on its own.
pub(crate) fn step_retry_refused(job: i64, workflow: i64) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "job {job} is a step of workflow {workflow}; retry the workflow instead (berth workflow retry {workflow})"
    ))
}

/// The conflict for retrying a chunk that was split.
pub(crate) fn split_retry_refused(job: i64, batch: i64, result: &Value) -> crate::StoreError {
    let into = result
        .get("split_into")
        .map(|v| v.to_string())
        .unwrap_or_default();
    crate::StoreError::Conflict(format!(
        "job {job} was split into jobs {into} after its last attempt; retry the batch's failed items instead (berth batch retry-failed {batch})"
    ))
}

/// The conflict for retrying a completed chunk of a batch (its items are counted done).
pub(crate) fn done_retry_refused(job: i64, batch: i64) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "job {job} completed as part of batch {batch}, whose items it counts as done; push a new job (or batch) to run them again"
    ))
}

/// The conflict for retrying a workflow whose failed step's job is gone.
pub(crate) fn pruned_retry_refused(workflow: i64, step: &str) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "cannot retry workflow {workflow}: the job of its step `{step}` was pruned; start the workflow again instead"
    ))
}

/// The conflict for deleting a job of an unfinished batch or workflow.
pub(crate) fn flow_delete_refused(job: i64, what: &str, id: i64) -> crate::StoreError {
    crate::StoreError::Conflict(format!(
        "job {job} belongs to {what} {id}, which is still running; cancel the {what} (or the job) instead"
    ))
}

/// The error for an unknown batch, workflow or schedule.
pub(crate) fn not_found(what: &str, id: impl fmt::Display) -> crate::StoreError {
    crate::StoreError::NotFound(format!("no {what} {id}"))
}

/// The conflict for acting on a flow in the wrong state.
pub(crate) fn flow_state_refused(
    what: &str,
    id: i64,
    state: FlowState,
    action: &str,
) -> crate::StoreError {
    crate::StoreError::Conflict(format!("cannot {action} {what} {id}: it is {state}"))
}

/// A step as the workflow planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepView {
    pub name: String,
    pub job_id: i64,
    pub parents: Vec<String>,
    pub optional: bool,
    /// `None`: the job is gone (pruned); counted as completed with no result.
    pub state: Option<JobState>,
    pub result: Option<Value>,
}

/// What to do to a running workflow now.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct WorkflowPlan {
    /// Pending steps to make available, with their parents' results.
    pub release: Vec<(i64, Value)>,
    /// The workflow's end, if it has ended.
    pub end: Option<WorkflowEnd>,
}

/// How a workflow ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkflowEnd {
    /// Every step finished; the results by step name.
    Completed(Value),
    /// A required step failed.
    Failed(String),
}

fn step_ok(s: &StepView) -> bool {
    match s.state {
        None | Some(JobState::Completed) => true,
        Some(JobState::Discarded | JobState::Cancelled) => s.optional,
        _ => false,
    }
}

/// Plans the next move of a running workflow from its steps' states.
pub(crate) fn plan_workflow(steps: &[StepView], input: &Value) -> WorkflowPlan {
    let mut plan = WorkflowPlan::default();
    if let Some(bad) = steps
        .iter()
        .find(|s| matches!(s.state, Some(JobState::Discarded | JobState::Cancelled)) && !s.optional)
    {
        let how = if bad.state == Some(JobState::Cancelled) {
            "was cancelled"
        } else {
            "failed its last attempt"
        };
        plan.end = Some(WorkflowEnd::Failed(format!(
            "step `{}` (job {}) {how}",
            bad.name, bad.job_id
        )));
        return plan;
    }
    let by_name: BTreeMap<&str, &StepView> = steps.iter().map(|s| (s.name.as_str(), s)).collect();
    for s in steps.iter().filter(|s| s.state == Some(JobState::Pending)) {
        let parents: Option<Vec<&StepView>> = s
            .parents
            .iter()
            .map(|p| by_name.get(p.as_str()).copied())
            .collect();
        let Some(parents) = parents else { continue };
        if parents.iter().all(|p| step_ok(p)) {
            let results: Map<String, Value> = parents
                .iter()
                .map(|p| {
                    let r = match p.state {
                        Some(JobState::Completed) => p.result.clone().unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    (p.name.clone(), r)
                })
                .collect();
            plan.release
                .push((s.job_id, step_args(input, Value::Object(results))));
        }
    }
    if plan.release.is_empty() && steps.iter().all(step_ok) {
        let results: Map<String, Value> = steps
            .iter()
            .map(|s| (s.name.clone(), s.result.clone().unwrap_or(Value::Null)))
            .collect();
        plan.end = Some(WorkflowEnd::Completed(Value::Object(results)));
    }
    plan
}

/// A step's args: the workflow's input and its parents' results.
pub(crate) fn step_args(input: &Value, parents: Value) -> Value {
    json!({ "input": input, "parents": parents })
}

/// Checks a workflow before anything is written: names unique, parents known, no cycle.
pub(crate) fn may_start_workflow(w: &NewWorkflow) -> crate::Result<()> {
    let invalid = |m: String| Err(crate::StoreError::Invalid(m));
    if w.steps.is_empty() {
        return invalid(format!("workflow `{}` has no steps", w.name));
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &w.steps {
        if !names.insert(s.name.as_str()) {
            return invalid(format!("step `{}` appears twice", s.name));
        }
    }
    for s in &w.steps {
        if let Some(p) = s.parents.iter().find(|p| !names.contains(p.as_str())) {
            return invalid(format!("step `{}` names an unknown parent `{p}`", s.name));
        }
    }
    // Kahn's algorithm: whatever cannot be ordered sits on a cycle.
    let mut left: Vec<&NewStep> = w.steps.iter().collect();
    let mut done = std::collections::BTreeSet::new();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|s| {
            if s.parents.iter().all(|p| done.contains(p.as_str())) {
                done.insert(s.name.as_str());
                false
            } else {
                true
            }
        });
        if left.len() == before {
            let names: Vec<&str> = left.iter().map(|s| s.name.as_str()).collect();
            return invalid(format!("the steps {} form a cycle", names.join(", ")));
        }
    }
    Ok(())
}

/// The event for a workflow's end.
pub(crate) fn workflow_event(
    id: i64,
    name: &str,
    state: FlowState,
    error: Option<&str>,
    now: Timestamp,
) -> NewEvent {
    workflow_event_with(id, name, state, error, None, now)
}

/// A workflow's event, with what its failed step said: the last attempt's error and the
/// end of its output (`step_errors`: the step job's `errors`).
pub(crate) fn workflow_event_with(
    id: i64,
    name: &str,
    state: FlowState,
    error: Option<&str>,
    step_errors: Option<&Value>,
    now: Timestamp,
) -> NewEvent {
    let mut message = match error {
        Some(e) => format!("workflow {name} ({id}) {state}: {e}"),
        None => format!("workflow {name} ({id}) {state}"),
    };
    if let Some(last) = step_errors.and_then(Value::as_array).and_then(|a| a.last()) {
        if let Some(e) = last["error"].as_str() {
            message.push_str(&format!(
                "\nthe step's last error: {}",
                crate::notices::shorten(e, 500)
            ));
        }
        if let Some(out) = last["output"].as_str().filter(|o| !o.trim().is_empty()) {
            message.push_str("\noutput, the end:\n");
            message.push_str(&crate::notices::tail(out, 10, 1000));
        }
    }
    flow_event("workflow", name, state, message, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, parents: &[&str], state: JobState) -> StepView {
        StepView {
            name: name.into(),
            job_id: name.len() as i64,
            parents: parents.iter().map(|p| p.to_string()).collect(),
            optional: false,
            state: Some(state),
            result: (state == JobState::Completed).then(|| json!(name)),
        }
    }

    #[test]
    fn a_diamond_releases_the_join_once_both_sides_completed() {
        use JobState::*;
        let input = json!({"x": 1});
        let steps = vec![
            step("a", &[], Completed),
            step("bb", &["a"], Completed),
            step("ccc", &["a"], Running),
            step("dddd", &["bb", "ccc"], Pending),
        ];
        assert_eq!(plan_workflow(&steps, &input), WorkflowPlan::default());
        let mut steps = steps;
        steps[2] = step("ccc", &["a"], Completed);
        let plan = plan_workflow(&steps, &input);
        assert_eq!(
            plan.release,
            vec![(
                4,
                json!({"input": {"x": 1}, "parents": {"bb": "bb", "ccc": "ccc"}})
            )]
        );
        assert_eq!(plan.end, None);
    }

    #[test]
    fn a_required_failure_fails_and_an_optional_one_lets_children_run() {
        use JobState::*;
        let mut steps = vec![step("a", &[], Discarded), step("b", &["a"], Pending)];
        assert!(matches!(
            plan_workflow(&steps, &Value::Null).end,
            Some(WorkflowEnd::Failed(m)) if m.contains("step `a`")
        ));
        steps[0].optional = true;
        let plan = plan_workflow(&steps, &Value::Null);
        assert_eq!(
            plan.release,
            vec![(1, json!({"input": null, "parents": {"a": null}}))]
        );
    }

    #[test]
    fn cycles_and_unknown_parents_are_refused() {
        let s = |n: &str, p: &[&str]| NewStep {
            name: n.into(),
            queue: "q".into(),
            kind: n.into(),
            parents: p.iter().map(|x| x.to_string()).collect(),
            optional: false,
            max_attempts: 1,
            priority: 0,
        };
        let mut w = NewWorkflow {
            name: "w".into(),
            input: Value::Null,
            steps: vec![s("a", &["c"]), s("b", &["a"]), s("c", &["b"]), s("d", &[])],
            deadline: None,
            started_by: "test".into(),
            unique_key: None,
        };
        let e = may_start_workflow(&w).unwrap_err().to_string();
        assert!(e.contains("a, b, c form a cycle"), "{e}");
        w.steps = vec![s("a", &["zz"])];
        let e = may_start_workflow(&w).unwrap_err().to_string();
        assert!(e.contains("unknown parent `zz`"), "{e}");
    }

    #[test]
    fn a_chunk_splits_into_halves_down_to_single_items() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let [a, b] = split_halves("q", "k", &items, 3, 0, 7);
        assert_eq!(a.args, json!({"items": [0, 1, 2]}));
        assert_eq!(b.args, json!({"items": [3, 4]}));
        assert_eq!(
            batch_move(JobState::Discarded, 5, true),
            Some(BatchMove::Split)
        );
        assert_eq!(
            batch_move(JobState::Discarded, 1, true),
            Some(BatchMove::Failed(1))
        );
        assert_eq!(
            batch_move(JobState::Discarded, 5, false),
            Some(BatchMove::Failed(5))
        );
    }
}
