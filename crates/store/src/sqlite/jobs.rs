//! The SQL for jobs and queues. Each function runs on a connection the caller provides:
//! the writer's (inside its group transaction) or a reader's.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::flows::{Lite, parsed_col};
use crate::error::{Result, StoreError};
use crate::flows::Touched;
use crate::flows::engine::JobDb;
use crate::model::{
    AttemptError, AttemptRef, Finish, Finished, Inserted, Job, JobFilter, JobState, LeasedJob,
    NewJob, Outcome, QueueStats, RunningLease, Timestamp,
};
use crate::notices::{DiscardedJob, discarded_event, outcome_error, outcome_output};
use crate::store::FetchRequest;

pub(crate) const JOB_COLUMNS: &str = "id, queue, kind, args, state, priority, attempt, max_attempts, \
    scheduled_at, attempted_at, attempted_by, lease_expires_at, finalized_at, errors, result, \
    output, unique_key, batch_id, workflow_id, tags, created_at";

/// A job that is not final; spelled exactly as the `jobs_unique` index's condition, so
/// that SQLite matches the two (and with OR, not IN: see the migration).
const NOT_FINAL_SQL: &str =
    "state <> 'completed' AND state <> 'discarded' AND state <> 'cancelled' AND state <> 'split'";
/// Scheduled or retryable; spelled exactly as the `jobs_due` index's condition.
const DUE_SQL: &str = "(state = 'scheduled' OR state = 'retryable')";

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).expect("serializing plain values to JSON cannot fail")
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, idx: usize) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_state(text: &str, idx: usize) -> rusqlite::Result<JobState> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

pub(crate) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let args: String = r.get(3)?;
    let state: String = r.get(4)?;
    let errors: String = r.get(13)?;
    let result: Option<String> = r.get(14)?;
    let tags: String = r.get(19)?;
    Ok(Job {
        id: r.get(0)?,
        queue: r.get(1)?,
        kind: r.get(2)?,
        args: parse_json(&args, 3)?,
        state: parse_state(&state, 4)?,
        priority: r.get(5)?,
        attempt: r.get(6)?,
        max_attempts: r.get(7)?,
        scheduled_at: Timestamp(r.get(8)?),
        attempted_at: ts(r.get(9)?),
        attempted_by: r.get(10)?,
        lease_expires_at: ts(r.get(11)?),
        finalized_at: ts(r.get(12)?),
        errors: parse_json::<Vec<AttemptError>>(&errors, 13)?,
        result: result.map(|t| parse_json(&t, 14)).transpose()?,
        output: r.get(15)?,
        unique_key: r.get(16)?,
        batch_id: r.get(17)?,
        workflow_id: r.get(18)?,
        tags: parse_json(&tags, 19)?,
        created_at: Timestamp(r.get(20)?),
    })
}

