//! The supervisor's errors.

use std::path::PathBuf;

/// What can go wrong when asking the supervisor for something.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service of that name is already supervised.
    #[error("a service named `{0}` is already supervised")]
    DuplicateService(String),
    /// No service of that name is supervised.
    #[error("no service named `{0}`")]
    UnknownService(String),
    /// A log file or directory could not be prepared.
    #[error("cannot {action} {path}: {source}")]
    Log {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("create the log directory", "open the log file", …).
        action: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The watchdog that kills services after berth's own death could not be started.
    #[error("cannot start the watchdog process: {0}")]
    Watchdog(std::io::Error),
}
