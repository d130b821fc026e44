//! Schedules: list (next and last run, last outcome), run now, pause, resume.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/schedules", get(list))
        .route("/v1/schedules/{name}/run", post(run))
        .route("/v1/schedules/{name}/pause", post(pause))
        .route("/v1/schedules/{name}/resume", post(resume))
}

async fn list(state: Shared) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "schedules": state.scheduler.list().await? })))
}

async fn run(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let fired = state.scheduler.run_now(&name).await?;
    Ok(Json(json!({
        "schedule": name,
        "job_id": fired.job_id,
        "workflow_id": fired.workflow_id,
    })))
}

async fn pause(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.scheduler.set_paused(&name, true).await?)))
}

async fn resume(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(state.scheduler.set_paused(&name, false).await?)))
}
