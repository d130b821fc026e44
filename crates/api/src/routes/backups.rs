//! Backups: `GET /v1/backups` lists the archives, `POST /v1/backups` starts one now (it
//! runs on after the answer), `POST /v1/backups/{id}/verify` reads one whole.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

use super::{ApiPath, Shared};
use crate::error::{Accepted, ApiError, ApiResult, JsonWith};
use crate::types::{BackupBody, BackupList, BackupPath, BackupStarted, BackupVerified};
use crate::{AppState, Backups, DeployRefusal};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/backups", get(list).post(save))
        .api_route("/v1/backups/{id}/verify", post(verify))
}

fn backups(state: &AppState) -> ApiResult<&Arc<dyn Backups>> {
    state.backups.as_ref().ok_or_else(|| ApiError {
        status: StatusCode::NOT_FOUND,
        code: "no_backup",
        message: "this berth makes no backups".into(),
    })
}

fn refused((status, code, message): DeployRefusal) -> ApiError {
    ApiError {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        code,
        message,
    }
}

async fn list(state: Shared) -> ApiResult<Json<BackupList>> {
    backups(&state)?.list().await.map(Json).map_err(refused)
}

async fn save(
    state: Shared,
    body: Result<Json<BackupBody>, JsonRejection>,
) -> ApiResult<Accepted<BackupStarted>> {
    // No body: the defaults.
    let body = match body {
        Ok(Json(b)) => b,
        Err(JsonRejection::MissingJsonContentType(_)) => BackupBody::default(),
        Err(e) => return Err(e.into()),
    };
    backups(&state)?
        .save(body.prune.unwrap_or(true), "api")
        .map(JsonWith)
        .map_err(refused)
}

async fn verify(
    state: Shared,
    ApiPath(BackupPath { id }): ApiPath<BackupPath>,
) -> ApiResult<Json<BackupVerified>> {
    backups(&state)?
        .verify(&id)
        .await
        .map(Json)
        .map_err(refused)
}
