//! The lean path for plain HTTP/1.1 connections: the requests that make up most of a
//! gateway's traffic, served without hyper's generic machinery.
//!
//! A plain connection starts here. Each request head is parsed in place (`httparse`)
//! and, when it is one this path serves, answered here:
//!
//! - a bodiless request with an idempotent method to a proxy route: the head is
//!   rewritten straight into the upstream's buffer (the same headers dropped and added
//!   as [`crate::proxy`] does), sent on a pooled upstream connection of this worker, and
//!   the response is relayed as it comes (`Content-Length`, chunked or until close);
//! - `GET`/`HEAD` to a static route: the same answer as on the general path, and a large
//!   file goes from the page cache to the socket with `sendfile`, as nginx does.
//!
//! Only routes without `auth`, `budget` or `rate_limit`, and only while maintenance mode
//! is off. Anything else (a body, an upgrade, `Expect`, HTTP/1.0, an absolute or
//! non-canonical target, a head `httparse` refuses, the HTTP/2 preface) hands the
//! connection, with every byte read so far, to hyper for the rest of its life. So the
//! framing of request bodies, and every error about a malformed request, stay hyper's.

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::header::{CONTENT_LENGTH, DATE, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use nix::sys::sendfile::sendfile;
use nix::sys::socket::{MsgFlags, recv, send};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::access_log::Entry;
use crate::body::Body;
use crate::handle::{Answer, Conn, Route, Shared, Table, host_key, is_canonical};
use crate::proxy::{HOP_BY_HOP, Proxy};
use crate::router::strip;
use crate::statics::{FileRange, SEND_TIMEOUT, StaticFiles};

/// The most header lines a head may have here (hyper's default too); more go to hyper.
const MAX_HEADERS: usize = 100;
/// The longest request or response head read here; a longer request goes to hyper.
const MAX_HEAD: usize = 64 << 10;
/// How long a client may take to send a request's head (and how long an idle
/// keep-alive connection stays open), as on the general path.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads are at least this large.
const READ_CHUNK: usize = 16 << 10;
/// A response body up to this size is written with its head in one call.
const COALESCE_MAX: usize = 32 << 10;
/// Idle upstream connections kept per worker and route.
const POOL_MAX: usize = 1024;
/// How long an idle upstream connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// How a plain connection ended here.
pub(crate) enum Outcome {
    /// Closed, or finished after a stop.
    Done,
    /// A request this path does not serve: hyper serves the connection from here on,
    /// starting with the bytes already read.
    Handoff(Prefixed),
}

/// Serves a plain connection until it closes, a stop, or a request for hyper.
pub(crate) async fn serve(
    table: &Table,
    mut stream: TcpStream,
    conn: Conn,
    stop: &CancellationToken,
) -> Outcome {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    loop {
        match read_head(&mut stream, &mut buf, stop).await {
            HeadRead::Complete => {}
            HeadRead::Other => return Outcome::Handoff(Prefixed::new(buf, stream)),
            HeadRead::Closed => return Outcome::Done,
        }
        let started = Instant::now();
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return Outcome::Handoff(Prefixed::new(buf, stream)),
        };
        let Some(head) = Head::read(&req) else {
            return Outcome::Handoff(Prefixed::new(buf, stream));
        };
        // The routes as they stand for this request (a reload may have replaced them).
        let shared = table.current();
        let shared = &*shared;
        let Some((route, kind)) = pick(shared, &head) else {
            return Outcome::Handoff(Prefixed::new(buf, stream));
        };
        let at = SystemTime::now();
        let sent = match kind {
            Kind::Proxy(proxy) => forward(proxy, route, &head, &conn, &mut stream, &mut out).await,
            Kind::Static {
                files,
                strip_prefix,
            } => {
                let path = if strip_prefix {
                    strip(&route.path, head.path)
                } else {
                    head.path
                };
                serve_static(files, path, &head, &mut stream, &mut out).await
            }
        };
        let took = started.elapsed();
        route.counter.record(sent.status, took);
        if let Some(log) = &shared.log {
            log.log(&Entry {
                peer: conn.peer,
                user: None,
                at,
                method: head.method,
                target: head.target,
                version: "HTTP/1.1",
                status: sent.status,
                bytes: sent.bytes,
                referer: head.referer,
                agent: head.agent,
                took,
                route: &route.name,
            });
        }
        if !sent.keep_open || head.close || stop.is_cancelled() {
            let _ = stream.shutdown().await;
            return Outcome::Done;
        }
        buf.advance(head_len);
    }
}

