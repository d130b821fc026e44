//! [`Gateway`]: the listeners and their connections, from bind to drain.
//!
//! Every listener gets an accept task, which deals its connections out in turn to the
//! worker threads (one per CPU by default). A worker runs a single-threaded runtime and
//! serves each connection it gets to the end, its upstream connections included, so a
//! request never crosses threads (the shape of nginx's workers; on a shared runtime the
//! wake-ups between threads cost a third of the proxied throughput). Connections are
//! tracked so that [`Gateway::stop`] can wait for them. On stop, the listeners close at once, each
//! connection is told to finish (HTTP/1.1 after its current response, HTTP/2 with a
//! GOAWAY), and whatever still runs after the grace period is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Backends;
use crate::access_log::AccessLogger;
use crate::acme::{ACME_TLS_ALPN, Pending};
use crate::auth::Auth;
use crate::bounded::{Admitted, Connections};
use crate::budget::Budgets;
use crate::counters::RouteStats;
use crate::error::GatewayError;
use crate::fast_path;
use crate::handle::{Conn, Shared, Table, handle, host_of};
use crate::limits::Maintenance;
use crate::reply;
use crate::spec::{AccessLog, GatewaySpec, LoginSpec, TlsSpec};
use crate::tls;

/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running gateway.
pub struct Gateway {
    addrs: Vec<SocketAddr>,
    tls: bool,
    http_addr: Option<SocketAddr>,
    /// Each worker's routes; the first one's counts stand for all.
    tables: Vec<Arc<Table>>,
    /// What a reload builds new routes from, and what it cannot change.
    parts: Parts,
    /// Stop accepting and finish gracefully.
    stop: CancellationToken,
    /// End the worker threads, dropping whatever they still serve.
    kill: CancellationToken,
    connections: TaskTracker,
    workers: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Budgets' flusher; its last flush runs at stop.
    flusher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The accept loops, which own the listening sockets.
    loops: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What the routes of a reload are built from (the pieces that live across it), and the
/// settings only a restart changes.
struct Parts {
    backends: Arc<dyn Backends>,
    log: Option<Arc<AccessLogger>>,
    auth: Option<Arc<Auth>>,
    budgets: Option<Arc<Budgets>>,
    maintenance: Option<Arc<Maintenance>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    fixed: Fixed,
}

/// The settings a running gateway keeps until berth restarts: its sockets, its
/// certificate source, its access log, its login settings, its connection limits.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    listen: Vec<SocketAddr>,
    tls: Option<TlsSpec>,
    http: Option<SocketAddr>,
    access_log: Option<AccessLog>,
    login: LoginSpec,
    workers: usize,
    connections: crate::ConnectionLimits,
}

impl Fixed {
    fn of(spec: &GatewaySpec) -> Self {
        Self {
            listen: spec.listen.clone(),
            tls: spec.tls.clone(),
            http: spec.http,
            access_log: spec.access_log.clone(),
            login: spec.login,
            workers: spec.workers,
            connections: spec.connections,
        }
    }

    /// What differs between two, as the keys a person would change.
    fn differences(&self, other: &Fixed) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.listen != other.listen {
            out.push("listen");
        }
        if self.tls != other.tls {
            out.push("tls");
        }
        if self.http != other.http {
            out.push("http");
        }
        if self.access_log != other.access_log {
            out.push("access_log");
        }
        if self.login != other.login {
            out.push("session, lockout_after, lockout_for");
        }
        if self.workers != other.workers {
            out.push("workers");
        }
        if self.connections != other.connections {
            out.push("max_connections, max_connections_per_address");
        }
        out
    }
}

