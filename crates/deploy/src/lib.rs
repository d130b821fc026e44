//! berth's deploys: a release is fetched (git, a directory, an archive) into
//! `releases/<id>/` and built there while the old one serves; then a backup, the
//! migration (once), the switch (services roll onto it, new jobs start in it), a health
//! gate, and a rollback by itself if any of those fail. One deploy at a time, on every
//! node of the app, through a lock in the store.
//!
//! What runs the application (the supervisor, the handlers, the backups) is the
//! server's; it hands it over as a [`Target`].

mod flow;
mod lock;
mod releases;
mod source;
mod step;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use flow::{Deployer, Pending, Progress};
pub use lock::{LOCK_KEY, MIGRATED_KEY};
pub use releases::{CURRENT, Release, ReleaseState, Releases, SourceInfo, StepRecord};
pub use source::Source;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Refused or failed, with what would be right.
    #[error("{0}")]
    Refused(String),
    /// Another deploy holds the lock.
    #[error("{0}")]
    Busy(String),
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The store failed.
    #[error("the store: {0}")]
    Store(#[from] berth_store::StoreError),
}

impl DeployError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        DeployError::Io {
            what: what.into(),
            source,
        }
    }
}

/// `[deploy]`, as the deployer uses it.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    /// The releases directory.
    pub dir: PathBuf,
    /// The git repository `Source::Git` refs are taken from.
    pub repo: Option<String>,
    /// The ref `berth deploy` takes without an argument.
    pub git_ref: String,
    /// Releases kept.
    pub keep: u32,
    /// Build commands, run in the new release.
    pub build: Vec<String>,
    /// The migration command.
    pub migrate: Option<String>,
    /// Whether a backup is taken before the migration.
    pub backup: bool,
    /// Whether maintenance mode is on from the migration to the end of the switch.
    pub maintenance: bool,
    /// Whether a rollback after a migration restores the application's databases.
    pub restore_on_rollback: bool,
    /// How long the services must stay up after the switch.
    pub health: Duration,
    /// A command that must pass during the health gate.
    pub smoke: Option<String>,
    /// The limit of each command.
    pub step_timeout: Duration,
    /// The setting that holds maintenance mode.
    pub maintenance_key: String,
    /// Added to the environment of the build, migrate and smoke commands.
    pub env: Vec<(String, String)>,
    /// This node's name.
    pub node: String,
}

/// One service instance, as the health gate watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    /// `web.0`.
    pub name: String,
    /// Running (and ready).
    pub running: bool,
    /// Its state in words, when it is not running.
    pub state: String,
    /// Restarts so far: one more during the gate fails it.
    pub restarts: u32,
    /// Its pid: another one during the gate (a restart) fails it.
    pub pid: Option<u32>,
}

/// What runs the application, as the server hands it to a deploy.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// Moves the application onto the release in `path`: `run` handlers and workflow
    /// steps start there from now on; the services roll onto it one instance at a time,
    /// each ready before its old one stops. `Err`: which service did not come up.
    async fn switch(&self, path: &Path) -> Result<(), String>;

    /// The services' instances now.
    fn instances(&self) -> Vec<InstanceHealth>;

    /// Whether berth runs the application now (else the switch only moves `current`,
    /// and the health gate waits for `berth up`).
    fn runs(&self) -> bool;

    /// Takes a backup (the store, the application's databases, included directories):
    /// its archive id and path.
    async fn backup(&self, subject: &str) -> Result<(String, PathBuf), String>;

    /// Puts the application's databases back from the archive `id`: what was restored.
    async fn restore_databases(&self, id: &str) -> Result<String, String>;

    /// Whether a process still runs in the release at `path` (a job started before
    /// the switch): its directory is not removed.
    fn in_use(&self, path: &Path) -> bool;

    /// Records an event (`deploy.started`, …) for the notification channels.
    async fn event(&self, kind: &str, subject: &str, message: String);
}

/// A duration as people write it: `1.2s`, `4m 10s`.
pub fn humanize(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = d.as_secs();
    if whole < 3600 {
        return format!("{}m {}s", whole / 60, whole % 60);
    }
    format!("{}h {}m", whole / 3600, whole % 3600 / 60)
}
