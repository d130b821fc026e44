//! berth's HTTP front door: it listens (plain HTTP or TLS, HTTP/1.1 and HTTP/2), matches
//! each request to a route by host and path prefix, and answers it from a static
//! directory, a supervised service's ready instances, a fixed upstream, a redirect, or an
//! ingest's webhook.
//!
//! # Layout
//! - [`spec`]: what to serve ([`GatewaySpec`], [`RouteSpec`], …), built by the server
//!   from the config;
//! - `server`: [`Gateway`]: binds the listeners, accepts connections, serves them with
//!   hyper until told to stop, then drains;
//! - `router`: picks the route of a request (the most specific host, then the longest
//!   path prefix on whole segments);
//! - `handle`: one request, from the route to the response, counted and logged;
//! - `statics`: files of a directory (index files, SPA fallback, ETag and
//!   Last-Modified, ranges, precompressed siblings, nothing outside the directory);
//! - `proxy`: requests to an upstream (round robin over ready instances, idempotent
//!   retries on connect failure, WebSockets, timeouts, a body limit);
//! - `fast_path`: the fast path for plain HTTP/1.1 (bodiless requests to proxy routes,
//!   static files with `sendfile`), handing anything else to hyper;
//! - `headers`: the rules for a client's headers on their way upstream (forged
//!   identity, hop-by-hop, forwarding claims, berth's session cookie), used by both
//!   paths that proxy;
//! - `acme`: certificates ordered from an ACME server and kept renewed;
//! - `tls`: certificates from files (reloaded when they change) or made on the spot
//!   (`self-signed`), and the resolver that picks one per handshake;
//! - [`auth`]: login sessions, API tokens and roles, over the store's users;
//! - `budget`: spending limits per calendar period, enforced before a request is
//!   forwarded and kept in the store;
//! - `limits`: rate limits (token buckets per address and per user) and maintenance
//!   mode;
//! - `bounded`: per-client state with a hard cap (rate-limit buckets, failed logins, cached
//!   lookups), the key a client address is counted under (IPv6 by its /64), and the
//!   connection caps;
//! - `access_log`: one line per request, combined or JSON, written off the request path;
//! - `counters`: per-route counts for the dashboard;
//! - `reply`: the gateway's own responses (JSON errors, redirects).

mod access_log;
mod acme;
pub mod auth;
mod body;
mod bounded;
mod budget;
mod counters;
mod error;
mod fast_path;
mod handle;
mod headers;
mod limits;
mod proxy;
mod reply;
mod router;
mod server;
pub mod spec;
mod statics;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

pub use acme::{AcmeSpec, Challenge};
pub use bounded::ConnectionLimits;
pub use budget::period_bounds;
pub use counters::RouteStats;
pub use error::GatewayError;
pub use limits::{ADMIN_ROLE, MAINTENANCE_KEY, RateLimitSpec};
pub use server::Gateway;

/// A budget as a running gateway enforces it (see [`Gateway::budgets`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EnforcedBudget {
    /// `[budget.NAME]`.
    pub name: String,
    /// The limit, in millionths of the unit.
    pub limit: i64,
    /// What each request costs, in millionths.
    pub cost_per_request: i64,
    /// Day or month.
    pub period: Period,
    /// The start of the current period.
    pub period_start: berth_store::Timestamp,
    /// When it resets.
    pub resets_at: berth_store::Timestamp,
    /// Spent in the current period as this node counts it (the store's total at the last
    /// flush, a second ago at most, plus this node's charges since), in millionths.
    pub spent: i64,
}
pub use spec::{
    AccessLog, AccessLogFormat, AuthMethod, BudgetSpec, Clock, DashboardViewer, GatewaySpec,
    HookBody, HookReply, HookSink, Hooks, LoginSpec, Period, RouteAuth, RouteSpec, StaticSpec,
    Target, TlsSpec, Upstream,
};

/// Checks what [`Gateway::start`] would refuse, short of binding: every static
/// directory exists, and certificate files load and match their keys.
pub fn check(spec: &GatewaySpec) -> Result<(), GatewayError> {
    for route in &spec.routes {
        if let Target::Static(s) = &route.target {
            statics::StaticFiles::new(s, &route.name())?;
        }
    }
    if let Some(TlsSpec::Files { cert, key }) = &spec.tls {
        tls::load_files(cert, key)?;
    }
    Ok(())
}

/// Where the instances of a service can be reached: implemented by the server over the
/// supervisor. Called once per proxied request, so it must be cheap.
pub trait Backends: Send + Sync + 'static {
    /// The addresses of the instances of `service` that are ready now, in a stable order.
    fn ready(&self, service: &str) -> Arc<[SocketAddr]>;
}
