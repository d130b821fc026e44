//! The SQL of the job archive on PostgreSQL.

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::jobs::{JOB_COLUMNS, job_from_row};
use crate::archive::{ArchiveFilter, ArchiveSelect, ArchivedJob, archive_states, may_archive_one};
use crate::error::{Result, StoreError};
use crate::model::{Job, Timestamp};

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

/// A job's batch still runs; a workflow step's workflow runs or failed (and may be
/// retried).
const HELD: &str = "(batch_id IS NOT NULL AND batch_id IN (SELECT id FROM berth_batches WHERE state = 'running')) \
     OR (workflow_id IS NOT NULL AND workflow_id IN \
         (SELECT id FROM berth_workflows WHERE state IN ('running', 'failed')))";

pub(crate) async fn archive(
    c: &impl GenericClient,
    select: &ArchiveSelect,
    limit: u32,
    now: Timestamp,
) -> Result<Vec<i64>> {
    let states = archive_states(select)?;
    let jobs: Vec<Job> = match select.id {
        Some(id) => {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {JOB_COLUMNS}, ({HELD}) FROM berth_jobs WHERE id = $1 FOR UPDATE"
                    ),
                    &[&id],
                )
                .await
                .map_err(db("reading a job to archive"))?
                .ok_or(StoreError::JobNotFound(id))?;
            let job = job_from_row(&row)?;
            let held: bool = row.get(21);
            may_archive_one(
                &job,
                held && job.batch_id.is_some(),
                held && job.workflow_id.is_some(),
            )?;
            vec![job]
        }
        None => {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            let rows = c
                .query(
                    &format!(
                        "SELECT {JOB_COLUMNS} FROM berth_jobs WHERE state = ANY($1) \
                         AND ($2::text IS NULL OR queue = $2) AND NOT ({HELD}) \
                         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED"
                    ),
                    &[&names, &select.queue, &i64::from(limit)],
                )
                .await
                .map_err(db("selecting jobs to archive"))?;
            rows.iter().map(job_from_row).collect::<Result<Vec<_>>>()?
        }
    };
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let states: Vec<&str> = jobs.iter().map(|j| j.state.as_str()).collect();
    let bodies: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            serde_json::to_value(j)
                .map_err(|e| StoreError::Invalid(format!("job {} cannot be archived: {e}", j.id)))
        })
        .collect::<Result<_>>()?;
    let p: [&(dyn ToSql + Sync); 6] = [&ids, &queues, &kinds, &states, &now.0, &bodies];
    c.execute(
        "INSERT INTO berth_archived_jobs (id, queue, kind, state, archived_at, job) \
         SELECT id, queue, kind, state, $5, job \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $6::jsonb[]) \
              AS a(id, queue, kind, state, job) ORDER BY id",
        &p,
    )
    .await
    .map_err(db("archiving jobs"))?;
    c.execute("DELETE FROM berth_jobs WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(db("archiving jobs"))?;
    Ok(ids)
}

fn from_row(r: &tokio_postgres::Row) -> Result<ArchivedJob> {
    let job: Job = serde_json::from_value(r.get(0))
        .map_err(|e| StoreError::Invalid(format!("an archived job is not readable: {e}")))?;
    Ok(ArchivedJob {
        job,
        archived_at: Timestamp(r.get(1)),
        seq: r.get(2),
    })
}

pub(crate) async fn list(c: &impl GenericClient, f: &ArchiveFilter) -> Result<Vec<ArchivedJob>> {
    let state = f.state.map(|s| s.as_str());
    let rows = c
        .query(
            "SELECT job, archived_at, seq FROM berth_archived_jobs \
             WHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR state = $2) \
               AND ($3::text IS NULL OR kind = $3) AND ($4::bigint IS NULL OR seq < $4) \
             ORDER BY seq DESC LIMIT $5",
            &[
                &f.queue,
                &state,
                &f.kind,
                &f.before_seq,
                &i64::from(f.limit()),
            ],
        )
        .await
        .map_err(db("listing archived jobs"))?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn get(c: &impl GenericClient, id: i64) -> Result<Option<ArchivedJob>> {
    let row = c
        .query_opt(
            "SELECT job, archived_at, seq FROM berth_archived_jobs WHERE id = $1 \
             ORDER BY seq DESC LIMIT 1",
            &[&id],
        )
        .await
        .map_err(db("reading an archived job"))?;
    row.as_ref().map(from_row).transpose()
}
