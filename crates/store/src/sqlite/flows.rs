//! The SQL for schedules, batches and workflows, and the hooks that move a batch or a
//! workflow when one of its jobs finishes — inside the same transaction as the job's
//! write, so that a crash can never leave a finished step with its children still waiting.
//!
//! Functions that may make jobs available push their queues onto `woken`; the store
//! announces them after the commit.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

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

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serializing plain values to JSON cannot fail")
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, idx: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_with<T>(
    text: &str,
    idx: usize,
    f: impl Fn(&str) -> Result<T, String>,
) -> rusqlite::Result<T> {
    f(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

// ---------------------------------------------------------------------------------------
// Schedules

const SCHEDULE_COLUMNS: &str = "name, signature, next_at, last_planned_at, last_fired_at, \
    last_job_id, last_workflow_id, skipped, paused";

fn schedule_from_row(r: &Row<'_>) -> rusqlite::Result<ScheduleState> {
    Ok(ScheduleState {
        name: r.get(0)?,
        signature: r.get(1)?,
        next_at: Timestamp(r.get(2)?),
        last_planned_at: ts(r.get(3)?),
        last_fired_at: ts(r.get(4)?),
        last_job_id: r.get(5)?,
        last_workflow_id: r.get(6)?,
        skipped: r.get::<_, i64>(7)? as u64,
        paused: r.get(8)?,
    })
}

pub(crate) fn schedules(conn: &Connection) -> Result<Vec<ScheduleState>> {
    conn.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
    ))
    .and_then(|mut s| s.query_map([], schedule_from_row)?.collect())
    .map_err(db("listing schedules"))
}

fn schedule(conn: &Connection, name: &str) -> Result<Option<ScheduleState>> {
    conn.prepare_cached(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"
    ))
    .and_then(|mut s| s.query_row([name], schedule_from_row).optional())
    .map_err(db("reading a schedule"))
}

pub(crate) fn schedule_prepare(
    conn: &Connection,
    name: &str,
    signature: &str,
    next_at: Timestamp,
) -> Result<ScheduleState> {
    conn.prepare_cached(
        "INSERT INTO schedules (name, signature, next_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, \
         next_at = excluded.next_at WHERE schedules.signature <> excluded.signature",
    )
    .and_then(|mut s| s.execute(params![name, signature, next_at.0]))
    .map_err(db("preparing a schedule"))?;
    schedule(conn, name)?.ok_or_else(|| not_found("schedule", name))
}