pub(crate) fn insert(conn: &Connection, jobs: &[NewJob], now: Timestamp) -> Result<Vec<Inserted>> {
    let mut ins = conn
        .prepare_cached(&format!(
            "INSERT INTO jobs (queue, kind, args, state, priority, max_attempts, scheduled_at, \
             unique_key, batch_id, workflow_id, tags, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND {NOT_FINAL_SQL} \
             DO NOTHING"
        ))
        .map_err(db("preparing an insert"))?;
    let mut out = Vec::with_capacity(jobs.len());
    let mut tally = super::counts::Tally::default();
    // Each job was checked by `flows::engine::insert` (`rules::may_insert`).
    for job in jobs {
        let at = job.scheduled_at.unwrap_or(now);
        let state = if at > now {
            JobState::Scheduled
        } else {
            JobState::Available
        };
        let tags = if job.tags.is_empty() {
            "[]".to_string()
        } else {
            json_text(&job.tags)
        };
        let n = ins
            .execute(params![
                job.queue,
                job.kind,
                json_text(&job.args),
                state.as_str(),
                job.priority,
                job.max_attempts,
                at.0,
                job.unique_key,
                job.batch_id,
                job.workflow_id,
                tags,
                now.0,
            ])
            .map_err(db("inserting a job"))?;
        if n == 1 {
            tally.add((job.queue.as_str(), state.as_str()));
            out.push(Inserted {
                id: conn.last_insert_rowid(),
                duplicate: false,
                state,
            });
        } else {
            let (id, state): (i64, String) = conn
                .prepare_cached(&format!(
                    "SELECT id, state FROM jobs WHERE unique_key = ?1 AND unique_key IS NOT NULL AND {NOT_FINAL_SQL}"
                ))
                .and_then(|mut s| s.query_row([&job.unique_key], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(db("finding the job a unique key belongs to"))?;
            out.push(Inserted {
                id,
                duplicate: true,
                state: parse_state(&state, 1).map_err(db("reading a job state"))?,
            });
        }
    }
    super::counts::add_jobs(conn, &tally)?;
    Ok(out)
}

pub(crate) fn is_paused(conn: &Connection, queue: &str) -> Result<bool> {
    conn.prepare_cached("SELECT paused FROM queues WHERE name = ?1")
        .and_then(|mut s| s.query_row([queue], |r| r.get::<_, bool>(0)).optional())
        .map(|p| p.unwrap_or(false))
        .map_err(db("reading a queue's pause state"))
}

pub(crate) fn fetch(conn: &Connection, req: &FetchRequest) -> Result<Vec<LeasedJob>> {
    if req.limit == 0 || is_paused(conn, &req.queue)? {
        return Ok(Vec::new());
    }
    // The inner SELECT walks the partial `jobs_fetch` index in hand-out order; the UPDATE
    // starts a new attempt on exactly those rows. The writer thread is the only writer, so
    // no other fetch can take the same rows in between.
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'running', attempt = attempt + 1, attempted_at = ?1, \
             attempted_by = ?2, lease_expires_at = ?3 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND queue = ?4 \
                          ORDER BY priority, scheduled_at, id LIMIT ?5) \
             RETURNING id, kind, args, attempt, max_attempts, priority, created_at, scheduled_at, \
               workflow_id",
        )
        .map_err(db("preparing a fetch"))?;
    let mut rows = stmt
        .query_map(
            params![
                req.now.0,
                req.worker,
                req.lease_until.0,
                req.queue,
                req.limit
            ],
            |r| {
                let args: String = r.get(2)?;
                Ok((
                    r.get::<_, i64>(7)?,
                    LeasedJob {
                        id: r.get(0)?,
                        queue: req.queue.clone(),
                        kind: r.get(1)?,
                        args: parse_json(&args, 2)?,
                        attempt: r.get(3)?,
                        max_attempts: r.get(4)?,
                        priority: r.get(5)?,
                        lease_expires_at: req.lease_until,
                        created_at: Timestamp(r.get(6)?),
                        workflow_id: r.get(8)?,
                    },
                ))
            },
        )
        .map_err(db("fetching jobs"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db("fetching jobs"))?;
    // RETURNING gives no order guarantee; hand jobs out in fetch order.
    rows.sort_by_key(|(scheduled, j)| (j.priority, *scheduled, j.id));
    Ok(rows.into_iter().map(|(_, j)| j).collect())
}

pub(crate) fn heartbeat(
    conn: &Connection,
    attempts: &[AttemptRef],
    lease_until: Timestamp,
) -> Result<Vec<bool>> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE jobs SET lease_expires_at = ?1 WHERE id = ?2 AND attempt = ?3 AND state = 'running'",
        )
        .map_err(db("preparing a heartbeat"))?;
    attempts
        .iter()
        .map(|a| {
            stmt.execute(params![lease_until.0, a.id, a.attempt])
                .map(|n| n == 1)
                .map_err(db("extending a lease"))
        })
        .collect()
}

fn error_entry(attempt: u32, at: Timestamp, error: &str, output: Option<&str>) -> String {
    json_text(&AttemptError {
        attempt,
        at,
        error: error.to_string(),
        output: output.map(str::to_string),
    })
}

// Every statement names the attempt and requires `running`: a rescued, cancelled or
// already finished job is left alone and the write reported stale.
macro_rules! guarded {
    ($set:expr) => {
        guarded!($set, "")
    };
    ($set:expr, $also:literal) => {
        concat!(
            "UPDATE jobs SET ",
            $set,
            " WHERE id = ?1 AND attempt = ?2 AND state = 'running'",
            $also,
            " RETURNING state, batch_id, workflow_id"
        )
    };
}

