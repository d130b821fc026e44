//! `GET /v1/status`: who this berth is and how its queues stand.

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/status", get(status))
}

async fn status(state: Shared) -> ApiResult<Json<Value>> {
    let queues = state.queues.stats().await?;
    let store = state.queues.store();
    let (nodes, leader) = (store.nodes().await?, store.leader().await?);
    let now = state.queues.now();
    let nodes: Vec<Value> = nodes
        .into_iter()
        .map(|n| {
            let mut v = json!(n);
            v["last_seen_secs"] = json!(now.since(n.heartbeat_at).as_secs_f64());
            v["leader"] = json!(leader.held_by(&n.id, now));
            v["this"] = json!(n.id == state.queues.node_name());
            v
        })
        .collect();
    Ok(Json(json!({
        "node_name": state.queues.node_name(),
        "nodes": nodes,
        "leader": leader,
        "app": state.app,
        "version": env!("CARGO_PKG_VERSION"),
        "node": state.queues.node_id(),
        "pid": std::process::id(),
        "uptime_secs": state.started.elapsed().as_secs(),
        "now": state.queues.now(),
        "queues": queues,
    })))
}
