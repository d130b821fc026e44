//! One request: find its route, let the route's target answer, count it and log it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_LENGTH, HOST, HeaderName, HeaderValue, REFERER, USER_AGENT};
use hyper::{Request, Response, StatusCode, Version};

use crate::Backends;
use crate::access_log::{AccessLogger, Entry};
use crate::auth::{Auth, Identity};
use crate::body::Body;
use crate::budget::{Budget, Budgets};
use crate::counters::{Counter, RouteStats};
use crate::error::GatewayError;
use crate::limits::{ADMIN_ROLE, Maintenance, RouteLimits, maintenance_page};
use crate::proxy::{Context, Proxy};
use crate::reply;
use crate::router::{Router, strip};
use crate::spec::{HookSink, RouteAuth, RouteSpec, Target};
use crate::statics::StaticFiles;

/// What every connection of the gateway shares.
///
/// Each worker thread has its own, made by [`Shared::fork`]: the proxies' connection
/// pools are the thread's own, while static files, counters and the log are shared.
pub(crate) struct Shared {
    pub(crate) router: Arc<Router>,
    pub(crate) routes: Vec<Route>,
    pub(crate) log: Option<Arc<AccessLogger>>,
    pub(crate) auth: Option<Arc<Auth>>,
    pub(crate) budgets: Option<Arc<Budgets>>,
    pub(crate) maintenance: Option<Arc<Maintenance>>,
}

/// The routes one worker serves: replaced whole by a reload ([`Table::replace`]); each
/// request takes the current ones, so a keep-alive connection follows a reload too.
pub(crate) struct Table(std::sync::RwLock<Arc<Shared>>);

impl Table {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self(std::sync::RwLock::new(shared))
    }

    /// The routes as they stand.
    pub(crate) fn current(&self) -> Arc<Shared> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn replace(&self, shared: Arc<Shared>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = shared;
    }
}

pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) answer: Answer,
    /// This worker's counts of the route.
    pub(crate) counter: Arc<Counter>,
    /// Every worker's counts of the route, summed for the dashboard.
    pub(crate) counters: Arc<Mutex<Vec<Arc<Counter>>>>,
    pub(crate) auth: Option<RouteAuth>,
    pub(crate) budget: Option<Arc<Budget>>,
    pub(crate) limits: Option<Arc<RouteLimits>>,
    /// Response headers set on every answer ([`crate::headers::set_route_headers`]).
    pub(crate) headers: Arc<[(HeaderName, HeaderValue)]>,
}

pub(crate) enum Answer {
    Static {
        files: Arc<StaticFiles>,
        strip_prefix: bool,
    },
    /// Shared with the same route after a reload that left it as it was (its pools and
    /// the instances found down live on).
    Proxy(Arc<Proxy>),
    Redirect {
        to: String,
        status: StatusCode,
    },
    Hook(Hook),
    /// A read-only slice of berth's API.
    Api {
        scopes: Vec<String>,
        sink: HookSink,
    },
    /// berth's dashboard.
    Dashboard {
        sink: HookSink,
        max_body: u64,
    },
}

/// An ingest's webhook: where its bodies go, and how large they may be.
#[derive(Clone)]
pub(crate) struct Hook {
    ingest: String,
    sink: HookSink,
    max_body: u64,
    body_timeout: std::time::Duration,
}

impl Answer {
    fn kind(&self) -> &'static str {
        match self {
            Answer::Static { .. } => "static",
            Answer::Proxy(_) => "proxy",
            Answer::Redirect { .. } => "redirect",
            Answer::Hook(_) => "webhook",
            Answer::Api { .. } => "api",
            Answer::Dashboard { .. } => "dashboard",
        }
    }
}

/// Who is asking, and how they connected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
}