/// What a failed attempt sets: retry at ?4, or discard after the last attempt; the error
/// entry is ?6.
macro_rules! failed_set {
    () => {
        "state = CASE WHEN attempt >= max_attempts THEN 'discarded' \
                      WHEN ?4 <= ?3 THEN 'available' ELSE 'retryable' END, \
         finalized_at = CASE WHEN attempt >= max_attempts THEN ?3 END, \
         scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE ?4 END, \
         lease_expires_at = NULL, output = ?5, errors = json_insert(errors, '$[#]', json(?6))"
    };
}

const FINISH_COMPLETED: &str = guarded!(
    "state = 'completed', finalized_at = ?3, lease_expires_at = NULL, result = ?4, output = ?5"
);
const FINISH_FAILED: &str = guarded!(failed_set!());
const FINISH_EXPIRED: &str = guarded!(failed_set!(), " AND lease_expires_at < ?3");
const FINISH_DISCARD: &str = guarded!(
    "state = 'discarded', finalized_at = ?3, lease_expires_at = NULL, output = ?4, \
     errors = json_insert(errors, '$[#]', json(?5))"
);
// A job may snooze without end (a service answering 429 for hours): it keeps only its
// last 50 entries.
const FINISH_SNOOZE: &str = guarded!(
    "state = CASE WHEN ?4 <= ?3 THEN 'available' ELSE 'scheduled' END, scheduled_at = ?4, \
     lease_expires_at = NULL, max_attempts = max_attempts + 1, output = ?6, \
     errors = json_insert(CASE WHEN json_array_length(errors) >= 50 \
                               THEN json_remove(errors, '$[0]') ELSE errors END, \
                          '$[#]', json(?5))"
);
const FINISH_RELEASE: &str = guarded!(
    "state = 'available', max_attempts = max_attempts + 1, lease_expires_at = NULL, \
     attempted_by = NULL"
);

/// Records outcomes. Also returns the jobs of batches and workflows that reached a final
/// state, for the flow hooks.
pub(crate) fn finish(
    conn: &Connection,
    finishes: &[Finish],
    now: Timestamp,
) -> Result<(Vec<Finished>, Vec<Touched>)> {
    let mut out = Vec::with_capacity(finishes.len());
    let mut touched = Vec::new();
    let mut discarded = Vec::new();
    for f in finishes {
        let (id, attempt) = (f.attempt.id, f.attempt.attempt);
        let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            conn.prepare_cached(sql).and_then(|mut s| {
                s.query_row(params, |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })
                .optional()
            })
        };
        let res = match &f.outcome {
            Outcome::Completed { result, output } => run(
                FINISH_COMPLETED,
                params![id, attempt, now.0, result.as_ref().map(json_text), output],
            ),
            Outcome::LeaseExpired { error, retry_at } => run(
                FINISH_EXPIRED,
                params![
                    id,
                    attempt,
                    now.0,
                    retry_at.0,
                    None::<String>,
                    error_entry(attempt, now, error, None)
                ],
            ),
            Outcome::Failed {
                error,
                output,
                retry_at,
            } => run(
                FINISH_FAILED,
                params![
                    id,
                    attempt,
                    now.0,
                    retry_at.0,
                    output,
                    error_entry(attempt, now, error, output.as_deref())
                ],
            ),
            Outcome::Discard { error, output } => run(
                FINISH_DISCARD,
                params![
                    id,
                    attempt,
                    now.0,
                    output,
                    error_entry(attempt, now, error, output.as_deref())
                ],
            ),
            Outcome::Snooze {
                reason,
                output,
                until,
            } => run(
                FINISH_SNOOZE,
                params![
                    id,
                    attempt,
                    now.0,
                    until.0,
                    error_entry(attempt, now, reason, output.as_deref()),
                    output
                ],
            ),
            Outcome::Release => run(FINISH_RELEASE, params![id, attempt]),
        };
        out.push(match res.map_err(db("recording how an attempt ended"))? {
            Some((state, batch_id, workflow_id)) => {
                let state = parse_state(&state, 0).map_err(db("reading a job state"))?;
                touched.extend(Touched::of_final(id, state, batch_id, workflow_id, true));
                if state == JobState::Discarded {
                    let job = discarded_job(conn, id)?;
                    if !crate::flows::splits_when_failed(batch_id, &job.args) {
                        discarded.push(discarded_event(
                            &job,
                            outcome_error(&f.outcome),
                            outcome_output(&f.outcome),
                            now,
                        ));
                    }
                }
                Finished::Applied(state)
            }
            None => Finished::Stale,
        });
    }
    super::events::record(conn, &discarded)?;
    Ok((out, touched))
}

