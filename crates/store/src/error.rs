//! The store's errors. Each variant says what was being done, so that a message reaching a
//! person reads as a sentence.

use std::path::PathBuf;

use crate::model::JobState;

/// Anything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or prepared.
    #[error("cannot open the database {path}: {detail}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The file is not a berth database, or it is damaged.
    #[error(
        "the database {path} is not a readable berth database ({detail}); it was left untouched. Restore it from a backup, or move it aside to start afresh"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The database was written by a newer berth.
    #[error(
        "the database {path} has schema version {found}, written by a newer berth (this berth knows versions up to {supported}); it was left untouched. Run the newer berth, or restore a backup made by this version"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// No job has that id.
    #[error("no job with id {0}")]
    JobNotFound(i64),
    /// No batch, workflow or schedule by that id or name.
    #[error("{0}")]
    NotFound(String),
    /// The job is in a state that does not allow the action.
    #[error("cannot {action} job {id}: it is {state}{hint}")]
    InvalidState {
        /// The job.
        id: i64,
        /// Its state.
        state: JobState,
        /// What was asked.
        action: &'static str,
        /// What to do instead, starting with "; " (or empty).
        hint: &'static str,
    },
    /// The change would break a rule that involves another job (a unique key).
    #[error("{0}")]
    Conflict(String),
    /// A value was refused before anything was written.
    #[error("{0}")]
    Invalid(String),
    /// A database call failed.
    #[error("database error while {action}: {source}")]
    Database {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A snapshot or a restore of the store failed (a file could not be written, or
    /// `pg_dump` / `pg_restore` failed or is missing).
    #[error("{0}")]
    Snapshot(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Wraps a driver error with what was being done.
    pub fn db(action: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Database {
            action,
            source: Box::new(e),
        }
    }
}
