//! Requests to an upstream: the ready instances of a service (round robin) or a fixed
//! address.
//!
//! - Connections to upstreams are kept alive and pooled per instance.
//! - A request that failed before its response began (the instance refused the
//!   connection, or dropped it) is retried on the next instance when it is idempotent
//!   and has no body, as nginx's `proxy_next_upstream error` does; one whose connection
//!   was refused is retried whatever its method and body, since it never left berth (the
//!   body, still unread, is taken back). The instance is skipped for [`DOWN_FOR`] (the
//!   supervisor's view catches up on its own).
//! - The request's headers follow the rules of [`crate::headers`], which the fast path
//!   shares: hop-by-hop headers dropped, `X-Forwarded-For`, `-Proto` and `-Host` set, any
//!   `X-Berth-*` header the client sent removed (those carry the identity berth vouches
//!   for, and only berth may set them), berth's session cookie taken out.
//! - A body larger than the limit is refused with 413, up front when the client declared
//!   its length, or as soon as the stream passes the limit.
//! - `Upgrade` requests (WebSockets) are forwarded and, once the upstream answers 101,
//!   both connections are spliced together.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{
    CONNECTION, CONTENT_LENGTH, HOST, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, UPGRADE,
};
use hyper::http::uri::{Authority, PathAndQuery};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::Backends;
use crate::body::{Body, BoxError, empty};
use crate::headers::Rule;
use crate::reply;
use crate::spec::Upstream;

/// How long an instance that refused a connection is skipped.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(2);
/// The most instances one idempotent request tries.
const MAX_TRIES: usize = 3;

/// What the proxy knows of the request besides the request itself.
pub(crate) struct Context<'a> {
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Whether the client came over TLS.
    pub(crate) tls: bool,
    /// The route's name, for logs.
    pub(crate) route: &'a str,
    /// The route's path prefix.
    pub(crate) prefix: &'a str,
    /// Who the caller is, when the route asks.
    pub(crate) identity: Option<&'a crate::auth::Identity>,
}

/// One proxy route's upstream and settings.
pub(crate) struct Proxy {
    client: Client<HttpConnector, Body>,
    upstream: Upstream,
    /// A fixed upstream's authority, parsed once (`None` if it does not parse, which
    /// the config's checks rule out).
    fixed: Option<Authority>,
    backends: Arc<dyn Backends>,
    strip_prefix: bool,
    max_body: u64,
    timeout: Duration,
    connect_timeout: Duration,
    /// How long an upgraded connection may stay silent both ways.
    upgrade_idle: Duration,
    /// Shared by every worker's copy, so that the rotation and the instances found
    /// down are the same whichever worker a request lands on.
    health: Arc<Health>,
    /// A fixed upstream's address when it is an IP address and port (the plain path
    /// serves those; a host name is resolved by the general path's connector).
    fixed_addr: Option<SocketAddr>,
    /// This worker's idle connections of the plain path.
    pool: crate::fast_path::Pool,
}

/// Why no upstream answered.
pub(crate) enum Failure {
    /// No instance accepted the connection.
    Unreachable,
    /// The connection broke before a complete response head.
    Broken,
    /// No response head within the route's timeout.
    Timeout,
}

/// The round robin's position and the instances that failed lately.
#[derive(Default)]
struct Health {
    next: AtomicUsize,
    any_down: AtomicBool,
    down: Mutex<HashMap<SocketAddr, Instant>>,
}

impl Proxy {
    pub(crate) fn new(
        upstream: Upstream,
        backends: Arc<dyn Backends>,
        strip_prefix: bool,
        max_body: u64,
        (timeout, connect_timeout, upgrade_idle): (Duration, Duration, Duration),
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .build(connector);
        let fixed = match &upstream {
            Upstream::Fixed(a) => Authority::try_from(a.as_str()).ok(),
            Upstream::Service(_) => None,
        };
        let fixed_addr = match &upstream {
            Upstream::Fixed(a) => a.parse().ok(),
            Upstream::Service(_) => None,
        };
        Self {
            client,
            upstream,
            fixed,
            backends,
            strip_prefix,
            max_body,
            timeout,
            connect_timeout,
            upgrade_idle,
            health: Arc::default(),
            fixed_addr,
            pool: crate::fast_path::Pool::default(),
        }
    }

    /// Whether `other` proxies the same way (a route a reload left as it was).
    pub(crate) fn same_settings(&self, other: &Proxy) -> bool {
        self.upstream == other.upstream
            && self.strip_prefix == other.strip_prefix
            && self.max_body == other.max_body
            && self.timeout == other.timeout
            && self.connect_timeout == other.connect_timeout
            && self.upgrade_idle == other.upgrade_idle
    }