impl Shared {
    pub(crate) fn new(
        specs: &[RouteSpec],
        backends: Arc<dyn Backends>,
        log: Option<Arc<AccessLogger>>,
        auth: Option<Arc<Auth>>,
        budgets: Option<Arc<Budgets>>,
        maintenance: Option<Arc<Maintenance>>,
        budget_of: &dyn Fn(&str) -> Option<Arc<Budget>>,
    ) -> Result<Self, GatewayError> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let name = spec.name();
            let answer = match &spec.target {
                Target::Static(s) => Answer::Static {
                    files: Arc::new(StaticFiles::new(s, &name)?),
                    strip_prefix: s.strip_prefix,
                },
                Target::Proxy {
                    upstream,
                    strip_prefix,
                    max_body,
                    timeout,
                    connect_timeout,
                    upgrade_idle,
                } => Answer::Proxy(Arc::new(Proxy::new(
                    upstream.clone(),
                    backends.clone(),
                    *strip_prefix,
                    *max_body,
                    (*timeout, *connect_timeout, *upgrade_idle),
                ))),
                Target::Redirect { to, status } => Answer::Redirect {
                    to: to.clone(),
                    status: StatusCode::from_u16(*status).unwrap_or(StatusCode::PERMANENT_REDIRECT),
                },
                Target::Hook {
                    ingest,
                    sink,
                    max_body,
                    body_timeout,
                } => Answer::Hook(Hook {
                    ingest: ingest.clone(),
                    sink: sink.clone(),
                    max_body: *max_body,
                    body_timeout: *body_timeout,
                }),
                Target::Api { scopes, sink } => Answer::Api {
                    scopes: scopes.clone(),
                    sink: sink.clone(),
                },
                Target::Dashboard { sink, max_body } => Answer::Dashboard {
                    sink: sink.clone(),
                    max_body: *max_body,
                },
            };
            let counter = Arc::new(Counter::default());
            let budget = match &spec.budget {
                None => None,
                Some(b) => Some(budget_of(b).ok_or_else(|| GatewayError::NoBudget {
                    route: name.clone(),
                    budget: b.clone(),
                })?),
            };
            routes.push(Route {
                name,
                path: spec.path.clone(),
                answer,
                counter: counter.clone(),
                counters: Arc::new(Mutex::new(vec![counter])),
                auth: spec.auth.clone(),
                budget,
                limits: spec
                    .rate_limit
                    .as_ref()
                    .map(|l| Arc::new(RouteLimits::new(l))),
                headers: spec.headers.clone().into(),
            });
        }
        Ok(Self {
            router: Arc::new(Router::new(specs)),
            routes,
            log,
            auth,
            budgets,
            maintenance,
        })
    }

    /// The same routes for another worker thread.
    pub(crate) fn fork(&self) -> Self {
        self.fork_keeping(None)
    }

    /// These routes for the worker that served `old` until a reload: a route of the same
    /// name keeps counting where it was (its counts survive the reload).
    pub(crate) fn fork_keeping(&self, old: Option<&Shared>) -> Self {
        let old_route = |name: &str| old.and_then(|o| o.routes.iter().find(|r| r.name == name));
        let kept = |name: &str| old_route(name).map(|r| (r.counter.clone(), r.counters.clone()));
        let routes = self
            .routes
            .iter()
            .map(|r| Route {
                name: r.name.clone(),
                path: r.path.clone(),
                answer: match &r.answer {
                    Answer::Static {
                        files,
                        strip_prefix,
                    } => Answer::Static {
                        files: files.clone(),
                        strip_prefix: *strip_prefix,
                    },
                    Answer::Proxy(proxy) => match old_route(&r.name).map(|o| &o.answer) {
                        // Unchanged: this worker keeps its connections and what it knows
                        // of the instances.
                        Some(Answer::Proxy(was)) if was.same_settings(proxy) => {
                            Answer::Proxy(was.clone())
                        }
                        _ => Answer::Proxy(Arc::new(proxy.fork())),
                    },
                    Answer::Redirect { to, status } => Answer::Redirect {
                        to: to.clone(),
                        status: *status,
                    },
                    Answer::Hook(hook) => Answer::Hook(hook.clone()),
                    Answer::Api { scopes, sink } => Answer::Api {
                        scopes: scopes.clone(),
                        sink: sink.clone(),
                    },
                    Answer::Dashboard { sink, max_body } => Answer::Dashboard {
                        sink: sink.clone(),
                        max_body: *max_body,
                    },
                },
                counter: match kept(&r.name) {
                    Some((own, _)) => own,
                    None => {
                        let own = Arc::new(Counter::default());
                        r.counters
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(own.clone());
                        own
                    }
                },
                counters: kept(&r.name).map_or_else(|| r.counters.clone(), |(_, all)| all),
                auth: r.auth.clone(),
                budget: r.budget.clone(),
                // Unchanged limits keep their buckets: a reload gives no one a fresh burst.
                limits: match (
                    &r.limits,
                    old_route(&r.name).and_then(|o| o.limits.as_ref()),
                ) {
                    (Some(new), Some(was)) if was.spec() == new.spec() => Some(was.clone()),
                    (l, _) => l.clone(),
                },
                headers: r.headers.clone(),
            })
            .collect();
        Self {
            router: self.router.clone(),
            routes,
            log: self.log.clone(),
            auth: self.auth.clone(),
            budgets: self.budgets.clone(),
            maintenance: self.maintenance.clone(),
        }
    }

    /// Closes the plain path's upstream connections idle for too long (`all`: every one).
    pub(crate) fn prune_pools(&self, all: bool) {
        for route in &self.routes {
            if let Answer::Proxy(proxy) = &route.answer {
                if all {
                    proxy.pool().clear();
                } else {
                    proxy.pool().prune();
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> Vec<RouteStats> {
        self.routes
            .iter()
            .map(|r| {
                let all = r.counters.lock().unwrap_or_else(|e| e.into_inner());
                crate::counters::snapshot(&all, r.name.clone(), r.answer.kind())
            })
            .collect()
    }
}

/// The request's host: the URI's (HTTP/2, absolute form) or the `Host` header's, without
/// a port, lowercase.
pub(crate) fn host_of<B>(req: &Request<B>) -> String {
    let raw = req
        .uri()
        .host()
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    host_key(raw).into_owned()
}

/// A host as routes match it: without a port or a trailing dot, lowercase (borrowed when
/// it already is).
pub(crate) fn host_key(raw: &str) -> Cow<'_, str> {
    let without_port = if raw.starts_with('[') {
        // [::1]:8443
        raw.split_once(']')
            .map_or(raw, |(h, _)| h.trim_start_matches('['))
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    // `example.org.` is `example.org`.
    let host = without_port.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Whether a path is already in the one form [`canonicalize`] puts paths in (the common
/// case, checked without copying).
pub(crate) fn is_canonical(path: &str) -> bool {
    !path.contains(['%', '\\']) && path.is_ascii() && segments_ok(path)
}

/// Puts the request in the one form that routing, files and services all read the same
/// way, or refuses it: the `Host` header and the URI's authority must agree; `%XX` of
/// unreserved characters is decoded; an encoded `/`, `\` or NUL, a raw `\`, an empty
/// segment (`//`) and `.` or `..` segments are refused. Without this, `//admin`,
/// `/./admin` or `/%61dmin` could miss a guarded route and still reach the same page.
pub(crate) fn canonicalize<B>(req: &mut Request<B>) -> Result<(), &'static str> {
    let bad = |message: &'static str| message;
    if let (Some(authority), Some(host)) = (
        req.uri().host(),
        req.headers().get(HOST).and_then(|h| h.to_str().ok()),
    ) && host_key(authority) != host_key(host)
    {
        return Err(bad(
            "the request names two different hosts (its target and its Host header)",
        ));
    }
    let raw = req.uri().path();
    // The common case: nothing to decode, nothing to refuse.
    if is_canonical(raw) {
        return Ok(());
    }
    let mut path = String::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            else {
                return Err(bad("the path holds a bad percent-escape"));
            };
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    path.push(byte as char)
                }
                b'/' | b'\\' | 0 => {
                    return Err(bad("the path holds an encoded `/`, `\\` or NUL"));
                }
                _ => path.push_str(&raw[i..i + 3]),
            }
            i += 3;
        } else if bytes[i].is_ascii() {
            path.push(bytes[i] as char);
            i += 1;
        } else {
            return Err(bad(
                "the path holds a byte that is not ASCII; percent-encode it",
            ));
        }
    }
    if path.contains('\\') {
        return Err(bad("the path holds a backslash"));
    }
    if !segments_ok(&path) {
        return Err(bad(
            "the path holds an empty segment (`//`), or a `.` or `..` segment",
        ));
    }
    if path != raw {
        let pq = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq.parse().map_err(|_| bad("the path cannot be read"))?);
        *req.uri_mut() =
            hyper::Uri::from_parts(parts).map_err(|_| bad("the path cannot be read"))?;
    }
    Ok(())
}

