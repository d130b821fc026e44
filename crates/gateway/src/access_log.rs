//! The access log: one line per request, in the combined format or as JSON, written by a
//! task of its own so that a slow disk never holds a request up. When the writer falls
//! more than [`BACKLOG`] lines behind, lines are dropped and the drop is counted in the
//! log itself. At its maximum size the file is rotated between two lines (`access.log.1`
//! … `.KEEP`), so the disk never fills and no line is split or lost.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::sync::mpsc;

use crate::error::GatewayError;
use crate::spec::{AccessLog, AccessLogFormat};

/// Lines that may wait for the writer.
const BACKLOG: usize = 16_384;

/// What one line says.
pub(crate) struct Entry<'a> {
    pub(crate) peer: SocketAddr,
    pub(crate) user: Option<&'a str>,
    pub(crate) at: SystemTime,
    pub(crate) method: &'a str,
    pub(crate) target: &'a str,
    pub(crate) version: &'a str,
    pub(crate) status: u16,
    pub(crate) bytes: Option<u64>,
    pub(crate) referer: Option<&'a str>,
    pub(crate) agent: Option<&'a str>,
    pub(crate) took: Duration,
    pub(crate) route: &'a str,
}

/// The sending side; cheap to share.
#[derive(Debug)]
pub(crate) struct AccessLogger {
    format: AccessLogFormat,
    tx: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
}

impl AccessLogger {
    /// Opens (appends to) the log and starts its writer, which ends when the logger is
    /// dropped, after writing every line it holds.
    pub(crate) fn start(spec: &AccessLog) -> Result<Self, GatewayError> {
        let io_error = |path: &PathBuf, e: std::io::Error| GatewayError::AccessLog {
            path: path.clone(),
            source: e,
        };
        if let Some(dir) = spec.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&spec.path, e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.path)
            .map_err(|e| io_error(&spec.path, e))?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = dropped.clone();
        let out = Rotating {
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            out: std::io::BufWriter::with_capacity(64 << 10, file),
            path: spec.path.clone(),
            max_bytes: spec.max_bytes.max(1),
            keep: spec.keep,
        };
        std::thread::Builder::new()
            .name("berth-access-log".into())
            .spawn(move || write_lines(out, rx, counted))
            .map_err(|e| io_error(&spec.path, e))?;
        Ok(Self {
            format: spec.format,
            tx,
            dropped,
        })
    }

    pub(crate) fn log(&self, entry: &Entry<'_>) {
        let line = match self.format {
            AccessLogFormat::Combined => combined(entry),
            AccessLogFormat::Json => json_line(entry),
        };
        if self.tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The file being written, rotated by size.
struct Rotating {
    out: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    size: u64,
    max_bytes: u64,
    keep: u32,
}

impl Rotating {
    /// Writes one whole line, rotating first if it would not fit.
    fn line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Shifts `.1` … `.KEEP-1` up by one (dropping `.KEEP`), moves the file to `.1` and
    /// starts an empty one.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        let rotated = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        if self.keep == 0 {
            gone(std::fs::remove_file(&self.path))?;
        } else {
            gone(std::fs::remove_file(rotated(self.keep)))?;
            for n in (1..self.keep).rev() {
                gone(std::fs::rename(rotated(n), rotated(n + 1)))?;
            }
            std::fs::rename(&self.path, rotated(1))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = std::io::BufWriter::with_capacity(64 << 10, file);
        self.size = 0;
        Ok(())
    }
}

fn write_lines(mut out: Rotating, mut rx: mpsc::Receiver<String>, dropped: Arc<AtomicU64>) {
    while let Some(line) = rx.blocking_recv() {
        let mut ok = out.line(line.as_bytes()).is_ok();
        // Take whatever else is waiting before one flush.
        while let Ok(line) = rx.try_recv() {
            ok &= out.line(line.as_bytes()).is_ok();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let note =
                format!("# berth: {lost} access log lines dropped (the writer fell behind)\n");
            ok &= out.line(note.as_bytes()).is_ok();
        }
        if !ok || out.out.flush().is_err() {
            tracing::warn!("cannot write the access log");
        }
    }
    let _ = out.out.flush();
}

/// `127.0.0.1 - alice [22/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 512 "ref" "agent" 0.002`
fn combined(e: &Entry<'_>) -> String {
    let time = jiff::Timestamp::try_from(e.at)
        .map(|t| t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string())
        .unwrap_or_else(|_| "-".into());
    format!(
        "{} - {} [{time}] \"{} {} {}\" {} {} \"{}\" \"{}\" {:.3}\n",
        e.peer.ip(),
        e.user.unwrap_or("-"),
        e.method,
        escape(e.target),
        e.version,
        e.status,
        e.bytes.map_or_else(|| "-".to_owned(), |b| b.to_string()),
        escape(e.referer.unwrap_or("-")),
        escape(e.agent.unwrap_or("-")),
        e.took.as_secs_f64(),
    )
}

fn json_line(e: &Entry<'_>) -> String {
    let time = jiff::Timestamp::try_from(e.at)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut line = json!({
        "time": time,
        "remote": e.peer.ip().to_string(),
        "user": e.user,
        "method": e.method,
        "target": e.target,
        "version": e.version,
        "status": e.status,
        "bytes": e.bytes,
        "referer": e.referer,
        "agent": e.agent,
        "duration_ms": (e.took.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        "route": e.route,
    })
    .to_string();
    line.push('\n');
    line
}

/// Quotes and control characters escaped so that a client cannot forge a line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combined_line() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_334_400);
        let line = combined(&Entry {
            peer: "10.0.0.7:5555".parse().unwrap(),
            user: Some("alice"),
            at,
            method: "GET",
            target: "/a\"b\n",
            version: "HTTP/1.1",
            status: 200,
            bytes: Some(512),
            referer: None,
            agent: Some("curl/8"),
            took: Duration::from_millis(2),
            route: "/",
        });
        assert_eq!(
            line,
            "10.0.0.7 - alice [22/Nov/2026:08:00:00 +0000] \"GET /a\\\"b\\x0a HTTP/1.1\" 200 512 \"-\" \"curl/8\" 0.002\n"
        );
    }
}