    /// The same upstream with a connection pool of its own, for another worker thread
    /// (a pooled connection is best used from the thread that drives it).
    pub(crate) fn fork(&self) -> Self {
        let mut copy = Self::new(
            self.upstream.clone(),
            self.backends.clone(),
            self.strip_prefix,
            self.max_body,
            (self.timeout, self.connect_timeout, self.upgrade_idle),
        );
        copy.health = self.health.clone();
        copy
    }

    /// Forwards `req` and returns the upstream's response, or the gateway's own error.
    pub(crate) async fn forward(
        &self,
        mut req: Request<Incoming>,
        cx: Context<'_>,
    ) -> Response<Body> {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            crate::body::drain_request(req).await;
            return too_large(self.max_body);
        }
        let upgrade = wants_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        let Some(path_and_query) = self.upstream_path(&parts.uri, cx.prefix) else {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the request's path cannot be forwarded",
            );
        };
        let mut headers = Some(forward_headers(&mut parts, &cx, upgrade));

        let no_body = body.is_end_stream();
        // Any failure before the response began may be retried on the next instance when
        // the request is idempotent and has no body, as nginx's `proxy_next_upstream
        // error` does; a refused connection, whatever the method and body, since such a
        // request never left berth (its body, unread, is taken back).
        let retryable = no_body && is_idempotent(&parts.method) && !upgrade;
        let mut body = if no_body {
            None
        } else {
            Some(
                Limited::new(body, self.max_body as usize)
                    .map_err(|e| e as BoxError)
                    .boxed_unsync(),
            )
        };

        let Some(addrs) = self.candidates() else {
            let expects = headers
                .as_ref()
                .is_some_and(|h| h.contains_key(hyper::header::EXPECT));
            if let Some(body) = body
                && !expects
            {
                crate::body::drain(body).await;
            }
            return self.no_ready_instance();
        };
        let tries = addrs.len().min(MAX_TRIES);
        for (i, authority) in addrs.iter().take(tries).enumerate() {
            let last = i + 1 == tries;
            let mut uri = hyper::http::uri::Parts::default();
            uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
            uri.authority = Some(authority.clone());
            uri.path_and_query = Some(path_and_query.clone());
            let Ok(uri) = Uri::from_parts(uri) else {
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request's path cannot be forwarded",
                );
            };
            let (sent, reclaim) = match body.take() {
                Some(b) => {
                    let (sent, reclaim) = crate::body::reclaimable(b);
                    (sent, Some(reclaim))
                }
                None => (empty(), None),
            };
            let mut out = Request::new(sent);
            *out.method_mut() = parts.method.clone();
            *out.uri_mut() = uri;
            *out.version_mut() = Version::HTTP_11;
            // The last try takes the headers; earlier ones copy them.
            *out.headers_mut() = if last {
                headers.take().unwrap_or_default()
            } else {
                headers.clone().unwrap_or_default()
            };
            match tokio::time::timeout(self.timeout, self.client.request(out)).await {
                Ok(Ok(mut response)) => {
                    if upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        splice(
                            client_upgrade,
                            hyper::upgrade::on(&mut response),
                            self.upgrade_idle,
                        );
                        return response
                            .map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                    }
                    strip_hop_by_hop(response.headers_mut());
                    return response.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
                }
                Ok(Err(e)) if is_too_large(&e) => return too_large(self.max_body),
                Ok(Err(e)) => {
                    tracing::warn!(route = cx.route, upstream = %authority, error = %e, "the upstream failed");
                    // An instance that refused or dropped the connection is skipped for a
                    // while.
                    self.mark_down(authority);
                    let never_sent = e.is_connect();
                    if let Some(reclaim) = &reclaim {
                        body = reclaim.take();
                    }
                    let body_back = reclaim.is_none() || body.is_some();
                    if !last && (retryable || (never_sent && body_back)) {
                        continue;
                    }
                    return self.failure_reply(if never_sent {
                        Failure::Unreachable
                    } else {
                        Failure::Broken
                    });
                }
                Err(_) => {
                    tracing::warn!(route = cx.route, upstream = %authority, timeout = ?self.timeout, "the upstream timed out");
                    return self.failure_reply(Failure::Timeout);
                }
            }
        }
        unreachable_no_tries()
    }

    /// The request's path and query as the upstream gets it; `None` if it cannot be
    /// put back together (it always can when taken from a valid URI).
    fn upstream_path(&self, uri: &Uri, prefix: &str) -> Option<PathAndQuery> {
        if !self.strip_prefix {
            return Some(
                uri.path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            );
        }
        let path = crate::router::strip(prefix, uri.path());
        let joined = match uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        PathAndQuery::try_from(joined).ok()
    }

    /// Where to send this request, in order: round robin over the ready instances,
    /// those that failed lately last. `None` when the service has no ready instance.
    fn candidates(&self) -> Option<Vec<Authority>> {
        let name = match &self.upstream {
            Upstream::Fixed(_) => return self.fixed.clone().map(|a| vec![a]),
            Upstream::Service(name) => name,
        };
        Some(
            self.order(name)?
                .into_iter()
                .filter_map(|a| Authority::try_from(a.to_string()).ok())
                .collect(),
        )
    }

    /// [`Self::candidates`] as addresses, for the plain path (which serves only the
    /// upstreams that have them: see [`Self::plain_capable`]).
    pub(crate) fn plain_candidates(&self) -> Option<Candidates> {
        match &self.upstream {
            Upstream::Fixed(_) => self.fixed_addr.map(Candidates::One),
            Upstream::Service(name) => self.order(name).map(Candidates::Many),
        }
    }

    /// Whether the plain path can reach this upstream by address.
    pub(crate) fn plain_capable(&self) -> bool {
        match &self.upstream {
            Upstream::Fixed(_) => self.fixed_addr.is_some(),
            Upstream::Service(_) => true,
        }
    }

    pub(crate) fn pool(&self) -> &crate::fast_path::Pool {
        &self.pool
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn strips_prefix(&self) -> bool {
        self.strip_prefix
    }

    /// The ready instances of `service` in the order a request tries them: round robin,
    /// those that failed lately last, at most [`MAX_TRIES`].
    fn order(&self, name: &str) -> Option<Vec<SocketAddr>> {
        let ready = self.backends.ready(name);
        if ready.is_empty() {
            return None;
        }
        let start = self.health.next.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<SocketAddr> = (0..ready.len())
            .map(|i| ready[(start + i) % ready.len()])
            .collect();
        if self.health.any_down.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut down = self.health.down.lock().unwrap_or_else(|e| e.into_inner());
            down.retain(|_, until| *until > now);
            if down.is_empty() {
                self.health.any_down.store(false, Ordering::Relaxed);
            } else {
                // Stable: the healthy keep their round-robin order, the down go last.
                order.sort_by_key(|addr| down.contains_key(addr));
            }
        }
        order.truncate(MAX_TRIES);
        Some(order)
    }

    fn mark_down(&self, authority: &Authority) {
        if let Ok(addr) = authority.as_str().parse::<SocketAddr>() {
            self.mark_down_addr(addr);
        }
    }

    /// Skips `addr` for [`DOWN_FOR`].
    pub(crate) fn mark_down_addr(&self, addr: SocketAddr) {
        let mut down = self.health.down.lock().unwrap_or_else(|e| e.into_inner());
        down.insert(addr, Instant::now() + DOWN_FOR);
        self.health.any_down.store(true, Ordering::Relaxed);
    }

    /// 503 with `Retry-After`: the service has no ready instance.
    pub(crate) fn no_ready_instance(&self) -> Response<Body> {
        let mut response = reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_ready_instance",
            format!(
                "{} has no ready instance; try again shortly",
                self.describe()
            ),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        response
    }

    /// The gateway's answer when no upstream answered.
    pub(crate) fn failure_reply(&self, failure: Failure) -> Response<Body> {
        match failure {
            Failure::Unreachable => reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("{} did not accept the connection", self.describe()),
            ),
            Failure::Broken => reply::error(
                StatusCode::BAD_GATEWAY,
                "upstream_failed",
                format!(
                    "{} closed the connection without a complete response",
                    self.describe()
                ),
            ),
            Failure::Timeout => reply::error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "{} did not answer within {}",
                    self.describe(),
                    humanize(self.timeout)
                ),
            ),
        }
    }

    fn describe(&self) -> String {
        match &self.upstream {
            Upstream::Service(name) => format!("service `{name}`"),
            Upstream::Fixed(_) => "the upstream".to_owned(),
        }
    }
}