/// Enqueues the job or starts the workflow, inside the caller's transaction.
pub(crate) fn start(
    conn: &Connection,
    start: &Start,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Fired> {
    Ok(match start {
        Start::Job(job) => {
            let ins = jobs::insert(conn, std::slice::from_ref(job), now)?;
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
            workflow_id: Some(workflow_start(conn, w, now, woken)?),
        },
    })
}

pub(crate) fn schedule_fire(
    conn: &Connection,
    f: &ScheduleFire,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Option<Fired>> {
    match f.expect_next {
        Some(expect) => {
            // The compare-and-set that makes a planned time fire once, whoever tries.
            let n = conn
                .prepare_cached(
                    "UPDATE schedules SET next_at = ?1, skipped = skipped + ?2 \
                     WHERE name = ?3 AND next_at = ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![f.next_at.0, f.skipped as i64, f.name, expect.0])
                })
                .map_err(db("advancing a schedule"))?;
            if n == 0 {
                return Ok(None);
            }
        }
        None => {
            if schedule(conn, &f.name)?.is_none() {
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
        Some(s) => start(conn, s, now, woken)?,
    };
    conn.prepare_cached(
        "UPDATE schedules SET last_planned_at = ?1, last_fired_at = ?2, last_job_id = ?3, \
         last_workflow_id = ?4 WHERE name = ?5",
    )
    .and_then(|mut s| {
        s.execute(params![
            f.planned.0,
            now.0,
            fired.job_id,
            fired.workflow_id,
            f.name
        ])
    })
    .map_err(db("recording a schedule's run"))?;
    Ok(Some(fired))
}

pub(crate) fn schedule_set_paused(
    conn: &Connection,
    name: &str,
    paused: bool,
) -> Result<ScheduleState> {
    conn.prepare_cached("UPDATE schedules SET paused = ?1 WHERE name = ?2")
        .and_then(|mut s| s.execute(params![paused, name]))
        .map_err(db("pausing a schedule"))?;
    schedule(conn, name)?.ok_or_else(|| not_found("schedule", name))
}

// ---------------------------------------------------------------------------------------
// Batches

const BATCH_COLUMNS: &str = "id, queue, kind, state, total_items, job_size, max_attempts, \
    done_items, failed_items, cancelled_items, created_at, finalized_at";

fn batch_from_row(r: &Row<'_>) -> rusqlite::Result<Batch> {
    let state: String = r.get(3)?;
    Ok(Batch {
        id: r.get(0)?,
        queue: r.get(1)?,
        kind: r.get(2)?,
        state: parse_with(&state, 3, str::parse)?,
        total_items: r.get::<_, i64>(4)? as u64,
        job_size: r.get(5)?,
        max_attempts: r.get(6)?,
        done_items: r.get::<_, i64>(7)? as u64,
        failed_items: r.get::<_, i64>(8)? as u64,
        cancelled_items: r.get::<_, i64>(9)? as u64,
        created_at: Timestamp(r.get(10)?),
        finalized_at: ts(r.get(11)?),
    })
}

pub(crate) fn batch(conn: &Connection, id: i64) -> Result<Option<Batch>> {
    conn.prepare_cached(&format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], batch_from_row).optional())
    .map_err(db("reading a batch"))
}

fn batch_or_404(conn: &Connection, id: i64) -> Result<Batch> {
    batch(conn, id)?.ok_or_else(|| not_found("batch", id))
}

pub(crate) fn batches(conn: &Connection, f: &BatchFilter) -> Result<Vec<Batch>> {
    conn.prepare_cached(&format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE (?1 IS NULL OR state = ?1) \
         AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![
                f.state.map(|s| s.as_str()),
                f.before_id,
                f.limit.clamp(1, 1000)
            ],
            batch_from_row,
        )?
        .collect()
    })
    .map_err(db("listing batches"))
}

pub(crate) fn batch_create(
    conn: &Connection,
    b: &NewBatch,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Batch> {
    conn.prepare_cached(
        "INSERT INTO batches (queue, kind, state, total_items, job_size, max_attempts, priority, \
         created_at) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.queue,
            b.kind,
            b.items.len() as i64,
            b.job_size,
            b.max_attempts,
            b.priority,
            now.0
        ])
    })
    .map_err(db("creating a batch"))?;
    let id = conn.last_insert_rowid();
    jobs::insert(conn, &batch_jobs(b, id), now)?;
    woken.push(b.queue.clone());
    batch_or_404(conn, id)
}

/// Adds `delta` (negative: takes away) to one of a batch's counters.
fn move_items(conn: &Connection, batch: i64, column: &str, delta: i64) -> Result<()> {
    conn.prepare_cached(&format!(
        "UPDATE batches SET {column} = max(0, {column} + ?1) WHERE id = ?2"
    ))
    .and_then(|mut s| s.execute(params![delta, batch]))
    .map_err(db("counting a batch's items"))?;
    Ok(())
}

fn add_items(conn: &Connection, batch: i64, m: BatchMove) -> Result<()> {
    match m.count() {
        Some((column, n)) => move_items(conn, batch, column, n),
        None => Ok(()),
    }
}

/// Ends a batch whose items have all finished, with its event.
fn end_batch_if_done(conn: &Connection, id: i64, now: Timestamp) -> Result<()> {
    let b = batch_or_404(conn, id)?;
    if let Some((state, event)) = batch_end(&b, now) {
        conn.prepare_cached("UPDATE batches SET state = ?1, finalized_at = ?2 WHERE id = ?3")
            .and_then(|mut s| s.execute(params![state.as_str(), now.0, id]))
            .map_err(db("ending a batch"))?;
        events::record(conn, &[event])?;
    }
    Ok(())
}