enum HeadRead {
    /// `buf` holds a complete head (or something `httparse` refuses, which hyper answers).
    Complete,
    /// The head is too long for this path, or not HTTP/1.x: hyper's.
    Other,
    /// The client closed, went quiet past the timeout, or the gateway stops.
    Closed,
}

/// Reads until `buf` holds a whole request head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    stop: &CancellationToken,
) -> HeadRead {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::Request::new(&mut headers).parse(buf) {
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => return HeadRead::Other,
                // Complete, or refused: hyper says what is wrong with it.
                _ => return HeadRead::Complete,
            }
        }
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, stream.read_buf(buf)) => read,
            // Idle between requests: a stop closes the connection now.
            _ = stop.cancelled(), if buf.is_empty() => return HeadRead::Closed,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return HeadRead::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// What this path needs of a request head.
struct Head<'a> {
    method: &'a str,
    /// The request target: path and query.
    target: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    /// The `Host` header's value as sent.
    host: Option<&'a str>,
    /// The client asked to close after this response.
    close: bool,
    referer: Option<&'a str>,
    agent: Option<&'a str>,
    headers: &'a [httparse::Header<'a>],
}

impl<'a> Head<'a> {
    /// The head, if it is one this path serves: HTTP/1.1, an origin-form target already
    /// in canonical form, no body, no upgrade, no `Expect`, at most one `Host`.
    fn read(req: &'a httparse::Request<'a, 'a>) -> Option<Self> {
        if req.version != Some(1) {
            return None;
        }
        let method = req.method?;
        let target = req.path?;
        if !target.starts_with('/') {
            return None;
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        // Only targets that read the same to every parser: no fragment, nothing that
        // must be escaped, nothing to decode in the path.
        if !target.bytes().all(plain_target_byte) || !is_canonical(path) {
            return None;
        }
        let mut head = Head {
            method,
            target,
            path,
            query,
            host: None,
            close: false,
            referer: None,
            agent: None,
            headers: &[],
        };
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => {
                    if head.host.is_some() {
                        return None;
                    }
                    head.host = Some(std::str::from_utf8(h.value).ok()?);
                }
                6 if name.eq_ignore_ascii_case(b"expect") => return None,
                7 if name.eq_ignore_ascii_case(b"upgrade") => return None,
                7 if name.eq_ignore_ascii_case(b"referer") => {
                    head.referer = std::str::from_utf8(h.value).ok();
                }
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for token in h.value.split(|&b| b == b',') {
                        let token = token.trim_ascii();
                        if token.eq_ignore_ascii_case(b"close") {
                            head.close = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            return None;
                        }
                    }
                }
                10 if name.eq_ignore_ascii_case(b"user-agent") => {
                    head.agent = std::str::from_utf8(h.value).ok();
                }
                14 if name.eq_ignore_ascii_case(b"content-length")
                    && h.value.trim_ascii() != b"0" =>
                {
                    return None;
                }
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return None,
                _ => {}
            }
        }
        // Without a Host, the general path says what is missing.
        head.host?;
        head.headers = req.headers;
        Some(head)
    }

    fn is(&self, method: &Method) -> bool {
        self.method == method.as_str()
    }
}

/// A byte a request target may hold here: RFC 3986's unreserved and sub-delims, `:`,
/// `@`, `/`, `?` and `%`. Anything else (`#`, `<`, a space, a byte beyond ASCII) goes to
/// the general path, whose URI parser refuses it or reads it its own way.
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'%'
        )
}

enum Kind<'s> {
    Proxy(&'s Proxy),
    Static {
        files: &'s StaticFiles,
        strip_prefix: bool,
    },
}

/// The route that answers `head` here, following the general path's order (its own
/// pages, maintenance mode, then routes); `None` when the general path must answer.
fn pick<'s>(shared: &'s Shared, head: &Head<'_>) -> Option<(&'s Route, Kind<'s>)> {
    if shared.auth.is_some() && head.path.starts_with("/_berth/") {
        return None;
    }
    if shared.maintenance.as_ref().is_some_and(|m| m.is_on()) {
        return None;
    }
    let host = host_key(head.host.unwrap_or_default());
    let route = &shared.routes[shared.router.find(&host, head.path)?];
    if route.auth.is_some() || route.budget.is_some() || route.limits.is_some() {
        return None;
    }
    match &route.answer {
        Answer::Proxy(proxy)
            if proxy.plain_capable()
                && [
                    Method::GET,
                    Method::HEAD,
                    Method::OPTIONS,
                    Method::PUT,
                    Method::DELETE,
                ]
                .iter()
                .any(|m| head.is(m)) =>
        {
            Some((route, Kind::Proxy(proxy)))
        }
        Answer::Static {
            files,
            strip_prefix,
        } if head.is(&Method::GET) || head.is(&Method::HEAD) => Some((
            route,
            Kind::Static {
                files,
                strip_prefix: *strip_prefix,
            },
        )),
        _ => None,
    }
}

