//! Batches: create, list, show (with failed items), cancel, retry the failed items.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use berth_queue::batches::BatchRequest;
use berth_store::BatchFilter;

use super::{ApiPath, Shared, flow_state, id_of};
use crate::AppState;
use crate::error::ApiResult;
use crate::types::{
    Batch, BatchCreateBody, BatchList, BatchQuery, BatchReport, BatchRetried, IdPath,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/batches", get(list).post(create))
        .api_route("/v1/batches/{id}", get(show))
        .api_route("/v1/batches/{id}/cancel", post(cancel))
        .api_route("/v1/batches/{id}/retry-failed", post(retry_failed))
}

async fn create(
    state: Shared,
    body: Result<Json<BatchCreateBody>, JsonRejection>,
) -> ApiResult<Json<Batch>> {
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
    Ok(Json(batch))
}

async fn list(
    state: Shared,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> ApiResult<Json<BatchList>> {
    let Query(q) = query?;
    let filter = BatchFilter {
        state: flow_state(q.state)?,
        before_id: q.before,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(BatchList {
        batches: state.queues.batches(filter).await?,
    }))
}

async fn show(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<BatchReport>> {
    Ok(Json(state.queues.batch(id_of(&id)?).await?))
}

async fn cancel(state: Shared, ApiPath(IdPath { id }): ApiPath<IdPath>) -> ApiResult<Json<Batch>> {
    Ok(Json(state.queues.batch_cancel(id_of(&id)?).await?))
}

async fn retry_failed(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<BatchRetried>> {
    let (batch, retried_jobs) = state.queues.batch_retry_failed(id_of(&id)?).await?;
    Ok(Json(BatchRetried {
        batch,
        retried_jobs,
    }))
}
