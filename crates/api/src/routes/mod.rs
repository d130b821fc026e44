//! One file per resource.

pub mod archive;
pub mod backups;
pub mod batches;
pub mod deploys;
pub mod gateway;
pub mod jobs;
pub mod messages;
pub mod metrics;
pub mod notifications;
pub mod queues;
pub mod schedules;
pub mod services;
pub mod status;
pub mod workers;
pub mod workflows;

use std::sync::Arc;

use crate::AppState;

/// The state every route receives.
pub type Shared = axum::extract::State<Arc<AppState>>;

/// Parses the `state` filter of batches and workflows.
pub(crate) fn flow_state(raw: Option<String>) -> crate::ApiResult<Option<berth_store::FlowState>> {
    raw.map(|s| s.parse())
        .transpose()
        .map_err(|e: String| crate::ApiError::bad_request("invalid", e))
}

/// Parses a job, batch or workflow id from the path.
pub(crate) fn id_of(raw: &str) -> crate::ApiResult<i64> {
    raw.parse()
        .map_err(|_| crate::ApiError::bad_request("invalid", format!("id {raw:?} is not a number")))
}