/// `tries` is at least 1 and every try returns; kept out of line for clarity.
fn unreachable_no_tries() -> Response<Body> {
    reply::error(
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
        "no upstream was tried",
    )
}

fn too_large(max: u64) -> Response<Body> {
    reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body exceeds this route's limit of {max} bytes (`max_body`)"),
    )
}

fn is_too_large(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// An HTTP/1.1 `Connection: upgrade` request with an `Upgrade` header.
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    // Only WebSockets: other upgrades (h2c, say) are not passed through.
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The instances a plain-path request tries, in order: a fixed upstream's one address
/// without an allocation.
pub(crate) enum Candidates {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Candidates {
    pub(crate) fn as_slice(&self) -> &[SocketAddr] {
        match self {
            Candidates::One(addr) => std::slice::from_ref(addr),
            Candidates::Many(addrs) => addrs,
        }
    }
}

/// The request's headers as the upstream gets them.
fn forward_headers(
    parts: &mut hyper::http::request::Parts,
    cx: &Context<'_>,
    upgrade: bool,
) -> HeaderMap {
    // Taken, not copied: the request's own headers become the upstream's.
    let mut headers = std::mem::take(&mut parts.headers);
    // What the client said, before the headers are edited.
    let host = headers.get(HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::try_from(a.as_str()).ok())
    });
    let upgrade_to = upgrade.then(|| headers.get(UPGRADE).cloned()).flatten();
    // The rules of `headers`, the same as the fast path's; those the client's
    // `Connection` header names are hop-by-hop too.
    let connection: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
    let named = crate::headers::ConnectionNames::read(connection.iter().map(HeaderValue::as_bytes));
    let named = |name: &HeaderName| named.name(name.as_str().as_bytes());
    let mut kept = HeaderMap::with_capacity(headers.len() + 6);
    let mut forwarded_for: Vec<HeaderValue> = Vec::new();
    let mut current: Option<HeaderName> = None;
    for (name, value) in headers.drain() {
        if let Some(name) = name {
            current = Some(name);
        }
        let Some(name) = &current else { continue };
        match crate::headers::rule(name.as_str().as_bytes()) {
            Rule::Keep if !named(name) => {
                kept.append(name.clone(), value);
            }
            Rule::ForwardedFor => forwarded_for.push(value),
            Rule::Cookie => {
                if let Some(v) = crate::headers::cookie_without_session(value.as_bytes())
                    && let Ok(v) = HeaderValue::from_bytes(&v)
                {
                    kept.append(hyper::header::COOKIE, v);
                }
            }
            _ => {}
        }
    }
    let mut headers = kept;
    let mut chain = String::new();
    for before in forwarded_for.iter().filter_map(|v| v.to_str().ok()) {
        chain.push_str(before);
        chain.push_str(", ");
    }
    chain.push_str(&cx.peer.ip().to_string());
    let xff = HeaderName::from_static("x-forwarded-for");
    // berth's own credential: a token it checked (its session cookie is gone above).
    if cx
        .identity
        .is_some_and(|i| i.method == crate::spec::AuthMethod::Token)
    {
        headers.remove(hyper::header::AUTHORIZATION);
    }
    if let Some(to) = upgrade_to {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, to);
    }
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
        headers.insert(HOST, host);
    }
    if let Ok(v) = HeaderValue::try_from(chain) {
        headers.insert(xff, v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if cx.tls { "https" } else { "http" }),
    );
    if let Some(identity) = cx.identity {
        identity.headers(&mut headers);
    }
    headers
}

