//! The SQL of the job archive.

use rusqlite::{Connection, OptionalExtension, params};

use super::jobs::{JOB_COLUMNS, job_from_row};
use crate::archive::{ArchiveFilter, ArchiveSelect, ArchivedJob, archive_states, may_archive_one};
use crate::error::{Result, StoreError};
use crate::model::{Job, Timestamp};

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

/// A job's batch still runs; a workflow step's workflow runs or failed (and may be
/// retried). Spelled once for the selection and the check of one job.
const HELD: &str = "(batch_id IS NOT NULL AND batch_id IN (SELECT id FROM batches WHERE state = 'running')) \
     OR (workflow_id IS NOT NULL AND workflow_id IN \
         (SELECT id FROM workflows WHERE state = 'running' OR state = 'failed'))";

pub(crate) fn archive(
    conn: &Connection,
    select: &ArchiveSelect,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<i64>> {
    let states = archive_states(select)?;
    let jobs: Vec<Job> = match select.id {
        Some(id) => {
            let (job, held) = conn
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS}, ({HELD}) FROM jobs WHERE id = ?1"
                ))
                .and_then(|mut s| {
                    s.query_row([id], |r| Ok((job_from_row(r)?, r.get::<_, bool>(21)?)))
                        .optional()
                })
                .map_err(db("reading a job to archive"))?
                .ok_or(StoreError::JobNotFound(id))?;
            may_archive_one(
                &job,
                held && job.batch_id.is_some(),
                held && job.workflow_id.is_some(),
            )?;
            vec![job]
        }
        None => {
            let mut jobs = Vec::new();
            for state in states {
                let left = limit as usize - jobs.len();
                if left == 0 {
                    break;
                }
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 \
                         AND (?2 IS NULL OR queue = ?2) AND NOT ({HELD}) ORDER BY id LIMIT ?3"
                    ))
                    .map_err(db("selecting jobs to archive"))?;
                let rows = stmt
                    .query_map(
                        params![state.as_str(), select.queue, left as i64],
                        job_from_row,
                    )
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<Job>>>())
                    .map_err(db("selecting jobs to archive"))?;
                jobs.extend(rows);
            }
            jobs
        }
    };
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO archived_jobs (id, queue, kind, state, archived_at, job) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(db("archiving jobs"))?;
    let mut delete = conn
        .prepare_cached("DELETE FROM jobs WHERE id = ?1")
        .map_err(db("archiving jobs"))?;
    let mut ids = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let text = serde_json::to_string(job)
            .map_err(|e| StoreError::Invalid(format!("job {} cannot be archived: {e}", job.id)))?;
        insert
            .execute(params![
                job.id,
                job.queue,
                job.kind,
                job.state.as_str(),
                now.0,
                text
            ])
            .map_err(db("archiving jobs"))?;
        delete.execute([job.id]).map_err(db("archiving jobs"))?;
        ids.push(job.id);
    }
    Ok(ids)
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArchivedJob> {
    let text: String = r.get(0)?;
    let job: Job = serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(ArchivedJob {
        job,
        archived_at: Timestamp(r.get(1)?),
        seq: r.get(2)?,
    })
}

pub(crate) fn list(conn: &Connection, f: &ArchiveFilter) -> Result<Vec<ArchivedJob>> {
    conn.prepare_cached(
        "SELECT job, archived_at, seq FROM archived_jobs \
         WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2) \
           AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR seq < ?4) \
         ORDER BY seq DESC LIMIT ?5",
    )
    .and_then(|mut s| {
        s.query_map(
            params![
                f.queue,
                f.state.map(|s| s.as_str()),
                f.kind,
                f.before_seq,
                f.limit()
            ],
            from_row,
        )?
        .collect()
    })
    .map_err(db("listing archived jobs"))
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Option<ArchivedJob>> {
    conn.prepare_cached(
        "SELECT job, archived_at, seq FROM archived_jobs WHERE id = ?1 ORDER BY seq DESC LIMIT 1",
    )
    .and_then(|mut s| s.query_row([id], from_row).optional())
    .map_err(db("reading an archived job"))
}
