//! The SQL for jobs and queues on PostgreSQL.

use std::collections::BTreeMap;

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::flows::{Pg, parsed};
use crate::error::{Result, StoreError};
use crate::flows::Touched;
use crate::flows::engine::JobDb;
use crate::model::{
    AttemptError, AttemptRef, Finish, Finished, Inserted, Job, JobFilter, JobState, LeasedJob,
    NewJob, Outcome, QueueStats, RunningLease, Timestamp,
};
use crate::notices::{DiscardedJob, discarded_event, outcome_error, outcome_output};
use crate::store::FetchRequest;

/// The channel that carries "jobs are available on queue X" between nodes.
pub(crate) const CHANNEL: &str = "berth_jobs";

pub(crate) const JOB_COLUMNS: &str = "id, queue, kind, args, state, priority, attempt, max_attempts, \
    scheduled_at, attempted_at, attempted_by, lease_expires_at, finalized_at, errors, result, \
    output, unique_key, batch_id, workflow_id, tags, created_at";

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn state_of(s: &str) -> Result<JobState> {
    s.parse().map_err(StoreError::Invalid)
}

fn u32_of(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub(crate) fn job_from_row(r: &Row) -> Result<Job> {
    let errors: Value = r.get(13);
    let tags: Value = r.get(19);
    Ok(Job {
        id: r.get(0),
        queue: r.get(1),
        kind: r.get(2),
        args: r.get(3),
        state: state_of(r.get(4))?,
        priority: r.get(5),
        attempt: u32_of(r.get(6)),
        max_attempts: u32_of(r.get(7)),
        scheduled_at: Timestamp(r.get(8)),
        attempted_at: r.get::<_, Option<i64>>(9).map(Timestamp),
        attempted_by: r.get(10),
        lease_expires_at: r.get::<_, Option<i64>>(11).map(Timestamp),
        finalized_at: r.get::<_, Option<i64>>(12).map(Timestamp),
        errors: serde_json::from_value::<Vec<AttemptError>>(errors)
            .map_err(|e| StoreError::Invalid(format!("a job's errors are not readable: {e}")))?,
        result: r.get(14),
        output: r.get(15),
        unique_key: r.get(16),
        batch_id: r.get(17),
        workflow_id: r.get(18),
        tags: serde_json::from_value(tags).unwrap_or_default(),
        created_at: Timestamp(r.get(20)),
    })
}

/// Announces available jobs on `queues` to every node (delivered at commit).
pub(crate) async fn notify(c: &impl GenericClient, queues: &[String]) -> Result<()> {
    if queues.is_empty() {
        return Ok(());
    }
    c.execute(
        "SELECT pg_notify($1, q) FROM (SELECT DISTINCT unnest($2::text[]) AS q) s",
        &[&CHANNEL, &queues],
    )
    .await
    .map(|_| ())
    .map_err(db("announcing available jobs"))
}

pub(crate) async fn insert(
    c: &impl GenericClient,
    jobs: &[NewJob],
    now: Timestamp,
) -> Result<Vec<Inserted>> {
    let mut out: Vec<Option<Inserted>> = vec![None; jobs.len()];
    let state_of_new = |j: &NewJob| {
        if j.scheduled_at.unwrap_or(now) > now {
            JobState::Scheduled
        } else {
            JobState::Available
        }
    };
    // Jobs without a unique key go in one statement; RETURNING gives no order, but the
    // identity is drawn in insertion order (ORDER BY ord), so sorted ids match.
    let plain: Vec<usize> = (0..jobs.len())
        .filter(|i| jobs[*i].unique_key.is_none())
        .collect();
    if !plain.is_empty() {
        let col = |f: &dyn Fn(&NewJob) -> String| -> Vec<String> {
            plain.iter().map(|i| f(&jobs[*i])).collect()
        };
        let queues = col(&|j| j.queue.clone());
        let kinds = col(&|j| j.kind.clone());
        let states = col(&|j| state_of_new(j).as_str().to_string());
        let args: Vec<Value> = plain.iter().map(|i| jobs[*i].args.clone()).collect();
        let tags: Vec<Value> = plain
            .iter()
            .map(|i| serde_json::json!(jobs[*i].tags))
            .collect();
        let prio: Vec<i32> = plain.iter().map(|i| jobs[*i].priority).collect();
        let max: Vec<i32> = plain
            .iter()
            .map(|i| i32::try_from(jobs[*i].max_attempts).unwrap_or(i32::MAX))
            .collect();
        let at: Vec<i64> = plain
            .iter()
            .map(|i| jobs[*i].scheduled_at.unwrap_or(now).0)
            .collect();
        let batch: Vec<Option<i64>> = plain.iter().map(|i| jobs[*i].batch_id).collect();
        let wf: Vec<Option<i64>> = plain.iter().map(|i| jobs[*i].workflow_id).collect();
        let rows = c
            .query(
                "INSERT INTO berth_jobs (queue, kind, args, state, priority, max_attempts, \
                 scheduled_at, tags, batch_id, workflow_id, created_at) \
                 SELECT q, k, a, s, p, m, sa, t, b, w, $11 FROM unnest($1::text[], $2::text[], \
                 $3::jsonb[], $4::text[], $5::int[], $6::int[], $7::bigint[], $8::jsonb[], \
                 $9::bigint[], $10::bigint[]) WITH ORDINALITY AS u(q, k, a, s, p, m, sa, t, b, w, ord) \
                 ORDER BY ord RETURNING id",
                &[
                    &queues, &kinds, &args, &states, &prio, &max, &at, &tags, &batch, &wf, &now.0,
                ],
            )
            .await
            .map_err(db("inserting jobs"))?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        ids.sort_unstable();
        for (i, id) in plain.iter().zip(ids) {
            out[*i] = Some(Inserted {
                id,
                duplicate: false,
                state: state_of_new(&jobs[*i]),
            });
        }
    }
    // Keyed jobs one by one, in key order: two batches holding the same keys then wait
    // for each other in the same order, never in a cycle.
    let mut keyed: Vec<(usize, &NewJob)> = jobs
        .iter()
        .enumerate()
        .filter(|(_, j)| j.unique_key.is_some())
        .collect();
    keyed.sort_by(|a, b| a.1.unique_key.cmp(&b.1.unique_key));
    for (i, j) in keyed {
        let state = state_of_new(j);
        let row = c
            .query_opt(
                "INSERT INTO berth_jobs (queue, kind, args, state, priority, max_attempts, \
                 scheduled_at, unique_key, tags, batch_id, workflow_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL \
                 AND state NOT IN ('completed', 'discarded', 'cancelled', 'split') DO NOTHING RETURNING id",
                &[
                    &j.queue,
                    &j.kind,
                    &j.args,
                    &state.as_str(),
                    &j.priority,
                    &i32::try_from(j.max_attempts).unwrap_or(i32::MAX),
                    &j.scheduled_at.unwrap_or(now).0,
                    &j.unique_key,
                    &serde_json::json!(j.tags),
                    &j.batch_id,
                    &j.workflow_id,
                    &now.0,
                ],
            )
            .await
            .map_err(db("inserting a job"))?;
        out[i] = Some(match row {
            Some(r) => Inserted {
                id: r.get(0),
                duplicate: false,
                state,
            },
            None => {
                let r = c
                    .query_one(
                        "SELECT id, state FROM berth_jobs WHERE unique_key = $1 \
                         AND state NOT IN ('completed', 'discarded', 'cancelled', 'split')",
                        &[&j.unique_key],
                    )
                    .await
                    .map_err(db("finding the job a unique key belongs to"))?;
                Inserted {
                    id: r.get(0),
                    duplicate: true,
                    state: state_of(r.get(1))?,
                }
            }
        });
    }
    let out: Vec<Inserted> = out
        .into_iter()
        .map(|o| o.expect("every job placed"))
        .collect();
    let available: Vec<String> = jobs
        .iter()
        .zip(&out)
        .filter(|(_, o)| !o.duplicate && o.state == JobState::Available)
        .map(|(j, _)| j.queue.clone())
        .collect();
    notify(c, &available).await?;
    Ok(out)
}

pub(crate) async fn fetch(c: &impl GenericClient, req: &FetchRequest) -> Result<Vec<LeasedJob>> {
    if req.limit == 0 {
        return Ok(Vec::new());
    }
    // The CTE locks the rows it picks and skips rows other nodes hold locked, so that
    // concurrent fetches never wait for each other nor hand out the same job; it walks the
    // partial fetch index in hand-out order.
    let rows = c
        .query(
            "WITH picked AS ( \
               SELECT id FROM berth_jobs \
               WHERE state = 'available' AND queue = $1 \
                 AND NOT EXISTS (SELECT 1 FROM berth_queues WHERE name = $1 AND paused) \
               ORDER BY priority, scheduled_at, id \
               LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE berth_jobs j SET state = 'running', attempt = j.attempt + 1, \
               attempted_at = $3, attempted_by = $4, lease_expires_at = $5 \
             FROM picked WHERE j.id = picked.id \
             RETURNING j.id, j.kind, j.args, j.attempt, j.max_attempts, j.priority, \
               j.created_at, j.scheduled_at, j.workflow_id",
            &[
                &req.queue,
                &i64::from(req.limit),
                &req.now.0,
                &req.worker,
                &req.lease_until.0,
            ],
        )
        .await
        .map_err(db("fetching jobs"))?;
    let mut jobs: Vec<(i64, LeasedJob)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<_, i64>(7),
                LeasedJob {
                    id: r.get(0),
                    queue: req.queue.clone(),
                    kind: r.get(1),
                    args: r.get(2),
                    attempt: u32_of(r.get(3)),
                    max_attempts: u32_of(r.get(4)),
                    priority: r.get(5),
                    lease_expires_at: req.lease_until,
                    created_at: Timestamp(r.get(6)),
                    workflow_id: r.get(8),
                },
            )
        })
        .collect();
    jobs.sort_by_key(|(at, j)| (j.priority, *at, j.id));
    Ok(jobs.into_iter().map(|(_, j)| j).collect())
}

