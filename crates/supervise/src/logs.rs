//! Instance logs: stdout and stderr, one timestamped line at a time, into
//! `LOG_DIR/NAME.INSTANCE.log`, rotated by size into `.1` … `.N`.
//!
//! Each line reads `2025-01-02T03:04:05.678Z out text` (or `err`). The pipes are read
//! continuously by tasks of their own, so a child never blocks on a full pipe; a line
//! longer than [`MAX_LINE`] is cut into several.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;

/// The longest line written as one; longer output is split.
pub const MAX_LINE: usize = 16 * 1024;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl Stream {
    fn marker(self) -> &'static str {
        match self {
            Stream::Out => "out",
            Stream::Err => "err",
        }
    }
}

/// The path of an instance's current log file.
pub fn log_path(dir: &Path, service: &str, instance: u32) -> PathBuf {
    dir.join(format!("{service}.{instance}.log"))
}

/// An instance's log file, shared by the readers of both its pipes and by all its
/// processes in turn (a restart appends to the same file).
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u32,
}

/// A log file shared between tasks. A std mutex: it is held only for one write, never
/// across an await.
pub type SharedLog = Arc<Mutex<LogFile>>;

impl LogFile {
    /// Opens (creating the directory and file if needed) `path` for appending.
    pub fn open(path: PathBuf, max_bytes: u64, keep: u32) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Log {
                path: dir.to_path_buf(),
                action: "create the log directory",
                source,
            })?;
        }
        let file = append(&path).map_err(|source| Error::Log {
            path: path.clone(),
            action: "open the log file",
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            file,
            size,
            max_bytes,
            keep,
        })
    }

    /// Appends one line (without its newline), rotating first if it would not fit.
    pub fn write_line(&mut self, stream: Stream, line: &[u8]) -> std::io::Result<()> {
        let stamp = humantime::format_rfc3339_millis(SystemTime::now());
        let mut buf = Vec::with_capacity(line.len() + 30);
        write!(buf, "{stamp} {} ", stream.marker())?;
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        // Page-cache writes of a line are short; the file is written directly rather than
        // through tokio::fs, which would hop to the blocking pool for every line.
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Shifts `.1` … `.N-1` up by one (dropping `.N`), moves the current file to `.1` and
    /// starts an empty one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let rotated = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            std::fs::remove_file(rotated(self.keep)).or_else(ignore_missing)?;
            for n in (1..self.keep).rev() {
                std::fs::rename(rotated(n), rotated(n + 1)).or_else(ignore_missing)?;
            }
            std::fs::rename(&self.path, rotated(1))?;
        }
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// Reads `pipe` until it closes, writing each line to `log`. A write error (a full disk)
/// is reported once and the output dropped, but the pipe is still drained.
pub async fn pump<R: AsyncRead + Unpin>(mut pipe: R, stream: Stream, log: SharedLog) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let mut failed = false;
    let mut write = |line: &[u8]| {
        let result = log.lock().expect("log lock").write_line(stream, line);
        if let Err(e) = result
            && !failed
        {
            failed = true;
            tracing::warn!(error = %e, "cannot write a service log; dropping its output");
        }
    };
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(i) = pending[start..].iter().position(|&b| b == b'\n') {
            write(&pending[start..start + i]);
            start += i + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            write(&pending[..MAX_LINE]);
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        write(&pending);
    }
}
