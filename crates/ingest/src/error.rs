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
    /// A directory of `dir` cannot be used.
    #[error("[ingest.{ingest}] dir: {path}: {detail}")]
    Dir {
        /// The ingest.
        ingest: String,
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No ingest takes webhooks under that name.
    #[error("no ingest `{0}` with a webhook")]
    NoWebhook(String),
    /// The ingest is stopping and takes nothing new.
    #[error("[ingest.{0}] is stopping")]
    Stopping(String),
    /// The store did not take the message.
    #[error("[ingest.{0}] could not store the message; try again")]
    NotStored(String),
    /// No message has that id.
    #[error("no message with id {0}")]
    NoMessage(i64),
    /// The message's ingest is no longer configured.
    #[error(
        "message {id} came from ingest `{ingest}`, which this config no longer has; add [ingest.{ingest}] back to replay it"
    )]
    IngestGone {
        /// The message.
        id: i64,
        /// Its ingest.
        ingest: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
}
