//! The SQL of schedules, batches and workflows on PostgreSQL: the primitives of
//! [`FlowDb`], which `flows::engine` moves once for both stores.
//!
//! Several nodes may finish steps of one workflow at once. The engine therefore reads a
//! workflow's (or batch's) row with `lock` first: under READ COMMITTED the second
//! transaction then reads the steps as the first one committed them, so a join step is
//! never left waiting because each side saw the other still running.
//!
//! Cancelling a workflow's unfinished steps waits for a step another transaction holds (a
//! fetch, a heartbeat, a finish) rather than skipping it: a skipped step could run on
//! after its workflow ended. A finish that waits on the workflow's row meanwhile is a
//! deadlock PostgreSQL breaks; its caller retries.

use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::events;
use crate::error::{Result, StoreError};
use crate::flows::engine::{FlowDb, JobMove, JobRefs, Owner, WorkflowSet, unique_rerun_refused};
use crate::flows::{
    Batch, BatchFailure, BatchFilter, Fired, FlowState, FlowsDump, NewBatch, NewStep, NewWorkflow,
    ScheduleFire, ScheduleState, Workflow, WorkflowFilter, WorkflowStep, batch_items,
};
use crate::model::{NewEvent, Timestamp};

/// The flow primitives on one PostgreSQL client or transaction.
pub(crate) struct Pg<'c, C>(pub &'c C);

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(super) fn parsed<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse().map_err(StoreError::Invalid)
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

impl<C: GenericClient> Pg<'_, C> {
    pub(super) async fn exec(&self, action: &'static str, sql: &str, p: Params<'_>) -> Result<u64> {
        self.0.execute(sql, p).await.map_err(db(action))
    }

    pub(super) async fn opt(
        &self,
        action: &'static str,
        sql: &str,
        p: Params<'_>,
    ) -> Result<Option<Row>> {
        self.0.query_opt(sql, p).await.map_err(db(action))
    }

    async fn rows(&self, action: &'static str, sql: &str, p: Params<'_>) -> Result<Vec<Row>> {
        self.0.query(sql, p).await.map_err(db(action))
    }
}

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

const BATCH_COLUMNS: &str = "id, queue, kind, state, total_items, job_size, max_attempts, \
    done_items, failed_items, cancelled_items, created_at, finalized_at";