fn batch_job_final(
    conn: &Connection,
    t: &Touched,
    batch: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let row: Option<(String, String, String, u32, i32)> = conn
        .prepare_cached(
            "SELECT j.args, j.queue, j.kind, b.max_attempts, j.priority FROM jobs j \
             JOIN batches b ON b.id = j.batch_id WHERE j.id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([t.id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(db("reading a batch job"))?;
    let Some((args, queue, kind, max_attempts, priority)) = row else {
        return Ok(());
    };
    let args: Value = parse_text(&args);
    let items = batch_items(&args);
    let Some(m) = batch_move(t.state, items.len() as u64, t.by_attempts) else {
        return Ok(());
    };
    if m == BatchMove::Split {
        let halves = split_halves(&queue, &kind, &items, max_attempts, priority, batch);
        let ins = jobs::insert(conn, &halves, now)?;
        let ids: Vec<i64> = ins.iter().map(|i| i.id).collect();
        conn.prepare_cached("UPDATE jobs SET result = ?1, state = 'split' WHERE id = ?2")
            .and_then(|mut s| {
                s.execute(params![
                    json_text(&serde_json::json!({ "split_into": ids })),
                    t.id
                ])
            })
            .map_err(db("marking a split job"))?;
        woken.push(queue);
        return Ok(());
    }
    add_items(conn, batch, m)?;
    end_batch_if_done(conn, batch, now)
}

pub(crate) fn batch_failures(conn: &Connection, id: i64, limit: u32) -> Result<Vec<BatchFailure>> {
    conn.prepare_cached(
        "SELECT id, args, json_extract(errors, '$[#-1].error'), state FROM jobs \
         WHERE batch_id = ?1 AND (state = 'discarded' OR state = 'cancelled') AND result IS NULL \
         ORDER BY id LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![id, limit], |r| {
            let args: String = r.get(1)?;
            let state: String = r.get(3)?;
            Ok(BatchFailure {
                job_id: r.get(0)?,
                items: batch_items(&parse(&args, 1)?),
                error: r.get(2)?,
                state: parse_with(&state, 3, str::parse)?,
            })
        })?
        .collect()
    })
    .map_err(db("listing a batch's failures"))
}