/// What went back to the client.
struct Sent {
    status: u16,
    bytes: Option<u64>,
    /// Whether the connection may carry another request.
    keep_open: bool,
}

// ---- static files ----

async fn serve_static(
    files: &StaticFiles,
    path: &str,
    head: &Head<'_>,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Sent {
    // Only the headers a static answer reads.
    let mut asked = HeaderMap::new();
    for h in head.headers {
        let name = h.name.as_bytes();
        let wanted = [
            "if-none-match",
            "if-modified-since",
            "range",
            "if-range",
            "accept-encoding",
        ]
        .into_iter()
        .find(|w| w.len() == name.len() && name.eq_ignore_ascii_case(w.as_bytes()));
        if let (Some(w), Ok(value)) = (wanted, HeaderValue::from_bytes(h.value)) {
            asked.append(HeaderName::from_static(w), value);
        }
    }
    let method = if head.is(&Method::HEAD) {
        Method::HEAD
    } else {
        Method::GET
    };
    let response = files.serve(&method, path, head.query, head.path, &asked);
    write_response(stream, out, response, method == Method::HEAD).await
}

/// Writes a response of the general kind: its head, then its body (from the file with
/// `sendfile` when it names one, else frame by frame).
async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    mut response: Response<Body>,
    head_only: bool,
) -> Sent {
    let status = response.status();
    let declared = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let exact = declared.or_else(|| response.body().size_hint().exact());
    out.clear();
    status_line(out, status);
    for (name, value) in response.headers() {
        header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let no_body_status = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if declared.is_none() && !no_body_status {
        match exact {
            Some(n) => {
                let _ = write!(out, "content-length: {n}\r\n");
            }
            None => header(out, b"transfer-encoding", b"chunked"),
        }
    }
    if !response.headers().contains_key(DATE) {
        date(out);
    }
    out.extend_from_slice(b"\r\n");
    let sent = |keep_open| Sent {
        status: status.as_u16(),
        bytes: exact,
        keep_open,
    };
    let bodiless = head_only || no_body_status || exact == Some(0);
    if bodiless {
        return sent(stream.write_all(out).await.is_ok());
    }
    if let Some(range) = response.extensions_mut().remove::<FileRange>()
        && let Some(file) = open_same(&range)
    {
        let ok = send_head_more(stream, out).await.is_ok()
            && send_file(stream, &file, range.start, range.end - range.start)
                .await
                .is_ok();
        return sent(ok);
    }
    let body = response.body_mut();
    let chunked = exact.is_none();
    // Small bodies go out with the head in one write.
    if !chunked && exact.is_some_and(|n| n as usize <= COALESCE_MAX) {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        out.extend_from_slice(data);
                    }
                }
                Err(_) => return sent(false),
            }
        }
        return sent(stream.write_all(out).await.is_ok());
    }
    if stream.write_all(out).await.is_err() {
        return sent(false);
    }
    let mut written_total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The body broke off: the client sees a short response and a closed
            // connection, never a complete-looking one.
            return sent(false);
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        written_total += data.len() as u64;
        let written = if chunked {
            out.clear();
            let _ = write!(out, "{:x}\r\n", data.len());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            stream.write_all(out).await
        } else {
            stream.write_all(data).await
        };
        if written.is_err() {
            return sent(false);
        }
    }
    if chunked && stream.write_all(b"0\r\n\r\n").await.is_err() {
        return sent(false);
    }
    // A body shorter than its length must not leave the connection open: the client
    // would read the next response as the rest of it.
    sent(exact.is_none_or(|n| n == written_total))
}

/// The file a [`FileRange`] names, if the one opened now is the one that was checked.
fn open_same(range: &FileRange) -> Option<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(&range.path).ok()?;
    let meta = file.metadata().ok()?;
    let same = meta.ino() == range.ino
        && meta.dev() == range.dev
        && meta.len() == range.len
        && meta.modified().ok() == Some(range.mtime);
    same.then_some(file)
}

