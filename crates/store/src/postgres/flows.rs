//! The SQL for schedules, batches and workflows on PostgreSQL, and the hooks that move a
//! batch or a workflow when one of its jobs finishes, in the same transaction.
//!
//! Several nodes may finish steps of one workflow at once. Each hook therefore locks the
//! workflow's (or batch's) row first: under READ COMMITTED the second transaction then
//! reads the steps as the first one committed them, so a join step is never left
//! waiting because each side saw the other still running.

use std::collections::BTreeSet;

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::{events, jobs};
use crate::error::{Result, StoreError};
use crate::flows::{
    Batch, BatchFailure, BatchFilter, BatchMove, Fired, FlowState, FlowsDump, NewBatch,
    NewWorkflow, ScheduleFire, ScheduleState, Start, StepView, Touched, Workflow, WorkflowEnd,
    WorkflowFilter, WorkflowStep, batch_end, batch_items, batch_jobs, batch_move, counter,
    flow_delete_refused, flow_state_refused, not_found, plan_workflow, pruned_retry_refused,
    retry_by_hand, split_halves, step_args, workflow_event, workflow_event_with,
};
use crate::model::{JobState, NewJob, Timestamp};

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn flow_state(s: &str) -> Result<FlowState> {
    s.parse().map_err(StoreError::Invalid)
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Schedules

const SCHEDULE_COLUMNS: &str = "name, signature, next_at, last_planned_at, last_fired_at, \
    last_job_id, last_workflow_id, skipped, paused";

fn schedule_from_row(r: &Row) -> ScheduleState {
    ScheduleState {
        name: r.get(0),
        signature: r.get(1),
        next_at: Timestamp(r.get(2)),
        last_planned_at: ts(r.get(3)),
        last_fired_at: ts(r.get(4)),
        last_job_id: r.get(5),
        last_workflow_id: r.get(6),
        skipped: r.get::<_, i64>(7) as u64,
        paused: r.get(8),
    }
}

pub(crate) async fn schedules(c: &impl GenericClient) -> Result<Vec<ScheduleState>> {
    let rows = c
        .query(
            &format!("SELECT {SCHEDULE_COLUMNS} FROM berth_schedules ORDER BY name"),
            &[],
        )
        .await
        .map_err(db("listing schedules"))?;
    Ok(rows.iter().map(schedule_from_row).collect())
}

async fn schedule(c: &impl GenericClient, name: &str) -> Result<Option<ScheduleState>> {
    let row = c
        .query_opt(
            &format!("SELECT {SCHEDULE_COLUMNS} FROM berth_schedules WHERE name = $1"),
            &[&name],
        )
        .await
        .map_err(db("reading a schedule"))?;
    Ok(row.as_ref().map(schedule_from_row))
}

pub(crate) async fn schedule_prepare(
    c: &impl GenericClient,
    name: &str,
    signature: &str,
    next_at: Timestamp,
) -> Result<ScheduleState> {
    c.execute(
        "INSERT INTO berth_schedules (name, signature, next_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, \
         next_at = excluded.next_at WHERE berth_schedules.signature <> excluded.signature",
        &[&name, &signature, &next_at.0],
    )
    .await
    .map_err(db("preparing a schedule"))?;
    schedule(c, name)
        .await?
        .ok_or_else(|| not_found("schedule", name))
}

/// Enqueues the job or starts the workflow, inside the caller's transaction.
pub(crate) async fn start(
    c: &impl GenericClient,
    start: &Start,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Fired> {
    Ok(match start {
        Start::Job(job) => {
            let ins = jobs::insert(c, std::slice::from_ref(job), now).await?;
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
            workflow_id: Some(workflow_start(c, w, now, woken).await?),
        },
    })
}

pub(crate) async fn schedule_fire(
    c: &impl GenericClient,
    f: &ScheduleFire,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Option<Fired>> {
    match f.expect_next {
        Some(expect) => {
            // The compare-and-set that makes a planned time fire once, whoever tries.
            let n = c
                .execute(
                    "UPDATE berth_schedules SET next_at = $1, skipped = skipped + $2 \
                     WHERE name = $3 AND next_at = $4",
                    &[&f.next_at.0, &(f.skipped as i64), &f.name, &expect.0],
                )
                .await
                .map_err(db("advancing a schedule"))?;
            if n == 0 {
                return Ok(None);
            }
        }
        None => {
            if schedule(c, &f.name).await?.is_none() {
                return Err(not_found("schedule", &f.name));
            }
        }
    }
    let fired = match &f.start {
        None => {
            return Ok(Some(Fired {
                job_id: None,
                workflow_id: None,
            }));
        }
        Some(s) => start(c, s, now, woken).await?,
    };
    c.execute(
        "UPDATE berth_schedules SET last_planned_at = $1, last_fired_at = $2, last_job_id = $3, \
         last_workflow_id = $4 WHERE name = $5",
        &[
            &f.planned.0,
            &now.0,
            &fired.job_id,
            &fired.workflow_id,
            &f.name,
        ],
    )
    .await
    .map_err(db("recording a schedule's run"))?;
    Ok(Some(fired))
}

pub(crate) async fn schedule_set_paused(
    c: &impl GenericClient,
    name: &str,
    paused: bool,
) -> Result<ScheduleState> {
    c.execute(
        "UPDATE berth_schedules SET paused = $1 WHERE name = $2",
        &[&paused, &name],
    )
    .await
    .map_err(db("pausing a schedule"))?;
    schedule(c, name)
        .await?
        .ok_or_else(|| not_found("schedule", name))
}

// ---------------------------------------------------------------------------------------
// Batches

const BATCH_COLUMNS: &str = "id, queue, kind, state, total_items, job_size, max_attempts, \
    done_items, failed_items, cancelled_items, created_at, finalized_at";

fn batch_from_row(r: &Row) -> Result<Batch> {
    Ok(Batch {
        id: r.get(0),
        queue: r.get(1),
        kind: r.get(2),
        state: flow_state(r.get(3))?,
        total_items: r.get::<_, i64>(4) as u64,
        job_size: u32_of(r.get(5)),
        max_attempts: u32_of(r.get(6)),
        done_items: r.get::<_, i64>(7) as u64,
        failed_items: r.get::<_, i64>(8) as u64,
        cancelled_items: r.get::<_, i64>(9) as u64,
        created_at: Timestamp(r.get(10)),
        finalized_at: ts(r.get(11)),
    })
}

pub(crate) async fn batch(c: &impl GenericClient, id: i64) -> Result<Option<Batch>> {
    let row = c
        .query_opt(
            &format!("SELECT {BATCH_COLUMNS} FROM berth_batches WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db("reading a batch"))?;
    row.as_ref().map(batch_from_row).transpose()
}

/// Locks a batch's row for the rest of the transaction (see the module docs); `None` when
/// it is gone (pruned).
async fn lock_batch(c: &impl GenericClient, id: i64) -> Result<Option<Batch>> {
    let row = c
        .query_opt(
            &format!("SELECT {BATCH_COLUMNS} FROM berth_batches WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(db("locking a batch"))?;
    row.as_ref().map(batch_from_row).transpose()
}

async fn batch_or_404(c: &impl GenericClient, id: i64) -> Result<Batch> {
    batch(c, id).await?.ok_or_else(|| not_found("batch", id))
}

pub(crate) async fn batches(c: &impl GenericClient, f: &BatchFilter) -> Result<Vec<Batch>> {
    let rows = c
        .query(
            &format!(
                "SELECT {BATCH_COLUMNS} FROM berth_batches WHERE ($1::text IS NULL OR state = $1) \
                 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ),
            &[
                &f.state.map(|s| s.as_str()),
                &f.before_id,
                &i64::from(f.limit.clamp(1, 1000)),
            ],
        )
        .await
        .map_err(db("listing batches"))?;
    rows.iter().map(batch_from_row).collect()
}

pub(crate) async fn batch_create(
    c: &impl GenericClient,
    b: &NewBatch,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Batch> {
    let row = c
        .query_one(
            "INSERT INTO berth_batches (queue, kind, state, total_items, job_size, max_attempts, \
             priority, created_at) VALUES ($1, $2, 'running', $3, $4, $5, $6, $7) RETURNING id",
            &[
                &b.queue,
                &b.kind,
                &(b.items.len() as i64),
                &(b.job_size as i32),
                &(b.max_attempts as i32),
                &b.priority,
                &now.0,
            ],
        )
        .await
        .map_err(db("creating a batch"))?;
    let id: i64 = row.get(0);
    jobs::insert(c, &batch_jobs(b, id), now).await?;
    woken.push(b.queue.clone());
    batch_or_404(c, id).await
}

async fn move_items(c: &impl GenericClient, batch: i64, column: &str, delta: i64) -> Result<()> {
    c.execute(
        &format!("UPDATE berth_batches SET {column} = greatest(0, {column} + $1) WHERE id = $2"),
        &[&delta, &batch],
    )
    .await
    .map_err(db("counting a batch's items"))?;
    Ok(())
}

async fn add_items(c: &impl GenericClient, batch: i64, m: BatchMove) -> Result<()> {
    match m.count() {
        Some((column, n)) => move_items(c, batch, column, n).await,
        None => Ok(()),
    }
}

async fn end_batch_if_done(c: &impl GenericClient, id: i64, now: Timestamp) -> Result<()> {
    let b = batch_or_404(c, id).await?;
    if let Some((state, event)) = batch_end(&b, now) {
        c.execute(
            "UPDATE berth_batches SET state = $1, finalized_at = $2 WHERE id = $3 AND state = 'running'",
            &[&state.as_str(), &now.0, &id],
        )
        .await
        .map_err(db("ending a batch"))?;
        events::record(c, &[event]).await?;
    }
    Ok(())
}

async fn batch_job_final(
    c: &impl GenericClient,
    t: &Touched,
    batch: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Some(b) = lock_batch(c, batch).await? else {
        return Ok(());
    };
    let row = c
        .query_opt(
            "SELECT args, queue, kind, priority FROM berth_jobs WHERE id = $1",
            &[&t.id],
        )
        .await
        .map_err(db("reading a batch job"))?;
    let Some(row) = row else { return Ok(()) };
    let (args, queue, kind, priority): (Value, String, String, i32) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let items = batch_items(&args);
    let Some(m) = batch_move(t.state, items.len() as u64, t.by_attempts) else {
        return Ok(());
    };
    if m == BatchMove::Split {
        let halves = split_halves(&queue, &kind, &items, b.max_attempts, priority, batch);
        let ins = jobs::insert(c, &halves, now).await?;
        let ids: Vec<i64> = ins.iter().map(|i| i.id).collect();
        c.execute(
            "UPDATE berth_jobs SET result = $1, state = 'split' WHERE id = $2",
            &[&serde_json::json!({ "split_into": ids }), &t.id],
        )
        .await
        .map_err(db("marking a split job"))?;
        woken.push(queue);
        return Ok(());
    }
    add_items(c, batch, m).await?;
    end_batch_if_done(c, batch, now).await
}

pub(crate) async fn batch_failures(
    c: &impl GenericClient,
    id: i64,
    limit: u32,
) -> Result<Vec<BatchFailure>> {
    let rows = c
        .query(
            "SELECT id, args, errors -> -1 ->> 'error', state FROM berth_jobs \
             WHERE batch_id = $1 AND state IN ('discarded', 'cancelled') AND result IS NULL \
             ORDER BY id LIMIT $2",
            &[&id, &i64::from(limit)],
        )
        .await
        .map_err(db("listing a batch's failures"))?;
    rows.iter()
        .map(|r| {
            Ok(BatchFailure {
                job_id: r.get(0),
                items: batch_items(&r.get::<_, Value>(1)),
                error: r.get(2),
                state: r.get::<_, &str>(3).parse().map_err(StoreError::Invalid)?,
            })
        })
        .collect()
}

pub(crate) async fn batch_cancel(
    c: &impl GenericClient,
    id: i64,
    now: Timestamp,
) -> Result<(Batch, Vec<i64>)> {
    // Job rows first, then the batch: the order a finishing transaction takes them in.
    c.execute(
        "SELECT id FROM berth_jobs WHERE batch_id = $1 \
         AND state NOT IN ('completed', 'discarded', 'cancelled', 'split') ORDER BY id FOR UPDATE",
        &[&id],
    )
    .await
    .map_err(db("locking a batch's jobs"))?;
    let b = lock_batch(c, id)
        .await?
        .ok_or_else(|| not_found("batch", id))?;
    if b.state != FlowState::Running {
        return Err(flow_state_refused("batch", id, b.state, "cancel"));
    }
    let rows = c
        .query(
            "UPDATE berth_jobs SET state = 'cancelled', finalized_at = $1, lease_expires_at = NULL \
             WHERE batch_id = $2 AND state NOT IN ('completed', 'discarded', 'cancelled', 'split') \
             RETURNING args, id",
            &[&now.0, &id],
        )
        .await
        .map_err(db("cancelling a batch's jobs"))?;
    let items: usize = rows
        .iter()
        .map(|r| batch_items(&r.get::<_, Value>(0)).len())
        .sum();
    add_items(c, id, BatchMove::Cancelled(items as u64)).await?;
    end_batch_if_done(c, id, now).await?;
    let ids = rows.iter().map(|r| r.get(1)).collect();
    Ok((batch_or_404(c, id).await?, ids))
}

pub(crate) async fn batch_retry_failed(
    c: &impl GenericClient,
    id: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<(Batch, u64)> {
    let b = lock_batch(c, id)
        .await?
        .ok_or_else(|| not_found("batch", id))?;
    let failed = batch_failures(c, id, u32::MAX).await?;
    for f in &failed {
        retry_job(c, f.job_id, now).await?;
        if let Some(column) = counter(f.state) {
            move_items(c, id, column, -(f.items.len() as i64)).await?;
        }
    }
    if !failed.is_empty() {
        reopen_batch(c, id).await?;
        woken.push(b.queue.clone());
    }
    Ok((batch_or_404(c, id).await?, failed.len() as u64))
}

async fn reopen_batch(c: &impl GenericClient, id: i64) -> Result<()> {
    c.execute(
        "UPDATE berth_batches SET state = 'running', finalized_at = NULL WHERE id = $1",
        &[&id],
    )
    .await
    .map_err(db("reopening a batch"))?;
    Ok(())
}

async fn retry_job(c: &impl GenericClient, id: i64, now: Timestamp) -> Result<()> {
    c.execute(
        "UPDATE berth_jobs SET state = 'available', scheduled_at = $2, finalized_at = NULL, \
         lease_expires_at = NULL, max_attempts = greatest(max_attempts, attempt + 1) WHERE id = $1",
        &[&id, &now.0],
    )
    .await
    .map_err(db("running a job again"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hooks on jobs

/// After jobs reached final states: move their batches and workflows.
pub(crate) async fn after_final(
    c: &impl GenericClient,
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
            batch_job_final(c, t, b, now, woken).await?;
        }
        if let Some(w) = t.workflow_id {
            workflows.insert(w);
        }
    }
    for w in workflows {
        advance(c, w, now, woken).await?;
    }
    Ok(())
}

type JobRefs = (Option<i64>, Option<i64>, String, Value, Option<Value>);

async fn job_refs(c: &impl GenericClient, id: i64) -> Result<Option<JobRefs>> {
    let row = c
        .query_opt(
            "SELECT batch_id, workflow_id, state, args, result FROM berth_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(db("reading a job"))?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))))
}

/// The flows a job belongs to, for the admin actions' hooks.
pub(crate) async fn touched(c: &impl GenericClient, id: i64, state: JobState) -> Result<Touched> {
    let (batch_id, workflow_id) = job_refs(c, id)
        .await?
        .map(|(b, w, ..)| (b, w))
        .unwrap_or((None, None));
    Ok(Touched {
        id,
        state,
        batch_id,
        workflow_id,
        by_attempts: false,
    })
}

/// Before a job is retried by hand (see `flows::retry_by_hand`): a failed chunk's items
/// leave their counter and its batch runs again (unless it was pruned).
pub(crate) async fn before_retry(c: &impl GenericClient, id: i64) -> Result<()> {
    let Some((batch_id, workflow_id, state, args, result)) = job_refs(c, id).await? else {
        return Ok(());
    };
    let state: JobState = state.parse().map_err(StoreError::Invalid)?;
    if let Some((b, column, n)) =
        retry_by_hand(id, batch_id, workflow_id, state, &args, result.as_ref())?
        && lock_batch(c, b).await?.is_some()
    {
        move_items(c, b, column, -n).await?;
        reopen_batch(c, b).await?;
    }
    Ok(())
}

/// Before a job is deleted: not one of a running batch or workflow.
pub(crate) async fn before_delete(c: &impl GenericClient, id: i64) -> Result<()> {
    let Some((batch_id, workflow_id, ..)) = job_refs(c, id).await? else {
        return Ok(());
    };
    if let Some(b) = batch_id
        && batch(c, b)
            .await?
            .is_some_and(|b| b.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "batch", b));
    }
    if let Some(w) = workflow_id
        && workflow_row(c, w, false)
            .await?
            .is_some_and(|w| w.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "workflow", w));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Workflows

const WORKFLOW_COLUMNS: &str = "id, name, state, input, result, error, started_by, created_at, \
     deadline, finalized_at, unique_key";

fn workflow_from_row(r: &Row) -> Result<Workflow> {
    Ok(Workflow {
        id: r.get(0),
        name: r.get(1),
        state: flow_state(r.get(2))?,
        input: r.get(3),
        result: r.get(4),
        error: r.get(5),
        started_by: r.get(6),
        created_at: Timestamp(r.get(7)),
        deadline: ts(r.get(8)),
        finalized_at: ts(r.get(9)),
        unique_key: r.get(10),
        steps: Vec::new(),
    })
}

/// A workflow's row; `lock` takes its row lock for the rest of the transaction.
async fn workflow_row(c: &impl GenericClient, id: i64, lock: bool) -> Result<Option<Workflow>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {WORKFLOW_COLUMNS} FROM berth_workflows WHERE id = $1{}",
                if lock { " FOR UPDATE" } else { "" }
            ),
            &[&id],
        )
        .await
        .map_err(db("reading a workflow"))?;
    row.as_ref().map(workflow_from_row).transpose()
}

async fn steps(c: &impl GenericClient, id: i64) -> Result<Vec<WorkflowStep>> {
    let rows = c
        .query(
            "SELECT s.step, s.job_id, s.parents, s.optional, j.state, j.attempt, j.result, \
             j.errors -> -1 ->> 'error' FROM berth_workflow_steps s \
             LEFT JOIN berth_jobs j ON j.id = s.job_id WHERE s.workflow_id = $1 ORDER BY s.job_id",
            &[&id],
        )
        .await
        .map_err(db("reading a workflow's steps"))?;
    rows.iter()
        .map(|r| {
            Ok(WorkflowStep {
                name: r.get(0),
                job_id: r.get(1),
                parents: serde_json::from_value(r.get(2)).unwrap_or_default(),
                optional: r.get(3),
                state: r
                    .get::<_, Option<&str>>(4)
                    .map(|s| s.parse().map_err(StoreError::Invalid))
                    .transpose()?,
                attempt: r.get::<_, Option<i32>>(5).map(u32_of).unwrap_or(0),
                result: r.get(6),
                error: r.get(7),
            })
        })
        .collect()
}

pub(crate) async fn workflow(c: &impl GenericClient, id: i64) -> Result<Option<Workflow>> {
    let Some(mut w) = workflow_row(c, id, false).await? else {
        return Ok(None);
    };
    w.steps = steps(c, id).await?;
    Ok(Some(w))
}

async fn workflow_or_404(c: &impl GenericClient, id: i64) -> Result<Workflow> {
    workflow(c, id)
        .await?
        .ok_or_else(|| not_found("workflow", id))
}

pub(crate) async fn workflows(c: &impl GenericClient, f: &WorkflowFilter) -> Result<Vec<Workflow>> {
    let rows = c
        .query(
            &format!(
                "SELECT {WORKFLOW_COLUMNS} FROM berth_workflows WHERE ($1::text IS NULL OR name = $1) \
                 AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR id < $3) \
                 AND ($5::text IS NULL OR unique_key = $5) ORDER BY id DESC LIMIT $4"
            ),
            &[
                &f.name,
                &f.state.map(|s| s.as_str()),
                &f.before_id,
                &i64::from(f.limit.clamp(1, 1000)),
                &f.unique_key,
            ],
        )
        .await
        .map_err(db("listing workflows"))?;
    rows.iter().map(workflow_from_row).collect()
}

pub(crate) async fn workflow_start(
    c: &impl GenericClient,
    w: &NewWorkflow,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<i64> {
    // A running workflow with the same unique key is the answer (two starts at once from
    // two nodes: the index lets one insert, the other finds it).
    let row = c
        .query_opt(
            "INSERT INTO berth_workflows (name, state, input, started_by, created_at, deadline, \
             unique_key) VALUES ($1, 'running', $2, $3, $4, $5, $6) \
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state = 'running' \
             DO NOTHING RETURNING id",
            &[
                &w.name,
                &w.input,
                &w.started_by,
                &now.0,
                &w.deadline.map(|d| d.0),
                &w.unique_key,
            ],
        )
        .await
        .map_err(db("starting a workflow"))?;
    let Some(row) = row else {
        let running = c
            .query_one(
                "SELECT id FROM berth_workflows WHERE unique_key = $1 AND state = 'running'",
                &[&w.unique_key],
            )
            .await
            .map_err(db("starting a workflow"))?;
        return Ok(running.get(0));
    };
    let id: i64 = row.get(0);
    for step in &w.steps {
        let root = step.parents.is_empty();
        let args = if root {
            step_args(&w.input, Value::Object(Default::default()))
        } else {
            serde_json::json!({ "input": w.input })
        };
        let mut job = NewJob::new(step.queue.clone(), step.kind.clone(), args);
        job.max_attempts = step.max_attempts;
        job.priority = step.priority;
        job.workflow_id = Some(id);
        let job_id = jobs::insert(c, &[job], now).await?[0].id;
        if root {
            woken.push(step.queue.clone());
        } else {
            c.execute(
                "UPDATE berth_jobs SET state = 'pending' WHERE id = $1",
                &[&job_id],
            )
            .await
            .map_err(db("starting a workflow"))?;
        }
        c.execute(
            "INSERT INTO berth_workflow_steps (workflow_id, step, job_id, parents, optional) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &id,
                &step.name,
                &job_id,
                &serde_json::json!(step.parents),
                &step.optional,
            ],
        )
        .await
        .map_err(db("starting a workflow"))?;
    }
    Ok(id)
}

/// Releases the steps whose parents have finished and ends the workflow when it has.
async fn advance(
    c: &impl GenericClient,
    id: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let Some(w) = workflow_row(c, id, true).await? else {
        return Ok(());
    };
    if w.state != FlowState::Running {
        return Ok(());
    }
    let views: Vec<StepView> = steps(c, id)
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
        let row = c
            .query_opt(
                "UPDATE berth_jobs SET state = 'available', args = $1, scheduled_at = $2 \
                 WHERE id = $3 AND state = 'pending' RETURNING queue",
                &[args, &now.0, job],
            )
            .await
            .map_err(db("releasing a workflow step"))?;
        woken.extend(row.map(|r| r.get::<_, String>(0)));
    }
    match plan.end {
        Some(WorkflowEnd::Completed(result)) => {
            c.execute(
                "UPDATE berth_workflows SET state = 'completed', result = $1, finalized_at = $2 \
                 WHERE id = $3",
                &[&result, &now.0, &id],
            )
            .await
            .map_err(db("completing a workflow"))?;
            events::record(
                c,
                &[workflow_event(id, &w.name, FlowState::Completed, None, now)],
            )
            .await?;
        }
        Some(WorkflowEnd::Failed(error)) => {
            end_workflow(c, &w, FlowState::Failed, Some(&error), now).await?
        }
        None => {}
    }
    Ok(())
}

/// Ends a running workflow as failed or cancelled, cancelling its unfinished steps. A step
/// another transaction holds (a fetch, a heartbeat, a finish) is waited for, not skipped:
/// a skipped step could run on after its workflow ended. A finish that waits on the
/// workflow's row meanwhile is a deadlock PostgreSQL breaks; its caller retries.
async fn end_workflow(
    c: &impl GenericClient,
    w: &Workflow,
    state: FlowState,
    error: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        "UPDATE berth_jobs SET state = 'cancelled', finalized_at = $1, lease_expires_at = NULL \
         WHERE workflow_id = $2 AND state NOT IN ('completed', 'discarded', 'cancelled', 'split')",
        &[&now.0, &w.id],
    )
    .await
    .map_err(db("cancelling a workflow's steps"))?;
    c.execute(
        "UPDATE berth_workflows SET state = $1, error = $2, finalized_at = $3 WHERE id = $4",
        &[&state.as_str(), &error, &now.0, &w.id],
    )
    .await
    .map_err(db("ending a workflow"))?;
    // What the failed step said, for the event (and the mail it becomes).
    let step_errors: Option<Value> = if state == FlowState::Failed {
        c.query_opt(
            "SELECT errors FROM berth_jobs WHERE workflow_id = $1 AND state = 'discarded' \
             ORDER BY finalized_at DESC, id DESC LIMIT 1",
            &[&w.id],
        )
        .await
        .map_err(db("reading a workflow's failed step"))?
        .map(|r| r.get(0))
    } else {
        None
    };
    events::record(
        c,
        &[workflow_event_with(
            w.id,
            &w.name,
            state,
            error,
            step_errors.as_ref(),
            now,
        )],
    )
    .await
}

pub(crate) async fn workflow_cancel(
    c: &impl GenericClient,
    id: i64,
    now: Timestamp,
) -> Result<Workflow> {
    let w = workflow_row(c, id, true)
        .await?
        .ok_or_else(|| not_found("workflow", id))?;
    if w.state != FlowState::Running {
        return Err(flow_state_refused("workflow", id, w.state, "cancel"));
    }
    end_workflow(c, &w, FlowState::Cancelled, Some("cancelled by hand"), now).await?;
    workflow_or_404(c, id).await
}

pub(crate) async fn workflow_retry(
    c: &impl GenericClient,
    id: i64,
    deadline: Option<Timestamp>,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Workflow> {
    let w = workflow_row(c, id, true)
        .await?
        .ok_or_else(|| not_found("workflow", id))?;
    if !matches!(w.state, FlowState::Failed | FlowState::Cancelled) {
        return Err(flow_state_refused("workflow", id, w.state, "retry"));
    }
    let all = steps(c, id).await?;
    if let Some(gone) = all.iter().find(|s| s.state.is_none()) {
        return Err(pruned_retry_refused(id, &gone.name));
    }
    for s in all {
        match s.state {
            Some(JobState::Discarded) if !s.optional => {
                retry_job(c, s.job_id, now).await?;
                let r = c
                    .query_one("SELECT queue FROM berth_jobs WHERE id = $1", &[&s.job_id])
                    .await
                    .map_err(db("reading a step's queue"))?;
                woken.push(r.get(0));
            }
            Some(JobState::Cancelled) => {
                c.execute(
                    "UPDATE berth_jobs SET state = 'pending', finalized_at = NULL, \
                     lease_expires_at = NULL WHERE id = $1",
                    &[&s.job_id],
                )
                .await
                .map_err(db("resetting a workflow step"))?;
            }
            _ => {}
        }
    }
    c.execute(
        "UPDATE berth_workflows SET state = 'running', error = NULL, finalized_at = NULL, \
         deadline = $1 WHERE id = $2",
        &[&deadline.map(|d| d.0), &id],
    )
    .await
    .map_err(db("reopening a workflow"))?;
    advance(c, id, now, woken).await?;
    workflow_or_404(c, id).await
}

pub(crate) async fn workflow_expire(c: &impl GenericClient, now: Timestamp) -> Result<Vec<i64>> {
    let rows = c
        .query(
            "SELECT id FROM berth_workflows WHERE state = 'running' AND deadline IS NOT NULL \
             AND deadline <= $1 ORDER BY id LIMIT 1000",
            &[&now.0],
        )
        .await
        .map_err(db("finding overdue workflows"))?;
    let mut ended = Vec::new();
    for r in rows {
        let id: i64 = r.get(0);
        if let Some(w) = workflow_row(c, id, true).await?
            && w.state == FlowState::Running
        {
            let error = format!(
                "timed out: not finished by its deadline {}",
                w.deadline.unwrap_or(now)
            );
            end_workflow(c, &w, FlowState::Failed, Some(&error), now).await?;
            ended.push(id);
        }
    }
    Ok(ended)
}

pub(crate) async fn prune_flows(c: &impl GenericClient, before: Timestamp) -> Result<u64> {
    let batches = c
        .execute(
            "DELETE FROM berth_batches WHERE finalized_at < $1",
            &[&before.0],
        )
        .await
        .map_err(db("forgetting old batches"))?;
    let workflows = c
        .execute(
            "DELETE FROM berth_workflows WHERE finalized_at < $1",
            &[&before.0],
        )
        .await
        .map_err(db("forgetting old workflows"))?;
    Ok(batches + workflows)
}

// ---------------------------------------------------------------------------------------
// Copying

pub(crate) async fn export(c: &impl GenericClient) -> Result<FlowsDump> {
    let schedules = schedules(c).await?;
    let batches = c
        .query(
            &format!("SELECT {BATCH_COLUMNS} FROM berth_batches ORDER BY id"),
            &[],
        )
        .await
        .map_err(db("exporting batches"))?
        .iter()
        .map(batch_from_row)
        .collect::<Result<Vec<_>>>()?;
    let mut workflows = c
        .query(
            &format!("SELECT {WORKFLOW_COLUMNS} FROM berth_workflows ORDER BY id"),
            &[],
        )
        .await
        .map_err(db("exporting workflows"))?
        .iter()
        .map(workflow_from_row)
        .collect::<Result<Vec<_>>>()?;
    for w in &mut workflows {
        w.steps = steps(c, w.id).await?;
    }
    Ok(FlowsDump {
        schedules,
        batches,
        workflows,
    })
}

pub(crate) async fn import(c: &impl GenericClient, d: &FlowsDump) -> Result<()> {
    let conflict = |what: String| {
        move |e: tokio_postgres::Error| StoreError::Conflict(format!("cannot import {what}: {e}"))
    };
    for s in &d.schedules {
        let p: [&(dyn ToSql + Sync); 9] = [
            &s.name,
            &s.signature,
            &s.next_at.0,
            &s.last_planned_at.map(|t| t.0),
            &s.last_fired_at.map(|t| t.0),
            &s.last_job_id,
            &s.last_workflow_id,
            &(s.skipped as i64),
            &s.paused,
        ];
        c.execute(
            &format!(
                "INSERT INTO berth_schedules ({SCHEDULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &p,
        )
        .await
        .map_err(conflict(format!("schedule {}", s.name)))?;
    }
    for b in &d.batches {
        let p: [&(dyn ToSql + Sync); 12] = [
            &b.id,
            &b.queue,
            &b.kind,
            &b.state.as_str(),
            &(b.total_items as i64),
            &(b.job_size as i32),
            &(b.max_attempts as i32),
            &(b.done_items as i64),
            &(b.failed_items as i64),
            &(b.cancelled_items as i64),
            &b.created_at.0,
            &b.finalized_at.map(|t| t.0),
        ];
        c.execute(
            &format!(
                "INSERT INTO berth_batches ({BATCH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &p,
        )
        .await
        .map_err(conflict(format!("batch {}", b.id)))?;
    }
    for w in &d.workflows {
        let p: [&(dyn ToSql + Sync); 11] = [
            &w.id,
            &w.name,
            &w.state.as_str(),
            &w.input,
            &w.result,
            &w.error,
            &w.started_by,
            &w.created_at.0,
            &w.deadline.map(|t| t.0),
            &w.finalized_at.map(|t| t.0),
            &w.unique_key,
        ];
        c.execute(
            &format!(
                "INSERT INTO berth_workflows ({WORKFLOW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &p,
        )
        .await
        .map_err(conflict(format!("workflow {}", w.id)))?;
        for s in &w.steps {
            c.execute(
                "INSERT INTO berth_workflow_steps (workflow_id, step, job_id, parents, optional) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &w.id,
                    &s.name,
                    &s.job_id,
                    &serde_json::json!(s.parents),
                    &s.optional,
                ],
            )
            .await
            .map_err(conflict(format!("workflow {}'s steps", w.id)))?;
        }
    }
    // Later inserts continue above the imported ids.
    for table in ["berth_batches", "berth_workflows"] {
        c.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 greatest((SELECT max(id) FROM {table}), 1))"
            ),
            &[],
        )
        .await
        .map_err(db("moving an id sequence past the imported rows"))?;
    }
    Ok(())
}