pub(crate) fn batch_cancel(
    conn: &Connection,
    id: i64,
    now: Timestamp,
) -> Result<(Batch, Vec<i64>)> {
    let b = batch_or_404(conn, id)?;
    if b.state != FlowState::Running {
        return Err(flow_state_refused("batch", id, b.state, "cancel"));
    }
    let cancelled: Vec<(i64, String)> = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'cancelled', finalized_at = ?1, lease_expires_at = NULL \
             WHERE batch_id = ?2 AND state <> 'completed' AND state <> 'discarded' \
             AND state <> 'cancelled' AND state <> 'split' RETURNING id, args",
        )
        .and_then(|mut s| {
            s.query_map(params![now.0, id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(db("cancelling a batch's jobs"))?;
    let items: usize = cancelled
        .iter()
        .map(|(_, a)| batch_items(&parse_text(a)).len())
        .sum();
    add_items(conn, id, BatchMove::Cancelled(items as u64))?;
    end_batch_if_done(conn, id, now)?;
    let ids = cancelled.into_iter().map(|(j, _)| j).collect();
    Ok((batch_or_404(conn, id)?, ids))
}

pub(crate) fn batch_retry_failed(
    conn: &Connection,
    id: i64,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<(Batch, u64)> {
    let b = batch_or_404(conn, id)?;
    let failed = batch_failures(conn, id, u32::MAX)?;
    for f in &failed {
        retry_job(conn, f.job_id, now)?;
        if let Some(column) = counter(f.state) {
            move_items(conn, id, column, -(f.items.len() as i64))?;
        }
    }
    if !failed.is_empty() {
        reopen_batch(conn, id)?;
        woken.push(b.queue.clone());
    }
    Ok((batch_or_404(conn, id)?, failed.len() as u64))
}

fn reopen_batch(conn: &Connection, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE batches SET state = 'running', finalized_at = NULL WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db("reopening a batch"))?;
    Ok(())
}

/// A final job runs again now, with one more attempt if it had used them all.
fn retry_job(conn: &Connection, id: i64, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'available', scheduled_at = ?2, finalized_at = NULL, \
         lease_expires_at = NULL, max_attempts = max(max_attempts, attempt + 1) WHERE id = ?1",
    )
    .and_then(|mut s| s.execute(params![id, now.0]))
    .map_err(db("running a job again"))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hooks on jobs

/// After jobs reached final states: move their batches and workflows.
pub(crate) fn after_final(
    conn: &Connection,
    touched: &[Touched],
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<()> {
    let mut workflows = BTreeSet::new();
    let mut touched = touched.to_vec();
    touched.sort_by_key(|t| (t.batch_id, t.id));
    for t in touched.iter().filter(|t| t.state.is_final()) {
        if let Some(b) = t.batch_id {
            batch_job_final(conn, t, b, now, woken)?;
        }
        if let Some(w) = t.workflow_id {
            workflows.insert(w);
        }
    }
    for w in workflows {
        advance(conn, w, now, woken)?;
    }
    Ok(())
}

/// A job's batch, workflow, state, args and result.
type JobRefs = (Option<i64>, Option<i64>, String, String, Option<String>);

/// What flows a job belongs to, its state and result.
fn job_refs(conn: &Connection, id: i64) -> Result<Option<JobRefs>> {
    conn.prepare_cached("SELECT batch_id, workflow_id, state, args, result FROM jobs WHERE id = ?1")
        .and_then(|mut s| {
            s.query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(db("reading a job"))
}

/// The flows a job belongs to, for the admin actions' hooks.
pub(crate) fn touched(conn: &Connection, id: i64, state: JobState) -> Result<Touched> {
    let (batch_id, workflow_id) = job_refs(conn, id)?
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

fn parse_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Before a job is retried by hand (see `flows::retry_by_hand`): a failed chunk's items
/// leave their counter and its batch runs again.
pub(crate) fn before_retry(conn: &Connection, id: i64) -> Result<()> {
    let Some((batch_id, workflow_id, state, args, result)) = job_refs(conn, id)? else {
        return Ok(());
    };
    let state: JobState = state.parse().map_err(StoreError::Invalid)?;
    let result = result.as_deref().map(parse_text);
    if let Some((b, column, n)) = retry_by_hand(
        id,
        batch_id,
        workflow_id,
        state,
        &parse_text(&args),
        result.as_ref(),
    )? {
        move_items(conn, b, column, -n)?;
        reopen_batch(conn, b)?;
    }
    Ok(())
}

/// Before a job is deleted: not one of a running batch or workflow.
pub(crate) fn before_delete(conn: &Connection, id: i64) -> Result<()> {
    let Some((batch_id, workflow_id, ..)) = job_refs(conn, id)? else {
        return Ok(());
    };
    if let Some(b) = batch_id
        && batch(conn, b)?.is_some_and(|b| b.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "batch", b));
    }
    if let Some(w) = workflow_id
        && workflow_row(conn, w)?.is_some_and(|w| w.state == FlowState::Running)
    {
        return Err(flow_delete_refused(id, "workflow", w));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Workflows

const WORKFLOW_COLUMNS: &str = "id, name, state, input, result, error, started_by, created_at, \
     deadline, finalized_at, unique_key";

fn workflow_from_row(r: &Row<'_>) -> rusqlite::Result<Workflow> {
    let state: String = r.get(2)?;
    let input: String = r.get(3)?;
    let result: Option<String> = r.get(4)?;
    Ok(Workflow {
        id: r.get(0)?,
        name: r.get(1)?,
        state: parse_with(&state, 2, str::parse)?,
        input: parse(&input, 3)?,
        result: result.map(|t| parse(&t, 4)).transpose()?,
        error: r.get(5)?,
        started_by: r.get(6)?,
        created_at: Timestamp(r.get(7)?),
        deadline: ts(r.get(8)?),
        finalized_at: ts(r.get(9)?),
        unique_key: r.get(10)?,
        steps: Vec::new(),
    })
}

fn workflow_row(conn: &Connection, id: i64) -> Result<Option<Workflow>> {
    conn.prepare_cached(&format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], workflow_from_row).optional())
    .map_err(db("reading a workflow"))
}

fn steps(conn: &Connection, id: i64) -> Result<Vec<WorkflowStep>> {
    conn.prepare_cached(
        "SELECT s.step, s.job_id, s.parents, s.optional, j.state, j.attempt, j.result, \
         json_extract(j.errors, '$[#-1].error') FROM workflow_steps s \
         LEFT JOIN jobs j ON j.id = s.job_id WHERE s.workflow_id = ?1 ORDER BY s.job_id",
    )
    .and_then(|mut s| {
        s.query_map([id], |r| {
            let parents: String = r.get(2)?;
            let state: Option<String> = r.get(4)?;
            let result: Option<String> = r.get(6)?;
            Ok(WorkflowStep {
                name: r.get(0)?,
                job_id: r.get(1)?,
                parents: parse(&parents, 2)?,
                optional: r.get(3)?,
                state: state.map(|s| parse_with(&s, 4, str::parse)).transpose()?,
                attempt: r.get::<_, Option<u32>>(5)?.unwrap_or(0),
                result: result.map(|t| parse(&t, 6)).transpose()?,
                error: r.get(7)?,
            })
        })?
        .collect()
    })
    .map_err(db("reading a workflow's steps"))
}

pub(crate) fn workflow(conn: &Connection, id: i64) -> Result<Option<Workflow>> {
    let Some(mut w) = workflow_row(conn, id)? else {
        return Ok(None);
    };
    w.steps = steps(conn, id)?;
    Ok(Some(w))
}

fn workflow_or_404(conn: &Connection, id: i64) -> Result<Workflow> {
    workflow(conn, id)?.ok_or_else(|| not_found("workflow", id))
}

pub(crate) fn workflows(conn: &Connection, f: &WorkflowFilter) -> Result<Vec<Workflow>> {
    conn.prepare_cached(&format!(
        "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE (?1 IS NULL OR name = ?1) \
         AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3) \
         AND (?5 IS NULL OR unique_key = ?5) ORDER BY id DESC LIMIT ?4"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![
                f.name,
                f.state.map(|s| s.as_str()),
                f.before_id,
                f.limit.clamp(1, 1000),
                f.unique_key
            ],
            workflow_from_row,
        )?
        .collect()
    })
    .map_err(db("listing workflows"))
}

pub(crate) fn workflow_start(
    conn: &Connection,
    w: &NewWorkflow,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<i64> {
    // The writer runs one write at a time: a running workflow with the key is the answer.
    if let Some(key) = &w.unique_key {
        let running: Option<i64> = conn
            .prepare_cached("SELECT id FROM workflows WHERE unique_key = ?1 AND state = 'running'")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(db("starting a workflow"))?;
        if let Some(id) = running {
            return Ok(id);
        }
    }
    conn.prepare_cached(
        "INSERT INTO workflows (name, state, input, started_by, created_at, deadline, \
         unique_key) VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            w.name,
            json_text(&w.input),
            w.started_by,
            now.0,
            w.deadline.map(|d| d.0),
            w.unique_key
        ])
    })
    .map_err(db("starting a workflow"))?;
    let id = conn.last_insert_rowid();
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
        let job_id = jobs::insert(conn, &[job], now)?[0].id;
        if root {
            woken.push(step.queue.clone());
        } else {
            conn.prepare_cached("UPDATE jobs SET state = 'pending' WHERE id = ?1")
                .and_then(|mut s| s.execute([job_id]))
                .map_err(db("starting a workflow"))?;
        }
        conn.prepare_cached(
            "INSERT INTO workflow_steps (workflow_id, step, job_id, parents, optional) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                step.name,
                job_id,
                json_text(&step.parents),
                step.optional
            ])
        })
        .map_err(db("starting a workflow"))?;
    }
    Ok(id)
}

