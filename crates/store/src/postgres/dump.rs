//! Snapshots and restores of a PostgreSQL store with `pg_dump` and `pg_restore`.
//!
//! The connection settings go to the tools in their environment (`PGHOST`, `PGPASSWORD`,
//! …), never on the command line, where any user of the machine could read the password.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;
use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::error::{Result, StoreError};

/// The environment that points libpq's tools at the database of `config`.
fn env(config: &Config) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some(host) = config.get_hosts().first() {
        env.push((
            "PGHOST",
            match host {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            },
        ));
    }
    if let Some(port) = config.get_ports().first() {
        env.push(("PGPORT", port.to_string()));
    }
    if let Some(user) = config.get_user() {
        env.push(("PGUSER", user.to_owned()));
    }
    if let Some(password) = config.get_password() {
        env.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
    }
    if let Some(db) = config.get_dbname() {
        env.push(("PGDATABASE", db.to_owned()));
    }
    env
}

async fn run(tool: &str, args: &[&std::ffi::OsStr], config: &Config) -> Result<()> {
    let out = Command::new(tool)
        .args(args)
        .envs(env(config))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| {
            StoreError::Snapshot(if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "`{tool}` was not found on the PATH; install PostgreSQL's client tools \
                     (Debian: apt-get install postgresql-client) in the version of the server"
                )
            } else {
                format!("cannot run `{tool}`: {e}")
            })
        })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(StoreError::Snapshot(format!(
        "`{tool}` failed ({}): {}",
        out.status,
        stderr.trim()
    )))
}

/// `pg_dump --format=custom` of the whole database into `dest`.
pub(crate) async fn snapshot(config: &Config, dest: &Path) -> Result<()> {
    run(
        "pg_dump",
        &[
            "--format=custom".as_ref(),
            "--no-owner".as_ref(),
            "--file".as_ref(),
            dest.as_os_str(),
        ],
        config,
    )
    .await
}

/// Restores a `pg_dump --format=custom` archive into the database of `url`, replacing
/// every object the archive holds (`--clean --if-exists`), in one transaction: a failed
/// restore changes nothing.
pub async fn restore(url: &str, dump: &Path) -> Result<()> {
    let config = super::parse_url(url)?;
    run(
        "pg_restore",
        &[
            "--clean".as_ref(),
            "--if-exists".as_ref(),
            "--no-owner".as_ref(),
            "--single-transaction".as_ref(),
            "--exit-on-error".as_ref(),
            "--dbname".as_ref(),
            config.get_dbname().unwrap_or("postgres").as_ref(),
            dump.as_os_str(),
        ],
        &config,
    )
    .await
}