/// No empty segment but a trailing slash, and no `.` or `..` segment.
fn segments_ok(path: &str) -> bool {
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Answers one request; never fails (errors become responses).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Conn,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    if let Err(why) = canonicalize(&mut req) {
        let refused = reply::error(StatusCode::BAD_REQUEST, "bad_request", why);
        if let Some(log) = &shared.log {
            log_line(log, &conn, &req, &refused, started, "-");
        }
        return answered_without_body(req, refused).await;
    }
    let host = host_of(&req);
    if req.uri().path().starts_with("/_berth/")
        && let Some(auth) = &shared.auth
    {
        let logged = shared.log.as_ref().map(|_| RequestLine::of(&req));
        let response = auth.own_page(req, conn.peer.ip(), conn.tls).await;
        if let (Some(log), Some(line)) = (&shared.log, logged) {
            line.write(log, &conn, &response, started.elapsed(), "/_berth", None);
        }
        return Ok(response);
    }
    // Maintenance mode: everyone but admins gets its page.
    let mut known: Option<Option<Identity>> = None;
    if let Some(message) = shared.maintenance.as_ref().and_then(|m| m.current()) {
        let who = match &shared.auth {
            Some(auth) => auth.identify(&req).await,
            None => None,
        };
        if !who
            .as_ref()
            .is_some_and(|i| i.roles.iter().any(|r| r == ADMIN_ROLE))
        {
            let mut response = maintenance_page(&req, &message);
            // The page stands for the route's answer: it carries the route's headers.
            if let Some(index) = shared.router.find(&host, req.uri().path()) {
                let headers = &shared.routes[index].headers;
                crate::headers::set_route_headers(headers, response.headers_mut());
            }
            if let Some(log) = &shared.log {
                log_line(log, &conn, &req, &response, started, "-");
            }
            return answered_without_body(req, response).await;
        }
        known = Some(who);
    }
    let Some(index) = shared.router.find(&host, req.uri().path()) else {
        let response = reply::no_route(&host, req.uri().path());
        if let Some(log) = &shared.log {
            log_line(log, &conn, &req, &response, started, "-");
        }
        return answered_without_body(req, response).await;
    };
    let route = &shared.routes[index];
    // What the log needs of the request, taken before the request is consumed.
    let logged = shared.log.as_ref().map(|_| RequestLine::of(&req));
    let refuse = |mut refused: Response<Body>, logged: Option<RequestLine>, user: Option<&str>| {
        crate::headers::set_route_headers(&route.headers, refused.headers_mut());
        let took = started.elapsed();
        route.counter.record(refused.status().as_u16(), took);
        if let (Some(log), Some(line)) = (&shared.log, logged) {
            line.write(log, &conn, &refused, took, &route.name, user);
        }
        refused
    };
    // A flood from one address is turned away before anything else is asked.
    if let Some(limits) = &route.limits
        && let Err(refused) = limits.admit(conn.peer.ip())
    {
        return answered_without_body(req, refuse(*refused, logged, None)).await;
    }
    let identity = match (&route.auth, &shared.auth) {
        (Some(rule), Some(auth)) => match auth.check(rule, &req).await {
            Ok(identity) => Some(identity),
            Err(refused) => {
                return answered_without_body(req, refuse(refused, logged, None)).await;
            }
        },
        _ => known.flatten(),
    };
    if let (Some(limits), Some(identity)) = (&route.limits, &identity)
        && let Err(refused) = limits.admit_user(&identity.user)
    {
        let refused = refuse(*refused, logged, Some(&identity.user));
        return answered_without_body(req, refused).await;
    }
    // A spent budget refuses before anything reaches the service.
    let budget = match (&route.budget, &shared.budgets) {
        (Some(b), Some(all)) => {
            let now = all.now();
            if let Err(refused) = b.admit(now) {
                let user = identity.as_ref().map(|i| i.user.as_str());
                let refused = refuse(*refused, logged, user);
                return answered_without_body(req, refused).await;
            }
            Some((b, all))
        }
        _ => None,
    };
    let mut response = match &route.answer {
        Answer::Static {
            files,
            strip_prefix,
        } => {
            let full_path = req.uri().path();
            let path = if *strip_prefix {
                strip(&route.path, full_path)
            } else {
                full_path
            };
            let response = files.serve(
                req.method(),
                path,
                req.uri().query(),
                full_path,
                req.headers(),
            );
            // Files take no body: a POST's is read away before its 405 goes out.
            crate::body::drain_request(req).await;
            response
        }
        Answer::Proxy(proxy) => {
            let cx = Context {
                peer: conn.peer,
                tls: conn.tls,
                route: &route.name,
                prefix: &route.path,
                identity: identity.as_ref(),
            };
            proxy.forward(req, cx).await
        }
        Answer::Redirect { to, status } => {
            let location = redirect_target(to, &route.path, req.uri().path(), req.uri().query());
            crate::body::drain_request(req).await;
            reply::redirect(*status, &location)
        }
        Answer::Hook(h) => hook(req, &route.path, h).await,
        Answer::Api { scopes, sink } => read_api(req, &route.path, scopes, sink).await,
        Answer::Dashboard { sink, max_body } => {
            dashboard(req, &route.path, identity.as_ref(), *max_body, sink).await
        }
    };
    if let Some((b, all)) = budget {
        b.charge_reported(response.headers_mut(), all.now());
    }
    crate::headers::set_route_headers(&route.headers, response.headers_mut());
    let took = started.elapsed();
    route.counter.record(response.status().as_u16(), took);
    if let (Some(log), Some(line)) = (&shared.log, logged) {
        let user = identity.as_ref().map(|i| i.user.as_str());
        line.write(log, &conn, &response, took, &route.name, user);
    }
    Ok(response)
}

