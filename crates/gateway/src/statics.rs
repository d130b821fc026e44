//! Files of a directory: index files, a single-page-app fallback, ETag and
//! Last-Modified with conditional requests, single byte ranges, precompressed `.br` and
//! `.gz` siblings, and never a file outside the directory.
//!
//! Path safety: the request path is percent-decoded and split into segments; `..` is
//! refused outright, and names starting with `.` (`.env`, `.git`) are hidden, except
//! `.well-known`. The file found is then resolved with `canonicalize` and must lie
//! inside the canonical directory, so a symlink cannot lead out either.
//!
//! Small files (up to [`CACHE_FILE_MAX`]) are kept in memory, up to [`CACHE_TOTAL_MAX`]
//! in all; each request still `stat`s the file and a changed inode, size or mtime
//! reloads it, so an edit is seen at once.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{Read, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    LAST_MODIFIED, RANGE, VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::body::{Body, BoxError, empty, full};
use crate::error::GatewayError;
use crate::reply;
use crate::spec::StaticSpec;

/// Files up to this size are served from memory.
pub(crate) const CACHE_FILE_MAX: u64 = 2 << 20;
/// The most bytes the cache of one static route holds.
pub(crate) const CACHE_TOTAL_MAX: u64 = 64 << 20;
/// Chunk size when streaming a larger file.
const CHUNK: usize = 256 << 10;
/// How long a client may take to accept the next chunk of a large file.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// From this size on, a plain connection sends the file with `sendfile` (from the page
/// cache to the socket, no copy through berth's memory) rather than from the body.
const SENDFILE_MIN: u64 = 64 << 10;

/// A response extension naming the bytes of a file its body holds, for a connection
/// that can hand them to the socket itself (`sendfile`). The body is still whole: a
/// connection that does not use the extension sends the body instead.
#[derive(Debug, Clone)]
pub(crate) struct FileRange {
    pub(crate) path: PathBuf,
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The file that was checked to lie inside the root; one opened later must be the
    /// same file (same inode and device, same length).
    pub(crate) ino: u64,
    pub(crate) dev: u64,
    pub(crate) len: u64,
    pub(crate) mtime: SystemTime,
}

/// One static route's directory.
#[derive(Debug)]
pub(crate) struct StaticFiles {
    root: PathBuf,
    index: String,
    spa: bool,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    /// By the path's bytes (hashed whole; a `Path` hashes component by component).
    files: HashMap<Vec<u8>, CachedFile>,
    bytes: u64,
}

/// A file already checked to lie inside the root, with its content if small, and the
/// validators its answers carry (worked out once per version of the file).
#[derive(Debug, Clone)]
struct CachedFile {
    stamp: Stamp,
    content: Option<Bytes>,
    etag: HeaderValue,
    last_modified: HeaderValue,
}

impl CachedFile {
    fn new(stamp: Stamp, content: Option<Bytes>) -> Self {
        // Both are ASCII by construction.
        let etag = HeaderValue::try_from(stamp.etag()).unwrap_or(HeaderValue::from_static("\"\""));
        let last_modified = HeaderValue::try_from(httpdate::fmt_http_date(stamp.mtime))
            .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
        Self {
            stamp,
            content,
            etag,
            last_modified,
        }
    }
}

/// What tells one version of a file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    dev: u64,
    len: u64,
    mtime: SystemTime,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            ino: meta.ino(),
            dev: meta.dev(),
            len: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
        }
    }

    /// nginx's form: `"{mtime hex}-{length hex}"`.
    fn etag(&self) -> String {
        let secs = self
            .mtime
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        format!("\"{secs:x}-{:x}\"", self.len)
    }
}

