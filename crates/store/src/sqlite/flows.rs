//! The SQL of schedules, batches and workflows on SQLite: the primitives of
//! [`FlowDb`], which `flows::engine` moves once for both stores. They run on the writer
//! thread inside its transaction (or on a reader), never wait, and need no row locks: the
//! writer runs one write at a time.

use rusqlite::{Connection, OptionalExtension, Params, Row, params};
use serde_json::Value;

use super::events;
use crate::error::{Result, StoreError};
use crate::flows::engine::{FlowDb, JobMove, JobRefs, Owner, WorkflowSet, unique_rerun_refused};
use crate::flows::{
    Batch, BatchFailure, BatchFilter, Fired, FlowState, FlowsDump, NewBatch, NewStep, NewWorkflow,
    ScheduleFire, ScheduleState, Workflow, WorkflowFilter, WorkflowStep, batch_items,
};
use crate::model::{JobState, NewEvent, Timestamp};

/// The flow primitives on one SQLite connection.
pub(crate) struct Lite<'c>(pub &'c Connection);

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serializing plain values to JSON cannot fail")
}

fn bad_text(idx: usize, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
}

/// Column `idx` as JSON (`NULL` as `None`).
fn json_col<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = r.get(idx)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| bad_text(idx, e)))
        .transpose()
}

/// Column `idx` parsed by `FromStr` (`NULL` as `None`).
pub(super) fn parsed_col<T: std::str::FromStr<Err = String>>(
    r: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = r.get(idx)?;
    text.map(|t| t.parse().map_err(|e: String| bad_text(idx, e)))
        .transpose()
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

impl Lite<'_> {
    pub(super) fn exec(&self, action: &'static str, sql: &str, p: impl Params) -> Result<usize> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(p))
            .map_err(db(action))
    }

    pub(super) fn one<T>(
        &self,
        action: &'static str,
        sql: &str,
        p: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut s| s.query_row(p, f).optional())
            .map_err(db(action))
    }

    fn all<T>(
        &self,
        action: &'static str,
        sql: &str,
        p: impl Params,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut s| s.query_map(p, f)?.collect())
            .map_err(db(action))
    }
}

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

const BATCH_COLUMNS: &str = "id, queue, kind, state, total_items, job_size, max_attempts, \
    done_items, failed_items, cancelled_items, created_at, finalized_at";

