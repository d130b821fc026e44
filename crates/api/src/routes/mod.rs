//! One file per resource.

pub mod jobs;
pub mod queues;
pub mod services;
pub mod status;
pub mod workers;

use std::sync::Arc;

use crate::AppState;

/// The state every route receives.
pub type Shared = axum::extract::State<Arc<AppState>>;

/// Parses a job id from the path.
pub(crate) fn id_of(raw: &str) -> crate::ApiResult<i64> {
    raw.parse().map_err(|_| {
        crate::ApiError::bad_request("invalid", format!("job id {raw:?} is not a number"))
    })
}
