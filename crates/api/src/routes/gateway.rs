//! `GET /v1/gateway`: the gateway's listeners and each route's counts.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/gateway", get(gateway))
}

async fn gateway(state: Shared) -> ApiResult<Json<Value>> {
    match &state.gateway {
        Some(gateway) => Ok(Json(gateway.to_json())),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "no_gateway",
            message: "this berth runs no gateway; add a [gateway] table to berth.toml".into(),
        }),
    }
}
