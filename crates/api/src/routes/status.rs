//! `GET /v1/status`: who this berth is and how its queues stand.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::get;
use axum::Json;

use super::Shared;
use crate::AppState;
use crate::error::ApiResult;
use crate::types::{NodeStatus, Status};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new().api_route("/v1/status", get(status))
}

async fn status(state: Shared) -> ApiResult<Json<Status>> {
    let queues = state.queues.stats().await?;
    let store = state.queues.store();
    let (nodes, leader) = (store.nodes().await?, store.leader().await?);
    let now = state.queues.now();
    let nodes = nodes
        .into_iter()
        .map(|n| NodeStatus {
            last_seen_secs: now.since(n.heartbeat_at).as_secs_f64(),
            leader: leader.held_by(&n.id, now),
            this: n.id == state.queues.node_name(),
            node: n,
        })
        .collect();
    Ok(Json(Status {
        node_name: state.queues.node_name().to_owned(),
        nodes,
        leader,
        app: state.app.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node: state.queues.node_id().to_owned(),
        pid: std::process::id(),
        uptime_secs: state.started.elapsed().as_secs(),
        now,
        queues,
    }))
}