impl Gateway {
    /// Binds every listener, loads the certificate and starts serving. Fails before
    /// serving anything if a listener cannot be bound, a certificate does not load or a
    /// static directory is missing.
    pub async fn start(
        spec: GatewaySpec,
        backends: Arc<dyn Backends>,
        store: Option<Arc<dyn berth_store::Store>>,
    ) -> Result<Self, GatewayError> {
        let stop = CancellationToken::new();
        let tls = match &spec.tls {
            Some(t) => Some(tls::setup(t, &spec.tls_dir)?),
            None => None,
        };
        let log = match &spec.access_log {
            Some(log) => Some(AccessLogger::start(log)?),
            None => None,
        };
        // With a store there are always budgets (perhaps none yet), so that a reload can
        // add some.
        let budgets = match (&store, spec.budgets.is_empty()) {
            (Some(store), _) => Some(Arc::new(
                Budgets::load(
                    &spec.budgets,
                    store.clone(),
                    spec.clock.clone(),
                    spec.node.clone(),
                )
                .await
                .map_err(GatewayError::Store)?,
            )),
            (None, false) => {
                let route = spec.routes.iter().find(|r| r.budget.is_some());
                return Err(GatewayError::NoStore {
                    route: route.map_or_else(|| "-".to_owned(), |r| r.name()),
                });
            }
            (None, true) => None,
        };
        // With a store, logins work on every gateway (maintenance mode lets admins in).
        let auth = match (&store, spec.routes.iter().find(|r| r.auth.is_some())) {
            (Some(store), _) => Some(Arc::new(Auth::new(
                store.clone(),
                spec.login.session_ttl,
                spec.login.lockout,
            ))),
            (None, Some(route)) => {
                return Err(GatewayError::NoStore {
                    route: route.name(),
                });
            }
            (None, None) => None,
        };
        let maintenance = match &store {
            Some(store) => {
                let m = Arc::new(Maintenance::default());
                m.load(store.as_ref()).await;
                Some(m)
            }
            None => None,
        };
        let log = log.map(Arc::new);
        let shared = Arc::new(Shared::new(
            &spec.routes,
            backends.clone(),
            log.clone(),
            auth.clone(),
            budgets.clone(),
            maintenance.clone(),
            &|name| budgets.as_ref().and_then(|b| b.get(name)),
        )?);
        let parts = Parts {
            backends,
            log,
            auth,
            budgets: budgets.clone(),
            maintenance: maintenance.clone(),
            reloading: tokio::sync::Mutex::new(()),
            fixed: Fixed::of(&spec),
        };
        let kill = CancellationToken::new();
        // The last flush comes after the connections drained (see `stop`).
        let flusher = budgets.map(|b| b.spawn_flusher(kill.clone()));
        if let (Some(m), Some(store)) = (maintenance, &store) {
            tokio::spawn(m.follow(store.clone(), kill.clone()));
        }

        let mut listeners = Vec::new();
        for addr in &spec.listen {
            listeners.push(bind(*addr).await?);
        }
        let plain = match spec.http {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let http_addr = plain.as_ref().and_then(|l| l.local_addr().ok());

        if let (Some(TlsSpec::Files { cert, key }), Some(t)) = (&spec.tls, &tls) {
            tls::watch_files(
                t.certificates.clone(),
                cert.clone(),
                key.clone(),
                spec.tls_reload_every,
                stop.clone(),
            );
        }
        let connections = TaskTracker::new();
        let open = Connections::new(spec.connections);
        let acceptor = tls.as_ref().map(|t| TlsAcceptor::from(t.config.clone()));
        let mut workers = Vec::new();
        let mut senders = Vec::new();
        let mut tables = Vec::new();
        for n in 0..spec.workers.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let table = Arc::new(Table::new(if n == 0 {
                shared.clone()
            } else {
                Arc::new(shared.fork())
            }));
            tables.push(table.clone());
            let serve = Serve {
                table,
                acceptor: acceptor.clone(),
                // A token of the worker's own, cancelled with the gateway's: its
                // connections check it on every request, and a shared one would be a
                // lock every worker takes.
                stop: stop.child_token(),
                connections: connections.clone(),
            };
            let kill = kill.clone();
            let worker = std::thread::Builder::new()
                .name(format!("berth-gateway-{n}"))
                .spawn(move || serve.run_worker(rx, kill))
                .map_err(GatewayError::Worker)?;
            workers.push(worker);
        }
        // The accept loops own the listeners: `stop` waits for them, so that the ports
        // are free again when it returns.
        let mut loops = Vec::new();
        for listener in listeners {
            loops.push(tokio::spawn(accept_loop(
                listener,
                senders.clone(),
                open.clone(),
                stop.clone(),
            )));
        }
        let pending = tls.as_ref().map(|t| t.pending.clone()).unwrap_or_default();
        if let Some(listener) = plain {
            let https_port = addrs.first().map_or(443, |a| a.port());
            loops.push(tokio::spawn(redirect_loop(
                listener,
                https_port,
                pending.clone(),
                stop.clone(),
                connections.clone(),
            )));
        }
        if let (Some(TlsSpec::Acme(acme)), Some(t)) = (&spec.tls, &tls) {
            tokio::spawn(crate::acme::keep_renewed(
                acme.clone(),
                spec.tls_dir.join("acme"),
                t.acme_not_after,
                t.certificates.clone(),
                pending.clone(),
                kill.clone(),
            ));
        }
        for addr in &addrs {
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!(%addr, scheme, routes = spec.routes.len(), "gateway listening");
        }
        Ok(Self {
            addrs,
            tls: tls.is_some(),
            http_addr,
            tables,
            parts,
            stop,
            kill,
            connections,
            workers: std::sync::Mutex::new(workers),
            flusher: std::sync::Mutex::new(flusher),
            loops: std::sync::Mutex::new(loops),
        })
    }

