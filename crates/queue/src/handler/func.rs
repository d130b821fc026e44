//! In-process handlers: a Rust closure per job. Used by tests, the benchmark and built-in
//! jobs.

use std::future::Future;
use std::sync::Arc;

use berth_store::LeasedJob;

use super::{Handler, HandlerFuture, HandlerOutcome};

/// A handler backed by an async closure.
#[derive(Clone)]
pub struct FnHandler(Arc<dyn Fn(LeasedJob) -> HandlerFuture + Send + Sync>);

impl FnHandler {
    /// Wraps `f`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(LeasedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerOutcome> + Send + 'static,
    {
        Self(Arc::new(move |job| Box::pin(f(job))))
    }

    /// A handler that completes every job at once.
    pub fn noop() -> Self {
        Self::new(|_| async {
            HandlerOutcome::Completed {
                result: None,
                output: None,
            }
        })
    }
}

impl Handler for FnHandler {
    fn handle(&self, job: LeasedJob) -> HandlerFuture {
        (self.0)(job)
    }
}
