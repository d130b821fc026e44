//! What the gateway serves: listeners, certificates and routes, already validated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    /// The addresses to listen on; each serves every route.
    pub listen: Vec<SocketAddr>,
    /// The certificate source; `None` serves plain HTTP on `listen`.
    pub tls: Option<TlsSpec>,
    /// A plain-HTTP listener that redirects to HTTPS (only with `tls`).
    pub http: Option<SocketAddr>,
    /// The routes, in the order they were written.
    pub routes: Vec<RouteSpec>,
    /// Where and how requests are logged; `None` logs nothing.
    pub access_log: Option<AccessLog>,
    /// A directory of berth's own for TLS material (the self-signed certificate).
    pub tls_dir: PathBuf,
    /// How often certificate files are checked for changes.
    pub tls_reload_every: Duration,
    /// Login sessions' lifetime and the lockout after failed logins.
    pub login: LoginSpec,
    /// The budgets routes may spend.
    pub budgets: Vec<BudgetSpec>,
    /// Where budgets' time comes from (their periods and resets).
    pub clock: Clock,
    /// This node's name, for recorded events.
    pub node: String,
    /// Worker threads, each with its own event loop and upstream connections (the
    /// server passes the number of CPUs).
    pub workers: usize,
    /// How many connections the listeners hold open, in all and per client.
    pub connections: crate::ConnectionLimits,
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSpec {
    /// PEM files: the chain (leaf first) and the private key.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// A certificate for `localhost`, made once and kept in `tls_dir`.
    SelfSigned,
    /// Certificates from an ACME server, kept in `tls_dir/acme` and renewed.
    Acme(crate::acme::AcmeSpec),
}

/// The access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// Its file; appended to.
    pub path: PathBuf,
    /// Its line format.
    pub format: AccessLogFormat,
    /// At this size the file is rotated: `PATH.1` … `PATH.KEEP`, oldest dropped.
    pub max_bytes: u64,
    /// Rotated files kept (0: the full file is removed).
    pub keep: u32,
}

/// An access log line's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// Apache/nginx "combined", plus the request time in seconds.
    Combined,
    /// One JSON object per line.
    Json,
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// An exact host, `*.example.org`, or `None` for any host. Lowercase.
    pub host: Option<String>,
    /// A path prefix that matches whole segments: `/api` matches `/api` and `/api/x`,
    /// not `/apix`. `/` matches everything.
    pub path: String,
    /// What answers.
    pub target: Target,
    /// Who may ask; `None` for anyone.
    pub auth: Option<RouteAuth>,
    /// The budget its requests spend (proxy routes only).
    pub budget: Option<String>,
    /// Its rate limits.
    pub rate_limit: Option<crate::limits::RateLimitSpec>,
    /// Response headers set on every answer of the route, replacing any of the same name
    /// (`Strict-Transport-Security`, `X-Frame-Options`, …).
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
}

/// A spending limit per calendar period.
#[derive(Debug, Clone)]
pub struct BudgetSpec {
    /// Its name.
    pub name: String,
    /// The limit, in millionths of the budget's unit.
    pub limit: i64,
    /// Day or month.
    pub period: Period,
    /// Where the day or month begins.
    pub tz: jiff::tz::TimeZone,
    /// Charged when a request is let through, in millionths.
    pub cost_per_request: i64,
    /// The response header in which the service reports a request's cost.
    pub cost_header: Option<hyper::header::HeaderName>,
    /// The status of a refusal once the budget is spent (402 or 429).
    pub status: hyper::StatusCode,
}

/// A budget's period, aligned to the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Midnight to midnight.
    Day,
    /// The first of the month to the first of the next.
    Month,
}

/// Where time comes from: the system's clock, or a test's.
#[derive(Clone)]
pub struct Clock(pub std::sync::Arc<dyn Fn() -> berth_store::Timestamp + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self(std::sync::Arc::new(berth_store::Timestamp::now))
    }

    /// The time now.
    pub fn now(&self) -> berth_store::Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// A route's access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAuth {
    /// How the caller proves who they are.
    pub method: AuthMethod,
    /// The caller needs one of these roles; empty for any logged-in user.
    pub roles: Vec<String>,
}

/// How a caller proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A session cookie from the login form.
    Login,
    /// `Authorization: Bearer` with an API token.
    Token,
}

/// Sessions and lockouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginSpec {
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// Failed logins in a row that lock a user out, and for how long.
    pub lockout: berth_store::Lockout,
}

impl Default for LoginSpec {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(12 * 3600),
            lockout: berth_store::Lockout {
                after: 5,
                lasts: Duration::from_secs(15 * 60),
            },
        }
    }
}

impl RouteSpec {
    /// `host path`, as logs and counters name the route.
    pub fn name(&self) -> String {
        match &self.host {
            Some(host) => format!("{host}{}", self.path),
            None => self.path.clone(),
        }
    }
}