/// What the event of a discarded job names.
fn discarded_job(conn: &Connection, id: i64) -> Result<DiscardedJob> {
    conn.prepare_cached(
        "SELECT queue, kind, attempt, max_attempts, attempted_by, args FROM jobs WHERE id = ?1",
    )
    .and_then(|mut s| {
        s.query_row([id], |r| {
            Ok(DiscardedJob {
                id,
                queue: r.get(0)?,
                kind: r.get(1)?,
                attempt: r.get(2)?,
                max_attempts: r.get(3)?,
                attempted_by: r.get(4)?,
                args: {
                    let text: String = r.get(5)?;
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
                },
            })
        })
    })
    .map_err(db("reading a discarded job"))
}

pub(crate) fn running_leases(
    conn: &Connection,
    now: Timestamp,
    expired_only: bool,
    limit: u32,
) -> Result<Vec<RunningLease>> {
    let cutoff = if expired_only { now.0 } else { i64::MAX };
    conn.prepare_cached(
        "SELECT id, attempt, queue, attempted_by, lease_expires_at FROM jobs \
         WHERE state = 'running' AND lease_expires_at < ?1 ORDER BY lease_expires_at LIMIT ?2",
    )
    .and_then(|mut s| {
        s.query_map(params![cutoff, limit], |r| {
            Ok(RunningLease {
                attempt: AttemptRef {
                    id: r.get(0)?,
                    attempt: r.get(1)?,
                },
                queue: r.get(2)?,
                attempted_by: r.get(3)?,
                lease_expires_at: Timestamp(r.get(4)?),
            })
        })?
        .collect()
    })
    .map_err(db("listing running leases"))
}

pub(crate) fn stage_due(conn: &Connection, now: Timestamp) -> Result<Vec<String>> {
    let mut queues: Vec<String> = conn
        .prepare_cached(&format!(
            "UPDATE jobs SET state = 'available' WHERE id IN \
             (SELECT id FROM jobs WHERE {DUE_SQL} AND scheduled_at <= ?1 \
              ORDER BY scheduled_at LIMIT 10000) RETURNING queue"
        ))
        .and_then(|mut s| s.query_map([now.0], |r| r.get(0))?.collect())
        .map_err(db("making due jobs available"))?;
    queues.sort();
    queues.dedup();
    Ok(queues)
}

pub(crate) fn next_due(conn: &Connection) -> Result<Option<Timestamp>> {
    conn.prepare_cached(&format!(
        "SELECT scheduled_at FROM jobs WHERE {DUE_SQL} ORDER BY scheduled_at LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)).optional())
    .map(ts)
    .map_err(db("finding the next due job"))
}

pub(crate) fn prune(
    conn: &Connection,
    queue: &str,
    state: JobState,
    older_than: Timestamp,
    limit: u32,
) -> Result<u64> {
    conn.prepare_cached(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE queue = ?1 AND state = ?2 \
         AND finalized_at < ?3 AND NOT EXISTS (SELECT 1 FROM workflows w \
           WHERE w.id = jobs.workflow_id AND w.state = 'running') LIMIT ?4)",
    )
    .and_then(|mut s| s.execute(params![queue, state.as_str(), older_than.0, limit]))
    .map(|n| n as u64)
    .map_err(db("pruning finished jobs"))
}

pub(crate) fn job_queues(conn: &Connection, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let ids = format!(
        "[{}]",
        ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    conn.prepare_cached("SELECT id, queue FROM jobs WHERE id IN (SELECT value FROM json_each(?1))")
        .and_then(|mut s| {
            s.query_map([ids], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db("reading jobs' queues"))
}

pub(crate) fn job(conn: &Connection, id: i64) -> Result<Option<Job>> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], job_from_row).optional())
        .map_err(db("reading a job"))
}

