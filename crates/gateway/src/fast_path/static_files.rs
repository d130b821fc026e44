//! Static files: the general path's answer, and a large file sent with `sendfile`.

use super::*;

/// A static route's answer to `head`, as the general path gives it.
pub(super) fn static_answer(files: &StaticFiles, path: &str, head: &Head<'_>) -> Response<Body> {
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
    files.serve(&method, path, head.query, head.path, &asked)
}

/// Writes a response of the general kind: its head, then its body (from the file with
/// `sendfile` when it names one, else frame by frame).
pub(super) async fn write_response(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    mut response: Response<Body>,
    head_only: bool,
    route_headers: &[(HeaderName, HeaderValue)],
) -> Sent {
    crate::headers::set_route_headers(route_headers, response.headers_mut());
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
                out.extend_from_slice(b"content-length: ");
                push_u64(out, n);
                out.extend_from_slice(b"\r\n");
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
pub(super) fn open_same(range: &FileRange) -> Option<std::fs::File> {
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
pub(super) async fn send_head_more(stream: &TcpStream, out: &[u8]) -> io::Result<()> {
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
pub(super) async fn send_file(
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
