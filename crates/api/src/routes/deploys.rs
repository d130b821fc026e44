//! Deploys: `POST /v1/deploys` starts one (it runs on after the answer; follow it with
//! `GET /v1/releases/{id}`), `POST /v1/rollback` goes back, `GET /v1/releases` lists.

use std::sync::Arc;

use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::Shared;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, DeployRefusal, Deploys};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/releases", get(list))
        .route("/v1/releases/{id}", get(show))
        .route("/v1/deploys", post(deploy))
        .route("/v1/rollback", post(rollback))
}

/// `POST /v1/deploys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    /// A git ref, or an absolute path of a directory or archive; the configured ref
    /// without it.
    source: Option<String>,
    /// Who asks (shown in `berth releases`).
    by: Option<String>,
}

/// `POST /v1/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    /// The release to go back to; the one before the live one without it.
    to: Option<String>,
    by: Option<String>,
    /// Whether the databases may be restored (with `restore_on_rollback`); default true.
    restore: Option<bool>,
}

fn deploys(state: &AppState) -> ApiResult<&Arc<dyn Deploys>> {
    state.deploys.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "no_deploy",
        message: "this berth's config has no [deploy] table; add one to deploy releases (see docs/deploy.md)"
            .into(),
    })
}

fn refused((status, code, message): DeployRefusal) -> ApiError {
    ApiError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        code,
        message,
    }
}

async fn list(state: Shared) -> ApiResult<Json<Value>> {
    deploys(&state)?.releases().map(Json).map_err(refused)
}

async fn show(state: Shared, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    deploys(&state)?.release(&id).map(Json).map_err(refused)
}

async fn deploy(
    state: Shared,
    body: Result<Json<DeployBody>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body?;
    let d = deploys(&state)?;
    let by = body.by.unwrap_or_else(|| "api".into());
    d.deploy(body.source, by)
        .await
        .map(|v| (StatusCode::ACCEPTED, Json(v)))
        .map_err(refused)
}

async fn rollback(
    state: Shared,
    body: Result<Json<RollbackBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
    let d = deploys(&state)?;
    let by = body.by.unwrap_or_else(|| "api".into());
    d.rollback(body.to, by, body.restore.unwrap_or(true))
        .await
        .map(Json)
        .map_err(refused)
}
