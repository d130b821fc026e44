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
    /// A service depends on one that is not supervised (add dependencies first).
    #[error("service `{service}` depends on `{dependency}`, which is not supervised")]
    UnknownDependency {
        /// The service being added.
        service: String,
        /// The missing dependency.
        dependency: String,
    },
    /// A service did not become ready.
    #[error("service `{service}` is not ready: {why}")]
    NotReady {
        /// The service.
        service: String,
        /// What its instances are doing instead.
        why: String,
    },
    /// A rolling restart stopped at an instance whose new process did not become ready.
    #[error("restart of `{service}` stopped at instance {instance}: {why}")]
    RestartFailed {
        /// The service.
        service: String,
        /// The instance whose replacement failed.
        instance: u32,
        /// Why (the old process keeps running when it could).
        why: String,
    },
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