/// What answers a route's requests.
#[derive(Debug, Clone)]
pub enum Target {
    /// Files of a directory.
    Static(StaticSpec),
    /// An upstream HTTP server.
    Proxy {
        /// Which.
        upstream: Upstream,
        /// Remove the route's path prefix before forwarding.
        strip_prefix: bool,
        /// The largest request body forwarded, in bytes.
        max_body: u64,
        /// How long the upstream may take to start its response.
        timeout: Duration,
        /// How long connecting may take.
        connect_timeout: Duration,
        /// How long an upgraded connection (a WebSocket) may pass no byte either way
        /// before it is closed.
        upgrade_idle: Duration,
    },
    /// A redirect.
    Redirect {
        /// The target; when it ends with `/`, the rest of the path after the route's
        /// prefix is appended.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
    /// A read-only slice of berth's own API (`GET`s the scopes allow), for an app's
    /// pages; the route's prefix is removed before the API sees the path.
    Api {
        /// The read scopes exposed.
        scopes: Vec<String>,
        /// Where the requests go.
        sink: HookSink,
    },
    /// berth's dashboard: its pages and, below `/v1/`, its API, for people who logged in
    /// on the gateway; the route's prefix is removed before the dashboard sees the path.
    Dashboard {
        /// Where the requests go.
        sink: HookSink,
        /// The largest request body taken, in bytes.
        max_body: u64,
    },
    /// An ingest's webhook: POSTed bodies become messages.
    Hook {
        /// The ingest.
        ingest: String,
        /// Where the bodies go.
        sink: HookSink,
        /// The largest body taken, in bytes.
        max_body: u64,
        /// How long its body may take to arrive (the gateway's `timeout`); past it,
        /// 408 and the connection is closed.
        body_timeout: std::time::Duration,
    },
}

/// What a webhook's request became: an HTTP status and a JSON body.
pub struct HookReply {
    /// The status (202 stored, 422 refused and kept as a dead letter, 503 …).
    pub status: u16,
    /// The body.
    pub body: serde_json::Value,
}

/// Every body the gateway sends, also what a [`Hooks::dashboard`] answer carries.
pub type HookBody = http_body_util::combinators::UnsyncBoxBody<
    bytes::Bytes,
    Box<dyn std::error::Error + Send + Sync>,
>;

/// Who asks a `dashboard` route, and what its pages must know.
#[derive(Debug, Clone)]
pub struct DashboardViewer {
    /// The user who logged in (or whose token it is).
    pub user: String,
    /// The route's path prefix, without a trailing slash (`""` for `/`): the pages' base.
    pub base: String,
    /// The token a page sends back with each action (`X-Berth-CSRF`), derived from the
    /// session; `None` for a bearer token, which a browser never sends on its own.
    pub csrf: Option<String>,
}

/// Takes the bodies POSTed to webhook routes: the server hands them to the ingest.
pub trait Hooks: Send + Sync + 'static {
    /// Takes `body`, POSTed to the webhook of `ingest` with `topic` (the rest of the
    /// path after the route's) and the request's `Idempotency-Key`, if any.
    fn take(
        &self,
        ingest: &str,
        topic: &str,
        body: bytes::Bytes,
        idempotency_key: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HookReply> + Send + '_>>;

    /// Answers `GET path_and_query` (`/v1/…`) from berth's API for an `api` route that
    /// exposes `scopes`: refused unless the scopes allow it.
    fn read_api(
        &self,
        scopes: Vec<String>,
        path_and_query: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HookReply> + Send + '_>>;

    /// Answers a request to a `dashboard` route, its path relative to the route's prefix
    /// and its body read whole. Actions (anything but `GET` and `HEAD`) were checked for
    /// the viewer's CSRF token before this is called.
    fn dashboard(
        &self,
        request: hyper::http::Request<bytes::Bytes>,
        viewer: DashboardViewer,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = hyper::http::Response<HookBody>> + Send + '_>,
    >;
}

/// The [`Hooks`] a webhook route hands its requests to.
#[derive(Clone)]
pub struct HookSink(pub std::sync::Arc<dyn Hooks>);

impl std::fmt::Debug for HookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookSink")
    }
}

/// A static directory.
#[derive(Debug, Clone)]
pub struct StaticSpec {
    /// The directory.
    pub dir: PathBuf,
    /// The file served for a directory.
    pub index: String,
    /// Serve the root index for paths that match no file (single-page apps).
    pub spa: bool,
    /// Remove the route's prefix before looking the file up.
    pub strip_prefix: bool,
}

/// Where a proxy route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// The ready instances of a supervised service, by name.
    Service(String),
    /// A fixed `host:port`.
    Fixed(String),
}
