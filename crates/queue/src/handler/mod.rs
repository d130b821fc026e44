//! Handlers: how a job reaches the user's code.
//!
//! - [`run`]: a process per job;
//! - [`post`]: an HTTP POST per job;
//! - [`func`]: an in-process function (tests, benchmarks, built-in jobs).
//!
//! Long-lived workers in any language use the pull API instead (see `Queues::lease`).

pub mod func;
pub mod post;
pub mod run;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use berth_store::LeasedJob;
use serde_json::Value;

/// The most output kept per attempt; beyond it the start is cut and the end kept.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How a handler says an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerOutcome {
    /// Done.
    Completed {
        /// What to store as the job's result.
        result: Option<Value>,
        /// What it printed.
        output: Option<String>,
    },
    /// This attempt failed; the queue's backoff decides when to retry.
    Failed {
        /// Why, in a sentence.
        error: String,
        /// What it printed.
        output: Option<String>,
    },
    /// Run again later without counting this attempt as a failure; `after: None` uses the
    /// queue's backoff.
    Retry {
        /// Why.
        reason: String,
        /// What it printed.
        output: Option<String>,
        /// When to run again.
        after: Option<Duration>,
    },
}

/// A boxed handler future.
pub type HandlerFuture = Pin<Box<dyn Future<Output = HandlerOutcome> + Send>>;

/// Runs one attempt of a job. Dropping the future abandons the attempt and must stop
/// whatever it started (the executor drops it on timeout, cancel and shutdown).
pub trait Handler: Send + Sync + 'static {
    /// Starts the attempt.
    fn handle(&self, job: LeasedJob) -> HandlerFuture;

    /// True if the handler stops an attempt at the queue's timeout itself (and can then
    /// keep its output); the executor then only steps in a little later, as a backstop.
    fn enforces_timeout(&self) -> bool {
        false
    }
}

/// Keeps the tail of a byte stream up to a bound, counting what was cut.
#[derive(Debug, Default)]
pub(crate) struct BoundedOutput {
    buf: Vec<u8>,
    cut: usize,
}

impl BoundedOutput {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * MAX_OUTPUT {
            self.trim();
        }
    }

    fn trim(&mut self) {
        if self.buf.len() > MAX_OUTPUT {
            let extra = self.buf.len() - MAX_OUTPUT;
            self.buf.drain(..extra);
            self.cut += extra;
        }
    }

    /// The kept text, `None` if nothing was written.
    pub(crate) fn finish(mut self) -> Option<String> {
        self.trim();
        if self.buf.is_empty() && self.cut == 0 {
            return None;
        }
        let text = String::from_utf8_lossy(&self.buf);
        Some(if self.cut > 0 {
            format!("[… {} earlier bytes not kept]\n{text}", self.cut)
        } else {
            text.into_owned()
        })
    }
}
