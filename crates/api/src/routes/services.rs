//! Services: every instance with its state, pid, uptime, restarts, port, CPU and memory.

use std::sync::Arc;
use std::time::SystemTime;

use axum::routing::get;
use axum::{Json, Router};
use berth_supervise::usage::usage;
use serde_json::{Value, json};

use super::Shared;
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/services", get(list))
}

async fn list(state: Shared) -> ApiResult<Json<Value>> {
    let Some(sup) = &state.services else {
        return Ok(Json(json!({ "services": [] })));
    };
    let now = SystemTime::now();
    let rows: Vec<Value> = sup
        .status()
        .into_iter()
        .map(|s| {
            let uptime = s
                .started_at
                .filter(|_| s.pid.is_some())
                .and_then(|t| now.duration_since(t).ok());
            let used = s.pid.and_then(usage);
            json!({
                "service": s.service,
                "instance": s.instance,
                "pid": s.pid,
                "state": s.state.as_str(),
                "uptime_secs": uptime.map(|d| d.as_secs_f64()),
                "restarts": s.restarts,
                "port": s.port,
                // Average over the process's life so far.
                "cpu_percent": used.zip(uptime).map(|(u, up)| {
                    100.0 * u.cpu.as_secs_f64() / up.as_secs_f64().max(0.001)
                }),
                "rss_bytes": used.map(|u| u.rss_bytes),
                "last_exit": s.last_exit.as_ref().map(|e| e.exit.to_string()),
            })
        })
        .collect();
    Ok(Json(json!({ "services": rows })))
}