    /// The bound addresses of `listen`, in order (the real ports when 0 was asked).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound address of the HTTP→HTTPS redirect listener, if any.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Each route's counts since start.
    pub fn stats(&self) -> Vec<RouteStats> {
        self.tables[0].current().stats()
    }

    /// Applies a changed `[gateway]` while it serves (a reload): the routes (with their
    /// auth, rate limits, timeouts and limits) and the budgets (a new limit counts from
    /// the next request, what was spent stays) are replaced at once for every request
    /// from now on, open connections included; a route that keeps its name keeps its
    /// counts. Returns the settings that differ but only a restart changes (`listen`,
    /// `tls`, `http`, `access_log`, the login settings): those keep their running values.
    /// Fails, changing nothing, if the new routes cannot be built (a missing static
    /// directory, a budget without a store).
    pub async fn reload(&self, spec: &GatewaySpec) -> Result<Vec<&'static str>, GatewayError> {
        let _one = self.parts.reloading.lock().await;
        let p = &self.parts;
        if p.budgets.is_none()
            && let Some(route) = spec.routes.iter().find(|r| r.budget.is_some())
        {
            return Err(GatewayError::NoStore {
                route: route.name(),
            });
        }
        if p.auth.is_none()
            && let Some(route) = spec.routes.iter().find(|r| r.auth.is_some())
        {
            return Err(GatewayError::NoStore {
                route: route.name(),
            });
        }
        // The budgets as they will be, then the routes built against them: either fails
        // before anything changes.
        let prepared = match &p.budgets {
            Some(budgets) => Some(
                budgets
                    .prepare(&spec.budgets)
                    .await
                    .map_err(GatewayError::Store)?,
            ),
            None => None,
        };
        let fresh = Shared::new(
            &spec.routes,
            p.backends.clone(),
            p.log.clone(),
            p.auth.clone(),
            p.budgets.clone(),
            p.maintenance.clone(),
            &|name| prepared.as_ref().and_then(|b| b.by_name.get(name).cloned()),
        )?;
        if let (Some(budgets), Some(prepared)) = (&p.budgets, prepared) {
            budgets.commit(prepared);
        }
        for table in &self.tables {
            let old = table.current();
            table.replace(Arc::new(fresh.fork_keeping(Some(&old))));
        }
        Ok(p.fixed.differences(&Fixed::of(spec)))
    }

    /// The start of the period `now` falls in for the budget `name` this gateway
    /// enforces (`None`: no such budget).
    pub fn budget_period_start(
        &self,
        name: &str,
        now: berth_store::Timestamp,
    ) -> Option<berth_store::Timestamp> {
        let budgets = self.parts.budgets.as_ref()?;
        budgets
            .enforced()
            .into_iter()
            .find(|(spec, _, _)| spec.name == name)
            .map(|(spec, _, _)| crate::budget::period_bounds(&spec, now).0)
    }

    /// Each budget's settings in force and what this node counts as spent in its
    /// current period: `(name, limit, cost per request, period, spent)`, amounts in
    /// millionths, in name order.
    pub fn budgets(&self) -> Vec<crate::EnforcedBudget> {
        self.parts
            .budgets
            .as_ref()
            .map(|b| {
                b.enforced()
                    .into_iter()
                    .map(|(spec, period_start, spent)| crate::EnforcedBudget {
                        name: spec.name.clone(),
                        limit: spec.limit,
                        cost_per_request: spec.cost_per_request,
                        period: spec.period,
                        period_start,
                        resets_at: crate::budget::period_bounds(&spec, period_start).1,
                        spent,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the main listeners serve TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls
    }

    /// Stops accepting, lets open connections finish their current requests for up to
    /// `grace`, then drops what remains.
    pub async fn stop(&self, grace: Duration) {
        self.stop.cancel();
        let loops = std::mem::take(&mut *self.loops.lock().unwrap_or_else(|e| e.into_inner()));
        for l in loops {
            let _ = l.await;
        }
        self.connections.close();
        if tokio::time::timeout(grace, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.connections.len(),
                "gateway connections still open after the grace period; dropping them"
            );
        }
        // Then the workers end, and the budgets' flusher makes its last flush.
        self.kill.cancel();
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(flusher) = flusher {
            let _ = flusher.await;
        }
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Without a stop, the worker threads would serve on.
        self.stop.cancel();
        self.kill.cancel();
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { addr, source })
}

/// What an accept loop needs.
struct Serve {
    table: Arc<Table>,
    acceptor: Option<TlsAcceptor>,
    stop: CancellationToken,
    connections: TaskTracker,
}

impl Serve {
    /// A worker thread: a single-threaded runtime that accepts on its copies of the
    /// listeners and serves every connection it accepts to the end, upstream
    /// connections included, so that no request crosses threads (as nginx's workers).
    fn run_worker(self, mut incoming: mpsc::UnboundedReceiver<Accepted>, kill: CancellationToken) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a gateway worker");
                return;
            }
        };
        let this = Arc::new(self);
        let worker = this.clone();
        runtime.block_on(async move {
            // Idle upstream connections past their time are closed even on a quiet route.
            let pruned = this.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(15));
                loop {
                    every.tick().await;
                    pruned.table.current().prune_pools(false);
                }
            });
            loop {
                let (stream, peer, admitted) = tokio::select! {
                    _ = kill.cancelled() => return,
                    next = incoming.recv() => match next {
                        Some(accepted) => accepted,
                        // The accept loops ended (stop): serve what is open until killed.
                        None => {
                            kill.cancelled().await;
                            return;
                        }
                    },
                };
                let stream = match TcpStream::from_std(stream) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "a gateway worker cannot take a connection");
                        continue;
                    }
                };
                let this2 = this.clone();
                this.connections.spawn(async move {
                    let _admitted = admitted;
                    this2.connection(stream, peer).await
                });
            }
        });
        // The pooled upstream connections belong to this worker's runtime: they close
        // with it.
        drop(runtime);
        worker.table.current().prune_pools(true);
    }

    async fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        match &self.acceptor {
            None => {
                let conn = Conn { peer, tls: false };
                // Plain HTTP/1.1 first takes the lean path; what it does not serve goes
                // to hyper with the bytes already read.
                if let fast_path::Outcome::Handoff(rest) =
                    fast_path::serve(&self.table, stream, conn, &self.stop).await
                {
                    // Boxed: hyper's state is large, and a connection the lean path
                    // serves to its end should not carry room for it.
                    Box::pin(self.serve_io(rest, conn)).await;
                }
            }
            Some(acceptor) => {
                let handshake = Box::pin(acceptor.accept(stream));
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                    // An ACME validator only checks the handshake (RFC 8737 §3).
                    Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {}
                    Ok(Ok(tls)) => Box::pin(self.serve_io(tls, Conn { peer, tls: true })).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_io<I>(&self, io: I, conn: Conn)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let table = self.table.clone();
        let service = service_fn(move |req: Request<Incoming>| handle(table.current(), conn, req));
        serve_connection(io, service, &self.stop).await;
    }
}