/// `response`, once what is left of `req`'s body has been read away (see
/// [`crate::body::drain`]): the request was answered without it.
async fn answered_without_body(
    req: Request<Incoming>,
    response: Response<Body>,
) -> Result<Response<Body>, Infallible> {
    crate::body::drain_request(req).await;
    Ok(response)
}

/// A request to a read-only slice of the API: a `GET` of `/v1/…` below the route's
/// prefix, answered by berth's API if the route's scopes allow it.
async fn read_api(
    req: Request<Incoming>,
    prefix: &str,
    scopes: &[String],
    sink: &HookSink,
) -> Response<Body> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return not_allowed(
            req,
            "GET, HEAD",
            "this route is a read-only view of berth's API: GET requests only",
        )
        .await;
    }
    let path_and_query = below(prefix, req.uri());
    json_reply(sink.0.read_api(scopes.to_vec(), path_and_query).await)
}

/// A request to the dashboard: an action must carry the session's CSRF token in
/// `X-Berth-CSRF` (a form posted from another site cannot set a header); then the request,
/// its body read whole, goes to the server's dashboard.
async fn dashboard(
    req: Request<Incoming>,
    prefix: &str,
    identity: Option<&Identity>,
    max_body: u64,
    sink: &HookSink,
) -> Response<Body> {
    let Some(identity) = identity else {
        // A dashboard route always has `auth` (config), so this is never reached.
        crate::body::drain_request(req).await;
        return reply::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the dashboard needs a login",
        );
    };
    let csrf = match identity.method {
        crate::spec::AuthMethod::Login => crate::auth::csrf_token(req.headers()),
        crate::spec::AuthMethod::Token => None,
    };
    let safe = req.method() == hyper::Method::GET || req.method() == hyper::Method::HEAD;
    if !safe {
        let sent = req
            .headers()
            .get("x-berth-csrf")
            .and_then(|v| v.to_str().ok());
        let matches = match (&csrf, sent) {
            (Some(want), Some(sent)) => crate::auth::same_secret(want, sent),
            (None, _) => true,
            (Some(_), None) => false,
        };
        if !matches {
            crate::body::drain_request(req).await;
            return reply::error(
                StatusCode::FORBIDDEN,
                "csrf",
                "this action did not come from a dashboard page (no valid X-Berth-CSRF header); reload the page and try again",
            );
        }
    }
    let (parts, body) =
        match whole_body(req, max_body, "this route's", DASHBOARD_BODY_TIMEOUT).await {
            Ok(whole) => whole,
            Err(refused) => return refused,
        };
    let path_and_query = below(prefix, &parts.uri);
    let mut inner = hyper::http::Request::new(body);
    *inner.method_mut() = parts.method;
    match path_and_query.parse() {
        Ok(uri) => *inner.uri_mut() = uri,
        Err(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the path cannot be read",
            );
        }
    }
    for name in [hyper::header::CONTENT_TYPE, hyper::header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            inner.headers_mut().insert(name, v.clone());
        }
    }
    let viewer = crate::spec::DashboardViewer {
        user: identity.user.clone(),
        base: prefix.trim_end_matches('/').to_owned(),
        csrf,
    };
    sink.0.dashboard(inner, viewer).await
}