pub(crate) async fn heartbeat(
    c: &impl GenericClient,
    attempts: &[AttemptRef],
    lease_until: Timestamp,
) -> Result<Vec<bool>> {
    let ids: Vec<i64> = attempts.iter().map(|a| a.id).collect();
    let att: Vec<i32> = attempts.iter().map(|a| a.attempt as i32).collect();
    let rows = c
        .query(
            "UPDATE berth_jobs j SET lease_expires_at = $3 \
             FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt) \
             WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
             RETURNING j.id",
            &[&ids, &att, &lease_until.0],
        )
        .await
        .map_err(db("extending leases"))?;
    let alive: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    Ok(attempts.iter().map(|a| alive.contains(&a.id)).collect())
}

fn entry(attempt: u32, at: Timestamp, error: &str, output: Option<&str>) -> Value {
    serde_json::json!(AttemptError {
        attempt,
        at,
        error: error.to_string(),
        output: output.map(str::to_string),
    })
}

const GUARD: &str = "WHERE id = $1 AND attempt = $2 AND state = 'running'";
const FAILED_SET: &str = "state = CASE WHEN attempt >= max_attempts THEN 'discarded' \
      WHEN $4::bigint <= $3::bigint THEN 'available' ELSE 'retryable' END, \
    finalized_at = CASE WHEN attempt >= max_attempts THEN $3::bigint END, \
    scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE $4::bigint END, \
    lease_expires_at = NULL, output = $5, errors = errors || jsonb_build_array($6::jsonb)";

