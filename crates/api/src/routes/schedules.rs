//! Schedules: list (next and last run, last outcome), run now, pause, resume.

use std::sync::Arc;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;

use super::{ApiPath, Shared};
use crate::AppState;
use crate::error::ApiResult;
use crate::types::{NamePath, ScheduleInfo, ScheduleList, ScheduleRun};

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/schedules", get(list))
        .api_route("/v1/schedules/{name}/run", post(run))
        .api_route("/v1/schedules/{name}/pause", post(pause))
        .api_route("/v1/schedules/{name}/resume", post(resume))
}

async fn list(state: Shared) -> ApiResult<Json<ScheduleList>> {
    Ok(Json(ScheduleList {
        schedules: state.scheduler.list().await?,
    }))
}

async fn run(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ScheduleRun>> {
    let fired = state.scheduler.run_now(&name).await?;
    Ok(Json(ScheduleRun {
        schedule: name,
        job_id: fired.job_id,
        workflow_id: fired.workflow_id,
    }))
}

async fn pause(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(state.scheduler.set_paused(&name, true).await?))
}

async fn resume(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ScheduleInfo>> {
    Ok(Json(state.scheduler.set_paused(&name, false).await?))
}