/// The path and query of `uri` below the route's `prefix`, starting with `/`.
fn below(prefix: &str, uri: &hyper::Uri) -> String {
    let rest = strip(prefix, uri.path());
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest,
    }
}

/// The request's head and its whole body, refused with 413 past `max_body` bytes (the
/// limit named as `whose` limit) and with 400 when it breaks off.
/// How long a dashboard action's body may take to arrive.
const DASHBOARD_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The whole body of `req`, if it is within `max_body` and arrives `within` that long: a
/// client that sends it slowly (a slowloris) is answered 408 and holds nothing longer.
async fn whole_body(
    req: Request<Incoming>,
    max_body: u64,
    whose: &str,
    within: std::time::Duration,
) -> Result<(hyper::http::request::Parts, bytes::Bytes), Response<Body>> {
    use http_body_util::{BodyExt, Limited};
    let too_large = || {
        reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body exceeds {whose} limit of {max_body} bytes"),
        )
    };
    if req.body().size_hint().lower() > max_body {
        crate::body::drain_request(req).await;
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(within, Limited::new(body, max_body as usize).collect());
    let Ok(collected) = collected.await else {
        let mut slow = reply::error(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {}; send it at once",
                crate::proxy::humanize(within)
            ),
        );
        // What is left of it is not read: the connection ends with the answer.
        slow.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        return Err(slow);
    };
    match collected {
        Ok(b) => Ok((parts, b.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(reply::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request body could not be read to its end",
        )),
    }
}