/// Releases the steps whose parents have finished and ends the workflow when it has.
fn advance(conn: &Connection, id: i64, now: Timestamp, woken: &mut Vec<String>) -> Result<()> {
    let Some(w) = workflow_row(conn, id)? else {
        return Ok(());
    };
    if w.state != FlowState::Running {
        return Ok(());
    }
    let views: Vec<StepView> = steps(conn, id)?
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
        let queue: Option<String> = conn
            .prepare_cached(
                "UPDATE jobs SET state = 'available', args = ?1, scheduled_at = ?2 \
                 WHERE id = ?3 AND state = 'pending' RETURNING queue",
            )
            .and_then(|mut s| {
                s.query_row(params![json_text(args), now.0, job], |r| r.get(0))
                    .optional()
            })
            .map_err(db("releasing a workflow step"))?;
        woken.extend(queue);
    }
    match plan.end {
        Some(WorkflowEnd::Completed(result)) => {
            conn.prepare_cached(
                "UPDATE workflows SET state = 'completed', result = ?1, finalized_at = ?2 WHERE id = ?3",
            )
            .and_then(|mut s| s.execute(params![json_text(&result), now.0, id]))
            .map_err(db("completing a workflow"))?;
            events::record(
                conn,
                &[workflow_event(id, &w.name, FlowState::Completed, None, now)],
            )?;
        }
        Some(WorkflowEnd::Failed(error)) => {
            end_workflow(conn, &w, FlowState::Failed, Some(&error), now)?
        }
        None => {}
    }
    Ok(())
}

