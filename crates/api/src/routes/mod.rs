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

/// A path parameter whose rejection (bad percent-encoding, a value that does not read) is
/// the API's JSON error like every other, not axum's plain text.
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = crate::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(crate::ApiError::from)
    }
}

impl<T: schemars::JsonSchema> aide::OperationInput for ApiPath<T> {
    fn operation_input(
        ctx: &mut aide::generate::GenContext,
        operation: &mut aide::openapi::Operation,
    ) {
        axum::extract::Path::<T>::operation_input(ctx, operation);
    }
}
