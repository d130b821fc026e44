//! Deploys: `POST /v1/deploys` starts one (it runs on after the answer; follow it with
//! `GET /v1/releases/{id}`), `POST /v1/rollback` goes back, `GET /v1/releases` lists.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::{ApiPath, Shared};
use crate::error::{Accepted, ApiError, ApiResult, JsonWith};
use crate::types::{DeployBody, Release, ReleaseList, ReleasePath, ReleaseView, RollbackBody};
use crate::{AppState, DeployRefusal, Deploys};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/releases", get(list))
        .api_route("/v1/releases/{id}", get(show))
        .api_route("/v1/deploys", post(deploy))
        .api_route("/v1/rollback", post(rollback))
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

async fn list(state: Shared) -> ApiResult<Json<ReleaseList>> {
    deploys(&state)?.releases().map(Json).map_err(refused)
}

async fn show(
    state: Shared,
    ApiPath(ReleasePath { id }): ApiPath<ReleasePath>,
) -> ApiResult<Json<ReleaseView>> {
    deploys(&state)?.release(&id).map(Json).map_err(refused)
}

async fn deploy(
    state: Shared,
    body: Result<Json<DeployBody>, JsonRejection>,
) -> ApiResult<Accepted<Release>> {
    let Json(body) = body?;
    let d = deploys(&state)?;
    let by = body.by.unwrap_or_else(|| "api".into());
    d.deploy(body.source, by)
        .await
        .map(JsonWith)
        .map_err(refused)
}

async fn rollback(
    state: Shared,
    body: Result<Json<RollbackBody>, JsonRejection>,
) -> ApiResult<Json<Release>> {
    let Json(body) = body?;
    let d = deploys(&state)?;
    let by = body.by.unwrap_or_else(|| "api".into());
    d.rollback(body.to, by, body.restore.unwrap_or(true))
        .await
        .map(Json)
        .map_err(refused)
}
