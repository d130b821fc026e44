//! Workflows: start, list, show (with steps), cancel, retry from the failed steps.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_store::WorkflowFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, flow_state, id_of};
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/workflows", get(list).post(start))
        .route("/v1/workflows/{id}", get(show))
        .route("/v1/workflows/{id}/cancel", post(cancel))
        .route("/v1/workflows/{id}/retry", post(retry))
}

/// A workflow to start.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    name: String,
    #[serde(default)]
    args: Option<Value>,
    /// While a workflow started with this key runs, another start returns it.
    #[serde(default)]
    unique_key: Option<String>,
}

/// Listing filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    name: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn start(
    state: Shared,
    body: Result<Json<StartBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    let input = b.args.unwrap_or_else(|| json!({}));
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
    let mut v = json!(w);
    v["duplicate"] = json!(duplicate);
    Ok(Json(v))
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let filter = WorkflowFilter {
        unique_key: None,
        name: q.name,
        state: flow_state(q.state)?,
        before_id: q.before,
        limit: q.limit.unwrap_or(50),
    };
    Ok(Json(
        json!({ "workflows": state.workflows.list(filter).await? }),
    ))
}

async fn show(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.workflows.get(id_of(&id)?).await?)))
}

async fn cancel(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.workflows.cancel(id_of(&id)?).await?)))
}

async fn retry(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.workflows.retry(id_of(&id)?).await?)))
}
