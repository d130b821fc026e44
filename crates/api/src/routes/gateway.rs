//! `GET /v1/gateway`: the gateway's listeners and each route's counts; `GET /v1/budgets`:
//! the budgets as the gateway enforces them, and resetting one; maintenance mode.

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
    BudgetList, BudgetReset, BudgetStatus, GatewayStatus, Maintenance, MaintenanceBody,
    MaintenanceSetting, NamePath, RouteCounts,
};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/gateway", get(gateway))
        .api_route("/v1/budgets", get(budgets))
        .api_route("/v1/budgets/{name}/reset", post(reset_budget))
        .api_route(
            "/v1/maintenance",
            get(maintenance)
                .post(maintenance_on)
                .delete(maintenance_off),
        )
}

/// Starts a budget's period over: nothing spent since its start (as `berth budget
/// reset`). Every node's gateway follows from the store.
async fn reset_budget(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<BudgetReset>> {
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
    Ok(Json(BudgetReset {
        reset: name,
        period_start: start,
    }))
}

/// Whether maintenance mode is on, and its setting (message, since).
async fn maintenance(state: Shared) -> ApiResult<Json<Maintenance>> {
    let value = state
        .queues
        .store()
        .setting(berth_gateway::MAINTENANCE_KEY)
        .await?;
    Ok(Json(Maintenance {
        maintenance: value.is_some(),
        // Written by this API or `berth maintenance on`, in this shape.
        setting: value.map(|v| serde_json::from_value(v).unwrap_or_default()),
    }))
}

/// Turns maintenance mode on (as `berth maintenance on`): every gateway answers 503 to all
/// but admins within a second.
async fn maintenance_on(
    state: Shared,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> ApiResult<Json<Maintenance>> {
    let Json(body) = body?;
    let now = state.queues.now();
    let setting = MaintenanceSetting {
        message: body.message,
        since: Some(now.to_string()),
    };
    let value = serde_json::to_value(&setting).map_err(ApiError::internal)?;
    state
        .queues
        .store()
        .set_setting(berth_gateway::MAINTENANCE_KEY, Some(value), now)
        .await?;
    Ok(Json(Maintenance {
        maintenance: true,
        setting: Some(setting),
    }))
}

async fn maintenance_off(state: Shared) -> ApiResult<Json<Maintenance>> {
    let now = state.queues.now();
    state
        .queues
        .store()
        .set_setting(berth_gateway::MAINTENANCE_KEY, None, now)
        .await?;
    Ok(Json(Maintenance {
        maintenance: false,
        setting: None,
    }))
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
async fn budgets(state: Shared) -> ApiResult<Json<BudgetList>> {
    let micros = |m: i64| m as f64 / 1_000_000.0;
    let budgets = state
        .gateway
        .as_ref()
        .map(|g| g.budgets())
        .unwrap_or_default()
        .into_iter()
        .map(|b| BudgetStatus {
            name: b.name,
            limit: micros(b.limit),
            cost_per_request: micros(b.cost_per_request),
            period: match b.period {
                berth_gateway::Period::Day => "day",
                berth_gateway::Period::Month => "month",
            }
            .to_owned(),
            spent: micros(b.spent),
            period_start: b.period_start.to_string(),
            resets_at: b.resets_at.to_string(),
        })
        .collect();
    Ok(Json(BudgetList {
        gateway: state.gateway.is_some(),
        budgets,
    }))
}

async fn gateway(state: Shared) -> ApiResult<Json<GatewayStatus>> {
    let Some(g) = &state.gateway else {
        return Err(no_gateway());
    };
    let routes = g
        .stats()
        .into_iter()
        .map(|r| RouteCounts {
            route: r.route,
            target: r.target.to_owned(),
            requests: r.requests,
            status_2xx: r.status_2xx,
            status_3xx: r.status_3xx,
            status_4xx: r.status_4xx,
            status_5xx: r.status_5xx,
            mean_ms: (r.mean_ms * 1000.0).round() / 1000.0,
        })
        .collect();
    Ok(Json(GatewayStatus {
        listen: g.local_addrs().iter().map(ToString::to_string).collect(),
        tls: g.serves_tls(),
        http: g.http_addr().map(|a| a.to_string()),
        routes,
    }))
}