pub(crate) fn list_jobs(conn: &Connection, f: &JobFilter) -> Result<Vec<Job>> {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(q) = &f.queue {
        arg(&mut sql, " AND queue = ?", q.clone().into());
    }
    if let Some(k) = &f.kind {
        arg(&mut sql, " AND kind = ?", k.clone().into());
    }
    if let Some(t) = &f.tag {
        arg(
            &mut sql,
            " AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = ?)",
            t.clone().into(),
        );
    }
    if let Some(b) = f.before_id {
        arg(&mut sql, " AND id < ?", b.into());
    }
    if let Some(text) = &f.args_contains {
        arg(&mut sql, " AND instr(args, ?) > 0", text.clone().into());
    }
    if let Some(t) = f.created_after {
        arg(&mut sql, " AND created_at >= ?", t.0.into());
    }
    if let Some(t) = f.created_before {
        arg(&mut sql, " AND created_at < ?", t.0.into());
    }
    if !f.states.is_empty() {
        // OR, not IN: see the migration.
        let list: Vec<String> = f
            .states
            .iter()
            .map(|s| format!("state = '{}'", s.as_str()))
            .collect();
        sql.push_str(&format!(" AND ({})", list.join(" OR ")));
        // Few jobs in those states (say 3 discarded among 2,000,000): read them through
        // the state index and sort them, rather than walk every id from the newest. Many:
        // the walk meets one soon. The store's kept counts tell which.
        let indexed = !f.states.contains(&JobState::Available)
            && kept_in(conn, f.queue.as_deref(), &list)? <= FEW_TO_SORT;
        if indexed {
            // The term the partial index `jobs_state` is defined with, so that SQLite
            // sees it applies.
            sql.push_str(" AND state <> 'available'");
        }
    }
    let limit = f.limit.clamp(1, 1000);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
    conn.prepare(&sql)
        .and_then(|mut s| {
            s.query_map(rusqlite::params_from_iter(args.iter()), job_from_row)?
                .collect()
        })
        .map_err(db("listing jobs"))
}

/// Up to how many matching jobs a list reads through the state index and sorts.
const FEW_TO_SORT: u64 = 50_000;

/// How many jobs the kept counts hold in the states of `list` (`state = '…'` terms), of
/// `queue` or all queues.
fn kept_in(conn: &Connection, queue: Option<&str>, list: &[String]) -> Result<u64> {
    let sql = format!(
        "SELECT coalesce(sum(n), 0) FROM job_counts WHERE ({}){}",
        list.join(" OR "),
        if queue.is_some() {
            " AND queue = ?1"
        } else {
            ""
        }
    );
    let n: i64 = match queue {
        Some(q) => conn.query_row(&sql, [q], |r| r.get(0)),
        None => conn.query_row(&sql, [], |r| r.get(0)),
    }
    .map_err(db("counting jobs"))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn queue_stats(conn: &Connection) -> Result<Vec<QueueStats>> {
    let mut by_name: BTreeMap<String, QueueStats> = BTreeMap::new();
    let blank = crate::rules::empty_stats;
    // The counts the triggers of migration 15 keep: a few rows, whatever the job count.
    let rows: Vec<(String, String, i64)> = conn
        .prepare_cached("SELECT queue, state, n FROM job_counts WHERE n <> 0")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(db("counting jobs"))?;
    for (queue, state, n) in rows {
        let st = by_name
            .entry(queue.clone())
            .or_insert_with(|| blank(&queue));
        let state = parse_state(&state, 1).map_err(db("reading a job state"))?;
        st.counts.insert(state, n.max(0) as u64);
    }
    for st in by_name.values_mut() {
        if st.counts.get(&JobState::Available).is_some_and(|n| *n > 0) {
            st.oldest_available_at = oldest_available(conn, &st.name)?;
        }
    }
    for name in paused(conn)? {
        by_name
            .entry(name.clone())
            .or_insert_with(|| blank(&name))
            .paused = true;
    }
    Ok(by_name.into_values().collect())
}

/// The earliest `scheduled_at` among a queue's available jobs. The fetch index is ordered
/// by priority first, so this skips from one priority to the next (a handful of index
/// seeks) and takes the first time within each, instead of reading every available job.
fn oldest_available(conn: &Connection, queue: &str) -> Result<Option<Timestamp>> {
    conn.prepare_cached(
        "WITH RECURSIVE p(v) AS ( \
           SELECT min(priority) FROM jobs WHERE state = 'available' AND queue = ?1 \
           UNION ALL \
           SELECT (SELECT min(priority) FROM jobs \
                   WHERE state = 'available' AND queue = ?1 AND priority > p.v) \
           FROM p WHERE p.v IS NOT NULL) \
         SELECT min((SELECT min(scheduled_at) FROM jobs \
                     WHERE state = 'available' AND queue = ?1 AND priority = p.v)) \
         FROM p WHERE p.v IS NOT NULL",
    )
    .and_then(|mut s| s.query_row([queue], |r| r.get::<_, Option<i64>>(0)))
    .map(ts)
    .map_err(db("finding a queue's oldest available job"))
}

pub(crate) fn paused(conn: &Connection) -> Result<Vec<String>> {
    conn.prepare_cached("SELECT name FROM queues WHERE paused = 1 ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(db("listing paused queues"))
}

pub(crate) fn set_paused(
    conn: &Connection,
    queue: &str,
    paused: bool,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queues (name, paused, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![queue, paused, now.0]))
    .map(|_| ())
    .map_err(db("pausing or resuming a queue"))
}

pub(crate) fn purge(conn: &Connection, queue: &str, states: &[JobState]) -> Result<u64> {
    let mut total = 0;
    for state in states {
        total += conn
            // Jobs of batches and workflows are left to their batch or workflow's cancel.
            .prepare_cached(
                "DELETE FROM jobs WHERE queue = ?1 AND state = ?2 AND batch_id IS NULL \
                 AND workflow_id IS NULL",
            )
            .and_then(|mut s| s.execute(params![queue, state.as_str()]))
            .map_err(db("purging a queue"))? as u64;
    }
    Ok(total)
}

pub(crate) fn export(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<Job>> {
    conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))
    .and_then(|mut s| {
        s.query_map(params![after_id, limit], job_from_row)?
            .collect()
    })
    .map_err(db("exporting jobs"))
}