/// What a request asked for, once decoded.
enum Lookup {
    File(PathBuf),
    /// A directory asked for without its trailing slash.
    AddSlash,
    NotFound,
    /// A hidden name (`.env`): not found, and no SPA fallback either.
    Hidden,
    Refused(&'static str),
}

impl StaticFiles {
    pub(crate) fn new(spec: &StaticSpec, route: &str) -> Result<Self, GatewayError> {
        let root = spec
            .dir
            .canonicalize()
            .map_err(|e| GatewayError::StaticDir {
                route: route.to_owned(),
                dir: spec.dir.clone(),
                detail: format!("cannot be opened: {e}; create it or fix `static`"),
            })?;
        if !root.is_dir() {
            return Err(GatewayError::StaticDir {
                route: route.to_owned(),
                dir: spec.dir.clone(),
                detail: "is not a directory; expected the directory to serve".into(),
            });
        }
        Ok(Self {
            root,
            index: spec.index.clone(),
            spa: spec.spa,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// Answers `method` for `path` (the part after the route's prefix, still encoded;
    /// `query` kept for redirects).
    pub(crate) fn serve(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        full_path: &str,
        headers: &HeaderMap,
    ) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{method} is not allowed on static files; use GET or HEAD"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let file = match self.lookup(path) {
            Lookup::File(file) => file,
            Lookup::AddSlash => {
                let location = match query {
                    Some(q) => format!("{full_path}/?{q}"),
                    None => format!("{full_path}/"),
                };
                return reply::redirect(StatusCode::MOVED_PERMANENTLY, &location);
            }
            Lookup::Refused(why) => {
                return reply::error(StatusCode::BAD_REQUEST, "bad_path", why);
            }
            Lookup::NotFound if self.spa => self.root.join(&self.index),
            Lookup::NotFound | Lookup::Hidden => return not_found(),
        };
        match self.respond(&file, method, headers) {
            Some(response) => response,
            None => not_found(),
        }
    }

    /// Maps the request path onto a file under the root, without touching anything
    /// outside it.
    fn lookup(&self, path: &str) -> Lookup {
        let Some(decoded) = percent_decode(path) else {
            return Lookup::Refused("the path is not valid percent-encoded UTF-8");
        };
        let mut file = self.root.clone();
        let mut depth = 0;
        for segment in decoded.split('/') {
            match segment {
                "" | "." => continue,
                ".." => return Lookup::Refused("`..` is not allowed in paths"),
                s if s.contains(['\0', '\\']) => {
                    return Lookup::Refused("the path holds a NUL byte or a backslash");
                }
                s if s.starts_with('.') && s != ".well-known" => return Lookup::Hidden,
                s => {
                    file.push(s);
                    depth += 1;
                }
            }
        }
        let wants_dir = decoded.ends_with('/') || depth == 0;
        match std::fs::metadata(&file) {
            Ok(meta) if meta.is_dir() => {
                if wants_dir {
                    Lookup::File(file.join(&self.index))
                } else {
                    Lookup::AddSlash
                }
            }
            Ok(_) if wants_dir => Lookup::NotFound,
            Ok(_) => Lookup::File(file),
            Err(_) => Lookup::NotFound,
        }
    }

    /// The response for `file`, or `None` if it does not exist or lies outside the root.
    fn respond(&self, file: &Path, method: &Method, headers: &HeaderMap) -> Option<Response<Body>> {
        let content_type = content_type(file);
        let compressible = compressible(content_type);
        // A precompressed sibling, if the client takes it and it exists.
        let mut chosen: Option<(PathBuf, &'static str)> = None;
        if compressible && let Some(accept) = headers.get(ACCEPT_ENCODING) {
            let accept = accept.to_str().unwrap_or_default();
            for (encoding, ext) in [("br", "br"), ("gzip", "gz")] {
                if accepts(accept, encoding) {
                    let sibling = with_suffix(file, ext);
                    if std::fs::metadata(&sibling).is_ok_and(|m| m.is_file()) {
                        chosen = Some((sibling, encoding));
                        break;
                    }
                }
            }
        }
        let (path, encoding) = match &chosen {
            Some((p, e)) => (p.as_path(), Some(*e)),
            None => (file, None),
        };
        let CachedFile {
            stamp,
            content,
            etag,
            last_modified,
        } = self.load(path)?;
        let mut response = Response::new(empty());
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(ETAG, etag.clone());
        h.insert(LAST_MODIFIED, last_modified);
        let etag = etag.as_bytes();
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if compressible {
            h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if let Some(encoding) = encoding {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }

        if not_modified(headers, etag, stamp.mtime) {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Some(response);
        }

        let len = stamp.len;
        let range = match headers.get(RANGE).and_then(|r| r.to_str().ok()) {
            Some(range) if if_range_holds(headers, etag, stamp.mtime) => parse_range(range, len),
            _ => RangeAsk::Whole,
        };
        let (start, end) = match range {
            RangeAsk::Whole => (0, len),
            RangeAsk::Part(start, end) => {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                let value = format!("bytes {start}-{}/{len}", end - 1);
                if let Ok(v) = HeaderValue::try_from(value) {
                    response.headers_mut().insert(CONTENT_RANGE, v);
                }
                (start, end)
            }
            RangeAsk::Unsatisfiable => {
                let mut response = reply::error(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the file has {len} bytes; the range asked for lies outside it"),
                );
                if let Ok(v) = HeaderValue::try_from(format!("bytes */{len}")) {
                    response.headers_mut().insert(CONTENT_RANGE, v);
                }
                return Some(response);
            }
        };
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(end - start));
        if method == Method::HEAD {
            return Some(response);
        }
        if end - start >= SENDFILE_MIN {
            response.extensions_mut().insert(FileRange {
                path: path.to_path_buf(),
                start,
                end,
                ino: stamp.ino,
                dev: stamp.dev,
                len: stamp.len,
                mtime: stamp.mtime,
            });
        }
        let body = match content {
            Some(bytes) => full(bytes.slice(start as usize..end as usize)),
            None => stream_file(path.to_path_buf(), start, end),
        };
        *response.body_mut() = body;
        Some(response)
    }

    /// The stamp of `path` and its content when small, from the cache if it is current.
    fn load(&self, path: &Path) -> Option<CachedFile> {
        let meta = std::fs::metadata(path).ok().filter(Metadata::is_file)?;
        let stamp = Stamp::of(&meta);
        let key = path.as_os_str().as_bytes();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.files.get(key)
                && hit.stamp == stamp
            {
                return Some(hit.clone());
            }
        }
        // A new or changed file: check where it really is, then read it if small.
        let real = path.canonicalize().ok()?;
        let inside = real.strip_prefix(&self.root).ok()?;
        // A symlink must not lead into a hidden directory (`.git`) either.
        let hidden = inside.components().any(|c| {
            let name = c.as_os_str().to_string_lossy();
            name.starts_with('.') && name != ".well-known"
        });
        if hidden {
            return None;
        }
        let content = if stamp.len <= CACHE_FILE_MAX {
            let mut buf = Vec::with_capacity(stamp.len as usize);
            std::fs::File::open(&real)
                .and_then(|mut f| f.read_to_end(&mut buf))
                .ok()?;
            if buf.len() as u64 != stamp.len {
                // Changed while read; serve what was read without caching it.
                let len = buf.len() as u64;
                return Some(CachedFile::new(
                    Stamp { len, ..stamp },
                    Some(Bytes::from(buf)),
                ));
            }
            Some(Bytes::from(buf))
        } else {
            None
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let size = content.as_ref().map_or(0, |c| c.len() as u64);
        if let Some(old) = cache.files.remove(key) {
            cache.bytes -= old.content.as_ref().map_or(0, |c| c.len() as u64);
        }
        if cache.bytes + size > CACHE_TOTAL_MAX {
            // Simple and bounded: start over rather than track recency.
            cache.files.clear();
            cache.bytes = 0;
        }
        cache.bytes += size;
        let file = CachedFile::new(stamp, content);
        cache.files.insert(key.to_vec(), file.clone());
        Some(file)
    }
}

fn not_found() -> Response<Body> {
    reply::error(StatusCode::NOT_FOUND, "not_found", "no such file")
}

/// Streams `start..end` of a file too large for the cache. Each read is its own short
/// blocking call (tokio's file), so a client that stops reading holds no thread. The
/// reader starts at the first poll: a body that is never sent reads nothing.
fn stream_file(path: PathBuf, start: u64, end: u64) -> Body {
    FileBody {
        pending: Some((path, start, end)),
        rx: None,
    }
    .boxed_unsync()
}

/// Reads `path` from `start` to `end` into `tx`, one chunk at a time.
async fn read_chunks(
    path: PathBuf,
    start: u64,
    end: u64,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let result = async {
        let mut file = tokio::fs::File::open(&path).await?;
        file.seek(SeekFrom::Start(start)).await?;
        let mut left = end.saturating_sub(start);
        while left > 0 {
            let mut buf = vec![0; CHUNK.min(left as usize)];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was sent",
                ));
            }
            buf.truncate(n);
            left -= n as u64;
            // A client gone, or too slow for a minute: stop reading.
            let sent =
                tokio::time::timeout(SEND_TIMEOUT, tx.send(Ok(Frame::data(Bytes::from(buf)))))
                    .await;
            if !matches!(sent, Ok(Ok(()))) {
                return Ok(());
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(Box::new(e))).await;
    }
}

/// A large file's bytes, read by a task started at the first poll.
struct FileBody {
    pending: Option<(PathBuf, u64, u64)>,
    rx: Option<tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BoxError>>>,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some((path, start, end)) = self.pending.take() {
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tokio::spawn(read_chunks(path, start, end, tx));
            self.rx = Some(rx);
        }
        match &mut self.rx {
            Some(rx) => rx.poll_recv(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.pending {
            Some((_, start, end)) => hyper::body::SizeHint::with_exact(end.saturating_sub(*start)),
            None => hyper::body::SizeHint::default(),
        }
    }
}

enum RangeAsk {
    Whole,
    /// `start..end`, end exclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges, or a unit other than bytes, get the whole file
/// (which the standard allows).
fn parse_range(header: &str, len: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // The last `b` bytes.
        match b.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len),
            Err(_) => return RangeAsk::Whole,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeAsk::Whole;
        };
        let end = if b.is_empty() {
            len
        } else {
            match b.parse::<u64>() {
                Ok(last) if last >= start => last.saturating_add(1).min(len),
                _ => return RangeAsk::Whole,
            }
        };
        (start, end)
    };
    if range.0 >= len || range.0 >= range.1 {
        RangeAsk::Unsatisfiable
    } else {
        RangeAsk::Part(range.0, range.1)
    }
}

