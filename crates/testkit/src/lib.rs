//! Test fixtures for berth's crates (dev-only).
//!
//! # Layout
//! - [`Project`]: a temp dir with a `berth.toml`, its config and data dir;
//! - [`sink`]: a real HTTP server that records what berth POSTs to it;
//! - [`daemon`]: the real daemon started in-process on the project;
//! - [`pg`]: a throwaway PostgreSQL cluster of the test's own, or one [`pg::shared`] by a
//!   test binary;
//! - [`wait_until`]: waiting on a condition instead of sleeping a fixed time.

pub mod mariadb;
pub mod pg;
pub mod sink;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_config::Config;
pub use berth_server::{Daemon, Options};

/// A temporary project: a directory with a `berth.toml`.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A project whose berth.toml is `config_text`.
    pub fn new(config_text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("berth.toml"), config_text).expect("write berth.toml");
        Self { dir }
    }

    /// The project directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("berth.toml")
    }

    /// Replaces berth.toml.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write berth.toml");
    }

    /// The validated config (panics with the diagnostics if invalid).
    pub fn config(&self) -> Config {
        berth_config::load(&self.config_path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.config().app.data_dir
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join(berth_server::DB_FILE)
    }

    /// A client of the daemon's unix socket.
    pub fn client(&self) -> berth_api::client::Client {
        berth_api::client::Client::unix(&berth_server::socket_path(&self.config()))
    }

    /// A client of the daemon of the project in `dir` (its berth.toml).
    pub fn client_for(dir: &Path) -> berth_api::client::Client {
        let config = berth_config::load(&dir.join("berth.toml")).unwrap_or_else(|e| panic!("{e}"));
        berth_api::client::Client::unix(&berth_server::socket_path(&config))
    }
}

/// Starts the real daemon in-process on `project`.
pub async fn daemon(project: &Project, options: Options) -> Daemon {
    Daemon::start(&project.config(), options)
        .await
        .unwrap_or_else(|e| panic!("daemon failed to start: {e:#}"))
}

/// Polls `check` every few milliseconds until it returns `Some`, or panics after `limit`
/// with `what`. For conditions the code under test does not signal.
pub async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A config with one app and the given extra TOML.
pub fn config_text(extra: &str) -> String {
    format!("[app]\nname = \"test\"\nshutdown_grace = \"2s\"\n\n{extra}\n")
}

/// The first of `count` consecutive TCP ports that were all free on 0.0.0.0 a moment
/// ago, chosen below the kernel's ephemeral range (32768 and up) so that the outgoing
/// connections of other tests cannot take one of them between the check and the use.
pub fn free_port_run(count: u16) -> u16 {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU16, Ordering};
    // Spread concurrent test processes apart by process id, hashed: nextest runs each
    // test in its own process, and processes started together have neighbouring ids,
    // whose runs would overlap. Step within one process.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = 12_000 - count;
    let seed = (std::process::id().wrapping_mul(2_654_435_761) % u32::from(span)) as u16;
    for _ in 0..200 {
        let offset = NEXT.fetch_add(count + 7, Ordering::Relaxed);
        let first = 20_000 + (seed.wrapping_add(offset)) % span;
        let all_free =
            (first..first + count).all(|port| TcpListener::bind(("0.0.0.0", port)).is_ok());
        if all_free {
            return first;
        }
    }
    panic!("no run of {count} free ports found between 20000 and 32000");
}
