//! berth's JSON API: admin actions for people and scripts, and the pull API for workers.
//! The CLI reaches it over a unix socket in the data dir; it can also listen on TCP, where
//! every request needs the admin token or a user's token with scopes ([`scopes`]).
//!
//! # Layout
//! - [`routes`]: one file per resource: `status`, `jobs`, `queues`, `workers`,
//!   `services` (with events and reload);
//! - [`error`]: the typed JSON error every route answers with;
//! - [`body`]: request bodies and their parsing (durations, times);
//! - [`client`]: the client the CLI and the tests use.
//!
//! The endpoints are listed in `docs/api.md`.

pub mod body;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod routes;
pub mod scopes;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use berth_queue::Queues;

pub use error::{ApiError, ApiResult};

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    /// The queues.
    pub queues: Queues,
    /// The app's name from the config.
    pub app: String,
    /// When this berth started.
    pub started: Instant,
    /// The supervised services (none when the config has no `[service.NAME]`).
    pub services: Arc<berth_supervise::Supervisor>,
    /// Re-reads the config file and applies it; `None` when berth runs without one.
    pub reload: Option<Arc<dyn Reload>>,
    /// The configured workflows.
    pub workflows: berth_workflow::Workflows,
    /// The configured schedules.
    pub scheduler: berth_schedule::Scheduler,
    /// The HTTP gateway, when the config has a `[gateway]`.
    pub gateway: Option<Arc<berth_gateway::Gateway>>,
    /// The ingests, when the config has any `[ingest.NAME]`.
    pub ingests: Option<Arc<berth_ingest::Ingests>>,
    /// Deploys and releases, when the config has a `[deploy]`.
    pub deploys: Option<Arc<dyn Deploys>>,
}

/// An answer of [`Deploys`] that is not a success: the status, a code and a sentence.
pub type DeployRefusal = (u16, &'static str, String);

/// Deploys, rollbacks and the releases, which the server implements.
#[async_trait::async_trait]
pub trait Deploys: Send + Sync {
    /// The releases, oldest first, with the live one.
    fn releases(&self) -> Result<serde_json::Value, DeployRefusal>;
    /// One release's record.
    fn release(&self, id: &str) -> Result<serde_json::Value, DeployRefusal>;
    /// Starts a deploy of `source` (a git ref, or an absolute path of a directory or an
    /// archive; `None`: the configured ref), which runs on after the answer: the new
    /// release's record.
    async fn deploy(
        &self,
        source: Option<String>,
        by: String,
    ) -> Result<serde_json::Value, DeployRefusal>;
    /// Rolls the live release back to `to` (default: the one before it).
    async fn rollback(
        &self,
        to: Option<String>,
        by: String,
        restore: bool,
    ) -> Result<serde_json::Value, DeployRefusal>;
}

/// Re-reading and applying the config, which the server implements.
#[async_trait::async_trait]
pub trait Reload: Send + Sync {
    /// Applies the config file as it is now. `Ok`: what changed, as JSON; `Err`: why
    /// nothing changed (the config's errors).
    async fn reload(&self) -> Result<serde_json::Value, String>;
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::status::routes())
        .merge(routes::metrics::routes())
        .merge(routes::jobs::routes())
        .merge(routes::archive::routes())
        .merge(routes::queues::routes())
        .merge(routes::workers::routes())
        .merge(routes::services::routes())
        .merge(routes::schedules::routes())
        .merge(routes::batches::routes())
        .merge(routes::workflows::routes())
        .merge(routes::gateway::routes())
        .merge(routes::messages::routes())
        .merge(routes::notifications::routes())
        .merge(routes::deploys::routes())
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: "no such endpoint; see docs/api.md for the list".into(),
            }
        })
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "method_not_allowed",
                message: "this endpoint does not take that method; see docs/api.md".into(),
            }
        })
        // Room for a bulk push of the most jobs it takes (routes::jobs::MAX_BULK).
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(Arc::new(state))
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// The routes behind a bearer-token check (for TCP listeners): the admin token reaches
/// everything; a user's token (`berth token create USER --scope …`) reaches only what
/// its scopes name.
pub fn router_with_token(state: AppState, token: String) -> Router {
    let auth = Arc::new(TokenAuth {
        admin: token,
        store: state.queues.store().clone(),
    });
    router(state).layer(middleware::from_fn_with_state(auth, require_token))
}

struct TokenAuth {
    admin: String,
    store: Arc<dyn berth_store::Store>,
}

fn unauthorized() -> Response {
    ApiError {
        status: StatusCode::UNAUTHORIZED,
        code: "unauthorized",
        message: "a valid `Authorization: Bearer TOKEN` header is required".into(),
    }
    .into_response()
}

fn forbidden(message: String) -> Response {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message,
    }
    .into_response()
}

async fn require_token(State(auth): State<Arc<TokenAuth>>, req: Request, next: Next) -> Response {
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return unauthorized();
    };
    if constant_time_eq(given.as_bytes(), auth.admin.as_bytes()) {
        return next.run(req).await;
    }
    let hash = berth_gateway::auth::sha256_hex(&given);
    let (token, _user) = match auth
        .store
        .token_user(&hash, berth_store::Timestamp::now())
        .await
    {
        Ok(Some(found)) => found,
        Ok(None) => return unauthorized(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let scopes = scopes::parse_all(&token.scopes);
    if scopes.is_empty() {
        return forbidden(format!(
            "token {} has no API scopes (it logs in on gateway routes only); create one with `berth token create USER --scope …` ({})",
            token.id,
            scopes::SCOPES_HELP
        ));
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    // A push names its queues in the body: read it, then hand it on.
    let is_push = method == "POST" && (path == "/v1/jobs" || path == "/v1/jobs/bulk");
    // A token that may push nowhere is refused before its body is read.
    if is_push
        && !scopes
            .iter()
            .any(|s| matches!(s, scopes::Scope::JobsPush(_)))
    {
        return forbidden(format!(
            "token {} may not {method} {path}: it needs a scope `jobs:push:QUEUE`",
            token.id
        ));
    }
    let (bytes, body) = if is_push {
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_BODY)).await {
            Ok(b) => {
                let b = b.to_bytes();
                (b.clone(), axum::body::Body::from(b))
            }
            Err(_) => {
                return ApiError::bad_request("invalid", "the body could not be read")
                    .into_response();
            }
        }
    } else {
        (bytes::Bytes::new(), body)
    };
    let need = scopes::need(&method, &path, || scopes::pushed_queues(&bytes));
    if let Err(why) = scopes::allows(&scopes, &need) {
        let names: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        return forbidden(format!(
            "token {} (scopes {}) may not {method} {path}: {why}",
            token.id,
            names.join(", ")
        ));
    }
    next.run(Request::from_parts(parts, body)).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