/// `If-None-Match` wins over `If-Modified-Since`, as the standard says.
fn not_modified(headers: &HeaderMap, etag: &[u8], mtime: SystemTime) -> bool {
    if let Some(inm) = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == etag);
    }
    if let Some(ims) = headers
        .get(IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        return whole_seconds(mtime) <= whole_seconds(ims);
    }
    false
}

/// Without `If-Range`, or when it names the current version, a range applies.
fn if_range_holds(headers: &HeaderMap, etag: &[u8], mtime: SystemTime) -> bool {
    let Some(value) = headers.get(IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if value.starts_with('"') {
        return value.as_bytes() == etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|date| whole_seconds(date) == whole_seconds(mtime))
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether an `Accept-Encoding` value takes `encoding` (a `q=0` refuses it).
fn accepts(header: &str, encoding: &str) -> bool {
    header.split(',').any(|part| {
        let mut it = part.split(';');
        let name = it.next().unwrap_or_default().trim();
        let refused = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        name.eq_ignore_ascii_case(encoding) && !refused
    })
}

fn with_suffix(file: &Path, ext: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// `%XX` sequences decoded; `None` for a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Content-Type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    // Lowercase already, nearly always: copied only when not.
    let lower;
    let ext = if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = ext.to_ascii_lowercase();
        lower.as_str()
    } else {
        ext
    };
    match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

/// Types worth a precompressed sibling (and a `Vary: Accept-Encoding`).
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "image/svg+xml"
                | "application/wasm"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let part = |h: &str| match parse_range(h, 100) {
            RangeAsk::Whole => "whole".to_owned(),
            RangeAsk::Part(a, b) => format!("{a}..{b}"),
            RangeAsk::Unsatisfiable => "416".to_owned(),
        };
        assert_eq!(part("bytes=0-9"), "0..10");
        assert_eq!(part("bytes=90-"), "90..100");
        assert_eq!(part("bytes=-10"), "90..100");
        assert_eq!(part("bytes=-1000"), "0..100");
        assert_eq!(part("bytes=50-1000"), "50..100");
        assert_eq!(part("bytes=100-"), "416");
        assert_eq!(part("bytes=-0"), "416");
        assert_eq!(part("bytes=0-1,5-6"), "whole");
        assert_eq!(part("items=0-1"), "whole");
        assert_eq!(part("bytes=9-3"), "whole");
        assert_eq!(part("bytes=5-18446744073709551615"), "5..100");
    }

    #[test]
    fn encodings() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=1.0, gzip;q=0.8", "gzip"));
        assert!(!accepts("gzip;q=0, br", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2e/x").as_deref(), Some("/../x"));
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%ff"), None);
        assert_eq!(percent_decode("/%2"), None);
    }
}
