//! Notifications: the outbox of each `[notify.NAME]` channel, waiting and sent.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::get;
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use berth_store::DeliveryFilter;

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::types::{NotificationList, NotificationQuery};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new().api_route("/v1/notifications", get(list))
}

async fn list(
    state: Shared,
    query: Result<Query<NotificationQuery>, QueryRejection>,
) -> ApiResult<Json<NotificationList>> {
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
    Ok(Json(NotificationList {
        notifications: deliveries,
    }))
}
