//! Jobs: push (one or many), list, show, retry, cancel, discard, delete, and the same
//! actions on every job a filter takes.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use berth_store::{Inserted, Job, StateChange};

use super::{ApiPath, Shared, id_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult, Created, JsonWith};
use crate::types::{
    ActionOutcome, BulkBody, IdPath, InsertedJobs, JobActionBody, JobPage, ListQuery, PushBody,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/jobs", post(push).get(list))
        .api_route("/v1/jobs/bulk", post(push_bulk))
        .api_route("/v1/jobs/{id}", get(show).delete(delete))
        .api_route("/v1/jobs/{id}/retry", post(retry))
        .api_route("/v1/jobs/{id}/cancel", post(cancel))
        .api_route("/v1/jobs/{id}/discard", post(discard))
        .api_route("/v1/jobs/actions", post(act_on_filter))
}

/// The most jobs one action on a filter takes (`max`'s ceiling; its default is 10,000).
pub const MAX_ACTED: u64 = 100_000;

/// Whether `action` applies to a job in `state` (the single-job rules; the store checks
/// them again).
fn applies(action: &str, state: berth_store::JobState) -> bool {
    use berth_store::JobState::*;
    match action {
        "retry" => !matches!(state, Running | Available | Pending),
        "cancel" | "discard" => !state.is_final(),
        _ => state != Running,
    }
}

/// Applies one action to every job the filter takes, newest first, one job at a time
/// with the single-job rules: a job the action does not apply to (a running job for
/// `delete`, a finished one for `cancel`, …) is skipped and counted, never an error.
async fn act_on_filter(
    state: Shared,
    body: Result<Json<JobActionBody>, JsonRejection>,
) -> ApiResult<Json<ActionOutcome>> {
    let Json(body) = body?;
    let action = body.action.as_str();
    if !matches!(action, "retry" | "cancel" | "discard" | "delete") {
        return Err(ApiError::bad_request(
            "invalid",
            format!("unknown action {action:?}; expected retry, cancel, discard or delete"),
        ));
    }
    let max = body.max.unwrap_or(10_000);
    if max == 0 || max > MAX_ACTED {
        return Err(ApiError::bad_request(
            "invalid",
            format!("`max` must be 1 to {MAX_ACTED}"),
        ));
    }
    let mut filter = ListQuery {
        queue: body.queue,
        state: body.state,
        kind: body.kind,
        tag: body.tag,
        args: body.args,
        since: body.since,
        until: body.until,
        before: None,
        limit: Some(1000),
    }
    .into_filter()?;
    // On the filter as read: an empty `state` or `args` narrows nothing.
    if filter.queue.is_none()
        && filter.states.is_empty()
        && filter.kind.is_none()
        && filter.tag.is_none()
        && filter.args_contains.is_none()
    {
        return Err(ApiError::bad_request(
            "invalid",
            "name at least one of `queue`, `state`, `kind`, `tag` and `args`: an action on every job is refused",
        ));
    }
    let (mut matched, mut done, mut skipped, mut more) = (0u64, 0u64, 0u64, false);
    'pages: loop {
        let page = state.queues.list(filter.clone()).await?;
        let Some(last) = page.last() else { break };
        filter.before_id = Some(last.id);
        for job in &page {
            // `max` bounds the jobs acted on; those the action does not apply to are
            // passed over without a write, and do not count.
            if done == max {
                more = true;
                break 'pages;
            }
            matched += 1;
            if !applies(action, job.state) {
                skipped += 1;
                continue;
            }
            let q = &state.queues;
            let outcome = match action {
                "retry" => q.retry(job.id).await,
                "cancel" => q.cancel(job.id).await,
                "discard" => q.discard(job.id).await,
                _ => q.delete(job.id).await,
            };
            match outcome.map_err(ApiError::from) {
                Ok(_) => done += 1,
                // Moved on (or gone) since it was listed: skipped.
                Err(e) if matches!(e.status, StatusCode::CONFLICT | StatusCode::NOT_FOUND) => {
                    skipped += 1;
                }
                Err(mut e) => {
                    e.message = format!(
                        "{} (job {}; before it, {done} done and {skipped} skipped)",
                        e.message, job.id
                    );
                    return Err(e);
                }
            }
        }
    }
    Ok(Json(ActionOutcome {
        action: action.to_owned(),
        matched,
        done,
        skipped,
        more,
    }))
}

/// The most jobs one bulk push takes.
pub const MAX_BULK: usize = 100_000;

async fn push(
    state: Shared,
    body: Result<Json<PushBody>, JsonRejection>,
) -> ApiResult<Created<Inserted>> {
    let Json(body) = body?;
    let mut inserted = state.queues.enqueue(vec![body.into_enqueue()?]).await?;
    let one = inserted
        .pop()
        .ok_or_else(|| ApiError::internal("an enqueue of one job returned none"))?;
    Ok(JsonWith(one))
}

async fn push_bulk(
    state: Shared,
    body: Result<Json<BulkBody>, JsonRejection>,
) -> ApiResult<Created<InsertedJobs>> {
    let Json(body) = body?;
    if body.jobs.is_empty() || body.jobs.len() > MAX_BULK {
        return Err(ApiError::bad_request(
            "invalid",
            format!("`jobs` must hold 1 to {MAX_BULK} jobs"),
        ));
    }
    let jobs = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            j.into_enqueue().map_err(|mut e| {
                e.message = format!("job {i}: {}", e.message);
                e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inserted = state.queues.enqueue(jobs).await?;
    Ok(JsonWith(InsertedJobs { jobs: inserted }))
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<JobPage>> {
    let Query(query) = query?;
    let filter = query.into_filter()?;
    let limit = filter.limit as usize;
    let jobs = state.queues.list(filter).await?;
    let next = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(Json(JobPage {
        jobs,
        next_before: next,
    }))
}

async fn show(state: Shared, ApiPath(IdPath { id }): ApiPath<IdPath>) -> ApiResult<Json<Job>> {
    Ok(Json(state.queues.job(id_of(&id)?).await?))
}

fn change(ch: StateChange) -> Json<StateChange> {
    Json(ch)
}

async fn retry(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<StateChange>> {
    Ok(change(state.queues.retry(id_of(&id)?).await?))
}

async fn cancel(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<StateChange>> {
    Ok(change(state.queues.cancel(id_of(&id)?).await?))
}

async fn discard(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<StateChange>> {
    Ok(change(state.queues.discard(id_of(&id)?).await?))
}

async fn delete(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<StateChange>> {
    Ok(change(state.queues.delete(id_of(&id)?).await?))
}
