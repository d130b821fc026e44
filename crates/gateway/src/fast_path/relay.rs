//! A request forwarded on a pooled connection, and its response relayed as it comes:
//! by `Content-Length`, chunked, or until close.

use super::*;

/// How the upstream's response body ends.
#[derive(Clone, Copy)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes (HTTP/1.0 style): the client connection closes too.
    Close,
}

/// Why a try failed before the response began.
pub(super) enum TryError {
    Connect,
    /// Sent, but the connection broke before a response began.
    Broken,
    Timeout,
    /// The upstream's answer was not HTTP this path reads.
    Malformed,
}

/// Sends the upstream request in `out` to an instance and relays its response; the
/// next instance is tried when one cannot be reached or fails before its response.
pub(super) async fn forward(
    proxy: &Proxy,
    route: &Route,
    head_only: bool,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    wait: &mut Deadline,
) -> Sent {
    let Some(addrs) = proxy.plain_candidates() else {
        let response = proxy.no_ready_instance();
        return write_response(stream, out, response, head_only, &route.headers).await;
    };
    let mut failure = TryError::Connect;
    for &addr in addrs.as_slice() {
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
            let until = tokio::time::Instant::now() + proxy.timeout();
            match exchange(&mut up, out, until, wait, head_only, &route.headers).await {
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
    write_response(stream, out, response, head_only, &route.headers).await
}

/// The upstream request's head, as [`crate::proxy`] would send it.
pub(super) fn request_head(
    proxy: &Proxy,
    route: &Route,
    head: &Head<'_>,
    conn: &Conn,
    out: &mut Vec<u8>,
) {
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
    // The rules of `headers`; those the client's `Connection` header names are
    // hop-by-hop too.
    let named = headers::ConnectionNames::read(connection(head.headers));
    let named = |name: &[u8]| named.name(name);
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for h in head.headers {
        let name = h.name.as_bytes();
        match headers::rule(name) {
            Rule::Keep if !named(name) => header(out, name, h.value),
            Rule::ForwardedFor => forwarded_for.push(h.value),
            Rule::Cookie => {
                if let Some(v) = headers::cookie_without_session(h.value) {
                    header(out, b"cookie", &v);
                }
            }
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
    push_ip(out, conn.peer.ip());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n\r\n");
}

/// The values of the `Connection` headers among `headers`.
pub(super) fn connection<'a>(
    headers: &'a [httparse::Header<'a>],
) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .map(|h| h.value)
}

/// An upstream response head: where it ends in the upstream's buffer, and what the
/// client is sent in its place.
pub(super) struct Reply {
    pub(super) status: u16,
    /// The body's length as the access log shows it (HEAD: what GET would send).
    pub(super) logged_len: Option<u64>,
    pub(super) head_len: usize,
    pub(super) framing: Framing,
    /// Whether the upstream connection may be used again after the body.
    pub(super) reusable: bool,
}

/// Sends the request head and reads the response head (skipping `1xx` interim answers)
/// until `until`; `out` then holds the client's response head. The upstream's buffer is
/// taken once its answer is there to read.
pub(super) async fn exchange(
    up: &mut Upstream,
    out: &mut Vec<u8>,
    until: tokio::time::Instant,
    wait: &mut Deadline,
    head_request: bool,
    route_headers: &[(HeaderName, HeaderValue)],
) -> Result<Reply, TryError> {
    up.buf.clear();
    let read = async {
        if up.stream.write_all(out).await.is_err() {
            return Err(TryError::Broken);
        }
        loop {
            if !up.buf.is_empty() {
                let mut headers = no_headers();
                let mut res = httparse::Response::new(&mut []);
                match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                    &mut res,
                    &up.buf,
                    &mut headers,
                ) {
                    Ok(httparse::Status::Complete(n)) => {
                        let code = res.code.unwrap_or(0);
                        if (100..200).contains(&code) {
                            if code == 101 {
                                return Err(TryError::Malformed);
                            }
                            up.buf.advance(n);
                            continue;
                        }
                        return response_head(&res, n, head_request, route_headers, out);
                    }
                    Ok(httparse::Status::Partial) if up.buf.len() < MAX_HEAD => {}
                    _ => return Err(TryError::Malformed),
                }
            }
            match read_when_ready(&mut up.stream, &mut up.buf).await {
                Ok(0) | Err(_) if up.buf.is_empty() => return Err(TryError::Broken),
                Ok(0) | Err(_) => return Err(TryError::Malformed),
                Ok(_) => {}
            }
        }
    };
    wait.within(until, read)
        .await
        .unwrap_or(Err(TryError::Timeout))
}

