//! The lean path for plain HTTP/1.1 connections: the requests that make up most of a
//! gateway's traffic, served without hyper's generic machinery.
//!
//! A plain connection starts here. Each request head is parsed in place (`httparse`)
//! and, when it is one this path serves, answered here:
//!
//! - a bodiless request with an idempotent method to a proxy route: the head is
//!   rewritten straight into the upstream's buffer (by the rules of [`crate::headers`],
//!   which the general path shares), sent on a pooled upstream connection of this worker, and
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
use crate::headers::{self, HOP_BY_HOP, Rule};
use crate::proxy::Proxy;
use crate::router::strip;
use crate::statics::{FileRange, SEND_TIMEOUT, StaticFiles};

mod handoff;
mod head;
mod pool;
mod relay;
mod static_files;

pub(crate) use handoff::Prefixed;
use head::*;
pub(crate) use pool::Pool;
use pool::*;
use relay::*;
use static_files::*;

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
                serve_static(files, path, &head, &mut stream, &mut out, &route.headers).await
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
