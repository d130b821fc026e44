//! Request heads read in place (`httparse`) and checked for what this path serves;
//! response heads written.

use super::*;

pub(super) enum HeadRead {
    /// `buf` holds a complete head (or something `httparse` refuses, which hyper answers).
    Complete,
    /// The head is too long for this path, or not HTTP/1.x: hyper's.
    Other,
    /// The client closed, went quiet past the timeout, or the gateway stops.
    Closed,
}

/// Reads until `buf` holds a whole request head. A buffer is taken only once bytes are
/// there to read: an idle connection holds none.
pub(super) async fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    wait: &mut Deadline,
    mut stopped: Pin<&mut WaitForCancellationFuture<'_>>,
) -> HeadRead {
    let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
    loop {
        if !buf.is_empty() {
            match head_complete(buf) {
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => return HeadRead::Other,
                // Complete, or refused: hyper says what is wrong with it.
                _ => return HeadRead::Complete,
            }
        }
        let idle = buf.is_empty();
        let read = read_when_ready(stream, buf);
        let read = tokio::select! {
            read = wait.within(deadline, read) => read,
            // Idle between requests: a stop closes the connection now.
            _ = stopped.as_mut(), if idle => return HeadRead::Closed,
        };
        match read {
            Some(Ok(0)) | Some(Err(_)) | None => return HeadRead::Closed,
            Some(Ok(_)) => {}
        }
    }
}

/// Whether `buf` holds a whole head. The head's blank line says so without a parse (the
/// plan parses it once, and a head that reads otherwise there goes to hyper, with every
/// byte); without one, `httparse` tells a partial head from one ended by bare line feeds,
/// or from one it refuses.
pub(super) fn head_complete(buf: &[u8]) -> httparse::Result<usize> {
    // Built once: building a searcher costs more than a short head's search.
    static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    if let Some(at) = BLANK_LINE.find(buf) {
        return Ok(httparse::Status::Complete(at + 4));
    }
    let mut headers = no_headers();
    httparse::Request::new(&mut []).parse_with_uninit_headers(buf, &mut headers)
}

/// Room for a head's header lines, left uninitialised: `httparse` writes the lines it
/// finds (3.2 kB to zero for every parse otherwise).
pub(super) fn no_headers<'b>() -> [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS] {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

/// What this path needs of a request head.
pub(super) struct Head<'a> {
    pub(super) method: &'a str,
    /// The request target: path and query.
    pub(super) target: &'a str,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    /// The `Host` header's value as sent.
    pub(super) host: Option<&'a str>,
    /// The client asked to close after this response.
    pub(super) close: bool,
    /// As sent; read as text only for the access log.
    pub(super) referer: Option<&'a [u8]>,
    pub(super) agent: Option<&'a [u8]>,
    pub(super) headers: &'a [httparse::Header<'a>],
}

impl<'a> Head<'a> {
    /// The head, if it is one this path serves: HTTP/1.1, an origin-form target already
    /// in canonical form, no body, no upgrade, no `Expect`, at most one `Host`.
    pub(super) fn read(req: &'a httparse::Request<'a, 'a>) -> Option<Self> {
        if req.version != Some(1) {
            return None;
        }
        let method = req.method?;
        let target = req.path?;
        if !target.starts_with('/') {
            return None;
        }
        let (path, query) = match memchr::memchr(b'?', target.as_bytes()) {
            Some(at) => (&target[..at], Some(&target[at + 1..])),
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
                    head.referer = Some(h.value);
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
                    head.agent = Some(h.value);
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

    pub(super) fn is(&self, method: &Method) -> bool {
        self.method == method.as_str()
    }
}

/// A byte a request target may hold here: RFC 3986's unreserved and sub-delims, `:`,
/// `@`, `/`, `?` and `%`. Anything else (`#`, `<`, a space, a byte beyond ASCII) goes to
/// the general path, whose URI parser refuses it or reads it its own way.
pub(super) fn plain_target_byte(b: u8) -> bool {
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

pub(super) fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(super) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes `n` in decimal, without the formatting machinery (once or twice a request).
pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes an address as `Display` does: IPv4 by hand (every proxied request), IPv6 by
/// its formatter.
pub(super) fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        // Writing into a Vec cannot fail.
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A `Date` header, formatted once a second per thread.
pub(super) fn date(out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_whole_at_its_blank_line_or_as_httparse_reads_it() {
        let whole = |b: &[u8]| matches!(head_complete(b), Ok(httparse::Status::Complete(_)));
        let partial = |b: &[u8]| matches!(head_complete(b), Ok(httparse::Status::Partial));
        assert!(whole(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(whole(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next"));
        assert!(whole(b"GET / HTTP/1.1\nHost: x\n\n"));
        assert!(partial(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(partial(b"GET / HTTP/1.1\r\nHost: x\r\n\r"));
        assert!(partial(b"GET / HTT"));
        // Refused: hyper answers it.
        assert!(head_complete(b"GET / HTTP/1.1\r\nBad Header: y\r\n").is_err());
    }

    #[test]
    fn numbers_and_addresses_are_written_as_display_writes_them() {
        for n in [0, 7, 10, 99, 100, 1_048_576, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.255.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string().into_bytes());
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! Request heads as clients send them, mutated (berth-mutate): a head this path
    //! takes is always one it may take (origin form, canonical, one Host, no body, no
    //! upgrade); anything else goes to hyper, and nothing panics.

    use super::*;
    use proptest::prelude::*;

    fn seeds() -> Vec<Vec<u8>> {
        [
            "GET /static/app.js?v=3 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
            "HEAD / HTTP/1.1\r\nHost: a.example.org:8080\r\nConnection: close\r\nReferer: https://x/\r\n\r\n",
            "POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            "PUT /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /a/../b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "DELETE /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn a_mutated_head_is_taken_here_only_when_plain(head in berth_mutate::mixed(seeds(), 6)) {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(_)) = req.parse(&head) else {
                return Ok(());
            };
            let Some(h) = Head::read(&req) else {
                return Ok(());
            };
            prop_assert!(h.target.starts_with('/'));
            prop_assert!(is_canonical(h.path), "{}", h.path);
            prop_assert!(h.target.bytes().all(plain_target_byte));
            prop_assert!(h.host.is_some());
            let hosts = req.headers.iter().filter(|x| x.name.eq_ignore_ascii_case("host")).count();
            prop_assert_eq!(hosts, 1);
            for x in req.headers.iter() {
                let name = x.name.to_ascii_lowercase();
                prop_assert!(!["transfer-encoding", "upgrade", "expect"].contains(&name.as_str()), "{}", name);
                if name == "content-length" {
                    prop_assert_eq!(x.value.trim_ascii(), b"0");
                }
            }
        }
    }
}
