//! Queues: list with counts, pause, resume, purge.

use std::sync::Arc;

use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::body::PurgeBody;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/queues", get(list))
        .route("/v1/queues/{name}/pause", post(pause))
        .route("/v1/queues/{name}/resume", post(resume))
        .route("/v1/queues/{name}/purge", post(purge))
}

async fn list(state: Shared) -> ApiResult<Json<Value>> {
    let now = state.queues.now();
    let stats = state.queues.stats().await?;
    let queues: Vec<Value> = stats
        .into_iter()
        .map(|s| {
            let age = s.oldest_available_at.map(|t| now.since(t).as_secs_f64());
            let mut v = json!(s);
            v["oldest_available_age_secs"] = json!(age);
            v["configured"] = json!(state.queues.spec(&s.name).is_ok());
            v
        })
        .collect();
    Ok(Json(json!({ "queues": queues })))
}

async fn pause(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    state.queues.set_paused(&name, true).await?;
    Ok(Json(json!({ "queue": name, "paused": true })))
}

async fn resume(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    state.queues.set_paused(&name, false).await?;
    Ok(Json(json!({ "queue": name, "paused": false })))
}

async fn purge(
    state: Shared,
    Path(name): Path<String>,
    body: Result<Json<PurgeBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    // An empty body means the default states.
    let states = match body {
        Ok(Json(b)) => b.states,
        Err(JsonRejection::MissingJsonContentType(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let deleted = state.queues.purge(&name, states).await?;
    Ok(Json(json!({ "queue": name, "deleted": deleted })))
}