/// Ends a running workflow as failed or cancelled: its unfinished steps are cancelled (a
/// running attempt's late outcome is then refused, and its executor stops it).
fn end_workflow(
    conn: &Connection,
    w: &Workflow,
    state: FlowState,
    error: Option<&str>,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', finalized_at = ?1, lease_expires_at = NULL \
         WHERE workflow_id = ?2 AND state <> 'completed' AND state <> 'discarded' AND state <> 'cancelled' \
           AND state <> 'split'",
    )
    .and_then(|mut s| s.execute(params![now.0, w.id]))
    .map_err(db("cancelling a workflow's steps"))?;
    conn.prepare_cached(
        "UPDATE workflows SET state = ?1, error = ?2, finalized_at = ?3 WHERE id = ?4",
    )
    .and_then(|mut s| s.execute(params![state.as_str(), error, now.0, w.id]))
    .map_err(db("ending a workflow"))?;
    // What the failed step said, for the event (and the mail it becomes).
    let step_errors: Option<Value> = if state == FlowState::Failed {
        conn.prepare_cached(
            "SELECT errors FROM jobs WHERE workflow_id = ?1 AND state = 'discarded' \
             ORDER BY finalized_at DESC, id DESC LIMIT 1",
        )
        .and_then(|mut s| s.query_row([w.id], |r| r.get::<_, String>(0)).optional())
        .map_err(db("reading a workflow's failed step"))?
        .and_then(|t| serde_json::from_str(&t).ok())
    } else {
        None
    };
    events::record(
        conn,
        &[workflow_event_with(
            w.id,
            &w.name,
            state,
            error,
            step_errors.as_ref(),
            now,
        )],
    )
}

pub(crate) fn workflow_cancel(conn: &Connection, id: i64, now: Timestamp) -> Result<Workflow> {
    let w = workflow_or_404(conn, id)?;
    if w.state != FlowState::Running {
        return Err(flow_state_refused("workflow", id, w.state, "cancel"));
    }
    end_workflow(
        conn,
        &w,
        FlowState::Cancelled,
        Some("cancelled by hand"),
        now,
    )?;
    workflow_or_404(conn, id)
}

pub(crate) fn workflow_retry(
    conn: &Connection,
    id: i64,
    deadline: Option<Timestamp>,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Workflow> {
    let w = workflow_or_404(conn, id)?;
    if !matches!(w.state, FlowState::Failed | FlowState::Cancelled) {
        return Err(flow_state_refused("workflow", id, w.state, "retry"));
    }
    if let Some(gone) = w.steps.iter().find(|s| s.state.is_none()) {
        return Err(pruned_retry_refused(id, &gone.name));
    }
    for s in &w.steps {
        match s.state {
            Some(JobState::Discarded) if !s.optional => {
                retry_job(conn, s.job_id, now)?;
                woken.push(step_queue(conn, s.job_id)?);
            }
            Some(JobState::Cancelled) => {
                conn.prepare_cached(
                    "UPDATE jobs SET state = 'pending', finalized_at = NULL, lease_expires_at = NULL \
                     WHERE id = ?1",
                )
                .and_then(|mut st| st.execute([s.job_id]))
                .map_err(db("resetting a workflow step"))?;
            }
            _ => {}
        }
    }
    conn.prepare_cached(
        "UPDATE workflows SET state = 'running', error = NULL, finalized_at = NULL, deadline = ?1 WHERE id = ?2",
    )
    .and_then(|mut s| s.execute(params![deadline.map(|d| d.0), id]))
    .map_err(db("reopening a workflow"))?;
    advance(conn, id, now, woken)?;
    workflow_or_404(conn, id)
}

fn step_queue(conn: &Connection, job: i64) -> Result<String> {
    conn.prepare_cached("SELECT queue FROM jobs WHERE id = ?1")
        .and_then(|mut s| s.query_row([job], |r| r.get(0)))
        .map_err(db("reading a step's queue"))
}

pub(crate) fn workflow_expire(conn: &Connection, now: Timestamp) -> Result<Vec<i64>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM workflows WHERE state = 'running' AND deadline IS NOT NULL \
             AND deadline <= ?1 ORDER BY id LIMIT 1000",
        )
        .and_then(|mut s| s.query_map([now.0], |r| r.get(0))?.collect())
        .map_err(db("finding overdue workflows"))?;
    for id in &ids {
        if let Some(w) = workflow_row(conn, *id)? {
            let error = format!(
                "timed out: not finished by its deadline {}",
                w.deadline.unwrap_or(now)
            );
            end_workflow(conn, &w, FlowState::Failed, Some(&error), now)?;
        }
    }
    Ok(ids)
}

