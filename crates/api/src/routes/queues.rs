//! Queues: list with counts, pause, resume, purge.

use std::collections::BTreeMap;
use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::{ApiPath, Shared};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::types::{
    Completed, ConcurrencyBody, NamePath, PurgeBody, Purged, QueueConcurrency, QueueDetail,
    QueueList, QueuePaused, QueueStats, QueueView, Timestamp,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/queues", get(list))
        .api_route("/v1/queues/{name}", get(show))
        .api_route("/v1/queues/{name}/pause", post(pause))
        .api_route("/v1/queues/{name}/resume", post(resume))
        .api_route("/v1/queues/{name}/purge", post(purge))
        .api_route("/v1/queues/{name}/concurrency", post(concurrency))
}

fn view(state: &AppState, stats: QueueStats, now: Timestamp) -> QueueView {
    let spec = state.queues.spec(&stats.name);
    QueueView {
        oldest_available_age_secs: stats
            .oldest_available_at
            .map(|t| now.since(t).as_secs_f64()),
        configured: spec.is_ok(),
        concurrency: spec
            .ok()
            .filter(|s| !matches!(s.handler, berth_queue::HandlerSpec::Pull))
            .map(|s| s.concurrency),
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
    ApiPath(NamePath { name }): ApiPath<NamePath>,
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
        concurrency_override: overrides(&state).await?.remove(&name),
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
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<QueuePaused>> {
    state.queues.set_paused(&name, true).await?;
    Ok(Json(QueuePaused {
        queue: name,
        paused: true,
    }))
}

async fn resume(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<QueuePaused>> {
    state.queues.set_paused(&name, false).await?;
    Ok(Json(QueuePaused {
        queue: name,
        paused: false,
    }))
}

async fn purge(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
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

/// The concurrency set at run time, by queue.
async fn overrides(state: &AppState) -> ApiResult<BTreeMap<String, u32>> {
    let value = state
        .queues
        .store()
        .setting(berth_queue::CONCURRENCY_KEY)
        .await?;
    // Unreadable (written by hand): none, as the nodes treat it.
    Ok(value
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Sets a queue's concurrency at run time over the config's (or, with `null`, back to
/// it): stored, so that every node follows within a second and it outlives reloads and
/// restarts.
async fn concurrency(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    body: Result<Json<ConcurrencyBody>, JsonRejection>,
) -> ApiResult<Json<QueueConcurrency>> {
    let Json(body) = body?;
    let spec = state.queues.spec(&name)?;
    if matches!(spec.handler, berth_queue::HandlerSpec::Pull) {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "pull_queue",
            message: format!(
                "`{name}` is a pull queue: berth runs none of its jobs, its workers choose how many they lease (`max`)"
            ),
        });
    }
    if let Some(n) = body.concurrency
        && !(1..=10_000).contains(&n)
    {
        return Err(ApiError::bad_request(
            "invalid",
            format!(
                "concurrency {n} is out of range; expected 1 to 10000, or null for the config's"
            ),
        ));
    }
    // Changed in one step against what was read: two changes at once (two admins, two
    // nodes) both land, the second on top of the first.
    let store = state.queues.store();
    for _ in 0..20 {
        let before = store.setting(berth_queue::CONCURRENCY_KEY).await?;
        let mut all: BTreeMap<String, u32> = before
            .clone()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        match body.concurrency {
            Some(n) => all.insert(name.clone(), n),
            None => all.remove(&name),
        };
        let value = (!all.is_empty())
            .then(|| serde_json::to_value(&all))
            .transpose()
            .map_err(ApiError::internal)?;
        let now = state.queues.now();
        if store
            .swap_setting(berth_queue::CONCURRENCY_KEY, before, value, now)
            .await?
        {
            tracing::info!(queue = %name, concurrency = ?body.concurrency, "queue concurrency set at run time");
            return Ok(Json(QueueConcurrency {
                queue: name,
                concurrency: body.concurrency,
            }));
        }
    }
    Err(ApiError {
        status: StatusCode::CONFLICT,
        code: "conflict",
        message: "the queues' concurrency setting kept changing under this change; try again"
            .into(),
    })
}
