//! The pull API for long-lived workers in any language: lease with a long poll, then
//! heartbeat, complete or fail, each naming the attempt from the lease.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use berth_queue::Report;
use berth_store::{AttemptRef, Finished};
use serde_json::{Value, json};

use super::{Shared, id_of};
use crate::AppState;
use crate::body::{CompleteBody, FailBody, HeartbeatBody, LeaseBody, duration};
use crate::error::{ApiError, ApiResult};

const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(300);

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/queues/{name}/lease", post(lease))
        .route("/v1/jobs/{id}/heartbeat", post(heartbeat))
        .route("/v1/jobs/{id}/complete", post(complete))
        .route("/v1/jobs/{id}/fail", post(fail))
}

fn lease_len(v: Option<&str>) -> ApiResult<Duration> {
    let d = v
        .map(|v| duration("lease", v))
        .transpose()?
        .unwrap_or(DEFAULT_LEASE);
    if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
        return Err(ApiError::bad_request(
            "invalid",
            "`lease` must be between 1s and 24h",
        ));
    }
    Ok(d)
}

async fn lease(
    state: Shared,
    Path(name): Path<String>,
    body: Result<Json<LeaseBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(b) = body?;
    if b.worker.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid",
            "`worker` must name the worker",
        ));
    }
    let wait = b
        .wait
        .as_deref()
        .map(|w| duration("wait", w))
        .transpose()?
        .unwrap_or_default();
    if wait > MAX_WAIT {
        return Err(ApiError::bad_request("invalid", "`wait` may be at most 5m"));
    }
    let lease = lease_len(b.lease.as_deref())?;
    let jobs = state
        .queues
        .lease(&name, &b.worker, b.max.unwrap_or(1), wait, lease)
        .await?;
    Ok(Json(json!({ "jobs": jobs })))
}

fn stale(id: i64, attempt: u32) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "stale_attempt",
        message: format!(
            "job {id} is no longer running under attempt {attempt} (it was cancelled, rescued after its lease expired, or already finished); nothing was recorded, stop working on it"
        ),
    }
}

async fn heartbeat(
    state: Shared,
    Path(id): Path<String>,
    body: Result<Json<HeartbeatBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&id)?;
    let Json(b) = body?;
    let lease = lease_len(b.lease.as_deref())?;
    let attempt = AttemptRef {
        id,
        attempt: b.attempt,
    };
    if state.queues.heartbeat(attempt, lease).await? {
        Ok(Json(
            json!({ "id": id, "attempt": b.attempt, "lease_expires_at": state.queues.now().plus(lease) }),
        ))
    } else {
        Err(stale(id, b.attempt))
    }
}

async fn finish(state: Shared, attempt: AttemptRef, report: Report) -> ApiResult<Json<Value>> {
    match state.queues.report(attempt, report).await? {
        Finished::Applied(st) => Ok(Json(json!({ "id": attempt.id, "state": st }))),
        Finished::Stale => Err(stale(attempt.id, attempt.attempt)),
    }
}

async fn complete(
    state: Shared,
    Path(id): Path<String>,
    body: Result<Json<CompleteBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&id)?;
    let Json(b) = body?;
    let attempt = AttemptRef {
        id,
        attempt: b.attempt,
    };
    finish(state, attempt, Report::Complete(b.result)).await
}

async fn fail(
    state: Shared,
    Path(id): Path<String>,
    body: Result<Json<FailBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&id)?;
    let Json(b) = body?;
    let retry_after = b
        .retry_after
        .as_deref()
        .map(|v| duration("retry_after", v))
        .transpose()?;
    let attempt = AttemptRef {
        id,
        attempt: b.attempt,
    };
    let report = Report::Fail {
        error: b.error,
        retry: b.retry.unwrap_or(true),
        retry_after,
    };
    finish(state, attempt, report).await
}
