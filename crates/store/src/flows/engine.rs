//! Schedules, batches and workflows moved once for both stores.
//!
//! Each backend implements [`FlowDb`]: a small set of named reads and writes, each one
//! statement in its own SQL (PostgreSQL takes its row locks there). Everything that
//! decides — which checks come first, what a job's final state does to its batch or
//! workflow, when a batch or a workflow ends, which steps a retry reopens — is written
//! here, once, so the two dialects cannot drift apart.
//!
//! The functions run inside the caller's transaction. Those that may make jobs available
//! push their queues onto `woken`; the store announces them after the commit.
//!
//! SQLite's primitives never wait: its writer thread runs these functions with
//! [`run_ready`], which polls them once.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use serde_json::{Value, json};

use super::{
    Batch, BatchFailure, BatchFilter, BatchMove, Fired, FlowState, FlowsDump, NewBatch, NewStep,
    NewWorkflow, ScheduleFire, ScheduleState, Start, StepView, Touched, Workflow, WorkflowEnd,
    WorkflowFilter, WorkflowStep, batch_end, batch_items, batch_jobs, batch_move, counter,
    flow_delete_refused, flow_state_refused, may_create_batch, may_fire, may_start_workflow,
    not_found, plan_workflow, pruned_retry_refused, retry_by_hand, split_halves, step_args,
    workflow_event, workflow_event_with,
};
use crate::error::{Result, StoreError};
use crate::model::{Inserted, JobState, NewEvent, NewJob, StateChange, Timestamp};
use crate::rules::{may_delete, may_finalize, may_insert, may_prune, may_purge, may_retry};

/// What the engine reads of one job.
pub(crate) struct JobRefs {
    pub batch_id: Option<i64>,
    pub workflow_id: Option<i64>,
    pub state: JobState,
    pub queue: String,
    pub kind: String,
    pub priority: i32,
    pub args: Value,
    pub result: Option<Value>,
}

