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
        .route("/v1/queues/{name}", get(show))
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

/// One queue: its counts, oldest waiting job, how it is handled, and how many of its jobs
/// completed over the last 1, 5 and 15 minutes.
async fn show(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let now = state.queues.now();
    let spec = state.queues.spec(&name);
    let stats = state
        .queues
        .stats()
        .await?
        .into_iter()
        .find(|s| s.name == name);
    let (stats, spec) = match (stats, spec) {
        (Some(s), spec) => (s, spec.ok()),
        (None, Ok(spec)) => (
            berth_store::QueueStats {
                name: name.clone(),
                paused: false,
                counts: Default::default(),
                oldest_available_at: None,
            },
            Some(spec),
        ),
        // Neither configured nor holding jobs: the queue error says which exist.
        (None, Err(e)) => return Err(e.into()),
    };
    let windows = [60u64, 300, 900];
    let since = windows
        .iter()
        .map(|s| now.minus(std::time::Duration::from_secs(*s)))
        .collect();
    let done = state.queues.store().completed_since(&name, since).await?;
    let mut v = json!(stats);
    v["oldest_available_age_secs"] = json!(
        stats
            .oldest_available_at
            .map(|t| now.since(t).as_secs_f64())
    );
    v["configured"] = json!(spec.is_some());
    if let Some(spec) = &spec {
        v["handler"] = json!(match &spec.handler {
            berth_queue::HandlerSpec::Run { command } => format!("run: {command}"),
            berth_queue::HandlerSpec::Post { url } => format!("post: {url}"),
            berth_queue::HandlerSpec::Pull => "pull".to_owned(),
        });
        v["concurrency"] = json!(spec.concurrency);
        v["max_attempts"] = json!(spec.max_attempts);
    }
    v["completed"] = json!({
        "last_1m": done[0],
        "last_5m": done[1],
        "last_15m": done[2],
        "per_minute_5m": done[1] as f64 / 5.0,
    });
    Ok(Json(v))
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
