//! The ingest's errors.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop an ingest from starting, or a replay.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The schema file cannot be used.
    #[error("the schema {path} of [ingest.{ingest}] cannot be used: {detail}")]
    Schema {
        /// The ingest.
        ingest: String,
        /// The schema file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A listener could not bind.
    #[error("[ingest.{ingest}] cannot listen on {addr}: {detail}")]
    Bind {
        /// The ingest.
        ingest: String,
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        detail: String,
    },
    /// A password variable named in `credentials` is not set.
    #[error(
        "[ingest.{ingest}] credentials: the password of `{user}` is read from ${var}, which is not set; set it, or remove the entry"
    )]
    MissingPassword {
        /// The ingest.
        ingest: String,
        /// The device user.
        user: String,
        /// The variable.
        var: String,
    },
    /// No such ingest.
    #[error("{0}")]
    Unknown(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
}