pub(crate) fn import(conn: &Connection, jobs: &[Job]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
             ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)"
        ))
        .map_err(db("preparing an import"))?;
    let mut tally = super::counts::Tally::default();
    for j in jobs {
        tally.add((j.queue.as_str(), j.state.as_str()));
        stmt.execute(params![
            j.id,
            j.queue,
            j.kind,
            json_text(&j.args),
            j.state.as_str(),
            j.priority,
            j.attempt,
            j.max_attempts,
            j.scheduled_at.0,
            j.attempted_at.map(|t| t.0),
            j.attempted_by,
            j.lease_expires_at.map(|t| t.0),
            j.finalized_at.map(|t| t.0),
            json_text(&j.errors),
            j.result.as_ref().map(json_text),
            j.output,
            j.unique_key,
            j.batch_id,
            j.workflow_id,
            json_text(&j.tags),
            j.created_at.0,
        ])
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => StoreError::Conflict(format!(
                "job {} cannot be imported: the target already has a job with that id or unique key",
                j.id
            )),
            _ => StoreError::Invalid(format!("job {} cannot be imported: {e}", j.id)),
        })?;
    }
    super::counts::add_jobs(conn, &tally)?;
    Ok(())
}

pub(crate) fn count(conn: &Connection) -> Result<u64> {
    conn.query_row("SELECT coalesce(sum(n), 0) FROM job_counts", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(db("counting jobs"))
}

/// A job's writes as the flow engine asks for them (see `flows::engine::JobDb`).
impl JobDb for Lite<'_> {
    async fn insert_jobs(&self, new: &[NewJob], now: Timestamp) -> Result<Vec<Inserted>> {
        insert(self.0, new, now)
    }

    async fn lock_job(&self, id: i64) -> Result<Option<JobState>> {
        let sql = "SELECT state FROM jobs WHERE id = ?1";
        self.one("reading a job state", sql, [id], |r| parsed_col(r, 0))
            .map(Option::flatten)
    }

    async fn finalize_job(&self, id: i64, to: JobState, now: Timestamp) -> Result<()> {
        self.exec(
            "finalizing a job",
            "UPDATE jobs SET state = ?2, finalized_at = ?3, lease_expires_at = NULL WHERE id = ?1",
            params![id, to.as_str(), now.0],
        )?;
        Ok(())
    }

    async fn delete_job(&self, id: i64) -> Result<()> {
        self.exec("deleting a job", "DELETE FROM jobs WHERE id = ?1", [id])?;
        Ok(())
    }

    async fn prune_jobs(
        &self,
        queue: &str,
        state: JobState,
        older_than: Timestamp,
        limit: u32,
    ) -> Result<u64> {
        prune(self.0, queue, state, older_than, limit)
    }

    async fn purge_jobs(&self, queue: &str, states: &[JobState]) -> Result<u64> {
        purge(self.0, queue, states)
    }
}