fn batch_from_row(r: &Row<'_>) -> rusqlite::Result<Batch> {
    Ok(Batch {
        id: r.get(0)?,
        queue: r.get(1)?,
        kind: r.get(2)?,
        state: parsed_col(r, 3)?.unwrap_or(FlowState::Running),
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

const WORKFLOW_COLUMNS: &str = "id, name, state, input, result, error, started_by, created_at, \
     deadline, finalized_at, unique_key";

fn workflow_from_row(r: &Row<'_>) -> rusqlite::Result<Workflow> {
    Ok(Workflow {
        id: r.get(0)?,
        name: r.get(1)?,
        state: parsed_col(r, 2)?.unwrap_or(FlowState::Running),
        input: json_col(r, 3)?.unwrap_or(Value::Null),
        result: json_col(r, 4)?,
        error: r.get(5)?,
        started_by: r.get(6)?,
        created_at: Timestamp(r.get(7)?),
        deadline: ts(r.get(8)?),
        finalized_at: ts(r.get(9)?),
        unique_key: r.get(10)?,
        steps: Vec::new(),
    })
}

/// What `cancel_unfinished` leaves alone.
const FINISHED: &str = "state NOT IN ('completed', 'discarded', 'cancelled', 'split')";

impl FlowDb for Lite<'_> {
    async fn record(&self, e: &[NewEvent]) -> Result<()> {
        events::record(self.0, e)
    }

    async fn job_refs(&self, id: i64) -> Result<Option<JobRefs>> {
        self.one(
            "reading a job",
            "SELECT batch_id, workflow_id, state, queue, kind, priority, args, result \
             FROM jobs WHERE id = ?1",
            [id],
            |r| {
                Ok(JobRefs {
                    batch_id: r.get(0)?,
                    workflow_id: r.get(1)?,
                    state: parsed_col(r, 2)?.unwrap_or(JobState::Available),
                    queue: r.get(3)?,
                    kind: r.get(4)?,
                    priority: r.get(5)?,
                    args: json_col(r, 6).ok().flatten().unwrap_or(Value::Null),
                    result: json_col(r, 7).ok().flatten(),
                })
            },
        )
    }

    async fn move_job(&self, id: i64, m: JobMove<'_>, now: Timestamp) -> Result<Option<String>> {
        let queue = |r: &Row<'_>| r.get(0);
        match m {
            JobMove::Split(result) => self.one(
                "marking a split job",
                "UPDATE jobs SET result = ?2, state = 'split' WHERE id = ?1 RETURNING queue",
                params![id, json_text(result)],
                queue,
            ),
            JobMove::Hold => self.one(
                "holding a workflow step",
                "UPDATE jobs SET state = 'pending' WHERE id = ?1 RETURNING queue",
                [id],
                queue,
            ),
            JobMove::Release(args) => self.one(
                "releasing a workflow step",
                "UPDATE jobs SET state = 'available', args = ?3, scheduled_at = ?2 \
                 WHERE id = ?1 AND state = 'pending' RETURNING queue",
                params![id, now.0, json_text(args)],
                queue,
            ),
            JobMove::Rerun => self
                .0
                .prepare_cached(
                    "UPDATE jobs SET state = 'available', scheduled_at = ?2, finalized_at = NULL, \
                     lease_expires_at = NULL, max_attempts = max(max_attempts, attempt + 1) \
                     WHERE id = ?1 RETURNING queue",
                )
                .and_then(|mut s| s.query_row(params![id, now.0], queue).optional())
                .map_err(|e| match &e {
                    // Only the unique index's refusal is the unique-key conflict.
                    rusqlite::Error::SqliteFailure(f, _)
                        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
                    {
                        unique_rerun_refused(id)
                    }
                    _ => StoreError::db("running a job again", e),
                }),
            JobMove::Reset => self.one(
                "resetting a workflow step",
                "UPDATE jobs SET state = 'pending', finalized_at = NULL, lease_expires_at = NULL \
                 WHERE id = ?1 RETURNING queue",
                [id],
                queue,
            ),
        }
    }

    async fn lock_unfinished(&self, _owner: Owner) -> Result<()> {
        Ok(())
    }

    async fn cancel_unfinished(&self, owner: Owner, now: Timestamp) -> Result<Vec<(i64, Value)>> {
        let (column, id) = match owner {
            Owner::Batch(id) => ("batch_id", id),
            Owner::Workflow(id) => ("workflow_id", id),
        };
        let sql = format!(
            "UPDATE jobs SET state = 'cancelled', finalized_at = ?1, lease_expires_at = NULL \
             WHERE {column} = ?2 AND {FINISHED} RETURNING id, args"
        );
        self.all(
            "cancelling unfinished jobs",
            &sql,
            params![now.0, id],
            |r| Ok((r.get(0)?, json_col(r, 1)?.unwrap_or(Value::Null))),
        )
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name");
        self.all("listing schedules", &sql, [], schedule_from_row)
    }

    async fn schedule(&self, name: &str) -> Result<Option<ScheduleState>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1");
        self.one("reading a schedule", &sql, [name], schedule_from_row)
    }

    async fn upsert_schedule(&self, name: &str, signature: &str, next_at: Timestamp) -> Result<()> {
        self.exec(
            "preparing a schedule",
            "INSERT INTO schedules (name, signature, next_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, \
             next_at = excluded.next_at WHERE schedules.signature <> excluded.signature",
            params![name, signature, next_at.0],
        )?;
        Ok(())
    }

    async fn advance_schedule(&self, f: &ScheduleFire, expect: Timestamp) -> Result<bool> {
        let n = self.exec(
            "advancing a schedule",
            "UPDATE schedules SET next_at = ?1, skipped = skipped + ?2 \
             WHERE name = ?3 AND next_at = ?4",
            params![f.next_at.0, f.skipped as i64, f.name, expect.0],
        )?;
        Ok(n > 0)
    }

    async fn schedule_ran(&self, f: &ScheduleFire, now: Timestamp, fired: &Fired) -> Result<()> {
        self.exec(
            "recording a schedule's run",
            "UPDATE schedules SET last_planned_at = ?1, last_fired_at = ?2, last_job_id = ?3, \
             last_workflow_id = ?4 WHERE name = ?5",
            params![f.planned.0, now.0, fired.job_id, fired.workflow_id, f.name],
        )?;
        Ok(())
    }

    async fn pause_schedule(&self, name: &str, paused: bool) -> Result<()> {
        let sql = "UPDATE schedules SET paused = ?1 WHERE name = ?2";
        self.exec("pausing a schedule", sql, params![paused, name])?;
        Ok(())
    }

    async fn batch(&self, id: i64, _lock: bool) -> Result<Option<Batch>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?1");
        self.one("reading a batch", &sql, [id], batch_from_row)
    }

    async fn batches(&self, f: &BatchFilter) -> Result<Vec<Batch>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE (?1 IS NULL OR state = ?1) \
             AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
        );
        let state = f.state.map(|s| s.as_str());
        let p = params![state, f.before_id, f.limit.clamp(1, 1000)];
        self.all("listing batches", &sql, p, batch_from_row)
    }

    async fn insert_batch(&self, b: &NewBatch, now: Timestamp) -> Result<i64> {
        self.exec(
            "creating a batch",
            "INSERT INTO batches (queue, kind, state, total_items, job_size, max_attempts, \
             priority, created_at) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
            params![
                b.queue,
                b.kind,
                b.items.len() as i64,
                b.job_size,
                b.max_attempts,
                b.priority,
                now.0
            ],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    async fn count_items(&self, batch: i64, column: &str, delta: i64) -> Result<()> {
        let sql = format!("UPDATE batches SET {column} = max(0, {column} + ?1) WHERE id = ?2");
        self.exec("counting a batch's items", &sql, params![delta, batch])?;
        Ok(())
    }

    async fn set_batch_state(&self, id: i64, state: FlowState, now: Timestamp) -> Result<()> {
        match state {
            FlowState::Running => self.exec(
                "reopening a batch",
                "UPDATE batches SET state = 'running', finalized_at = NULL WHERE id = ?1",
                [id],
            ),
            _ => self.exec(
                "ending a batch",
                "UPDATE batches SET state = ?1, finalized_at = ?2 WHERE id = ?3 \
                 AND state = 'running'",
                params![state.as_str(), now.0, id],
            ),
        }?;
        Ok(())
    }

    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>> {
        self.all(
            "listing a batch's failures",
            "SELECT id, args, json_extract(errors, '$[#-1].error'), state FROM jobs \
             WHERE batch_id = ?1 AND (state = 'discarded' OR state = 'cancelled') \
             AND result IS NULL ORDER BY id LIMIT ?2",
            params![id, limit],
            |r| {
                Ok(BatchFailure {
                    job_id: r.get(0)?,
                    items: batch_items(&json_col(r, 1)?.unwrap_or(Value::Null)),
                    error: r.get(2)?,
                    state: parsed_col(r, 3)?.unwrap_or(JobState::Discarded),
                })
            },
        )
    }

    async fn insert_workflow(
        &self,
        w: &NewWorkflow,
        now: Timestamp,
    ) -> Result<std::result::Result<i64, i64>> {
        // The writer runs one write at a time: a running workflow with the key is the answer.
        if let Some(key) = &w.unique_key {
            let sql = "SELECT id FROM workflows WHERE unique_key = ?1 AND state = 'running'";
            if let Some(id) = self.one("starting a workflow", sql, [key], |r| r.get(0))? {
                return Ok(Err(id));
            }
        }
        self.exec(
            "starting a workflow",
            "INSERT INTO workflows (name, state, input, started_by, created_at, deadline, \
             unique_key) VALUES (?1, 'running', ?2, ?3, ?4, ?5, ?6)",
            params![
                w.name,
                json_text(&w.input),
                w.started_by,
                now.0,
                w.deadline.map(|d| d.0),
                w.unique_key
            ],
        )?;
        Ok(Ok(self.0.last_insert_rowid()))
    }

    async fn insert_step(&self, workflow: i64, step: &NewStep, job: i64) -> Result<()> {
        self.exec(
            "starting a workflow",
            "INSERT INTO workflow_steps (workflow_id, step, job_id, parents, optional) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                workflow,
                step.name,
                job,
                json_text(&step.parents),
                step.optional
            ],
        )?;
        Ok(())
    }

    async fn workflow_row(&self, id: i64, _lock: bool) -> Result<Option<Workflow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1");
        self.one("reading a workflow", &sql, [id], workflow_from_row)
    }

    async fn workflows(&self, f: &WorkflowFilter) -> Result<Vec<Workflow>> {
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE (?1 IS NULL OR name = ?1) \
             AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3) \
             AND (?5 IS NULL OR unique_key = ?5) ORDER BY id DESC LIMIT ?4"
        );
        let state = f.state.map(|s| s.as_str());
        let limit = f.limit.clamp(1, 1000);
        let p = params![f.name, state, f.before_id, limit, f.unique_key];
        self.all("listing workflows", &sql, p, workflow_from_row)
    }

    async fn steps(&self, id: i64) -> Result<Vec<WorkflowStep>> {
        self.all(
            "reading a workflow's steps",
            "SELECT s.step, s.job_id, s.parents, s.optional, j.state, j.attempt, j.result, \
             json_extract(j.errors, '$[#-1].error') FROM workflow_steps s \
             LEFT JOIN jobs j ON j.id = s.job_id WHERE s.workflow_id = ?1 ORDER BY s.job_id",
            [id],
            |r| {
                Ok(WorkflowStep {
                    name: r.get(0)?,
                    job_id: r.get(1)?,
                    parents: json_col(r, 2)?.unwrap_or_default(),
                    optional: r.get(3)?,
                    state: parsed_col(r, 4)?,
                    attempt: r.get::<_, Option<u32>>(5)?.unwrap_or(0),
                    result: json_col(r, 6)?,
                    error: r.get(7)?,
                })
            },
        )
    }

    async fn set_workflow(&self, id: i64, set: WorkflowSet<'_>, now: Timestamp) -> Result<()> {
        match set {
            WorkflowSet::Completed(result) => self.exec(
                "completing a workflow",
                "UPDATE workflows SET state = 'completed', result = ?1, finalized_at = ?2 \
                 WHERE id = ?3",
                params![json_text(result), now.0, id],
            ),
            WorkflowSet::Ended(state, error) => self.exec(
                "ending a workflow",
                "UPDATE workflows SET state = ?1, error = ?2, finalized_at = ?3 WHERE id = ?4",
                params![state.as_str(), error, now.0, id],
            ),
            WorkflowSet::Reopened(deadline) => self.exec(
                "reopening a workflow",
                "UPDATE workflows SET state = 'running', error = NULL, finalized_at = NULL, \
                 deadline = ?1 WHERE id = ?2",
                params![deadline.map(|d| d.0), id],
            ),
        }?;
        Ok(())
    }

    async fn last_step_errors(&self, workflow: i64) -> Result<Option<Value>> {
        let errors = self.one(
            "reading a workflow's failed step",
            "SELECT errors FROM jobs WHERE workflow_id = ?1 AND state = 'discarded' \
             ORDER BY finalized_at DESC, id DESC LIMIT 1",
            [workflow],
            |r| r.get::<_, String>(0),
        )?;
        Ok(errors.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn overdue_workflows(&self, now: Timestamp) -> Result<Vec<i64>> {
        self.all(
            "finding overdue workflows",
            "SELECT id FROM workflows WHERE state = 'running' AND deadline IS NOT NULL \
             AND deadline <= ?1 ORDER BY id LIMIT 1000",
            [now.0],
            |r| r.get(0),
        )
    }

    async fn prune_flows(&self, before: Timestamp) -> Result<u64> {
        let b = "DELETE FROM batches WHERE finalized_at < ?1";
        let w = "DELETE FROM workflows WHERE finalized_at < ?1";
        let batches = self.exec("forgetting old batches", b, [before.0])?;
        let workflows = self.exec("forgetting old workflows", w, [before.0])?;
        Ok((batches + workflows) as u64)
    }

    async fn all_flows(&self) -> Result<(Vec<Batch>, Vec<Workflow>)> {
        let b = format!("SELECT {BATCH_COLUMNS} FROM batches ORDER BY id");
        let w = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows ORDER BY id");
        Ok((
            self.all("exporting batches", &b, [], batch_from_row)?,
            self.all("exporting workflows", &w, [], workflow_from_row)?,
        ))
    }

    async fn import_rows(&self, d: &FlowsDump) -> Result<()> {
        let conflict = |what: String| {
            move |e: rusqlite::Error| StoreError::Conflict(format!("cannot import {what}: {e}"))
        };
        let put = |sql: String, p: &[&dyn rusqlite::ToSql], what: String| {
            self.0.execute(&sql, p).map(drop).map_err(conflict(what))
        };
        for s in &d.schedules {
            put(
                format!(
                    "INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
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
                format!("schedule {}", s.name),
            )?;
        }
        for b in &d.batches {
            put(
                format!(
                    "INSERT INTO batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
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
                format!("batch {}", b.id),
            )?;
        }
        for w in &d.workflows {
            put(
                format!(
                    "INSERT INTO workflows ({WORKFLOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
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
                format!("workflow {}", w.id),
            )?;
            for s in &w.steps {
                put(
                    "INSERT INTO workflow_steps (workflow_id, step, job_id, parents, optional) \
                     VALUES (?1, ?2, ?3, ?4, ?5)"
                        .into(),
                    params![w.id, s.name, s.job_id, json_text(&s.parents), s.optional],
                    format!("workflow {}'s steps", w.id),
                )?;
            }
        }
        Ok(())
    }
}
