//! The job archive: final jobs moved out of the live table (`POST /v1/archive`), listed
//! (`GET /v1/archive`) and shown (`GET /v1/archive/{id}`).

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::get;
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use berth_store::{ArchiveFilter, ArchiveSelect, JobState};

use super::{ApiPath, Shared, id_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::types::{ArchiveBody, ArchivePage, ArchiveQuery, Archived, ArchivedJob, IdPath};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/archive", get(list).post(archive))
        .api_route("/v1/archive/{id}", get(show))
}

/// Jobs moved per transaction; a large archive runs as several.
const CHUNK: u32 = 1000;

fn states(raw: &[String]) -> ApiResult<Vec<JobState>> {
    raw.iter()
        .map(|s| s.parse())
        .collect::<Result<_, String>>()
        .map_err(|e| ApiError::bad_request("invalid", e))
}

async fn archive(
    state: Shared,
    body: Result<Json<ArchiveBody>, JsonRejection>,
) -> ApiResult<Json<Archived>> {
    let Json(b) = body?;
    if b.id.is_none() && b.queue.is_none() && b.states.is_empty() {
        return Err(ApiError::bad_request(
            "invalid",
            "name what to archive: `id` (one job), or `queue` and/or `states` (their final jobs)",
        ));
    }
    if let Some(q) = &b.queue {
        // A queue that neither is configured nor holds jobs is a typo.
        let known = state.queues.spec(q).is_ok()
            || !state
                .queues
                .store()
                .list_jobs(berth_store::JobFilter {
                    queue: Some(q.clone()),
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .is_empty()
            || !state
                .queues
                .store()
                .archived_jobs(ArchiveFilter {
                    queue: Some(q.clone()),
                    limit: 1,
                    ..Default::default()
                })
                .await?
                .is_empty();
        if !known {
            state.queues.spec(q)?;
        }
    }
    let select = ArchiveSelect {
        id: b.id,
        queue: b.queue,
        states: states(&b.states)?,
    };
    let store = state.queues.store();
    let mut archived = 0usize;
    loop {
        let ids = store
            .archive_jobs(select.clone(), CHUNK, state.queues.now())
            .await?;
        archived += ids.len();
        if select.id.is_some() || ids.len() < CHUNK as usize {
            break;
        }
    }
    if archived > 0 {
        tracing::info!(archived, "archived jobs");
    }
    Ok(Json(Archived {
        archived: archived as u64,
    }))
}

async fn list(
    state: Shared,
    query: Result<Query<ArchiveQuery>, QueryRejection>,
) -> ApiResult<Json<ArchivePage>> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid",
            "`limit` must be between 1 and 1000",
        ));
    }
    let filter = ArchiveFilter {
        queue: q.queue,
        state: states(q.state.as_slice())?.pop(),
        kind: q.kind,
        before_seq: q.before,
        limit,
    };
    let jobs = state.queues.store().archived_jobs(filter).await?;
    let next = (jobs.len() == limit as usize)
        .then(|| jobs.last().map(|j| j.seq))
        .flatten();
    Ok(Json(ArchivePage {
        jobs,
        next_before: next,
    }))
}

async fn show(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<ArchivedJob>> {
    let id = id_of(&id)?;
    match state.queues.store().archived_job(id).await? {
        Some(j) => Ok(Json(j)),
        None => Err(ApiError {
            status: axum::http::StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("job {id} is not in the archive (berth archive list shows what is)"),
        }),
    }
}
