//! API errors: a typed JSON body and a status code. Internal details are logged, not sent.

use aide::OperationOutput;
use aide::generate::GenContext;
use aide::openapi::{Operation, Response as OaResponse};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_queue::QueueError;
use berth_store::StoreError;

use crate::types::{ErrorBody, ErrorDetail};

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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // A refusal for now: the same call may succeed in a few seconds.
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}

/// In the OpenAPI document, every operation's `default` answer: the error body.
impl OperationOutput for ApiError {
    type Inner = ErrorBody;

    fn operation_response(ctx: &mut GenContext, op: &mut Operation) -> Option<OaResponse> {
        let mut r = Json::<ErrorBody>::operation_response(ctx, op)?;
        r.description = "An error: what was wrong and what would be right.".into();
        Some(r)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, OaResponse)> {
        Self::operation_response(ctx, op)
            .map(|r| vec![(None, r)])
            .unwrap_or_default()
    }
}

/// A server-sent event stream (`text/event-stream`), described as such in the OpenAPI
/// document.
pub struct EventStream<T>(pub T);

impl<T: IntoResponse> IntoResponse for EventStream<T> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<T> OperationOutput for EventStream<T> {
    type Inner = String;

    fn operation_response(_: &mut GenContext, _: &mut Operation) -> Option<OaResponse> {
        let media = aide::openapi::MediaType {
            schema: Some(aide::openapi::SchemaObject {
                json_schema: schemars::json_schema!({
                    "type": "string",
                    "description": "Server-sent events, one `data:` line of JSON each."
                }),
                example: None,
                external_docs: None,
            }),
            ..Default::default()
        };
        Some(OaResponse {
            description: "A stream of server-sent events; it ends when berth stops.".into(),
            content: [("text/event-stream".to_owned(), media)]
                .into_iter()
                .collect(),
            ..Default::default()
        })
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, OaResponse)> {
        Self::operation_response(ctx, op)
            .map(|r| vec![(Some(200), r)])
            .unwrap_or_default()
    }
}

/// A JSON answer with a status other than 200 (`201 Created`, `202 Accepted`), which the
/// OpenAPI document shows under that status.
#[derive(Debug)]
pub struct JsonWith<const STATUS: u16, T>(pub T);

/// `201 Created` with the new record.
pub type Created<T> = JsonWith<201, T>;
/// `202 Accepted`: the work goes on after the answer.
pub type Accepted<T> = JsonWith<202, T>;

impl<const STATUS: u16, T: serde::Serialize> IntoResponse for JsonWith<STATUS, T> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(STATUS).unwrap_or(StatusCode::OK);
        (status, Json(self.0)).into_response()
    }
}

impl<const STATUS: u16, T: schemars::JsonSchema> OperationOutput for JsonWith<STATUS, T> {
    type Inner = T;

    fn operation_response(ctx: &mut GenContext, op: &mut Operation) -> Option<OaResponse> {
        Json::<T>::operation_response(ctx, op)
    }

    fn inferred_responses(
        ctx: &mut GenContext,
        op: &mut Operation,
    ) -> Vec<(Option<u16>, OaResponse)> {
        Self::operation_response(ctx, op)
            .map(|r| vec![(Some(STATUS), r)])
            .unwrap_or_default()
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
            _ if e.is_unavailable() => {
                tracing::warn!(error = %e, "the store is unavailable; the call was refused");
                Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "store_unavailable",
                    message: e.to_string(),
                }
            }
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

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Self::bad_request(
            "bad_path",
            format!("the path is not valid: {}", e.body_text()),
        )
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
