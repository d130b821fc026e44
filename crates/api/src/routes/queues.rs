//! Queues: list with counts, pause, resume, purge.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Path;
use axum::extract::rejection::JsonRejection;

use super::Shared;
use crate::AppState;
use crate::error::ApiResult;
use crate::types::{
    Completed, NamePath, PurgeBody, Purged, QueueDetail, QueueList, QueuePaused, QueueStats,
    QueueView, Timestamp,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/queues", get(list))
        .api_route("/v1/queues/{name}", get(show))
        .api_route("/v1/queues/{name}/pause", post(pause))
        .api_route("/v1/queues/{name}/resume", post(resume))
        .api_route("/v1/queues/{name}/purge", post(purge))
}

fn view(state: &AppState, stats: QueueStats, now: Timestamp) -> QueueView {
    QueueView {
        oldest_available_age_secs: stats
            .oldest_available_at
            .map(|t| now.since(t).as_secs_f64()),
        configured: state.queues.spec(&stats.name).is_ok(),
        stats,
    }
}

async fn list(state: Shared) -> ApiResult<Json<QueueList>> {
    let now = state.queues.now();
    let stats = state.queues.stats().await?;
    let queues = stats.into_iter().map(|s| view(&state, s, now)).collect();
    Ok(Json(QueueList { queues }))
}

/// One queue: its counts, oldest waiting job, how it is handled, and how many of its jobs
/// completed over the last 1, 5 and 15 minutes.
async fn show(
    state: Shared,
    Path(NamePath { name }): Path<NamePath>,
) -> ApiResult<Json<QueueDetail>> {
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
            QueueStats {
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
    Ok(Json(QueueDetail {
        view: view(&state, stats, now),
        handler: spec.as_ref().map(|spec| match &spec.handler {
            berth_queue::HandlerSpec::Run { command } => format!("run: {command}"),
            berth_queue::HandlerSpec::Post { url } => format!("post: {url}"),
            berth_queue::HandlerSpec::Pull => "pull".to_owned(),
        }),
        concurrency: spec.as_ref().map(|s| s.concurrency),
        max_attempts: spec.as_ref().map(|s| s.max_attempts),
        completed: Completed {
            last_1m: done[0],
            last_5m: done[1],
            last_15m: done[2],
            per_minute_5m: done[1] as f64 / 5.0,
        },
    }))
}

async fn pause(
    state: Shared,
    Path(NamePath { name }): Path<NamePath>,
) -> ApiResult<Json<QueuePaused>> {
    state.queues.set_paused(&name, true).await?;
    Ok(Json(QueuePaused {
        queue: name,
        paused: true,
    }))
}

async fn resume(
    state: Shared,
    Path(NamePath { name }): Path<NamePath>,
) -> ApiResult<Json<QueuePaused>> {
    state.queues.set_paused(&name, false).await?;
    Ok(Json(QueuePaused {
        queue: name,
        paused: false,
    }))
}

async fn purge(
    state: Shared,
    Path(NamePath { name }): Path<NamePath>,
    body: Result<Json<PurgeBody>, JsonRejection>,
) -> ApiResult<Json<Purged>> {
    // An empty body means the default states.
    let states = match body {
        Ok(Json(b)) => b.states,
        Err(JsonRejection::MissingJsonContentType(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let deleted = state.queues.purge(&name, states).await?;
    Ok(Json(Purged {
        queue: name,
        deleted,
    }))
}