/// Writes a head that the file's bytes follow at once (`MSG_MORE`: one packet where
/// they fit).
async fn send_head_more(stream: &TcpStream, out: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < out.len() {
        tokio::time::timeout(SEND_TIMEOUT, stream.writable())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        match stream.try_io(Interest::WRITABLE, || {
            send(
                stream.as_raw_fd(),
                &out[done..],
                MsgFlags::from_bits_retain(nix::libc::MSG_MORE) | MsgFlags::MSG_NOSIGNAL,
            )
            .map_err(io::Error::from)
        }) {
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends `len` bytes of `file` from `offset` with `sendfile`; a client that takes
/// nothing for [`SEND_TIMEOUT`] is given up on.
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut offset = offset as nix::libc::off_t;
    let mut left = len;
    while left > 0 {
        tokio::time::timeout(SEND_TIMEOUT, stream.writable())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        match stream.try_io(Interest::WRITABLE, || {
            let count = left.min(1 << 30) as usize;
            sendfile(stream, file, Some(&mut offset), count)
                .map(|n| n as u64)
                .map_err(io::Error::from)
        }) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                ));
            }
            Ok(n) => left -= n.min(left),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

// ---- proxying ----

/// An idle connection to an upstream instance.
pub(crate) struct Idle {
    addr: SocketAddr,
    since: Instant,
    up: Upstream,
}

/// A worker's idle upstream connections, most recently used last.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// An idle connection to `addr` that is still open and has sent nothing since its
    /// last response (a late byte would be read as the next request's response).
    fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let at = idle.iter().rposition(|i| i.addr == addr)?;
            let found = idle.swap_remove(at);
            if found.since.elapsed() < POOL_IDLE && found.up.is_quiet() {
                return Some(found.up);
            }
        }
    }

    fn put(&self, addr: SocketAddr, mut up: Upstream) {
        if up.buf.capacity() > 2 * READ_CHUNK {
            // A large response grew the buffer: an idle connection keeps a small one.
            up.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(Idle {
                addr,
                since: Instant::now(),
                up,
            });
        }
    }

    /// Closes the connections idle for longer than [`POOL_IDLE`].
    pub(crate) fn prune(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|i| i.since.elapsed() < POOL_IDLE);
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// One connection to an upstream instance, with what was read from it.
pub(crate) struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
}

impl Upstream {
    /// Open, and nothing to read: a peek that would block.
    fn is_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            recv(
                self.stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }
}

/// How the upstream's response body ends.
#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes (HTTP/1.0 style): the client connection closes too.
    Close,
}

/// Why a try failed before the response began.
enum TryError {
    Connect,
    /// Sent, but the connection broke before a response began.
    Broken,
    Timeout,
    /// The upstream's answer was not HTTP this path reads.
    Malformed,
}

async fn forward(
    proxy: &Proxy,
    route: &Route,
    head: &Head<'_>,
    conn: &Conn,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Sent {
    let addrs = match proxy.plain_candidates() {
        Some(addrs) => addrs,
        None => {
            let response = proxy.no_ready_instance();
            return write_response(stream, out, response, head.is(&Method::HEAD)).await;
        }
    };
    out.clear();
    request_head(proxy, route, head, conn, out);
    let mut failure = TryError::Connect;
    for &addr in &addrs {
        // A pooled connection the instance closed meanwhile is not a failure of the
        // instance: the request is sent again on a fresh connection.
        let mut pooled = proxy.pool().take(addr);
        loop {
            let reused = pooled.is_some();
            let mut up = match pooled.take() {
                Some(up) => up,
                None => match connect(addr, proxy.connect_timeout()).await {
                    Ok(up) => up,
                    Err(e) => {
                        tracing::warn!(route = %route.name, upstream = %addr, error = %e, "the upstream did not accept the connection");
                        failure = TryError::Connect;
                        break;
                    }
                },
            };
            match exchange(&mut up, out, proxy.timeout(), head.is(&Method::HEAD)).await {
                Ok(reply) => return relay(proxy, addr, up, reply, stream, out).await,
                Err(TryError::Broken) if reused => continue,
                Err(e) => {
                    failure = e;
                    break;
                }
            }
        }
        match failure {
            TryError::Timeout => {
                tracing::warn!(route = %route.name, upstream = %addr, timeout = ?proxy.timeout(), "the upstream timed out");
                break;
            }
            TryError::Broken => {
                tracing::warn!(route = %route.name, upstream = %addr, "the upstream closed the connection without a complete response");
            }
            TryError::Malformed => {
                tracing::warn!(route = %route.name, upstream = %addr, "the upstream's response is not HTTP/1.1 as framed");
            }
            TryError::Connect => {}
        }
        // As on the general path: the instance is skipped for a while, and the request
        // (idempotent, without a body) goes to the next.
        proxy.mark_down_addr(addr);
    }
    let response = proxy.failure_reply(match failure {
        TryError::Connect => crate::proxy::Failure::Unreachable,
        TryError::Broken | TryError::Malformed => crate::proxy::Failure::Broken,
        TryError::Timeout => crate::proxy::Failure::Timeout,
    });
    write_response(stream, out, response, head.is(&Method::HEAD)).await
}

async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Upstream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(Upstream {
        stream,
        buf: BytesMut::with_capacity(READ_CHUNK),
    })
}