/// A connection taken by an accept loop, on its way to a worker.
type Accepted = (std::net::TcpStream, SocketAddr, Admitted);

/// Accepts on `listener` and deals the connections out to the workers in turn, so that
/// each gets an equal share (accepting in every worker would leave it to whichever
/// wakes first).
async fn accept_loop(
    listener: TcpListener,
    workers: Vec<mpsc::UnboundedSender<Accepted>>,
    open: Arc<Connections>,
    stop: CancellationToken,
) {
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "gateway cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Past a limit the connection is closed at once (dropped), before any read.
        let admitted = match open.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(limit) => {
                tracing::debug!(%peer, limit, "gateway connection refused");
                continue;
            }
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let _ = workers[next % workers.len()].send((stream, peer, admitted));
        next += 1;
    }
}

/// Serves one connection until it ends, or until `stop`, then finishes gracefully.
async fn serve_connection<I, S>(io: I, service: S, stop: &CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<crate::body::Body>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    // An idle HTTP/2 connection is pinged, and closed if the pings go unanswered.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "gateway connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The plain-HTTP listener beside a TLS one: everything is redirected to HTTPS.
async fn redirect_loop(
    listener: TcpListener,
    https_port: u16,
    pending: Arc<Pending>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stop = stop.clone();
        let pending = pending.clone();
        connections.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let answer = acme_answer(&req, &pending);
                async move {
                    Ok::<_, std::convert::Infallible>(
                        answer.unwrap_or_else(|| to_https(&req, https_port)),
                    )
                }
            });
            serve_connection(stream, service, &stop).await;
        });
    }
}

/// The answer to an ACME `http-01` challenge, if the request asks for one berth holds.
fn acme_answer<B>(
    req: &Request<B>,
    pending: &Pending,
) -> Option<hyper::Response<crate::body::Body>> {
    let token = req
        .uri()
        .path()
        .strip_prefix("/.well-known/acme-challenge/")?;
    let answer = pending.http_answer(token)?;
    let mut response = hyper::Response::new(crate::body::full(answer));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    Some(response)
}

fn to_https<B>(req: &Request<B>, https_port: u16) -> hyper::Response<crate::body::Body> {
    let host = host_of(req);
    if host.is_empty() {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "no_host",
            "the request names no host, so it cannot be redirected to HTTPS",
        );
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    reply::redirect(
        StatusCode::PERMANENT_REDIRECT,
        &format!("https://{host}{port}{path}"),
    )
}
