//! The one response (and upstream request) body type, and ways to make it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};

/// An error inside a body stream.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every body the gateway sends.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body of these bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body that can be taken back as long as nothing has read from it.
///
/// A request whose connection was refused never left berth, whatever its method, so its
/// body can go to the next instance. The body waits in a shared slot until the client
/// first polls it; if the request fails before that, [`Reclaim::take`] gets it back.
pub(crate) struct Reclaimable {
    slot: std::sync::Arc<std::sync::Mutex<Option<Body>>>,
    body: Option<Body>,
}

/// The other end of a [`Reclaimable`].
pub(crate) struct Reclaim(std::sync::Arc<std::sync::Mutex<Option<Body>>>);

impl Reclaim {
    /// The body, if nothing has read from it.
    pub(crate) fn take(&self) -> Option<Body> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// `body` as a [`Reclaimable`] body (to send) and its [`Reclaim`] (to take it back).
pub(crate) fn reclaimable(body: Body) -> (Body, Reclaim) {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
    let sent = Reclaimable {
        slot: slot.clone(),
        body: None,
    };
    (sent.boxed_unsync(), Reclaim(slot))
}

impl Reclaimable {
    /// Runs `f` on the body, wherever it is now.
    fn with<T>(&self, f: impl FnOnce(&Body) -> T, gone: T) -> T {
        match &self.body {
            Some(b) => f(b),
            None => match self.slot.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                Some(b) => f(b),
                None => gone,
            },
        }
    }
}

impl hyper::body::Body for Reclaimable {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        if self.body.is_none() {
            // From the first read on, the body belongs to this request.
            let taken = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            self.body = taken;
        }
        match self.body.as_mut() {
            Some(b) => std::pin::Pin::new(b).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    // Both answer from the body itself, so that a known length still goes out as
    // `Content-Length`.
    fn is_end_stream(&self) -> bool {
        self.with(|b| b.is_end_stream(), true)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.with(|b| b.size_hint(), hyper::body::SizeHint::with_exact(0))
    }
}

/// The most of a refused request's body that is read and thrown away.
const DRAIN_MAX: usize = 1 << 20;
/// The longest a refused request's body is read for.
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// Reads and drops what is left of the body of a request answered without it (a spent
/// budget, a 401, no route, a body over the limit), at most [`DRAIN_MAX`] bytes for at
/// most [`DRAIN_FOR`], so that the answer reaches the client whole. Over HTTP/2, a
/// stream answered before the client finished sending is reset (`NO_ERROR`, as RFC 9113
/// allows), and common clients (Debian's curl 7.88 among them) then fail about one time
/// in ten with "Stream error in the HTTP/2 framing layer" instead of reading the
/// answer; over HTTP/1.1, unread bytes cost the connection. A body declared larger than
/// the bound is not read at all.
pub(crate) async fn drain<B>(body: B)
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    if hyper::body::Body::is_end_stream(&body)
        || hyper::body::Body::size_hint(&body).lower() > DRAIN_MAX as u64
    {
        return;
    }
    let mut body = std::pin::pin!(Limited::new(body, DRAIN_MAX));
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(_)) =
            std::future::poll_fn(|cx| hyper::body::Body::poll_frame(body.as_mut(), cx)).await
        {
        }
    })
    .await;
}

/// [`drain`] for a whole request, unless it asked to be told before it sends its body
/// (`Expect: 100-continue`): reading would invite the body, so such a client is answered
/// at once and sends nothing.
pub(crate) async fn drain_request<B>(req: hyper::Request<B>)
where
    B: hyper::body::Body,
    B::Error: Into<BoxError>,
{
    if req.headers().contains_key(hyper::header::EXPECT) {
        return;
    }
    drain(req.into_body()).await;
}