/// 405 for a method a route does not take, naming those it takes.
async fn not_allowed(
    req: Request<Incoming>,
    allow: &'static str,
    message: &'static str,
) -> Response<Body> {
    let mut r = reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        message,
    );
    r.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    crate::body::drain_request(req).await;
    r
}

/// A JSON answer from the server's side of a route (a webhook, an API view).
fn json_reply(answer: crate::spec::HookReply) -> Response<Body> {
    let mut response = Response::new(crate::body::full(answer.body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A webhook request: a POST whose body becomes a message of `ingest`, its topic the rest
/// of the path after the route's.
async fn hook(req: Request<Incoming>, prefix: &str, h: &Hook) -> Response<Body> {
    let max_body = h.max_body;
    if req.method() != hyper::Method::POST {
        return not_allowed(
            req,
            "POST",
            "a webhook takes POST requests, with the message as the body",
        )
        .await;
    }
    let topic = strip(prefix, req.uri().path())
        .trim_start_matches('/')
        .to_owned();
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.trim().is_empty() && k.len() <= 255 => Some(k.trim().to_owned()),
            _ => {
                crate::body::drain_request(req).await;
                return reply::error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the Idempotency-Key header must be 1 to 255 visible ASCII characters",
                );
            }
        },
    };
    let body = match whole_body(req, max_body, "this webhook's", h.body_timeout).await {
        Ok((_, body)) => body,
        Err(refused) => return refused,
    };
    json_reply(
        h.sink
            .0
            .take(&h.ingest, &topic, body, idempotency_key)
            .await,
    )
}

