//! Workflows: start, list, show (with steps), cancel, retry from the failed steps.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use berth_store::WorkflowFilter;

use super::{ApiPath, Shared, flow_state, id_of};
use crate::AppState;
use crate::error::ApiResult;
use crate::types::{
    IdPath, Workflow, WorkflowList, WorkflowQuery, WorkflowStartBody, WorkflowStarted,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/workflows", get(list).post(start))
        .api_route("/v1/workflows/{id}", get(show))
        .api_route("/v1/workflows/{id}/cancel", post(cancel))
        .api_route("/v1/workflows/{id}/retry", post(retry))
}

async fn start(
    state: Shared,
    body: Result<Json<WorkflowStartBody>, JsonRejection>,
) -> ApiResult<Json<WorkflowStarted>> {
    let Json(b) = body?;
    let input = b
        .args
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    if b.unique_key
        .as_deref()
        .is_some_and(|k| k.is_empty() || k.len() > 1024)
    {
        return Err(crate::ApiError::bad_request(
            "invalid",
            "unique_key must be 1 to 1024 bytes",
        ));
    }
    let (w, duplicate) = state
        .workflows
        .start_keyed(&b.name, input, "api", b.unique_key)
        .await?;
    Ok(Json(WorkflowStarted {
        workflow: w,
        duplicate,
    }))
}

async fn list(
    state: Shared,
    query: Result<Query<WorkflowQuery>, QueryRejection>,
) -> ApiResult<Json<WorkflowList>> {
    let Query(q) = query?;
    let filter = WorkflowFilter {
        unique_key: None,
        name: q.name,
        state: flow_state(q.state)?,
        before_id: q.before,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(WorkflowList {
        workflows: state.workflows.list(filter).await?,
    }))
}

async fn show(state: Shared, ApiPath(IdPath { id }): ApiPath<IdPath>) -> ApiResult<Json<Workflow>> {
    Ok(Json(state.workflows.get(id_of(&id)?).await?))
}

async fn cancel(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(state.workflows.cancel(id_of(&id)?).await?))
}

async fn retry(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> ApiResult<Json<Workflow>> {
    Ok(Json(state.workflows.retry(id_of(&id)?).await?))
}