/// Drops hop-by-hop headers, and every header the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        strip_connection_named(headers);
    }
    for name in crate::headers::HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Drops the headers the `Connection` header names (other than the hop-by-hop list).
fn strip_connection_named(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
}

/// Once both sides have switched protocols, copies bytes both ways until both end, or
/// until no byte has passed either way for `idle` (a WebSocket whose client vanished
/// without closing, or one held open to tie up the gateway): then both are closed.
fn splice(
    client: Option<hyper::upgrade::OnUpgrade>,
    upstream: hyper::upgrade::OnUpgrade,
    idle: Duration,
) {
    let Some(client) = client else { return };
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(error = %e, "an upgrade did not complete");
                return;
            }
        };
        if relay_until_idle(TokioIo::new(client), TokioIo::new(upstream), idle).await {
            tracing::debug!(idle = %humanize(idle), "an upgraded connection was idle; closed");
        }
    });
}

/// Copies bytes between `a` and `b` (each direction shut down when its reader ends)
/// until both directions ended or nothing passed for `idle`; `true` for the latter.
async fn relay_until_idle<A, B>(a: A, b: B, idle: Duration) -> bool
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use std::sync::atomic::{AtomicU64, Ordering};
    let started = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let (ar, aw) = tokio::io::split(a);
    let (br, bw) = tokio::io::split(b);
    let both = async { tokio::join!(pump(ar, bw, started, &last), pump(br, aw, started, &last)) };
    let watchdog = async {
        loop {
            let quiet_since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = started + quiet_since + idle;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    };
    tokio::select! {
        _ = both => false,
        _ = watchdog => true,
    }
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down; each read's time
/// (milliseconds since `started`) goes to `last`.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    started: tokio::time::Instant,
    last: &std::sync::atomic::AtomicU64,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let at = started.elapsed().as_millis() as u64;
                last.store(at, std::sync::atomic::Ordering::Relaxed);
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

/// `60s` → "60 seconds", for messages.
pub(crate) fn humanize(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", d.as_millis())
    } else if secs == 1.0 {
        "1 second".to_owned()
    } else {
        format!("{} seconds", secs)
    }
}