/// Writes the client's response head into `out` (in place of the request it held) and
/// works out the body's framing.
pub(super) fn response_head(
    res: &httparse::Response<'_, '_>,
    head_len: usize,
    head_request: bool,
    route_headers: &[(HeaderName, HeaderValue)],
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
            let n = digits
                .iter()
                .try_fold(0u64, |n, d| {
                    n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })
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
    // Only now, when nothing can fail: `out` held the request, which a refused answer
    // sends again to the next instance.
    out.clear();
    status_line(out, status);
    let named = headers::ConnectionNames::read(connection(res.headers));
    let named = |name: &[u8]| named.name(name);
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
        if headers::is_route_header(route_headers, name) {
            // The route's own replaces it, below.
            continue;
        }
        header(out, name, h.value);
    }
    for (name, value) in route_headers {
        header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    // The length is sent where it frames the body, or answers HEAD or a 304.
    if let (Some(n), false) = (length, chunked || other_coding) {
        out.extend_from_slice(b"content-length: ");
        push_u64(out, n);
        out.extend_from_slice(b"\r\n");
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
pub(super) async fn relay(
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
pub(super) enum Relayed {
    /// Every byte of it reached the client.
    Whole,
    /// The client or the upstream went away mid-body; the client's connection closes
    /// so that a short body cannot pass for a whole one.
    Broken,
}

/// Relays a body of `n` bytes.
pub(super) async fn relay_length(
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
pub(super) async fn relay_chunked(
    up: &mut Upstream,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Relayed {
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
pub(super) async fn relay_until_close(
    up: &mut Upstream,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) {
    loop {
        out.extend_from_slice(&up.buf);
        if !pass_on(up, stream, out).await {
            return;
        }
    }
}

/// Sends what `out` gathered, then reads the upstream's next bytes into its emptied
/// buffer; `false` when either side is gone.
pub(super) async fn pass_on(up: &mut Upstream, stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
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
pub(super) async fn send_rest(stream: &mut TcpStream, out: &[u8]) -> Relayed {
    match stream.write_all(out).await {
        Ok(()) => Relayed::Whole,
        Err(_) => Relayed::Broken,
    }
}

/// Where a chunked body ends (RFC 9112 §7.1), read incrementally over the bytes as they
/// arrive.
#[derive(Default)]
pub(super) struct Chunks {
    pub(super) state: ChunkState,
    /// Bytes of the current size or trailer line so far (bounded).
    pub(super) line: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
pub(super) enum ChunkState {
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
pub(super) const CHUNK_LINE_MAX: usize = 4096;

impl Chunks {
    /// Reads `data` on from where the last call stopped: `Some(n)` when the body ends
    /// after `n` bytes of `data`, `None` when it goes on past it.
    pub(super) fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
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

pub(super) fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
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
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        [
            &b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"[..],
            b"3\r\nabc\r\n0\r\nx-sum: 1\r\nx-other: 2\r\n\r\nHTTP/1.1 200 OK\r\n",
            b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\nA \t;ext\r\n0123456789\r\n0\r\n\r\n",
            b"0\r\n\r\n",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Where a mutated chunked body ends does not depend on how its bytes arrive,
        /// and is inside them; the bytes up to there end there by themselves.
        #[test]
        fn a_mutated_chunked_body_ends_at_one_place_however_it_arrives(
            body in berth_mutate::mixed(seeds(), 6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let whole = ends(&[&body]);
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            at.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for to in at {
                pieces.push(&body[from..to]);
                from = to;
            }
            pieces.push(&body[from..]);
            prop_assert_eq!(ends(&pieces), whole);
            if let Ok(Some(n)) = whole {
                prop_assert!(n <= body.len());
                prop_assert_eq!(ends(&[&body[..n]]), Ok(Some(n)));
            }
        }
    }
}
