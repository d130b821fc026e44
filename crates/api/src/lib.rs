//! berth's JSON API: admin actions for people and scripts, and the pull API for workers.
//! The CLI reaches it over a unix socket in the data dir; it can also listen on TCP, where
//! every request needs the admin token or a user's token with scopes ([`scopes`]).
//!
//! # Layout
//! - [`routes`]: one file per resource: `status`, `jobs`, `archive`, `queues`,
//!   `workers` (the pull API), `services` (with events and reload), `schedules`,
//!   `batches`, `workflows`, `gateway` (with budgets and maintenance), `messages`,
//!   `notifications`, `deploys`, `backups`, `metrics`;
//! - [`types`]: every request and answer (`requests.rs`: bodies, queries and paths;
//!   `responses.rs`: the answers), shared by the routes, the client and the dashboard,
//!   and the source of the OpenAPI document ([`openapi`]);
//! - [`error`]: the typed JSON error every route answers with;
//! - [`client`]: the typed client the CLI and the tests use;
//! - [`dashboard`]: the web pages (`pages.rs`), rendered from the API's answers with
//!   `html.rs`'s escaping builders, and their embedded script and style (`assets/`);
//! - [`scopes`]: what a user's token may reach.
//!
//! The endpoints are listed in `docs/api.md` and described, field by field, by the
//! OpenAPI 3.1 document at `GET /v1/openapi.json`.

pub mod client;
pub mod dashboard;
pub mod error;
pub mod routes;
pub mod scopes;
pub mod types;

use std::sync::Arc;
use std::time::Instant;

use aide::axum::ApiRouter;
use aide::openapi::{Info, OpenApi};
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
    /// The backups (`[backup]`, or its defaults).
    pub backups: Option<Arc<dyn Backups>>,
}

/// The backups, which the server implements: list, verify, and make one now.
#[async_trait::async_trait]
pub trait Backups: Send + Sync {
    /// The archives in the backup dir.
    async fn list(&self) -> Result<types::BackupList, DeployRefusal>;
    /// Reads archive `id` whole, checking every entry.
    async fn verify(&self, id: &str) -> Result<types::BackupVerified, DeployRefusal>;
    /// Starts a backup now (it runs on after the answer); refused while one runs.
    fn save(&self, prune: bool, by: &str) -> Result<types::BackupStarted, DeployRefusal>;
}

/// An answer of [`Deploys`] or [`Backups`] that is not a success: the status, a code and
/// a sentence.
pub type DeployRefusal = (u16, &'static str, String);

/// Deploys, rollbacks and the releases, which the server implements.
#[async_trait::async_trait]
pub trait Deploys: Send + Sync {
    /// The releases, oldest first, with the live one.
    fn releases(&self) -> Result<types::ReleaseList, DeployRefusal>;
    /// One release's record.
    fn release(&self, id: &str) -> Result<types::ReleaseView, DeployRefusal>;
    /// Starts a deploy of `source` (a git ref, or an absolute path of a directory or an
    /// archive; `None`: the configured ref), which runs on after the answer: the new
    /// release's record.
    async fn deploy(
        &self,
        source: Option<String>,
        by: String,
    ) -> Result<types::Release, DeployRefusal>;
    /// Rolls the live release back to `to` (default: the one before it).
    async fn rollback(
        &self,
        to: Option<String>,
        by: String,
        restore: bool,
    ) -> Result<types::Release, DeployRefusal>;
}

/// Re-reading and applying the config, which the server implements.
#[async_trait::async_trait]
pub trait Reload: Send + Sync {
    /// Applies the config file as it is now. `Ok`: what changed, as JSON; `Err`: why
    /// nothing changed (the config's errors).
    async fn reload(&self) -> Result<types::ReloadReport, String>;
}

/// Every documented route: each registration reads the handler's own request and answer
/// types into the OpenAPI document.
fn documented() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .merge(routes::status::routes())
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
        .merge(routes::backups::routes())
        .api_route(
            "/v1/openapi.json",
            aide::axum::routing::get(|| async { OpenApiDocument }),
        )
}

/// The answer of `GET /v1/openapi.json`.
struct OpenApiDocument;

impl axum::response::IntoResponse for OpenApiDocument {
    fn into_response(self) -> Response {
        axum::Json(openapi()).into_response()
    }
}

impl aide::OperationOutput for OpenApiDocument {
    type Inner = ();

    fn operation_response(
        _: &mut aide::generate::GenContext,
        _: &mut aide::openapi::Operation,
    ) -> Option<aide::openapi::Response> {
        let schema = schemars::json_schema!({
            "type": "object",
            "description": "This OpenAPI 3.1 document.",
            "required": ["openapi", "info", "paths"]
        });
        Some(aide::openapi::Response {
            description: "This OpenAPI 3.1 document.".into(),
            content: [(
                "application/json".to_owned(),
                aide::openapi::MediaType {
                    schema: Some(aide::openapi::SchemaObject {
                        json_schema: schema,
                        example: None,
                        external_docs: None,
                    }),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        })
    }

    fn inferred_responses(
        ctx: &mut aide::generate::GenContext,
        op: &mut aide::openapi::Operation,
    ) -> Vec<(Option<u16>, aide::openapi::Response)> {
        Self::operation_response(ctx, op)
            .map(|r| vec![(Some(200), r)])
            .unwrap_or_default()
    }
}

/// The OpenAPI 3.1 document of the `/v1` API (served at `GET /v1/openapi.json`), read from
/// the routes' types once per process.
pub fn openapi() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let (doc, problems) = generate_openapi();
        for p in problems {
            tracing::warn!(problem = %p, "the OpenAPI document is incomplete");
        }
        doc
    })
}

/// Generates the OpenAPI document afresh: the document, and every problem the generator
/// met (a path parameter without a type, a type it could not describe, …), which the
/// tests require to be none.
pub fn generate_openapi() -> (serde_json::Value, Vec<String>) {
    let problems = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = problems.clone();
    aide::generate::on_error(move |e| seen.borrow_mut().push(e.to_string()));
    aide::generate::extract_schemas(true);
    let mut doc = OpenApi {
        info: Info {
            title: "berth API".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            summary: Some("berth's admin and worker JSON API".into()),
            description: Some(
                "Over the unix socket in the data dir (no token), or over TCP with \
                 `Authorization: Bearer TOKEN` (the admin token, or a user's token with \
                 scopes). Every error is an `ErrorBody`. See docs/api.md."
                    .into(),
            ),
            ..Info::default()
        },
        ..OpenApi::default()
    };
    let _ = documented().finish_api(&mut doc);
    aide::generate::on_error(|_| {});
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    if let Some(schemas) = doc.pointer_mut("/components/schemas") {
        close_objects(schemas);
    }
    let problems = problems.borrow().clone();
    (doc, problems)
}

/// Says of every object schema with named properties that it has no others: the types
/// are exact, so a field sent but not described fails validation against the document.
fn close_objects(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), false.into());
            }
            map.values_mut().for_each(close_objects);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::<Arc<AppState>>::from(documented())
        .merge(routes::metrics::routes())
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
