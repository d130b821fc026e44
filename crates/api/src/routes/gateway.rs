//! `GET /v1/gateway`: the gateway's listeners and each route's counts; `GET /v1/budgets`:
//! the budgets as the gateway enforces them, and resetting one; maintenance mode.

use std::sync::Arc;

use axum::extract::Path;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/gateway", get(gateway))
        .route("/v1/budgets", get(budgets))
        .route("/v1/budgets/{name}/reset", post(reset_budget))
        .route(
            "/v1/maintenance",
            get(maintenance)
                .post(maintenance_on)
                .delete(maintenance_off),
        )
}

/// Starts a budget's period over: nothing spent since its start (as `berth budget
/// reset`). Every node's gateway follows from the store.
async fn reset_budget(state: Shared, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let now = state.queues.now();
    let Some(gateway) = &state.gateway else {
        return Err(no_gateway());
    };
    let Some(start) = gateway.budget_period_start(&name, now) else {
        let known: Vec<String> = gateway.budgets().into_iter().map(|b| b.name).collect();
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_budget",
            message: format!(
                "no budget `{name}` is enforced here; the budgets are: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        });
    };
    state.queues.store().budget_reset(&name, start, now).await?;
    Ok(Json(json!({"reset": name, "period_start": start})))
}

/// `POST /v1/maintenance` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceOn {
    /// The sentence the 503 page shows.
    message: Option<String>,
}

/// Whether maintenance mode is on, and its setting (message, since).
async fn maintenance(state: Shared) -> ApiResult<Json<Value>> {
    let value = state
        .queues
        .store()
        .setting(berth_gateway::MAINTENANCE_KEY)
        .await?;
    Ok(Json(
        json!({"maintenance": value.is_some(), "setting": value}),
    ))
}

/// Turns maintenance mode on (as `berth maintenance on`): every gateway answers 503 to all
/// but admins within a second.
async fn maintenance_on(
    state: Shared,
    body: Result<Json<MaintenanceOn>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body?;
    let now = state.queues.now();
    let value = json!({"message": body.message, "since": now.to_string()});
    state
        .queues
        .store()
        .set_setting(berth_gateway::MAINTENANCE_KEY, Some(value.clone()), now)
        .await?;
    Ok(Json(json!({"maintenance": true, "setting": value})))
}

async fn maintenance_off(state: Shared) -> ApiResult<Json<Value>> {
    let now = state.queues.now();
    state
        .queues
        .store()
        .set_setting(berth_gateway::MAINTENANCE_KEY, None, now)
        .await?;
    Ok(Json(json!({"maintenance": false})))
}

fn no_gateway() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "no_gateway",
        message: "this berth runs no gateway; add a [gateway] table to berth.toml".into(),
    }
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
        None => Err(no_gateway()),
    }
}
