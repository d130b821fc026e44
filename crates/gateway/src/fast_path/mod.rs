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
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

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
///
/// A connection holds no buffer while it waits: the client's next head is read into one
/// taken when its first bytes are there, and everything the head says (the access log's
/// fields included) is worked out before the first wait on an upstream or the client,
/// so that a connection between requests, or waiting on its upstream, costs little more
/// than its socket.
pub(crate) async fn serve(
    table: &Table,
    mut stream: TcpStream,
    conn: Conn,
    stop: &CancellationToken,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut out: Vec<u8> = Vec::new();
    let mut wait = Deadline::new();
    // One registration with the stop for the connection's life, not one per request.
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        match read_head(&mut stream, &mut buf, &mut wait, stopped.as_mut()).await {
            HeadRead::Complete => {}
            HeadRead::Other => return Outcome::Handoff(Prefixed::new(buf, stream)),
            HeadRead::Closed => return Outcome::Done,
        }
        let started = Instant::now();
        // The routes as they stand for this request (a reload may have replaced them).
        let shared = table.current();
        let shared = &*shared;
        let Some(plan) = plan(shared, &buf, &conn, &mut out) else {
            return Outcome::Handoff(Prefixed::new(buf, stream));
        };
        // Nothing more to read from the buffer (no pipelined request): it goes before
        // the first wait.
        let released = buf.len() == plan.head_len;
        if released {
            give_back(&mut buf);
        }
        let sent = match plan.job {
            Job::Proxy(proxy) => {
                forward(
                    proxy,
                    plan.route,
                    plan.head_only,
                    &mut stream,
                    &mut out,
                    &mut wait,
                )
                .await
            }
            Job::Answer(response) => {
                write_response(
                    &mut stream,
                    &mut out,
                    response,
                    plan.head_only,
                    &plan.route.headers,
                )
                .await
            }
        };
        let took = started.elapsed();
        plan.route.counter.record(sent.status, took);
        if let (Some(log), Some(fields)) = (&shared.log, &plan.log) {
            let text = |r: &std::ops::Range<usize>| &fields.text[r.clone()];
            log.log(&Entry {
                peer: conn.peer,
                user: None,
                at: fields.at,
                method: text(&fields.method),
                target: text(&fields.target),
                version: "HTTP/1.1",
                status: sent.status,
                bytes: sent.bytes,
                referer: fields.referer.as_ref().map(text),
                agent: fields.agent.as_ref().map(text),
                took,
                route: &plan.route.name,
            });
        }
        if !sent.keep_open || plan.close || stop.is_cancelled() {
            let _ = stream.shutdown().await;
            return Outcome::Done;
        }
        if !released {
            buf.advance(plan.head_len);
            if buf.is_empty() {
                give_back(&mut buf);
            }
        }
        out = Vec::new();
    }
}

/// What a request head asks of this path, worked out before any wait.
struct Plan<'s> {
    route: &'s Route,
    job: Job<'s>,
    /// The head's length in the read buffer.
    head_len: usize,
    /// A `HEAD` request: the answer has no body.
    head_only: bool,
    /// The client asked to close after this response.
    close: bool,
    /// The access log's fields, when there is a log.
    log: Option<LogFields>,
}

enum Job<'s> {
    /// `out` holds the upstream request's head.
    Proxy(&'s Proxy),
    /// A static file's answer.
    Answer(Response<Body>),
}

/// The access log's fields of a request, copied out of the read buffer (a few hundred
/// bytes, so that the buffer need not be kept for the log line).
struct LogFields {
    at: SystemTime,
    /// The fields one after another; the ranges below are parts of it.
    text: String,
    method: std::ops::Range<usize>,
    target: std::ops::Range<usize>,
    referer: Option<std::ops::Range<usize>>,
    agent: Option<std::ops::Range<usize>>,
}

impl LogFields {
    fn new(head: &Head<'_>) -> Self {
        // A value that is not UTF-8 is left out of the line.
        let referer = head.referer.and_then(|v| std::str::from_utf8(v).ok());
        let agent = head.agent.and_then(|v| std::str::from_utf8(v).ok());
        let mut text = String::with_capacity(
            head.method.len()
                + head.target.len()
                + referer.map_or(0, str::len)
                + agent.map_or(0, str::len),
        );
        let mut push = |s: &str| {
            let from = text.len();
            text.push_str(s);
            from..text.len()
        };
        let method = push(head.method);
        let target = push(head.target);
        let referer = referer.map(&mut push);
        let agent = agent.map(&mut push);
        Self {
            at: SystemTime::now(),
            text,
            method,
            target,
            referer,
            agent,
        }
    }
}

