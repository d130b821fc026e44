//! `GET /v1/gateway`: the gateway's listeners and each route's counts; `GET /v1/budgets`:
//! the budgets as the gateway enforces them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/gateway", get(gateway))
        .route("/v1/budgets", get(budgets))
}

/// Each budget as this node's gateway enforces it now (after the last reload): its
/// limit, cost per request, period, what this node counts as spent and when it resets.
async fn budgets(state: Shared) -> ApiResult<Json<Value>> {
    let micros = |m: i64| m as f64 / 1_000_000.0;
    let items: Vec<Value> = state
        .gateway
        .as_ref()
        .map(|g| g.budgets())
        .unwrap_or_default()
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "name": b.name,
                "limit": micros(b.limit),
                "cost_per_request": micros(b.cost_per_request),
                "period": match b.period {
                    berth_gateway::Period::Day => "day",
                    berth_gateway::Period::Month => "month",
                },
                "spent": micros(b.spent),
                "period_start": b.period_start.to_string(),
                "resets_at": b.resets_at.to_string(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "gateway": state.gateway.is_some(),
        "budgets": items,
    })))
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
