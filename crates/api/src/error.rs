//! API errors: a typed JSON body and a status code. Internal details are logged, not sent.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_queue::QueueError;
use berth_store::StoreError;
use serde_json::json;

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// A sentence for people: what was wrong and what would be right.
    pub message: String,
}

impl ApiError {
    /// A 400 with `code` and `message`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }
}

impl ApiError {
    /// A 500: `detail` goes to berth's log, the client learns only that it failed.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "an internal error while answering the API");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "berth could not complete the request; see its log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::UnknownQueue { .. } => Self {
                status: StatusCode::NOT_FOUND,
                code: "unknown_queue",
                message: e.to_string(),
            },
            QueueError::Invalid(m) => Self::bad_request("invalid", m),
            QueueError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::JobNotFound(_) => Self {
                status: StatusCode::NOT_FOUND,
                code: "job_not_found",
                message: e.to_string(),
            },
            StoreError::NotFound(m) => Self {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: m.clone(),
            },
            StoreError::InvalidState { .. } => Self {
                status: StatusCode::CONFLICT,
                code: "invalid_state",
                message: e.to_string(),
            },
            StoreError::Conflict(m) => Self {
                status: StatusCode::CONFLICT,
                code: "conflict",
                message: m.clone(),
            },
            StoreError::Invalid(m) => Self::bad_request("invalid", m.clone()),
            _ => Self::internal(format_args!("store error: {e}")),
        }
    }
}

impl From<berth_workflow::WorkflowError> for ApiError {
    fn from(e: berth_workflow::WorkflowError) -> Self {
        use berth_workflow::WorkflowError as W;
        match e {
            W::Unknown { .. } => Self {
                status: StatusCode::NOT_FOUND,
                code: "unknown_workflow",
                message: e.to_string(),
            },
            W::Queue(q) => q.into(),
        }
    }
}

impl From<berth_schedule::ScheduleError> for ApiError {
    fn from(e: berth_schedule::ScheduleError) -> Self {
        use berth_schedule::ScheduleError as S;
        match e {
            S::Unknown { .. } => Self {
                status: StatusCode::NOT_FOUND,
                code: "unknown_schedule",
                message: e.to_string(),
            },
            S::Workflow(w) => w.into(),
            S::Queue(q) => q.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        // Keep the rejection's own status: 413 for a body too large, 415 for a missing
        // JSON content type, 400/422 for bad JSON.
        Self {
            status: e.status(),
            code: "bad_body",
            message: format!("the request body is not valid: {}", e.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(
            "bad_query",
            format!("the query string is not valid: {}", e.body_text()),
        )
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