pub(crate) fn prune_flows(conn: &Connection, before: Timestamp) -> Result<u64> {
    let batches = conn
        .prepare_cached("DELETE FROM batches WHERE finalized_at < ?1")
        .and_then(|mut s| s.execute([before.0]))
        .map_err(db("forgetting old batches"))?;
    let workflows = conn
        .prepare_cached("DELETE FROM workflows WHERE finalized_at < ?1")
        .and_then(|mut s| s.execute([before.0]))
        .map_err(db("forgetting old workflows"))?;
    Ok((batches + workflows) as u64)
}

// ---------------------------------------------------------------------------------------
// Copying

pub(crate) fn export(conn: &Connection) -> Result<FlowsDump> {
    let schedules = schedules(conn)?;
    let batches: Vec<Batch> = conn
        .prepare(&format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY id"))
        .and_then(|mut s| s.query_map([], batch_from_row)?.collect())
        .map_err(db("exporting batches"))?;
    let mut workflows: Vec<Workflow> = conn
        .prepare(&format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY id"
        ))
        .and_then(|mut s| s.query_map([], workflow_from_row)?.collect())
        .map_err(db("exporting workflows"))?;
    for w in &mut workflows {
        w.steps = steps(conn, w.id)?;
    }
    Ok(FlowsDump {
        schedules,
        batches,
        workflows,
    })
}

pub(crate) fn import(conn: &Connection, d: &FlowsDump) -> Result<()> {
    let conflict = |what: &str| {
        let what = what.to_string();
        move |e: rusqlite::Error| StoreError::Conflict(format!("cannot import {what}: {e}"))
    };
    for s in &d.schedules {
        conn.execute(
            &format!("INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                s.name,
                s.signature,
                s.next_at.0,
                s.last_planned_at.map(|t| t.0),
                s.last_fired_at.map(|t| t.0),
                s.last_job_id,
                s.last_workflow_id,
                s.skipped as i64,
                s.paused
            ],
        )
        .map_err(conflict(&format!("schedule {}", s.name)))?;
    }
    for b in &d.batches {
        conn.execute(
            &format!("INSERT INTO batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            params![
                b.id,
                b.queue,
                b.kind,
                b.state.as_str(),
                b.total_items as i64,
                b.job_size,
                b.max_attempts,
                b.done_items as i64,
                b.failed_items as i64,
                b.cancelled_items as i64,
                b.created_at.0,
                b.finalized_at.map(|t| t.0)
            ],
        )
        .map_err(conflict(&format!("batch {}", b.id)))?;
    }
    for w in &d.workflows {
        conn.execute(
            &format!("INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
            params![
                w.id,
                w.name,
                w.state.as_str(),
                json_text(&w.input),
                w.result.as_ref().map(json_text),
                w.error,
                w.started_by,
                w.created_at.0,
                w.deadline.map(|t| t.0),
                w.finalized_at.map(|t| t.0),
                w.unique_key
            ],
        )
        .map_err(conflict(&format!("workflow {}", w.id)))?;
        for s in &w.steps {
            conn.execute(
                "INSERT INTO workflow_steps (workflow_id, step, job_id, parents, optional) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![w.id, s.name, s.job_id, json_text(&s.parents), s.optional],
            )
            .map_err(conflict(&format!("workflow {}'s steps", w.id)))?;
        }
    }
    Ok(())
}
