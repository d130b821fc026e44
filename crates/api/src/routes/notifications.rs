//! Notifications: the outbox of each `[notify.NAME]` channel, waiting and sent.

use std::sync::Arc;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::routing::get;
use axum::{Json, Router};
use berth_store::DeliveryFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/notifications", get(list))
}

/// `GET /v1/notifications` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    /// `true`: only those waiting; `false`: only those sent.
    pending: Option<bool>,
    limit: Option<u32>,
}

async fn list(
    state: Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid",
            format!("limit {limit} is out of range; expected 1 to 10000"),
        ));
    }
    let deliveries = state
        .queues
        .store()
        .notify_deliveries(DeliveryFilter {
            channel: q.channel,
            pending: q.pending,
            limit,
        })
        .await?;
    Ok(Json(json!({ "notifications": deliveries })))
}
