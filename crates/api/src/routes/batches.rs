//! Batches: create, list, show (with failed items), cancel, retry the failed items.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_queue::batches::BatchRequest;
use berth_store::BatchFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, flow_state, id_of};
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/batches", get(list).post(create))
        .route("/v1/batches/{id}", get(show))
        .route("/v1/batches/{id}/cancel", post(cancel))
        .route("/v1/batches/{id}/retry-failed", post(retry_failed))
}

/// A batch to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    queue: String,
    kind: String,
    items: Vec<Value>,
    job_size: u32,
    max_attempts: Option<u32>,
    #[serde(default)]
    priority: i32,
}

/// Listing filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn create(
    state: Shared,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    let batch = state
        .queues
        .batch_create(BatchRequest {
            queue: b.queue,
            kind: b.kind,
            items: b.items,
            job_size: b.job_size,
            max_attempts: b.max_attempts,
            priority: b.priority,
        })
        .await?;
    Ok(Json(json!(batch)))
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let filter = BatchFilter {
        state: flow_state(q.state)?,
        before_id: q.before,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(
        json!({ "batches": state.queues.batches(filter).await? }),
    ))
}

async fn show(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.queues.batch(id_of(&id)?).await?)))
}

async fn cancel(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.queues.batch_cancel(id_of(&id)?).await?)))
}

async fn retry_failed(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let (batch, retried) = state.queues.batch_retry_failed(id_of(&id)?).await?;
    let mut v = json!(batch);
    v["retried_jobs"] = json!(retried);
    Ok(Json(v))
}