/// What the event of a discarded job names.
async fn discarded_job(c: &impl GenericClient, id: i64) -> Result<DiscardedJob> {
    let r = c
        .query_one(
            "SELECT queue, kind, attempt, max_attempts, attempted_by, args FROM berth_jobs WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(db("reading a discarded job"))?;
    Ok(DiscardedJob {
        id,
        queue: r.get(0),
        kind: r.get(1),
        attempt: r.get::<_, i32>(2) as u32,
        max_attempts: r.get::<_, i32>(3) as u32,
        attempted_by: r.get(4),
        args: r.get(5),
    })
}

/// Records outcomes; returns, per finish, what happened and the job's queue, and the jobs
/// of batches and workflows that reached a final state (for the flow hooks).
pub(crate) async fn finish(
    c: &impl GenericClient,
    finishes: &[Finish],
    now: Timestamp,
) -> Result<(Vec<(Finished, Option<String>)>, Vec<Touched>)> {
    let mut out: Vec<Option<(Finished, Option<String>)>> = vec![None; finishes.len()];
    let mut touched = Vec::new();
    let mut discarded = Vec::new();
    // Rows are locked in id order by every batched write (see `heartbeat`).
    let mut order: Vec<usize> = (0..finishes.len()).collect();
    order.sort_unstable_by_key(|i| finishes[*i].attempt.id);
    // The common case, completions, in one statement.
    let done: Vec<usize> = order
        .iter()
        .copied()
        .filter(|i| matches!(finishes[*i].outcome, Outcome::Completed { .. }))
        .collect();
    if !done.is_empty() {
        let ids: Vec<i64> = done.iter().map(|i| finishes[*i].attempt.id).collect();
        let att: Vec<i32> = done
            .iter()
            .map(|i| finishes[*i].attempt.attempt as i32)
            .collect();
        let (mut results, mut outputs): (Vec<Option<Value>>, Vec<Option<String>>) =
            (Vec::new(), Vec::new());
        for i in &done {
            if let Outcome::Completed { result, output } = &finishes[*i].outcome {
                results.push(result.clone());
                outputs.push(output.clone());
            }
        }
        let rows = c
            .query(
                "UPDATE berth_jobs j SET state = 'completed', finalized_at = $5, \
                   lease_expires_at = NULL, result = u.result, output = u.output \
                 FROM unnest($1::bigint[], $2::int[], $3::jsonb[], $4::text[]) \
                   AS u(id, attempt, result, output) \
                 WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' \
                 RETURNING j.id, j.batch_id, j.workflow_id",
                &[&ids, &att, &results, &outputs, &now.0],
            )
            .await
            .map_err(db("recording completions"))?;
        let applied: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        touched.extend(rows.iter().filter_map(|r| {
            Touched::of_final(r.get(0), JobState::Completed, r.get(1), r.get(2), true)
        }));
        for i in done {
            out[i] = Some(if applied.contains(&finishes[i].attempt.id) {
                (Finished::Applied(JobState::Completed), None)
            } else {
                (Finished::Stale, None)
            });
        }
    }
    for i in order {
        let f = &finishes[i];
        if out[i].is_some() {
            continue;
        }
        let (id, attempt) = (f.attempt.id, f.attempt.attempt as i32);
        let a = f.attempt.attempt;
        let row = match &f.outcome {
            Outcome::Completed { .. } => unreachable!("completions were written above"),
            Outcome::Failed {
                error,
                output,
                retry_at,
            } => {
                let sql = format!("UPDATE berth_jobs SET {FAILED_SET} {GUARD} RETURNING state, queue, batch_id, workflow_id");
                let e = entry(a, now, error, output.as_deref());
                let p: [&(dyn ToSql + Sync); 6] = [&id, &attempt, &now.0, &retry_at.0, output, &e];
                c.query_opt(&sql, &p).await
            }
            Outcome::LeaseExpired { error, retry_at } => {
                let sql = format!(
                    "UPDATE berth_jobs SET {FAILED_SET} {GUARD} AND lease_expires_at < $3 \
                     RETURNING state, queue, batch_id, workflow_id"
                );
                let e = entry(a, now, error, None);
                let none: Option<String> = None;
                let p: [&(dyn ToSql + Sync); 6] = [&id, &attempt, &now.0, &retry_at.0, &none, &e];
                c.query_opt(&sql, &p).await
            }
            Outcome::Discard { error, output } => {
                let e = entry(a, now, error, output.as_deref());
                c.query_opt(
                    &format!(
                        "UPDATE berth_jobs SET state = 'discarded', finalized_at = $3, \
                         lease_expires_at = NULL, output = $4, \
                         errors = errors || jsonb_build_array($5::jsonb) {GUARD} \
                         RETURNING state, queue, batch_id, workflow_id"
                    ),
                    &[&id, &attempt, &now.0, output, &e],
                )
                .await
            }
            Outcome::Snooze {
                reason,
                output,
                until,
            } => {
                let e = entry(a, now, reason, output.as_deref());
                // A job may snooze without end: it keeps only its last 50 entries.
                c.query_opt(
                    &format!(
                        "UPDATE berth_jobs SET \
                         state = CASE WHEN $4::bigint <= $3::bigint THEN 'available' ELSE 'scheduled' END, \
                         scheduled_at = $4::bigint, lease_expires_at = NULL, \
                         max_attempts = max_attempts + 1, output = $6, \
                         errors = (CASE WHEN jsonb_array_length(errors) >= 50 \
                                   THEN errors - 0 ELSE errors END) || jsonb_build_array($5::jsonb) \
                         {GUARD} RETURNING state, queue, batch_id, workflow_id"
                    ),
                    &[&id, &attempt, &now.0, &until.0, &e, output],
                )
                .await
            }
            Outcome::Release => {
                c.query_opt(
                    &format!(
                        "UPDATE berth_jobs SET state = 'available', max_attempts = max_attempts + 1, \
                         lease_expires_at = NULL, attempted_by = NULL {GUARD} RETURNING state, queue, batch_id, workflow_id"
                    ),
                    &[&id, &attempt],
                )
                .await
            }
        }
        .map_err(db("recording how an attempt ended"))?;
        out[i] = Some(match row {
            Some(r) => {
                let state = state_of(r.get(0))?;
                touched.extend(Touched::of_final(id, state, r.get(2), r.get(3), true));
                if state == JobState::Discarded {
                    let job = discarded_job(c, id).await?;
                    if !crate::flows::splits_when_failed(r.get(2), &job.args) {
                        discarded.push(discarded_event(
                            &job,
                            outcome_error(&f.outcome),
                            outcome_output(&f.outcome),
                            now,
                        ));
                    }
                }
                (Finished::Applied(state), Some(r.get::<_, String>(1)))
            }
            None => (Finished::Stale, None),
        });
    }
    if !discarded.is_empty() {
        super::events::record(c, &discarded).await?;
    }
    let out: Vec<(Finished, Option<String>)> = out
        .into_iter()
        .map(|o| o.expect("every finish placed"))
        .collect();
    let available: Vec<String> = out
        .iter()
        .filter(|(f, _)| *f == Finished::Applied(JobState::Available))
        .filter_map(|(_, q)| q.clone())
        .collect();
    notify(c, &available).await?;
    Ok((out, touched))
}

pub(crate) async fn running_leases(
    c: &impl GenericClient,
    now: Timestamp,
    expired_only: bool,
    limit: u32,
) -> Result<Vec<RunningLease>> {
    let cutoff = if expired_only { now.0 } else { i64::MAX };
    let rows = c
        .query(
            "SELECT id, attempt, queue, attempted_by, lease_expires_at FROM berth_jobs \
             WHERE state = 'running' AND lease_expires_at < $1 ORDER BY lease_expires_at LIMIT $2",
            &[&cutoff, &i64::from(limit)],
        )
        .await
        .map_err(db("listing running leases"))?;
    Ok(rows
        .iter()
        .map(|r| RunningLease {
            attempt: AttemptRef {
                id: r.get(0),
                attempt: u32_of(r.get(1)),
            },
            queue: r.get(2),
            attempted_by: r.get(3),
            lease_expires_at: Timestamp(r.get(4)),
        })
        .collect())
}

pub(crate) async fn stage_due(c: &impl GenericClient, now: Timestamp) -> Result<Vec<String>> {
    let rows = c
        .query(
            "WITH due AS (SELECT id FROM berth_jobs WHERE state IN ('scheduled', 'retryable') \
               AND scheduled_at <= $1 ORDER BY scheduled_at LIMIT 10000 FOR UPDATE SKIP LOCKED) \
             UPDATE berth_jobs j SET state = 'available' FROM due WHERE j.id = due.id \
             RETURNING j.queue",
            &[&now.0],
        )
        .await
        .map_err(db("making due jobs available"))?;
    let mut queues: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    queues.sort();
    queues.dedup();
    notify(c, &queues).await?;
    Ok(queues)
}

pub(crate) async fn next_due(c: &impl GenericClient) -> Result<Option<Timestamp>> {
    let row = c
        .query_opt(
            "SELECT scheduled_at FROM berth_jobs WHERE state IN ('scheduled', 'retryable') \
             ORDER BY scheduled_at LIMIT 1",
            &[],
        )
        .await
        .map_err(db("finding the next due job"))?;
    Ok(row.map(|r| Timestamp(r.get(0))))
}

pub(crate) async fn prune(
    c: &impl GenericClient,
    queue: &str,
    state: JobState,
    older_than: Timestamp,
    limit: u32,
) -> Result<u64> {
    c.execute(
        "DELETE FROM berth_jobs WHERE id IN (SELECT id FROM berth_jobs WHERE queue = $1 \
         AND state = $2 AND finalized_at < $3 AND NOT EXISTS (SELECT 1 FROM berth_workflows w \
           WHERE w.id = berth_jobs.workflow_id AND w.state = 'running') LIMIT $4)",
        &[&queue, &state.as_str(), &older_than.0, &i64::from(limit)],
    )
    .await
    .map_err(db("pruning finished jobs"))
}

pub(crate) async fn job_queues(c: &impl GenericClient, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let rows = c
        .query(
            "SELECT id, queue FROM berth_jobs WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db("reading jobs' queues"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(crate) async fn job(c: &impl GenericClient, id: i64) -> Result<Option<Job>> {
    let row = c
        .query_opt(
            &format!("SELECT {JOB_COLUMNS} FROM berth_jobs WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db("reading a job"))?;
    row.as_ref().map(job_from_row).transpose()
}

pub(crate) async fn list_jobs(c: &impl GenericClient, f: &JobFilter) -> Result<Vec<Job>> {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM berth_jobs WHERE true");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        params.push(v);
        sql.push_str(&clause.replace('?', &format!("${}", params.len())));
    };
    if let Some(q) = &f.queue {
        add(&mut sql, " AND queue = ?", Box::new(q.clone()));
    }
    if let Some(k) = &f.kind {
        add(&mut sql, " AND kind = ?", Box::new(k.clone()));
    }
    if let Some(t) = &f.tag {
        add(
            &mut sql,
            " AND tags @> to_jsonb(ARRAY[?::text])",
            Box::new(t.clone()),
        );
    }
    if let Some(b) = f.before_id {
        add(&mut sql, " AND id < ?", Box::new(b));
    }
    if let Some(text) = &f.args_contains {
        add(
            &mut sql,
            " AND strpos(args::text, ?) > 0",
            Box::new(text.clone()),
        );
    }
    if let Some(t) = f.created_after {
        add(&mut sql, " AND created_at >= ?", Box::new(t.0));
    }
    if let Some(t) = f.created_before {
        add(&mut sql, " AND created_at < ?", Box::new(t.0));
    }
    if !f.states.is_empty() {
        let states: Vec<String> = f.states.iter().map(|s| s.as_str().to_string()).collect();
        add(&mut sql, " AND state = ANY(?)", Box::new(states));
    }
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        f.limit.clamp(1, 1000)
    ));
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = c.query(&sql, &refs).await.map_err(db("listing jobs"))?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn queue_stats(c: &impl GenericClient) -> Result<Vec<QueueStats>> {
    let mut by_name: BTreeMap<String, QueueStats> = BTreeMap::new();
    let blank = crate::rules::empty_stats;
    // The signed rows the triggers of migration 14 append, folded each second.
    let rows = c
        .query(
            "SELECT queue, state, sum(n)::BIGINT FROM berth_job_counts \
             GROUP BY queue, state HAVING sum(n) <> 0",
            &[],
        )
        .await
        .map_err(db("counting jobs"))?;
    for r in rows {
        let queue: String = r.get(0);
        let st = by_name
            .entry(queue.clone())
            .or_insert_with(|| blank(&queue));
        st.counts
            .insert(state_of(r.get(1))?, r.get::<_, i64>(2).max(0) as u64);
    }
    for st in by_name.values_mut() {
        if st.counts.get(&JobState::Available).is_some_and(|n| *n > 0) {
            st.oldest_available_at = oldest_available(c, &st.name).await?;
        }
    }
    for name in paused(c).await? {
        by_name
            .entry(name.clone())
            .or_insert_with(|| blank(&name))
            .paused = true;
    }
    Ok(by_name.into_values().collect())
}

/// The earliest `scheduled_at` among a queue's available jobs, skipping from one priority
/// to the next in the fetch index rather than reading every available job.
async fn oldest_available(c: &impl GenericClient, queue: &str) -> Result<Option<Timestamp>> {
    let row = c
        .query_one(
            "WITH RECURSIVE p(v) AS ( \
               SELECT min(priority) FROM berth_jobs WHERE state = 'available' AND queue = $1 \
               UNION ALL \
               SELECT (SELECT min(priority) FROM berth_jobs \
                       WHERE state = 'available' AND queue = $1 AND priority > p.v) \
               FROM p WHERE p.v IS NOT NULL) \
             SELECT min((SELECT min(scheduled_at) FROM berth_jobs \
                         WHERE state = 'available' AND queue = $1 AND priority = p.v)) \
             FROM p WHERE p.v IS NOT NULL",
            &[&queue],
        )
        .await
        .map_err(db("finding a queue's oldest available job"))?;
    Ok(row.get::<_, Option<i64>>(0).map(Timestamp))
}

/// Folds the signed count rows into one row per (queue, state) and (ingest, dead). Rows
/// appended meanwhile by other transactions are not in this statement's snapshot and stay.
pub(crate) async fn fold_counts(c: &impl GenericClient) -> Result<()> {
    c.batch_execute(
        "WITH gone AS (DELETE FROM berth_job_counts RETURNING queue, state, n) \
         INSERT INTO berth_job_counts (queue, state, n) \
         SELECT queue, state, sum(n) FROM gone GROUP BY queue, state HAVING sum(n) <> 0; \
         WITH gone AS (DELETE FROM berth_message_counts RETURNING ingest, dead, n) \
         INSERT INTO berth_message_counts (ingest, dead, n) \
         SELECT ingest, dead, sum(n) FROM gone GROUP BY ingest, dead HAVING sum(n) <> 0",
    )
    .await
    .map_err(db("folding the kept counts"))
}

pub(crate) async fn paused(c: &impl GenericClient) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT name FROM berth_queues WHERE paused ORDER BY name",
            &[],
        )
        .await
        .map_err(db("listing paused queues"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(crate) async fn set_paused(
    c: &impl GenericClient,
    queue: &str,
    paused: bool,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        "INSERT INTO berth_queues (name, paused, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        &[&queue, &paused, &now.0],
    )
    .await
    .map_err(db("pausing or resuming a queue"))?;
    if !paused {
        notify(c, &[queue.to_string()]).await?;
    }
    Ok(())
}

pub(crate) async fn purge(c: &impl GenericClient, queue: &str, states: &[JobState]) -> Result<u64> {
    let names: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
    c.execute(
        // Jobs of batches and workflows are left to their batch or workflow's cancel.
        "DELETE FROM berth_jobs WHERE queue = $1 AND state = ANY($2) AND batch_id IS NULL \
         AND workflow_id IS NULL",
        &[&queue, &names],
    )
    .await
    .map_err(db("purging a queue"))
}

pub(crate) async fn export(c: &impl GenericClient, after_id: i64, limit: u32) -> Result<Vec<Job>> {
    let rows = c
        .query(
            &format!("SELECT {JOB_COLUMNS} FROM berth_jobs WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after_id, &i64::from(limit)],
        )
        .await
        .map_err(db("exporting jobs"))?;
    rows.iter().map(job_from_row).collect()
}

pub(crate) async fn import(c: &impl GenericClient, jobs: &[Job]) -> Result<()> {
    for j in jobs {
        let errors = serde_json::json!(j.errors);
        let tags = serde_json::json!(j.tags);
        let p: [&(dyn ToSql + Sync); 21] = [
            &j.id,
            &j.queue,
            &j.kind,
            &j.args,
            &j.state.as_str(),
            &j.priority,
            &(j.attempt as i32),
            &(j.max_attempts as i32),
            &j.scheduled_at.0,
            &j.attempted_at.map(|t| t.0),
            &j.attempted_by,
            &j.lease_expires_at.map(|t| t.0),
            &j.finalized_at.map(|t| t.0),
            &errors,
            &j.result,
            &j.output,
            &j.unique_key,
            &j.batch_id,
            &j.workflow_id,
            &tags,
            &j.created_at.0,
        ];
        c.execute(
            &format!(
                "INSERT INTO berth_jobs ({JOB_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $19, $20, $21)"
            ),
            &p,
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                StoreError::Conflict(format!(
                    "job {} cannot be imported: the target already has a job with that id or unique key",
                    j.id
                ))
            } else {
                StoreError::Invalid(format!("job {} cannot be imported: {e}", j.id))
            }
        })?;
    }
    // Later inserts continue above the imported ids.
    c.execute(
        "SELECT setval(pg_get_serial_sequence('berth_jobs', 'id'), \
         greatest((SELECT max(id) FROM berth_jobs), \
                  (SELECT last_value FROM berth_jobs_id_seq), 1))",
        &[],
    )
    .await
    .map_err(db("moving the id sequence past the imported jobs"))?;
    Ok(())
}

pub(crate) async fn count(c: &impl GenericClient) -> Result<u64> {
    let r = c
        .query_one(
            "SELECT coalesce(sum(n), 0)::BIGINT FROM berth_job_counts",
            &[],
        )
        .await
        .map_err(db("counting jobs"))?;
    Ok(r.get::<_, i64>(0) as u64)
}

/// A job's writes as the flow engine asks for them (see `flows::engine::JobDb`).
impl<C: GenericClient> JobDb for Pg<'_, C> {
    async fn insert_jobs(&self, new: &[NewJob], now: Timestamp) -> Result<Vec<Inserted>> {
        insert(self.0, new, now).await
    }

    async fn lock_job(&self, id: i64) -> Result<Option<JobState>> {
        let sql = "SELECT state FROM berth_jobs WHERE id = $1 FOR UPDATE";
        let row = self.opt("reading a job state", sql, &[&id]).await?;
        row.map(|r| parsed(r.get(0))).transpose()
    }

    async fn finalize_job(&self, id: i64, to: JobState, now: Timestamp) -> Result<()> {
        let sql = "UPDATE berth_jobs SET state = $2, finalized_at = $3, lease_expires_at = NULL \
                   WHERE id = $1";
        self.exec("finalizing a job", sql, &[&id, &to.as_str(), &now.0])
            .await?;
        Ok(())
    }

    async fn delete_job(&self, id: i64) -> Result<()> {
        let sql = "DELETE FROM berth_jobs WHERE id = $1";
        self.exec("deleting a job", sql, &[&id]).await?;
        Ok(())
    }

    async fn prune_jobs(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64> {
        prune(self.0, queue, state, older_than, limit).await
    }

    async fn purge_jobs(&self, queue: &str, states: &[JobState]) -> Result<u64> {
        purge(self.0, queue, states).await
    }
}
