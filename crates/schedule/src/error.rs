//! The schedule crate's errors.

use berth_queue::QueueError;
use berth_store::StoreError;
use berth_workflow::WorkflowError;

/// What can go wrong with a schedule.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No `[schedule.NAME]` by that name.
    #[error("unknown schedule `{name}`{suggestion}; the configured schedules are: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// " (did you mean `x`?)" or empty.
        suggestion: String,
        /// The configured names, or a hint when there are none.
        known: String,
    },
    /// The schedule's workflow could not be built.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// The queue or the store refused.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<StoreError> for ScheduleError {
    fn from(e: StoreError) -> Self {
        ScheduleError::Queue(QueueError::Store(e))
    }
}

/// Shorthand for schedule results.
pub type Result<T, E = ScheduleError> = std::result::Result<T, E>;
