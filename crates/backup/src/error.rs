//! The backup crate's errors.

/// Why a backup, a check or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The store could not be copied or restored.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// No such archive.
    #[error("{0}")]
    NotFound(String),
    /// The archive is damaged, truncated or changed: it is refused.
    #[error("the archive {path} cannot be trusted: {detail}")]
    Damaged {
        /// The archive.
        path: std::path::PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The restore cannot go on (what to do instead is said).
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        BackupError::Io {
            what: what.into(),
            source,
        }
    }
}
