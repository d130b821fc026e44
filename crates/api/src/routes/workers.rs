//! The pull API for long-lived workers in any language: lease with a long poll, then
//! heartbeat, complete or fail, each naming the attempt from the lease.

use std::sync::Arc;
use std::time::Duration;

use aide::axum::ApiRouter;
use aide::axum::routing::post;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use berth_queue::Report;
use berth_store::{AttemptRef, Finished, LeasedJob};

use super::{ApiPath, Shared, id_of};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::types::{
    AttemptItem, AttemptOutcome, CompleteBody, FailBody, Heartbeat, HeartbeatBody,
    HeartbeatManyBody, Heartbeats, IdPath, LeaseBody, LeaseNext, Leased, NamePath, ReportBody,
    ReportItem, Reported, duration,
};

const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(300);

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/queues/{name}/lease", post(lease))
        .api_route("/v1/queues/{name}/report", post(report))
        .api_route("/v1/queues/{name}/heartbeat", post(heartbeat_many))
        .api_route("/v1/jobs/{id}/heartbeat", post(heartbeat))
        .api_route("/v1/jobs/{id}/complete", post(complete))
        .api_route("/v1/jobs/{id}/fail", post(fail))
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
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    body: Result<Json<LeaseBody>, JsonRejection>,
) -> ApiResult<Json<Leased>> {
    let Json(b) = body?;
    let next = LeaseNext {
        max: b.max,
        wait: b.wait,
        lease: b.lease,
    };
    let jobs = lease_next(&state, &name, &b.worker, &next).await?;
    Ok(Json(Leased { jobs }))
}

fn worker_named(worker: &str) -> ApiResult<()> {
    if worker.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid",
            "`worker` must name the worker",
        ));
    }
    Ok(())
}

async fn lease_next(
    state: &Shared,
    queue: &str,
    worker: &str,
    next: &LeaseNext,
) -> ApiResult<Vec<LeasedJob>> {
    worker_named(worker)?;
    let wait = next
        .wait
        .as_deref()
        .map(|w| duration("wait", w))
        .transpose()?
        .unwrap_or_default();
    if wait > MAX_WAIT {
        return Err(ApiError::bad_request("invalid", "`wait` may be at most 5m"));
    }
    let lease = lease_len(next.lease.as_deref())?;
    Ok(state
        .queues
        .lease(queue, worker, next.max.unwrap_or(1), wait, lease)
        .await?)
}

/// One item of a batched report, read.
fn report_of(item: ReportItem) -> ApiResult<(AttemptRef, Report)> {
    let attempt = AttemptRef {
        id: item.id,
        attempt: item.attempt,
    };
    let report = match item.error {
        Some(error) => {
            if item.result.is_some() {
                return Err(ApiError::bad_request(
                    "invalid",
                    format!(
                        "job {}: `result` and `error` together; a completion has no `error`, a failure no `result`",
                        item.id
                    ),
                ));
            }
            Report::Fail {
                error,
                retry: item.retry.unwrap_or(true),
                retry_after: item
                    .retry_after
                    .as_deref()
                    .map(|v| duration("retry_after", v))
                    .transpose()?,
            }
        }
        None => {
            if item.retry.is_some() || item.retry_after.is_some() {
                return Err(ApiError::bad_request(
                    "invalid",
                    format!(
                        "job {}: `retry` and `retry_after` belong to a failure; add `error` to report one",
                        item.id
                    ),
                ));
            }
            Report::Complete(item.result)
        }
    };
    Ok((attempt, report))
}

/// Records many outcomes in one write, then (with `lease`) leases the next jobs.
async fn report(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    body: Result<Json<ReportBody>, JsonRejection>,
) -> ApiResult<Json<Reported>> {
    let Json(b) = body?;
    worker_named(&b.worker)?;
    let reports = b
        .done
        .into_iter()
        .map(report_of)
        .collect::<ApiResult<Vec<_>>>()?;
    let ids: Vec<i64> = reports.iter().map(|(a, _)| a.id).collect();
    let finished = state.queues.report_many(&name, reports).await?;
    let done = ids
        .iter()
        .zip(finished)
        .map(|(&id, f)| match f {
            Finished::Applied(st) => AttemptOutcome {
                id,
                state: Some(st),
                error: None,
            },
            Finished::Stale => AttemptOutcome {
                id,
                state: None,
                error: Some("stale_attempt".into()),
            },
        })
        .collect();
    let jobs = match &b.lease {
        Some(next) => lease_next(&state, &name, &b.worker, next).await?,
        None => Vec::new(),
    };
    Ok(Json(Reported { done, jobs }))
}

/// Extends many leases at once.
async fn heartbeat_many(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    body: Result<Json<HeartbeatManyBody>, JsonRejection>,
) -> ApiResult<Json<Heartbeats>> {
    let Json(b) = body?;
    let lease = lease_len(b.lease.as_deref())?;
    let attempts: Vec<AttemptRef> = b
        .jobs
        .iter()
        .map(|j: &AttemptItem| AttemptRef {
            id: j.id,
            attempt: j.attempt,
        })
        .collect();
    let (extended, until) = state.queues.heartbeat_many(&name, attempts, lease).await?;
    let jobs = b
        .jobs
        .iter()
        .zip(extended)
        .map(|(j, ok)| Heartbeat {
            id: j.id,
            attempt: j.attempt,
            lease_expires_at: ok.then_some(until),
            error: (!ok).then(|| "stale_attempt".to_owned()),
        })
        .collect();
    Ok(Json(Heartbeats { jobs }))
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
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    body: Result<Json<HeartbeatBody>, JsonRejection>,
) -> ApiResult<Json<Heartbeat>> {
    let id = id_of(&id)?;
    let Json(b) = body?;
    let lease = lease_len(b.lease.as_deref())?;
    let attempt = AttemptRef {
        id,
        attempt: b.attempt,
    };
    if state.queues.heartbeat(attempt, lease).await? {
        Ok(Json(Heartbeat {
            id,
            attempt: b.attempt,
            lease_expires_at: Some(state.queues.now().plus(lease)),
            error: None,
        }))
    } else {
        Err(stale(id, b.attempt))
    }
}

async fn finish(
    state: Shared,
    attempt: AttemptRef,
    report: Report,
) -> ApiResult<Json<AttemptOutcome>> {
    match state.queues.report(attempt, report).await? {
        Finished::Applied(st) => Ok(Json(AttemptOutcome {
            id: attempt.id,
            state: Some(st),
            error: None,
        })),
        Finished::Stale => Err(stale(attempt.id, attempt.attempt)),
    }
}

async fn complete(
    state: Shared,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    body: Result<Json<CompleteBody>, JsonRejection>,
) -> ApiResult<Json<AttemptOutcome>> {
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
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    body: Result<Json<FailBody>, JsonRejection>,
) -> ApiResult<Json<AttemptOutcome>> {
    let Json(b) = body?;
    // One reading of a failure, shared with the batched report.
    let (attempt, report) = report_of(ReportItem {
        id: id_of(&id)?,
        attempt: b.attempt,
        result: None,
        error: Some(b.error),
        retry: b.retry,
        retry_after: b.retry_after,
    })?;
    finish(state, attempt, report).await
}