/// `to`, with the rest of the path appended when `to` ends with `/`.
fn redirect_target(to: &str, prefix: &str, path: &str, query: Option<&str>) -> String {
    if !to.ends_with('/') {
        return to.to_owned();
    }
    let rest = strip(prefix, path).trim_start_matches('/');
    match query {
        Some(q) => format!("{to}{rest}?{q}"),
        None => format!("{to}{rest}"),
    }
}

/// The parts of a request an access log line shows.
struct RequestLine {
    at: SystemTime,
    method: String,
    target: String,
    version: &'static str,
    referer: Option<String>,
    agent: Option<String>,
}

impl RequestLine {
    fn of<B>(req: &Request<B>) -> Self {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        Self {
            at: SystemTime::now(),
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |pq| pq.to_string()),
            version: version_str(req.version()),
            referer: header(REFERER),
            agent: header(USER_AGENT),
        }
    }

    fn write(
        self,
        log: &AccessLogger,
        conn: &Conn,
        response: &Response<Body>,
        took: std::time::Duration,
        route: &str,
        user: Option<&str>,
    ) {
        log.log(&Entry {
            peer: conn.peer,
            user,
            at: self.at,
            method: &self.method,
            target: &self.target,
            version: self.version,
            status: response.status().as_u16(),
            bytes: response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .or_else(|| response.body().size_hint().exact()),
            referer: self.referer.as_deref(),
            agent: self.agent.as_deref(),
            took,
            route,
        });
    }
}

fn log_line<B>(
    log: &AccessLogger,
    conn: &Conn,
    req: &Request<B>,
    response: &Response<Body>,
    started: Instant,
    route: &str,
) {
    RequestLine::of(req).write(log, conn, response, started.elapsed(), route, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_put_in_one_form_or_refused() {
        let canon = |target: &str, host: Option<&str>| {
            let mut b = Request::builder().uri(target);
            if let Some(h) = host {
                b = b.header(HOST, h);
            }
            let mut req = b.body(()).unwrap();
            canonicalize(&mut req)
                .map(|()| req.uri().to_string())
                .map_err(|_| 400)
        };
        assert_eq!(
            canon("/%61dmin/%7Eu?q=%2F", None),
            Ok("/admin/~u?q=%2F".into())
        );
        assert_eq!(canon("/a%20b/", None), Ok("/a%20b/".into()));
        for bad in [
            "//admin",
            "/./admin",
            "/x/../admin",
            "/a/.",
            "/a%2fb",
            "/a%5cb",
            "/a%00",
            "/a%zz",
        ] {
            assert_eq!(canon(bad, None), Err(400), "{bad}");
        }
        assert_eq!(
            canon("http://www.example.org/x", Some("admin.example.org")),
            Err(400)
        );
        assert_eq!(
            canon("http://www.example.org/x", Some("WWW.example.org:80")),
            Ok("http://www.example.org/x".into())
        );
        // IPv6 with and without a port.
        assert_eq!(
            canon("http://[::1]/x", Some("[::1]")),
            Ok("http://[::1]/x".into())
        );
        assert_eq!(
            canon("http://[::1]:8080/x", Some("[::1]:8080")),
            Ok("http://[::1]:8080/x".into())
        );
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        let req = |h: &str| Request::builder().header(HOST, h).body(()).unwrap();
        assert_eq!(host_of(&req("Example.ORG:8443")), "example.org");
        assert_eq!(host_of(&req("[::1]:8443")), "::1");
        assert_eq!(host_of(&req("localhost")), "localhost");
        assert_eq!(host_of(&req("admin.example.org.")), "admin.example.org");
    }

    #[test]
    fn redirects_keep_the_rest_of_the_path_when_asked() {
        assert_eq!(
            redirect_target("https://new.example/", "/old", "/old/a/b", Some("x=1")),
            "https://new.example/a/b?x=1"
        );
        assert_eq!(
            redirect_target("https://new.example/page", "/old", "/old/a", None),
            "https://new.example/page"
        );
    }
}