/// The upstream request's head, as [`crate::proxy`] would send it.
fn request_head(proxy: &Proxy, route: &Route, head: &Head<'_>, conn: &Conn, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_bytes());
    out.push(b' ');
    if proxy.strips_prefix() {
        out.extend_from_slice(strip(&route.path, head.path).as_bytes());
        if let Some(q) = head.query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    } else {
        out.extend_from_slice(head.target.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // Headers the client's `Connection` header names are hop-by-hop too.
    let named = |name: &[u8]| named_by_connection(head.headers, name);
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for h in head.headers {
        let name = h.name.as_bytes();
        match request_header(name) {
            Keep::Yes if !named(name) => header(out, name, h.value),
            Keep::ForwardedFor => forwarded_for.push(h.value),
            Keep::Cookie => cookie_without_session(out, h.value),
            _ => {}
        }
    }
    if let Some(host) = head.host {
        header(out, b"host", host.as_bytes());
        header(out, b"x-forwarded-host", host.as_bytes());
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for before in forwarded_for {
        out.extend_from_slice(before);
        out.extend_from_slice(b", ");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}\r\nx-forwarded-proto: http\r\n\r\n", conn.peer.ip());
}

/// Whether a `Connection` header among `headers` names `name` (which makes it
/// hop-by-hop).
fn named_by_connection(headers: &[httparse::Header<'_>], name: &[u8]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection")
            && h.value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

enum Keep {
    Yes,
    No,
    ForwardedFor,
    Cookie,
}

/// What becomes of a client's request header on its way upstream.
fn request_header(name: &[u8]) -> Keep {
    let is = |s: &str| name.len() == s.len() && name.eq_ignore_ascii_case(s.as_bytes());
    // Identity headers are berth's to set (`x_berth_*` too: CGI reads `_` as `-`).
    if name.len() >= 8
        && name[..8]
            .iter()
            .zip(b"x-berth-")
            .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
    {
        return Keep::No;
    }
    if is("x-forwarded-for") {
        return Keep::ForwardedFor;
    }
    if is("cookie") {
        return Keep::Cookie;
    }
    // Set by berth, or claims about addresses not passed on as fact.
    const SET_HERE: [&str; 8] = [
        "upgrade",
        "host",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
    ];
    if HOP_BY_HOP.iter().chain(&SET_HERE).any(|d| is(d)) {
        Keep::No
    } else {
        Keep::Yes
    }
}

/// A `Cookie` header without berth's own session cookie (dropped whole if nothing else
/// is left).
fn cookie_without_session(out: &mut Vec<u8>, value: &[u8]) {
    let prefix = crate::auth::COOKIE_NAME.as_bytes();
    let is_session = |pair: &[u8]| {
        pair.len() > prefix.len() && pair.starts_with(prefix) && pair[prefix.len()] == b'='
    };
    let pairs = value.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    if !pairs.clone().any(is_session) {
        header(out, b"cookie", value);
        return;
    }
    let kept: Vec<&[u8]> = pairs.filter(|p| !p.is_empty() && !is_session(p)).collect();
    if kept.is_empty() {
        return;
    }
    out.extend_from_slice(b"cookie: ");
    for (i, pair) in kept.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(pair);
    }
    out.extend_from_slice(b"\r\n");
}

/// An upstream response head: where it ends in the upstream's buffer, and what the
/// client is sent in its place.
struct Reply {
    status: u16,
    /// The body's length as the access log shows it (HEAD: what GET would send).
    logged_len: Option<u64>,
    head_len: usize,
    framing: Framing,
    /// Whether the upstream connection may be used again after the body.
    reusable: bool,
}

/// Sends the request head and reads the response head (skipping `1xx` interim answers);
/// `out` then holds the client's response head.
async fn exchange(
    up: &mut Upstream,
    out: &mut Vec<u8>,
    timeout: Duration,
    head_request: bool,
) -> Result<Reply, TryError> {
    up.buf.clear();
    let read = async {
        if up.stream.write_all(out).await.is_err() {
            return Err(TryError::Broken);
        }
        loop {
            if !up.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut res = httparse::Response::new(&mut headers);
                match res.parse(&up.buf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let code = res.code.unwrap_or(0);
                        if (100..200).contains(&code) {
                            if code == 101 {
                                return Err(TryError::Malformed);
                            }
                            up.buf.advance(n);
                            continue;
                        }
                        out.clear();
                        return response_head(&res, n, head_request, out);
                    }
                    Ok(httparse::Status::Partial) if up.buf.len() < MAX_HEAD => {}
                    _ => return Err(TryError::Malformed),
                }
            }
            up.buf.reserve(READ_CHUNK);
            match up.stream.read_buf(&mut up.buf).await {
                Ok(0) | Err(_) if up.buf.is_empty() => return Err(TryError::Broken),
                Ok(0) | Err(_) => return Err(TryError::Malformed),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(TryError::Timeout),
    }
}

/// Writes the client's response head into `out` and works out the body's framing.
fn response_head(
    res: &httparse::Response<'_, '_>,
    head_len: usize,
    head_request: bool,
    out: &mut Vec<u8>,
) -> Result<Reply, TryError> {
    let code = res.code.ok_or(TryError::Malformed)?;
    let status = StatusCode::from_u16(code).map_err(|_| TryError::Malformed)?;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut close = res.version == Some(0);
    let mut has_date = false;
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // Digits only (`+5` parses as a number but is not a length).
            let digits = h.value.trim_ascii();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(TryError::Malformed);
            }
            let n = std::str::from_utf8(digits)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(TryError::Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(TryError::Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only the last coding decides; anything but chunked last reads until close.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            other_coding |= !chunked;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && res.version == Some(0) {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"date") {
            has_date = true;
        }
    }
    let bodiless = head_request || code == 204 || code == 304;
    let framing = if bodiless {
        Framing::None
    } else if other_coding {
        Framing::Close
    } else if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(0) => Framing::None,
            Some(n) => Framing::Length(n),
            None => Framing::Close,
        }
    };
    // A response with both lengths is a smuggling attempt's shape: never reused.
    let reusable = !(close || matches!(framing, Framing::Close) || chunked && length.is_some());
    status_line(out, status);
    let named = |name: &[u8]| named_by_connection(res.headers, name);
    for h in res.headers.iter() {
        let name = h.name.as_bytes();
        let is = |s: &str| name.len() == s.len() && name.eq_ignore_ascii_case(s.as_bytes());
        if HOP_BY_HOP.iter().chain(&["upgrade"]).any(|d| is(d)) || named(name) {
            continue;
        }
        if is("content-length") {
            // Written once below, as read.
            continue;
        }
        header(out, name, h.value);
    }
    // The length is sent where it frames the body, or answers HEAD or a 304.
    if let (Some(n), false) = (length, chunked || other_coding) {
        let _ = write!(out, "content-length: {n}\r\n");
    }
    match framing {
        Framing::Chunked => header(out, b"transfer-encoding", b"chunked"),
        Framing::Close => header(out, b"connection", b"close"),
        Framing::None | Framing::Length(_) => {}
    }
    if !has_date {
        date(out);
    }
    out.extend_from_slice(b"\r\n");
    Ok(Reply {
        status: code,
        logged_len: match framing {
            Framing::Length(n) => Some(n),
            Framing::None if head_request => length,
            Framing::None => Some(0),
            Framing::Chunked | Framing::Close => None,
        },
        head_len,
        framing,
        reusable,
    })
}

/// Sends the client the response head in `out` and the body as it comes from the
/// upstream, then pools the upstream connection if it is fit for another request.
async fn relay(
    proxy: &Proxy,
    addr: SocketAddr,
    mut up: Upstream,
    reply: Reply,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Sent {
    up.buf.advance(reply.head_len);
    let mut sent = Sent {
        status: reply.status,
        bytes: None,
        keep_open: true,
    };
    let relayed = match reply.framing {
        Framing::None => {
            sent.bytes = reply.logged_len;
            send_rest(stream, out).await
        }
        Framing::Length(n) => {
            sent.bytes = Some(n);
            relay_length(&mut up, n, stream, out).await
        }
        Framing::Chunked => relay_chunked(&mut up, stream, out).await,
        Framing::Close => {
            relay_until_close(&mut up, stream, out).await;
            sent.keep_open = false;
            Relayed::Broken
        }
    };
    match relayed {
        // Bytes past the response's end mean the upstream is not speaking HTTP as
        // framed: that connection is not used again.
        Relayed::Whole if reply.reusable && up.buf.is_empty() => proxy.pool().put(addr, up),
        Relayed::Whole => {}
        Relayed::Broken => sent.keep_open = false,
    }
    sent
}

/// How a relayed body ended.
enum Relayed {
    /// Every byte of it reached the client.
    Whole,
    /// The client or the upstream went away mid-body; the client's connection closes
    /// so that a short body cannot pass for a whole one.
    Broken,
}

/// Relays a body of `n` bytes.
async fn relay_length(
    up: &mut Upstream,
    n: u64,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Relayed {
    let mut left = n;
    loop {
        // A small response is often read whole already: it goes out with its head.
        let take = (up.buf.len() as u64).min(left) as usize;
        out.extend_from_slice(&up.buf[..take]);
        up.buf.advance(take);
        left -= take as u64;
        if left == 0 {
            return send_rest(stream, out).await;
        }
        if !pass_on(up, stream, out).await {
            return Relayed::Broken;
        }
    }
}

/// Relays a chunked body as it is, reading its framing to find where it ends.
async fn relay_chunked(up: &mut Upstream, stream: &mut TcpStream, out: &mut Vec<u8>) -> Relayed {
    let mut chunks = Chunks::default();
    loop {
        match chunks.scan(&up.buf) {
            Ok(Some(end)) => {
                out.extend_from_slice(&up.buf[..end]);
                up.buf.advance(end);
                return send_rest(stream, out).await;
            }
            Ok(None) => out.extend_from_slice(&up.buf),
            Err(()) => {
                let _ = stream.write_all(out).await;
                return Relayed::Broken;
            }
        }
        if !pass_on(up, stream, out).await {
            return Relayed::Broken;
        }
    }
}

/// Relays a body that ends when the upstream closes.
async fn relay_until_close(up: &mut Upstream, stream: &mut TcpStream, out: &mut Vec<u8>) {
    loop {
        out.extend_from_slice(&up.buf);
        if !pass_on(up, stream, out).await {
            return;
        }
    }
}

/// Sends what `out` gathered, then reads the upstream's next bytes into its emptied
/// buffer; `false` when either side is gone.
async fn pass_on(up: &mut Upstream, stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
    if !out.is_empty() {
        if stream.write_all(out).await.is_err() {
            return false;
        }
        out.clear();
    }
    up.buf.clear();
    up.buf.reserve(READ_CHUNK);
    matches!(up.stream.read_buf(&mut up.buf).await, Ok(n) if n > 0)
}

/// Sends the rest of a response.
async fn send_rest(stream: &mut TcpStream, out: &[u8]) -> Relayed {
    match stream.write_all(out).await {
        Ok(()) => Relayed::Whole,
        Err(_) => Relayed::Broken,
    }
}

/// Where a chunked body ends (RFC 9112 §7.1), read incrementally over the bytes as they
/// arrive.
#[derive(Default)]
struct Chunks {
    state: ChunkState,
    /// Bytes of the current size or trailer line so far (bounded).
    line: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum ChunkState {
    /// Reading a chunk size: hex digits, then an optional `;extension`.
    #[default]
    Size,
    SizeDigits(u64),
    SizeSpace(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the empty line that ends the body).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// The longest chunk-size or trailer line accepted.
const CHUNK_LINE_MAX: usize = 4096;

impl Chunks {
    /// Reads `data` on from where the last call stopped: `Some(n)` when the body ends
    /// after `n` bytes of `data`, `None` when it goes on past it.
    fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                Size => match hex(b) {
                    Some(d) => SizeDigits(d),
                    None => return Err(()),
                },
                SizeDigits(n) => match (b, hex(b)) {
                    (_, Some(d)) => {
                        SizeDigits(n.checked_mul(16).and_then(|n| n.checked_add(d)).ok_or(())?)
                    }
                    (b';', _) => Extension(n),
                    (b' ' | b'\t', _) => SizeSpace(n),
                    (b'\r', _) => SizeLf(n),
                    _ => return Err(()),
                },
                // Whitespace after the size may only lead to an extension or the end.
                SizeSpace(n) => match b {
                    b' ' | b'\t' => SizeSpace(n),
                    b';' => Extension(n),
                    b'\r' => SizeLf(n),
                    _ => return Err(()),
                },
                Extension(n) => match b {
                    b'\r' => SizeLf(n),
                    b'\n' => return Err(()),
                    _ => Extension(n),
                },
                SizeLf(n) => match b {
                    b'\n' if n == 0 => TrailerStart,
                    b'\n' => Data(n),
                    _ => return Err(()),
                },
                Data(n) => {
                    // Skip the chunk's bytes at once.
                    let take = ((data.len() - i) as u64).min(n);
                    i += take as usize;
                    self.state = if take == n { DataCr } else { Data(n - take) };
                    continue;
                }
                DataCr => match b {
                    b'\r' => DataLf,
                    _ => return Err(()),
                },
                DataLf => match b {
                    b'\n' => Size,
                    _ => return Err(()),
                },
                TrailerStart => match b {
                    b'\r' => EndLf,
                    b'\n' => return Err(()),
                    _ => Trailer,
                },
                Trailer => match b {
                    b'\r' => TrailerLf,
                    b'\n' => return Err(()),
                    _ => Trailer,
                },
                TrailerLf => match b {
                    b'\n' => TrailerStart,
                    _ => return Err(()),
                },
                EndLf => match b {
                    b'\n' => Done,
                    _ => return Err(()),
                },
                Done => return Ok(Some(i)),
            };
            i += 1;
            match self.state {
                Done => return Ok(Some(i)),
                Size | Data(_) | DataCr | DataLf | TrailerStart => self.line = 0,
                _ => {
                    self.line += 1;
                    if self.line > CHUNK_LINE_MAX {
                        return Err(());
                    }
                }
            }
        }
        Ok(None)
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

// ---- writing heads ----

fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A `Date` header, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static NOW: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    NOW.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, httpdate::fmt_http_date(now));
        }
        header(out, b"date", cached.1.as_bytes());
    });
}

