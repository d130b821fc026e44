//! Jobs: push (one or many), list, show, retry, cancel, discard, delete.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_store::StateChange;
use serde_json::{Value, json};

use super::{Shared, id_of};
use crate::AppState;
use crate::body::{BulkBody, ListQuery, PushBody};
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/jobs", post(push).get(list))
        .route("/v1/jobs/bulk", post(push_bulk))
        .route("/v1/jobs/{id}", get(show).delete(delete))
        .route("/v1/jobs/{id}/retry", post(retry))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/discard", post(discard))
}

/// The most jobs one bulk push takes.
pub const MAX_BULK: usize = 100_000;

async fn push(
    state: Shared,
    body: Result<Json<PushBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body?;
    let inserted = state.queues.enqueue(vec![body.into_enqueue()?]).await?;
    Ok((StatusCode::CREATED, Json(json!(inserted[0]))))
}

async fn push_bulk(
    state: Shared,
    body: Result<Json<BulkBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
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
    Ok((StatusCode::CREATED, Json(json!({ "jobs": inserted }))))
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query?;
    let filter = query.into_filter()?;
    let limit = filter.limit as usize;
    let jobs = state.queues.list(filter).await?;
    let next = (jobs.len() == limit)
        .then(|| jobs.last().map(|j| j.id))
        .flatten();
    Ok(Json(json!({ "jobs": jobs, "next_before": next })))
}

async fn show(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.queues.job(id_of(&id)?).await?)))
}

fn change(ch: StateChange) -> Json<Value> {
    Json(json!(ch))
}

async fn retry(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(change(state.queues.retry(id_of(&id)?).await?))
}

async fn cancel(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(change(state.queues.cancel(id_of(&id)?).await?))
}

async fn discard(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(change(state.queues.discard(id_of(&id)?).await?))
}

async fn delete(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(change(state.queues.delete(id_of(&id)?).await?))
}
