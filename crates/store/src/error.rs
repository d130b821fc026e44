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
    /// The store cannot take the call now: PostgreSQL cannot be reached or is shutting
    /// down, or the disk under the store is full. The same call may succeed later, and
    /// berth recovers by itself once the cause is gone. Nothing of the call was written,
    /// unless the connection to PostgreSQL broke while the call was under way: then
    /// `unsure`, as the server may have committed it.
    #[error("the store is unavailable while {action}: {reason}; {}", outcome(*.unsure))]
    Unavailable {
        /// What was being done.
        action: &'static str,
        /// Why, in words: "the disk holding the store is full", the driver's error.
        reason: String,
        /// Whether the call may have been written all the same.
        unsure: bool,
    },
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// Wraps a driver error with what was being done: [`StoreError::Unavailable`] when
    /// the error says the database cannot take calls now (see [`unavailable`]).
    pub fn db(action: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let Some((reason, unsure)) = unavailable(&e) {
            return StoreError::Unavailable {
                action,
                reason,
                unsure,
            };
        }
        StoreError::Database {
            action,
            source: Box::new(e),
        }
    }

    /// Whether this is the store being unavailable for now rather than the call being
    /// wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// What a refused call did, for [`StoreError::Unavailable`]'s message.
fn outcome(unsure: bool) -> &'static str {
    if unsure {
        "the connection broke while the call was under way, so it may have been written: \
         check before trying again"
    } else {
        "nothing was written, try again later"
    }
}

/// Why a driver error means the database cannot take calls now, if it does, and whether
/// the call may have been written all the same: a full disk or an I/O failure under
/// SQLite (which rolls back: never); under PostgreSQL a server that refused the call
/// (shutting down or starting, too many connections, a full disk: never) or a connection
/// that broke under it (maybe: the server may have committed).
pub(crate) fn unavailable(e: &(dyn std::error::Error + 'static)) -> Option<(String, bool)> {
    if let Some(e) = e.downcast_ref::<rusqlite::Error>() {
        let rusqlite::Error::SqliteFailure(f, _) = e else {
            return None;
        };
        return match f.code {
            rusqlite::ErrorCode::DiskFull => {
                Some(("the disk holding the store is full".into(), false))
            }
            rusqlite::ErrorCode::SystemIoFailure => Some((
                format!("the disk holding the store failed a read or write ({e})"),
                false,
            )),
            _ => None,
        };
    }
    let e = e.downcast_ref::<tokio_postgres::Error>()?;
    if e.is_closed() {
        return Some((format!("the connection to PostgreSQL was lost ({e})"), true));
    }
    if let Some(state) = e.code() {
        let code = state.code();
        // Refused by the server: 53: insufficient resources (disk full, out of memory,
        // too many connections); 57P01–57P03: shutting down or starting; 58030: an I/O
        // error on the server. 08: the connection failed under the call.
        if code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03" | "58030") {
            return Some((format!("PostgreSQL says {code}: {e}"), false));
        }
        if code.starts_with("08") && code != "08P01" {
            return Some((format!("PostgreSQL says {code}: {e}"), true));
        }
        return None;
    }
    // No SQL state: the socket itself failed (a TLS failure, or a value too large to
    // send, is no outage).
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>())?;
    use std::io::ErrorKind as K;
    matches!(
        io.kind(),
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
    )
    .then(|| (format!("the connection to PostgreSQL failed ({io})"), true))
}