// ---- handing off ----

/// A connection with bytes already read from it, which are read again first.
pub(crate) struct Prefixed {
    read: BytesMut,
    stream: TcpStream,
}

impl Prefixed {
    fn new(read: BytesMut, stream: TcpStream) -> Self {
        Self { read, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut chunks = Chunks::default();
        let mut total = 0;
        for piece in pieces {
            if let Some(n) = chunks.scan(piece)? {
                return Ok(Some(total + n));
            }
            total += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn chunked_bodies_end_where_their_framing_says() {
        let body = b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\nNEXT";
        assert_eq!(ends(&[body]), Ok(Some(body.len() - 4)));
        // The same, a byte at a time.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(ends(&bytes), Ok(Some(body.len() - 4)));
        // Trailers.
        let body = b"3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n";
        assert_eq!(ends(&[body]), Ok(Some(body.len())));
        // Unfinished.
        assert_eq!(ends(&[b"5\r\nhel"]), Ok(None));
        // Malformed.
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"2\r\nabc\r\n",
            b"ffffffffffffffffff\r\n",
            b"5 xyz\r\nhello\r\n",
        ] {
            assert_eq!(ends(&[bad]), Err(()), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn request_headers_are_kept_dropped_or_rewritten() {
        assert!(matches!(request_header(b"Accept"), Keep::Yes));
        assert!(matches!(request_header(b"X-Berth-User"), Keep::No));
        assert!(matches!(request_header(b"x_berth_roles"), Keep::No));
        assert!(matches!(request_header(b"Connection"), Keep::No));
        assert!(matches!(request_header(b"X-Real-IP"), Keep::No));
        assert!(matches!(
            request_header(b"X-Forwarded-For"),
            Keep::ForwardedFor
        ));
        assert!(matches!(request_header(b"Cookie"), Keep::Cookie));
        let mut out = Vec::new();
        cookie_without_session(&mut out, b"a=1; berth_session=secret; b=2");
        assert_eq!(out, b"cookie: a=1; b=2\r\n");
        out.clear();
        cookie_without_session(&mut out, b"berth_session=secret");
        assert!(out.is_empty());
        cookie_without_session(&mut out, b"berth_sessionx=1");
        assert_eq!(out, b"cookie: berth_sessionx=1\r\n");
    }
}