/// Reads the head at the start of `buf` and works out its answer: for a proxied request,
/// its upstream head is written into `out`. `None`: a request for the general path.
fn plan<'s>(shared: &'s Shared, buf: &[u8], conn: &Conn, out: &mut Vec<u8>) -> Option<Plan<'s>> {
    let mut headers = no_headers();
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let head = Head::read(&req)?;
    let (route, kind) = pick(shared, &head)?;
    let log = shared.log.as_ref().map(|_| LogFields::new(&head));
    let head_only = head.is(&Method::HEAD);
    out.clear();
    out.reserve(2048);
    let job = match kind {
        Kind::Proxy(proxy) => {
            request_head(proxy, route, &head, conn, out);
            Job::Proxy(proxy)
        }
        Kind::Static {
            files,
            strip_prefix,
        } => {
            let path = if strip_prefix {
                strip(&route.path, head.path)
            } else {
                head.path
            };
            Job::Answer(static_answer(files, path, &head))
        }
    };
    Some(Plan {
        route,
        job,
        head_len,
        head_only,
        close: head.close,
        log,
    })
}

thread_local! {
    /// Read buffers of this worker thread between uses: taking one back is cheaper than
    /// the allocator's round trip for 16 KiB, which every request would make twice.
    static SPARE: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Read buffers kept per worker thread.
const SPARE_MAX: usize = 16;

/// An empty read buffer of [`READ_CHUNK`] bytes.
fn take_buffer() -> BytesMut {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
}

/// Gives back a read buffer that holds nothing more to read; `*buf` is left without one.
fn give_back(buf: &mut BytesMut) {
    let mut spare = std::mem::take(buf);
    spare.clear();
    // Back to its whole size without an allocation (its bytes were all read; asking for
    // one byte more than it has makes it count from its start again), unless it grew
    // for a long head or body: that one goes.
    // (It says whether that byte fits, which does not matter here.)
    let _ = spare.try_reclaim(spare.capacity() + 1);
    if spare.capacity() == READ_CHUNK {
        SPARE.with(|list| {
            let mut list = list.borrow_mut();
            if list.len() < SPARE_MAX {
                list.push(spare);
            }
        });
    }
}

/// Reads what `stream` has into `buf`. An empty `buf` takes a buffer only once there is
/// something to read: if the readiness was stale (a new connection's, or after a read
/// that filled the buffer), the try that finds nothing gives it back before the wait.
async fn read_when_ready(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if !buf.is_empty() {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        return stream.read_buf(buf).await;
    }
    loop {
        // The readiness through the scheduling budget (`readable()` does not ask it): a
        // task out of budget yields here. Otherwise its read below would be pending
        // without touching the socket, the readiness would stay set, and this loop
        // would spin.
        std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await?;
        if buf.capacity() == 0 {
            *buf = take_buffer();
        }
        buf.reserve(READ_CHUNK);
        let tried = {
            let mut read = std::pin::pin!(stream.read_buf(buf));
            std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await
        };
        match tried {
            Poll::Ready(read) => return read,
            Poll::Pending => give_back(buf),
        }
    }
}

/// One timer per connection for whatever it waits on (the client's next head, an
/// upstream's answer). Each wait moves its deadline; the timer is set again only when
/// it fires before the deadline or must fire sooner, not for every request.
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    at: tokio::time::Instant,
}

impl Deadline {
    fn new() -> Self {
        let at = tokio::time::Instant::now() + HEAD_TIMEOUT;
        Self {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// `work`'s output, or `None` if `at` comes first.
    async fn within<F: Future>(&mut self, at: tokio::time::Instant, work: F) -> Option<F::Output> {
        self.at = at;
        if self.sleep.deadline() > at {
            self.sleep.as_mut().reset(at);
        }
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(done));
            }
            while self.sleep.as_mut().poll(cx).is_ready() {
                if self.sleep.deadline() >= self.at {
                    return Poll::Ready(None);
                }
                // It was set for an earlier wait: on to this one's deadline.
                let at = self.at;
                self.sleep.as_mut().reset(at);
            }
            Poll::Pending
        })
        .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A task out of its scheduling budget, whose socket has bytes to read, goes back to
    /// the runtime and reads on its next turn, rather than trying again and again.
    #[test]
    fn a_read_out_of_budget_yields_instead_of_spinning() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let mut client = TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap();
                let (mut server, _) = listener.accept().await.unwrap();
                client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                let mut buf = BytesMut::new();
                {
                    let mut read = std::pin::pin!(read_when_ready(&mut server, &mut buf));
                    // The whole budget spent, then the read polled in the same turn.
                    let first = std::future::poll_fn(|cx| {
                        while let Poll::Ready(spent) = tokio::task::coop::poll_proceed(cx) {
                            spent.made_progress();
                        }
                        Poll::Ready(read.as_mut().poll(cx).is_pending())
                    })
                    .await;
                    assert!(first, "out of budget, the read waits for its next turn");
                    assert_eq!(read.await.unwrap(), 18);
                }
                assert_eq!(&buf[..], b"GET / HTTP/1.1\r\n\r\n");
            });
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("the read yielded and then read (one that spins never returns)");
    }
}
