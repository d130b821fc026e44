//! The workflow crate's errors.

use berth_queue::QueueError;
use berth_store::StoreError;

/// What can go wrong with a workflow.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// No `[workflow.NAME]` by that name.
    #[error("unknown workflow `{name}`{suggestion}; the configured workflows are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// " (did you mean `x`?)" or empty.
        suggestion: String,
        /// The configured names, or a hint when there are none.
        known: String,
    },
    /// The queue or the store refused.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<StoreError> for WorkflowError {
    fn from(e: StoreError) -> Self {
        WorkflowError::Queue(QueueError::Store(e))
    }
}

/// Shorthand for workflow results.
pub type Result<T, E = WorkflowError> = std::result::Result<T, E>;
