//! What can stop the gateway from starting.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; stop what uses it or choose another address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A certificate or key file could not be read or used.
    #[error("TLS: {}: {detail}", path.display())]
    Tls {
        /// The file.
        path: PathBuf,
        /// What was wrong, and what would be right.
        detail: String,
    },
    /// A static route's directory is missing or unreadable.
    #[error("the static directory {} of route `{route}` {detail}", dir.display())]
    StaticDir {
        /// The route's name.
        route: String,
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The access log cannot be opened.
    #[error("cannot open the access log {}: {source}", path.display())]
    AccessLog {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a gateway worker thread: {0}")]
    Worker(std::io::Error),
    /// A route asks for a login or a token, or spends a budget, but the gateway was given
    /// no store.
    #[error("route `{route}` has `auth` or `budget`, which need the store; none was given")]
    NoStore {
        /// The route's name.
        route: String,
    },
    /// A route names a budget that was not given.
    #[error("route `{route}` spends budget `{budget}`, which is not configured")]
    NoBudget {
        /// The route's name.
        route: String,
        /// The budget's name.
        budget: String,
    },
    /// The store could not be read at start.
    #[error("cannot read the budgets from the store: {0}")]
    Store(berth_store::StoreError),
}