fn batch_from_row(r: &Row) -> Result<Batch> {
    Ok(Batch {
        id: r.get(0),
        queue: r.get(1),
        kind: r.get(2),
        state: parsed(r.get(3))?,
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

const WORKFLOW_COLUMNS: &str = "id, name, state, input, result, error, started_by, created_at, \
     deadline, finalized_at, unique_key";

fn workflow_from_row(r: &Row) -> Result<Workflow> {
    Ok(Workflow {
        id: r.get(0),
        name: r.get(1),
        state: parsed(r.get(2))?,
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

/// The rows `cancel_unfinished` moves.
const UNFINISHED: &str = "state NOT IN ('completed', 'discarded', 'cancelled', 'split')";

fn owner_column(owner: Owner) -> (&'static str, i64) {
    match owner {
        Owner::Batch(id) => ("batch_id", id),
        Owner::Workflow(id) => ("workflow_id", id),
    }
}

fn lock_clause(lock: bool) -> &'static str {
    if lock { " FOR UPDATE" } else { "" }
}

impl<C: GenericClient> FlowDb for Pg<'_, C> {
    async fn record(&self, e: &[NewEvent]) -> Result<()> {
        events::record(self.0, e).await
    }

    async fn job_refs(&self, id: i64) -> Result<Option<JobRefs>> {
        let sql = "SELECT batch_id, workflow_id, state, queue, kind, priority, args, result \
                   FROM berth_jobs WHERE id = $1";
        let Some(r) = self.opt("reading a job", sql, &[&id]).await? else {
            return Ok(None);
        };
        Ok(Some(JobRefs {
            batch_id: r.get(0),
            workflow_id: r.get(1),
            state: parsed(r.get(2))?,
            queue: r.get(3),
            kind: r.get(4),
            priority: r.get(5),
            args: r.get(6),
            result: r.get(7),
        }))
    }

    async fn move_job(&self, id: i64, m: JobMove<'_>, now: Timestamp) -> Result<Option<String>> {
        let row = match m {
            JobMove::Split(result) => {
                let sql = "UPDATE berth_jobs SET result = $2, state = 'split' WHERE id = $1 \
                           RETURNING queue";
                self.opt("marking a split job", sql, &[&id, result]).await
            }
            JobMove::Hold => {
                let sql = "UPDATE berth_jobs SET state = 'pending' WHERE id = $1 RETURNING queue";
                self.opt("holding a workflow step", sql, &[&id]).await
            }
            JobMove::Release(args) => {
                let sql = "UPDATE berth_jobs SET state = 'available', args = $3, \
                           scheduled_at = $2 WHERE id = $1 AND state = 'pending' RETURNING queue";
                let p: Params = &[&id, &now.0, args];
                self.opt("releasing a workflow step", sql, p).await
            }
            JobMove::Rerun => {
                let sql = "UPDATE berth_jobs SET state = 'available', scheduled_at = $2, \
                           finalized_at = NULL, lease_expires_at = NULL, \
                           max_attempts = greatest(max_attempts, attempt + 1) \
                           WHERE id = $1 RETURNING queue";
                let out = self.0.query_opt(sql, &[&id, &now.0]).await;
                out.map_err(|e| match e.code() {
                    Some(&SqlState::UNIQUE_VIOLATION) => unique_rerun_refused(id),
                    _ => StoreError::db("running a job again", e),
                })
            }
            JobMove::Reset => {
                let sql = "UPDATE berth_jobs SET state = 'pending', finalized_at = NULL, \
                           lease_expires_at = NULL WHERE id = $1 RETURNING queue";
                self.opt("resetting a workflow step", sql, &[&id]).await
            }
        }?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn lock_unfinished(&self, owner: Owner) -> Result<()> {
        let (column, id) = owner_column(owner);
        let sql = format!(
            "SELECT id FROM berth_jobs WHERE {column} = $1 AND {UNFINISHED} ORDER BY id \
             FOR UPDATE"
        );
        self.exec("locking unfinished jobs", &sql, &[&id]).await?;
        Ok(())
    }

    async fn cancel_unfinished(&self, owner: Owner, now: Timestamp) -> Result<Vec<(i64, Value)>> {
        let (column, id) = owner_column(owner);
        let sql = format!(
            "UPDATE berth_jobs SET state = 'cancelled', finalized_at = $1, \
             lease_expires_at = NULL WHERE {column} = $2 AND {UNFINISHED} RETURNING id, args"
        );
        let rows = self
            .rows("cancelling unfinished jobs", &sql, &[&now.0, &id])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM berth_schedules ORDER BY name");
        let rows = self.rows("listing schedules", &sql, &[]).await?;
        Ok(rows.iter().map(schedule_from_row).collect())
    }

    async fn schedule(&self, name: &str) -> Result<Option<ScheduleState>> {
        let sql = format!("SELECT {SCHEDULE_COLUMNS} FROM berth_schedules WHERE name = $1");
        let row = self.opt("reading a schedule", &sql, &[&name]).await?;
        Ok(row.as_ref().map(schedule_from_row))
    }

    async fn upsert_schedule(&self, name: &str, signature: &str, next_at: Timestamp) -> Result<()> {
        self.exec(
            "preparing a schedule",
            "INSERT INTO berth_schedules (name, signature, next_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET signature = excluded.signature, \
             next_at = excluded.next_at WHERE berth_schedules.signature <> excluded.signature",
            &[&name, &signature, &next_at.0],
        )
        .await?;
        Ok(())
    }

    async fn advance_schedule(&self, f: &ScheduleFire, expect: Timestamp) -> Result<bool> {
        let n = self
            .exec(
                "advancing a schedule",
                "UPDATE berth_schedules SET next_at = $1, skipped = skipped + $2 \
                 WHERE name = $3 AND next_at = $4",
                &[&f.next_at.0, &(f.skipped as i64), &f.name, &expect.0],
            )
            .await?;
        Ok(n > 0)
    }

    async fn schedule_ran(&self, f: &ScheduleFire, now: Timestamp, fired: &Fired) -> Result<()> {
        self.exec(
            "recording a schedule's run",
            "UPDATE berth_schedules SET last_planned_at = $1, last_fired_at = $2, \
             last_job_id = $3, last_workflow_id = $4 WHERE name = $5",
            &[
                &f.planned.0,
                &now.0,
                &fired.job_id,
                &fired.workflow_id,
                &f.name,
            ],
        )
        .await?;
        Ok(())
    }

    async fn pause_schedule(&self, name: &str, paused: bool) -> Result<()> {
        let sql = "UPDATE berth_schedules SET paused = $1 WHERE name = $2";
        self.exec("pausing a schedule", sql, &[&paused, &name])
            .await?;
        Ok(())
    }

    async fn batch(&self, id: i64, lock: bool) -> Result<Option<Batch>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM berth_batches WHERE id = $1{}",
            lock_clause(lock)
        );
        let row = self.opt("reading a batch", &sql, &[&id]).await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    async fn batches(&self, f: &BatchFilter) -> Result<Vec<Batch>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM berth_batches WHERE ($1::text IS NULL OR state = $1) \
             AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let state = f.state.map(|s| s.as_str());
        let limit = i64::from(f.limit.clamp(1, 1000));
        let rows = self
            .rows("listing batches", &sql, &[&state, &f.before_id, &limit])
            .await?;
        rows.iter().map(batch_from_row).collect()
    }

    async fn insert_batch(&self, b: &NewBatch, now: Timestamp) -> Result<i64> {
        let row = self
            .0
            .query_one(
                "INSERT INTO berth_batches (queue, kind, state, total_items, job_size, \
                 max_attempts, priority, created_at) VALUES ($1, $2, 'running', $3, $4, $5, $6, $7) \
                 RETURNING id",
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
        Ok(row.get(0))
    }

    async fn count_items(&self, batch: i64, column: &str, delta: i64) -> Result<()> {
        let sql =
            format!("UPDATE berth_batches SET {column} = greatest(0, {column} + $1) WHERE id = $2");
        self.exec("counting a batch's items", &sql, &[&delta, &batch])
            .await?;
        Ok(())
    }

    async fn set_batch_state(&self, id: i64, state: FlowState, now: Timestamp) -> Result<()> {
        match state {
            FlowState::Running => {
                let sql = "UPDATE berth_batches SET state = 'running', finalized_at = NULL \
                           WHERE id = $1";
                self.exec("reopening a batch", sql, &[&id]).await
            }
            _ => {
                let sql = "UPDATE berth_batches SET state = $1, finalized_at = $2 WHERE id = $3 \
                           AND state = 'running'";
                let p: Params = &[&state.as_str(), &now.0, &id];
                self.exec("ending a batch", sql, p).await
            }
        }?;
        Ok(())
    }

    async fn batch_failures(&self, id: i64, limit: u32) -> Result<Vec<BatchFailure>> {
        let sql = "SELECT id, args, errors -> -1 ->> 'error', state FROM berth_jobs \
                   WHERE batch_id = $1 AND state IN ('discarded', 'cancelled') \
                   AND result IS NULL ORDER BY id LIMIT $2";
        let rows = self
            .rows("listing a batch's failures", sql, &[&id, &i64::from(limit)])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchFailure {
                    job_id: r.get(0),
                    items: batch_items(&r.get::<_, Value>(1)),
                    error: r.get(2),
                    state: parsed(r.get(3))?,
                })
            })
            .collect()
    }

    async fn insert_workflow(
        &self,
        w: &NewWorkflow,
        now: Timestamp,
    ) -> Result<std::result::Result<i64, i64>> {
        // Two starts with one unique key at once from two nodes: the index lets one
        // insert, the other finds it.
        let inserted = self
            .opt(
                "starting a workflow",
                "INSERT INTO berth_workflows (name, state, input, started_by, created_at, \
                 deadline, unique_key) VALUES ($1, 'running', $2, $3, $4, $5, $6) \
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
            .await?;
        if let Some(row) = inserted {
            return Ok(Ok(row.get(0)));
        }
        let sql = "SELECT id FROM berth_workflows WHERE unique_key = $1 AND state = 'running'";
        let running = self.0.query_one(sql, &[&w.unique_key]).await;
        Ok(Err(running.map_err(db("starting a workflow"))?.get(0)))
    }

    async fn insert_step(&self, workflow: i64, step: &NewStep, job: i64) -> Result<()> {
        self.exec(
            "starting a workflow",
            "INSERT INTO berth_workflow_steps (workflow_id, step, job_id, parents, optional) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &workflow,
                &step.name,
                &job,
                &json!(step.parents),
                &step.optional,
            ],
        )
        .await?;
        Ok(())
    }

    async fn workflow_row(&self, id: i64, lock: bool) -> Result<Option<Workflow>> {
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM berth_workflows WHERE id = $1{}",
            lock_clause(lock)
        );
        let row = self.opt("reading a workflow", &sql, &[&id]).await?;
        row.as_ref().map(workflow_from_row).transpose()
    }

    async fn workflows(&self, f: &WorkflowFilter) -> Result<Vec<Workflow>> {
        let sql = format!(
            "SELECT {WORKFLOW_COLUMNS} FROM berth_workflows WHERE ($1::text IS NULL OR name = $1) \
             AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR id < $3) \
             AND ($5::text IS NULL OR unique_key = $5) ORDER BY id DESC LIMIT $4"
        );
        let state = f.state.map(|s| s.as_str());
        let limit = i64::from(f.limit.clamp(1, 1000));
        let p: Params = &[&f.name, &state, &f.before_id, &limit, &f.unique_key];
        let rows = self.rows("listing workflows", &sql, p).await?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn steps(&self, id: i64) -> Result<Vec<WorkflowStep>> {
        let sql = "SELECT s.step, s.job_id, s.parents, s.optional, j.state, j.attempt, j.result, \
                   j.errors -> -1 ->> 'error' FROM berth_workflow_steps s \
                   LEFT JOIN berth_jobs j ON j.id = s.job_id WHERE s.workflow_id = $1 \
                   ORDER BY s.job_id";
        let rows = self.rows("reading a workflow's steps", sql, &[&id]).await?;
        rows.iter()
            .map(|r| {
                Ok(WorkflowStep {
                    name: r.get(0),
                    job_id: r.get(1),
                    parents: serde_json::from_value(r.get(2)).unwrap_or_default(),
                    optional: r.get(3),
                    state: r.get::<_, Option<&str>>(4).map(parsed).transpose()?,
                    attempt: r.get::<_, Option<i32>>(5).map(u32_of).unwrap_or(0),
                    result: r.get(6),
                    error: r.get(7),
                })
            })
            .collect()
    }

    async fn set_workflow(&self, id: i64, set: WorkflowSet<'_>, now: Timestamp) -> Result<()> {
        match set {
            WorkflowSet::Completed(result) => {
                let sql = "UPDATE berth_workflows SET state = 'completed', result = $1, \
                           finalized_at = $2 WHERE id = $3";
                self.exec("completing a workflow", sql, &[result, &now.0, &id])
                    .await
            }
            WorkflowSet::Ended(state, error) => {
                let sql = "UPDATE berth_workflows SET state = $1, error = $2, finalized_at = $3 \
                           WHERE id = $4";
                let p: Params = &[&state.as_str(), &error, &now.0, &id];
                self.exec("ending a workflow", sql, p).await
            }
            WorkflowSet::Reopened(deadline) => {
                let sql = "UPDATE berth_workflows SET state = 'running', error = NULL, \
                           finalized_at = NULL, deadline = $1 WHERE id = $2";
                let deadline = deadline.map(|d| d.0);
                self.exec("reopening a workflow", sql, &[&deadline, &id])
                    .await
            }
        }?;
        Ok(())
    }

    async fn last_step_errors(&self, workflow: i64) -> Result<Option<Value>> {
        let sql = "SELECT errors FROM berth_jobs WHERE workflow_id = $1 AND state = 'discarded' \
                   ORDER BY finalized_at DESC, id DESC LIMIT 1";
        let row = self
            .opt("reading a workflow's failed step", sql, &[&workflow])
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn overdue_workflows(&self, now: Timestamp) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM berth_workflows WHERE state = 'running' \
                   AND deadline IS NOT NULL AND deadline <= $1 ORDER BY id LIMIT 1000";
        let rows = self
            .rows("finding overdue workflows", sql, &[&now.0])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn prune_flows(&self, before: Timestamp) -> Result<u64> {
        let b = "DELETE FROM berth_batches WHERE finalized_at < $1";
        let w = "DELETE FROM berth_workflows WHERE finalized_at < $1";
        let batches = self.exec("forgetting old batches", b, &[&before.0]).await?;
        let workflows = self
            .exec("forgetting old workflows", w, &[&before.0])
            .await?;
        Ok(batches + workflows)
    }

    async fn all_flows(&self) -> Result<(Vec<Batch>, Vec<Workflow>)> {
        let b = format!("SELECT {BATCH_COLUMNS} FROM berth_batches ORDER BY id");
        let w = format!("SELECT {WORKFLOW_COLUMNS} FROM berth_workflows ORDER BY id");
        let batches = self.rows("exporting batches", &b, &[]).await?;
        let workflows = self.rows("exporting workflows", &w, &[]).await?;
        Ok((
            batches.iter().map(batch_from_row).collect::<Result<_>>()?,
            workflows
                .iter()
                .map(workflow_from_row)
                .collect::<Result<_>>()?,
        ))
    }

    async fn import_rows(&self, d: &FlowsDump) -> Result<()> {
        let put = async |sql: &str, p: Params<'_>, what: String| {
            let out = self.0.execute(sql, p).await;
            out.map(drop)
                .map_err(|e| StoreError::Conflict(format!("cannot import {what}: {e}")))
        };
        let schedule = format!(
            "INSERT INTO berth_schedules ({SCHEDULE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        for s in &d.schedules {
            let p: Params = &[
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
            put(&schedule, p, format!("schedule {}", s.name)).await?;
        }
        let batch = format!(
            "INSERT INTO berth_batches ({BATCH_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        for b in &d.batches {
            let p: Params = &[
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
            put(&batch, p, format!("batch {}", b.id)).await?;
        }
        let workflow = format!(
            "INSERT INTO berth_workflows ({WORKFLOW_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let step = "INSERT INTO berth_workflow_steps (workflow_id, step, job_id, parents, \
                    optional) VALUES ($1, $2, $3, $4, $5)";
        for w in &d.workflows {
            let p: Params = &[
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
            put(&workflow, p, format!("workflow {}", w.id)).await?;
            for s in &w.steps {
                let parents = json!(s.parents);
                let p: Params = &[&w.id, &s.name, &s.job_id, &parents, &s.optional];
                put(step, p, format!("workflow {}'s steps", w.id)).await?;
            }
        }
        // Later inserts continue above the imported ids.
        for table in ["berth_batches", "berth_workflows"] {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 greatest((SELECT max(id) FROM {table}), 1))"
            );
            self.exec("moving an id sequence past the imported rows", &sql, &[])
                .await?;
        }
        Ok(())
    }
}