/// A job moved by a batch or a workflow.
pub(crate) enum JobMove<'a> {
    /// A chunk that failed its last attempt ends `split`; its result names the halves.
    Split(&'a Value),
    /// A new workflow step waits in `pending` for its parents.
    Hold,
    /// A pending step becomes available with its parents' results (if still pending).
    Release(&'a Value),
    /// A final job runs again now, with one more attempt if it had used them all (a
    /// conflict while another job with its unique key waits or runs).
    Rerun,
    /// A cancelled step of a retried workflow waits again for its parents.
    Reset,
}

/// Whose unfinished jobs an end cancels.
#[derive(Clone, Copy)]
pub(crate) enum Owner {
    Batch(i64),
    Workflow(i64),
}

/// A workflow's row written.
pub(crate) enum WorkflowSet<'a> {
    /// Completed with its result.
    Completed(&'a Value),
    /// Ended failed or cancelled, with its error.
    Ended(FlowState, Option<&'a str>),
    /// Running again, with a new deadline.
    Reopened(Option<Timestamp>),
}

/// A job's writes a store offers the engine, each one statement (in the backend's
/// `jobs.rs`).
pub(crate) trait JobDb {
    async fn insert_jobs(&self, jobs: &[NewJob], now: Timestamp) -> Result<Vec<Inserted>>;
    /// A job's state, its row locked for the rest of the transaction.
    async fn lock_job(&self, id: i64) -> Result<Option<JobState>>;
    /// Moves a job that is not final to final state `to`.
    async fn finalize_job(&self, id: i64, to: JobState, now: Timestamp) -> Result<()>;
    async fn delete_job(&self, id: i64) -> Result<()>;
    /// Deletes up to `limit` jobs of `queue` in final `state` finalized before `older_than`.
    async fn prune_jobs(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64>;
    /// Deletes the jobs of `queue` in `states` that belong to no batch or workflow.
    async fn purge_jobs(&self, queue: &str, states: &[JobState]) -> Result<u64>;
}

/// The reads and writes of batches, workflows and schedules a store offers the engine,
/// each one statement. `lock` asks for the row lock for the rest of the transaction
/// where the store has row locks.
pub(crate) trait FlowDb: JobDb {
    async fn record(&self, events: &[NewEvent]) -> Result<()>;
    async fn job_refs(&self, id: i64) -> Result<Option<JobRefs>>;
    /// The moved job's queue; `None` when no row moved.
    async fn move_job(&self, id: i64, m: JobMove<'_>, now: Timestamp) -> Result<Option<String>>;
    /// Locks the owner's unfinished jobs, in id order (before the owner's row: the order
    /// a finishing transaction takes them in).
    async fn lock_unfinished(&self, owner: Owner) -> Result<()>;
    /// Cancels the owner's unfinished jobs; their ids and args.
    async fn cancel_unfinished(&self, owner: Owner, now: Timestamp) -> Result<Vec<(i64, Value)>>;

    async fn schedules(&self) -> Result<Vec<ScheduleState>>;
    async fn schedule(&self, name: &str) -> Result<Option<ScheduleState>>;
    /// Creates the schedule, or moves its next time when its signature changed.
    async fn upsert_schedule(&self, name: &str, signature: &str, next_at: Timestamp) -> Result<()>;
    /// The compare-and-set on the planned time: whether this caller moved it.
    async fn advance_schedule(&self, f: &ScheduleFire, expect: Timestamp) -> Result<bool>;
    async fn schedule_ran(&self, f: &ScheduleFire, now: Timestamp, fired: &Fired) -> Result<()>;
    async fn pause_schedule(&self, name: &str, paused: bool) -> Result<()>;

    async fn batch(&self, id: i64, lock: bool) -> Result<Option<Batch>>;
    async fn batches(&self, f: &BatchFilter) -> Result<Vec<Batch>>;
    async fn insert_batch(&self, b: &NewBatch, now: Timestamp) -> Result<i64>;
    /// Adds `delta` (negative: takes away) to one of a batch's counters.
    async fn count_items(&self, batch: i64, column: &str, delta: i64) -> Result<()>;
    /// Ends a running batch in `state`, or reopens it (`Running`).
    async fn set_batch_state(&self, id: i64, state: FlowState, now: Timestamp) -> Result<()>;
    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>>;

    /// The new workflow's id, or `Err(id)` of the running one with its unique key.
    async fn insert_workflow(
        &self,
        w: &NewWorkflow,
        now: Timestamp,
    ) -> Result<std::result::Result<i64, i64>>;
    async fn insert_step(&self, workflow: i64, step: &NewStep, job: i64) -> Result<()>;
    /// A workflow's row, without its steps.
    async fn workflow_row(&self, id: i64, lock: bool) -> Result<Option<Workflow>>;
    async fn workflows(&self, f: &WorkflowFilter) -> Result<Vec<Workflow>>;
    async fn steps(&self, id: i64) -> Result<Vec<WorkflowStep>>;
    async fn set_workflow(&self, id: i64, set: WorkflowSet<'_>, now: Timestamp) -> Result<()>;
    /// The errors of the step that failed last.
    async fn last_step_errors(&self, workflow: i64) -> Result<Option<Value>>;
    /// Running workflows past their deadline (up to 1,000).
    async fn overdue_workflows(&self, now: Timestamp) -> Result<Vec<i64>>;
    async fn prune_flows(&self, before: Timestamp) -> Result<u64>;

    /// Every batch and workflow row (without steps), for an export.
    async fn all_flows(&self) -> Result<(Vec<Batch>, Vec<Workflow>)>;
    /// Inserts a dump's rows as they are (ids kept); a row that exists is a conflict.
    async fn import_rows(&self, d: &FlowsDump) -> Result<()>;
}

/// Runs a future whose every await is ready at once (SQLite's primitives) to its end.
pub(crate) fn run_ready<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("a flow primitive waited, but SQLite's never wait"),
    }
}

// ---------------------------------------------------------------------------------------
// Schedules

pub(crate) async fn schedule_prepare(
    db: &impl FlowDb,
    name: &str,
    signature: &str,
    next_at: Timestamp,
) -> Result<ScheduleState> {
    db.upsert_schedule(name, signature, next_at).await?;
    schedule_or_404(db, name).await
}

async fn schedule_or_404(db: &impl FlowDb, name: &str) -> Result<ScheduleState> {
    db.schedule(name)
        .await?
        .ok_or_else(|| not_found("schedule", name))
}

/// Enqueues the job or starts the workflow, inside the caller's transaction.
pub(crate) async fn start(
    db: &impl FlowDb,
    start: &Start,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Fired> {
    Ok(match start {
        Start::Job(job) => {
            let ins = db.insert_jobs(std::slice::from_ref(job), now).await?;
            if ins[0].state == JobState::Available {
                woken.push(job.queue.clone());
            }
            Fired {
                job_id: Some(ins[0].id),
                workflow_id: None,
            }
        }
        Start::Workflow(w) => Fired {
            job_id: None,
            workflow_id: Some(workflow_start(db, w, now, woken).await?),
        },
    })
}

/// Fires a planned time once, whoever tries (`None`: another caller fired it).
pub(crate) async fn schedule_fire(
    db: &impl FlowDb,
    f: &ScheduleFire,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Option<Fired>> {
    may_fire(f)?;
    match f.expect_next {
        Some(expect) => {
            if !db.advance_schedule(f, expect).await? {
                return Ok(None);
            }
        }
        None => {
            schedule_or_404(db, &f.name).await?;
        }
    }
    let Some(s) = &f.start else {
        return Ok(Some(Fired {
            job_id: None,
            workflow_id: None,
        }));
    };
    let fired = start(db, s, now, woken).await?;
    db.schedule_ran(f, now, &fired).await?;
    Ok(Some(fired))
}

pub(crate) async fn schedule_set_paused(
    db: &impl FlowDb,
    name: &str,
    paused: bool,
) -> Result<ScheduleState> {
    db.pause_schedule(name, paused).await?;
    schedule_or_404(db, name).await
}

// ---------------------------------------------------------------------------------------
// Batches

async fn batch_or_404(db: &impl FlowDb, id: i64) -> Result<Batch> {
    db.batch(id, false)
        .await?
        .ok_or_else(|| not_found("batch", id))
}

pub(crate) async fn batch_create(
    db: &impl FlowDb,
    b: &NewBatch,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Batch> {
    may_create_batch(b)?;
    let id = db.insert_batch(b, now).await?;
    db.insert_jobs(&batch_jobs(b, id), now).await?;
    woken.push(b.queue.clone());
    batch_or_404(db, id).await
}

/// Ends a batch whose items have all finished, with its event.
async fn end_batch_if_done(db: &impl FlowDb, id: i64, now: Timestamp) -> Result<()> {
    let b = batch_or_404(db, id).await?;
    if let Some((state, event)) = batch_end(&b, now) {
        db.set_batch_state(id, state, now).await?;
        db.record(&[event]).await?;
    }
    Ok(())
}

/// A job of batch `batch` reached a final state: split it, or count its items.
async fn batch_job_final(
    db: &impl FlowDb,
    t: &Touched,
    batch: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Some(b) = db.batch(batch, true).await? else {
        return Ok(());
    };
    let Some(job) = db.job_refs(t.id).await? else {
        return Ok(());
    };
    let items = batch_items(&job.args);
    let Some(m) = batch_move(t.state, items.len() as u64, t.by_attempts) else {
        return Ok(());
    };
    if m == BatchMove::Split {
        let halves = split_halves(
            &job.queue,
            &job.kind,
            &items,
            b.max_attempts,
            job.priority,
            batch,
        );
        let ins = db.insert_jobs(&halves, now).await?;
        let ids: Vec<i64> = ins.iter().map(|i| i.id).collect();
        let result = json!({ "split_into": ids });
        db.move_job(t.id, JobMove::Split(&result), now).await?;
        woken.push(job.queue);
        return Ok(());
    }
    if let Some((column, n)) = m.count() {
        db.count_items(batch, column, n).await?;
    }
    end_batch_if_done(db, batch, now).await
}

pub(crate) async fn batch_cancel(
    db: &impl FlowDb,
    id: i64,
    now: Timestamp,
) -> Result<(Batch, Vec<i64>)> {
    db.lock_unfinished(Owner::Batch(id)).await?;
    let b = db
        .batch(id, true)
        .await?
        .ok_or_else(|| not_found("batch", id))?;
    if b.state != FlowState::Running {
        return Err(flow_state_refused("batch", id, b.state, "cancel"));
    }
    let cancelled = db.cancel_unfinished(Owner::Batch(id), now).await?;
    let items: usize = cancelled.iter().map(|(_, a)| batch_items(a).len()).sum();
    if let Some((column, n)) = BatchMove::Cancelled(items as u64).count() {
        db.count_items(id, column, n).await?;
    }
    end_batch_if_done(db, id, now).await?;
    let ids = cancelled.into_iter().map(|(j, _)| j).collect();
    Ok((batch_or_404(db, id).await?, ids))
}

pub(crate) async fn batch_retry_failed(
    db: &impl FlowDb,
    id: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<(Batch, u64)> {
    let b = db
        .batch(id, true)
        .await?
        .ok_or_else(|| not_found("batch", id))?;
    let failed = db.batch_failures(id, u32::MAX).await?;
    for f in &failed {
        db.move_job(f.job_id, JobMove::Rerun, now).await?;
        if let Some(column) = counter(f.state) {
            db.count_items(id, column, -(f.items.len() as i64)).await?;
        }
    }
    if !failed.is_empty() {
        db.set_batch_state(id, FlowState::Running, now).await?;
        woken.push(b.queue.clone());
    }
    Ok((batch_or_404(db, id).await?, failed.len() as u64))
}

// ---------------------------------------------------------------------------------------
// Jobs: the checks every write of a job passes, and what it does to its batch or workflow

/// Inserts well-formed jobs; an error names the job's place in the list.
pub(crate) async fn insert(
    db: &impl FlowDb,
    new: &[NewJob],
    now: Timestamp,
) -> Result<Vec<Inserted>> {
    may_insert(new)?;
    db.insert_jobs(new, now).await
}

async fn locked_state(db: &impl FlowDb, id: i64) -> Result<JobState> {
    db.lock_job(id).await?.ok_or(StoreError::JobNotFound(id))
}

/// Cancels or discards a job that has not finished, and moves its batch or workflow.
pub(crate) async fn finalize(
    db: &impl FlowDb,
    id: i64,
    to: JobState,
    action: &'static str,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<StateChange> {
    let from = locked_state(db, id).await?;
    may_finalize(id, from, action)?;
    db.finalize_job(id, to, now).await?;
    after_action(db, id, to, now, woken).await?;
    Ok(StateChange {
        id,
        from,
        to: Some(to),
    })
}

/// Runs a job that is not waiting or running again now.
pub(crate) async fn retry(
    db: &impl FlowDb,
    id: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<StateChange> {
    let from = locked_state(db, id).await?;
    may_retry(id, from)?;
    before_retry(db, id, now).await?;
    woken.extend(db.move_job(id, JobMove::Rerun, now).await?);
    Ok(StateChange {
        id,
        from,
        to: Some(JobState::Available),
    })
}

/// Deletes a job that is not running and not part of a running batch or workflow.
pub(crate) async fn delete(db: &impl FlowDb, id: i64) -> Result<StateChange> {
    let from = locked_state(db, id).await?;
    may_delete(id, from)?;
    before_delete(db, id).await?;
    db.delete_job(id).await?;
    Ok(StateChange { id, from, to: None })
}

/// Forgets final jobs of one state, oldest first.
pub(crate) async fn prune(
    db: &impl FlowDb,
    queue: &str,
    state: JobState,
    older_than: Timestamp,
    limit: u32,
) -> Result<u64> {
    may_prune(state)?;
    db.prune_jobs(queue, state, older_than, limit).await
}

/// Deletes a queue's jobs in `states` (never running ones).
pub(crate) async fn purge(db: &impl FlowDb, queue: &str, states: &[JobState]) -> Result<u64> {
    may_purge(states)?;
    db.purge_jobs(queue, states).await
}

/// The conflict for running a job again while another with its unique key waits or runs.
pub(crate) fn unique_rerun_refused(id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "cannot retry job {id}: another job with the same unique key is waiting or running"
    ))
}

/// After jobs reached final states: move their batches and workflows.
pub(crate) async fn after_final(
    db: &impl FlowDb,
    touched: &[Touched],
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let mut workflows = BTreeSet::new();
    // Batch rows are locked in one order by every transaction.
    let mut touched = touched.to_vec();
    touched.sort_by_key(|t| (t.batch_id, t.id));
    for t in touched.iter().filter(|t| t.state.is_final()) {
        if let Some(b) = t.batch_id {
            batch_job_final(db, t, b, now, woken).await?;
        }
        if let Some(w) = t.workflow_id {
            workflows.insert(w);
        }
    }
    for w in workflows {
        advance(db, w, now, woken).await?;
    }
    Ok(())
}

/// After an admin action moved job `id` to `state`: move its batch and workflow.
async fn after_action(
    db: &impl FlowDb,
    id: i64,
    state: JobState,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Some(job) = db.job_refs(id).await? else {
        return Ok(());
    };
    let touched = Touched {
        id,
        state,
        batch_id: job.batch_id,
        workflow_id: job.workflow_id,
        by_attempts: false,
    };
    after_final(db, &[touched], now, woken).await
}

/// Before a job is retried by hand (see `flows::retry_by_hand`): a failed chunk's items
/// leave their counter and its batch runs again.
async fn before_retry(db: &impl FlowDb, id: i64, now: Timestamp) -> Result<()> {
    let Some(job) = db.job_refs(id).await? else {
        return Ok(());
    };
    let reopens = retry_by_hand(
        id,
        job.batch_id,
        job.workflow_id,
        job.state,
        &job.args,
        job.result.as_ref(),
    )?;
    if let Some((b, column, n)) = reopens
        && db.batch(b, true).await?.is_some()
    {
        db.count_items(b, column, -n).await?;
        db.set_batch_state(b, FlowState::Running, now).await?;
    }
    Ok(())
}

/// Before a job is deleted: not one of a running batch or workflow.
async fn before_delete(db: &impl FlowDb, id: i64) -> Result<()> {
    let Some(job) = db.job_refs(id).await? else {
        return Ok(());
    };
    if let Some(b) = job.batch_id
        && db
            .batch(b, false)
            .await?
            .is_some_and(|b| b.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "batch", b));
    }
    if let Some(w) = job.workflow_id
        && db
            .workflow_row(w, false)
            .await?
            .is_some_and(|w| w.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "workflow", w));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Workflows

pub(crate) async fn workflow(db: &impl FlowDb, id: i64) -> Result<Option<Workflow>> {
    let Some(mut w) = db.workflow_row(id, false).await? else {
        return Ok(None);
    };
    w.steps = db.steps(id).await?;
    Ok(Some(w))
}

async fn workflow_or_404(db: &impl FlowDb, id: i64) -> Result<Workflow> {
    workflow(db, id)
        .await?
        .ok_or_else(|| not_found("workflow", id))
}

/// Starts a workflow: its root steps available, the others pending. A running workflow
/// with the same unique key is the answer instead.
pub(crate) async fn workflow_start(
    db: &impl FlowDb,
    w: &NewWorkflow,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<i64> {
    may_start_workflow(w)?;
    let id = match db.insert_workflow(w, now).await? {
        Ok(id) => id,
        Err(running) => return Ok(running),
    };
    for step in &w.steps {
        let root = step.parents.is_empty();
        let args = if root {
            step_args(&w.input, Value::Object(Default::default()))
        } else {
            json!({ "input": w.input })
        };
        let mut job = NewJob::new(step.queue.clone(), step.kind.clone(), args);
        job.max_attempts = step.max_attempts;
        job.priority = step.priority;
        job.workflow_id = Some(id);
        let job_id = db.insert_jobs(&[job], now).await?[0].id;
        if root {
            woken.push(step.queue.clone());
        } else {
            db.move_job(job_id, JobMove::Hold, now).await?;
        }
        db.insert_step(id, step, job_id).await?;
    }
    Ok(id)
}

/// Releases the steps whose parents have finished and ends the workflow when it has.
async fn advance(db: &impl FlowDb, id: i64, now: Timestamp, woken: &mut Vec<String>) -> Result<()> {
    let Some(w) = db.workflow_row(id, true).await? else {
        return Ok(());
    };
    if w.state != FlowState::Running {
        return Ok(());
    }
    let views: Vec<StepView> = db
        .steps(id)
        .await?
        .into_iter()
        .map(|s| StepView {
            name: s.name,
            job_id: s.job_id,
            parents: s.parents,
            optional: s.optional,
            state: s.state,
            result: s.result,
        })
        .collect();
    let plan = plan_workflow(&views, &w.input);
    for (job, args) in &plan.release {
        woken.extend(db.move_job(*job, JobMove::Release(args), now).await?);
    }
    match plan.end {
        Some(WorkflowEnd::Completed(result)) => {
            db.set_workflow(id, WorkflowSet::Completed(&result), now)
                .await?;
            let event = workflow_event(id, &w.name, FlowState::Completed, None, now);
            db.record(&[event]).await?;
        }
        Some(WorkflowEnd::Failed(error)) => {
            end_workflow(db, &w, FlowState::Failed, Some(&error), now).await?
        }
        None => {}
    }
    Ok(())
}

/// Ends a running workflow as failed or cancelled: its unfinished steps are cancelled (a
/// running attempt's late outcome is then refused, and its executor stops it).
async fn end_workflow(
    db: &impl FlowDb,
    w: &Workflow,
    state: FlowState,
    error: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    db.cancel_unfinished(Owner::Workflow(w.id), now).await?;
    db.set_workflow(w.id, WorkflowSet::Ended(state, error), now)
        .await?;
    // What the failed step said, for the event (and the mail it becomes).
    let step_errors = match state {
        FlowState::Failed => db.last_step_errors(w.id).await?,
        _ => None,
    };
    let event = workflow_event_with(w.id, &w.name, state, error, step_errors.as_ref(), now);
    db.record(&[event]).await
}

/// A running workflow, locked, or why not.
async fn running_workflow(db: &impl FlowDb, id: i64, action: &str) -> Result<Workflow> {
    let w = db
        .workflow_row(id, true)
        .await?
        .ok_or_else(|| not_found("workflow", id))?;
    match w.state {
        FlowState::Running => Ok(w),
        state => Err(flow_state_refused("workflow", id, state, action)),
    }
}

pub(crate) async fn workflow_cancel(db: &impl FlowDb, id: i64, now: Timestamp) -> Result<Workflow> {
    let w = running_workflow(db, id, "cancel").await?;
    let by_hand = Some("cancelled by hand");
    end_workflow(db, &w, FlowState::Cancelled, by_hand, now).await?;
    workflow_or_404(db, id).await
}

pub(crate) async fn workflow_retry(
    db: &impl FlowDb,
    id: i64,
    deadline: Option<Timestamp>,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Workflow> {
    let w = db
        .workflow_row(id, true)
        .await?
        .ok_or_else(|| not_found("workflow", id))?;
    if !matches!(w.state, FlowState::Failed | FlowState::Cancelled) {
        return Err(flow_state_refused("workflow", id, w.state, "retry"));
    }
    let steps = db.steps(id).await?;
    if let Some(gone) = steps.iter().find(|s| s.state.is_none()) {
        return Err(pruned_retry_refused(id, &gone.name));
    }
    for s in &steps {
        match s.state {
            Some(JobState::Discarded) if !s.optional => {
                woken.extend(db.move_job(s.job_id, JobMove::Rerun, now).await?);
            }
            Some(JobState::Cancelled) => {
                db.move_job(s.job_id, JobMove::Reset, now).await?;
            }
            _ => {}
        }
    }
    db.set_workflow(id, WorkflowSet::Reopened(deadline), now)
        .await?;
    advance(db, id, now, woken).await?;
    workflow_or_404(db, id).await
}

/// Fails the running workflows past their deadline; their ids.
pub(crate) async fn workflow_expire(db: &impl FlowDb, now: Timestamp) -> Result<Vec<i64>> {
    let mut ended = Vec::new();
    for id in db.overdue_workflows(now).await? {
        let Some(w) = db.workflow_row(id, true).await? else {
            continue;
        };
        if w.state != FlowState::Running {
            continue;
        }
        let deadline = w.deadline.unwrap_or(now);
        let error = format!("timed out: not finished by its deadline {deadline}");
        end_workflow(db, &w, FlowState::Failed, Some(&error), now).await?;
        ended.push(id);
    }
    Ok(ended)
}

// ---------------------------------------------------------------------------------------
// Copying

pub(crate) async fn export(db: &impl FlowDb) -> Result<FlowsDump> {
    let schedules = db.schedules().await?;
    let (batches, mut workflows) = db.all_flows().await?;
    for w in &mut workflows {
        w.steps = db.steps(w.id).await?;
    }
    Ok(FlowsDump {
        schedules,
        batches,
        workflows,
    })
}
