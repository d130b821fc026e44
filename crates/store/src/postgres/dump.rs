//! Snapshots and restores of a PostgreSQL store with `pg_dump` and `pg_restore`.
//!
//! The connection settings go to the tools in their environment (`PGHOST`, `PGPASSWORD`,
//! …), never on the command line, where any user of the machine could read the password.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;
use tokio_postgres::config::Host;

use super::Dsn;
use crate::error::{Result, StoreError};

/// The environment that points libpq's tools at the database of `dsn`, with its TLS
/// settings (libpq reads `sslmode` and `sslrootcert` as berth does).
pub(crate) fn env(dsn: &Dsn) -> Vec<(&'static str, String)> {
    let config = &dsn.config;
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
    env.push(("PGSSLMODE", dsn.tls.mode.name().to_owned()));
    if let Some(root_cert) = &dsn.tls.root_cert {
        env.push(("PGSSLROOTCERT", root_cert.display().to_string()));
    }
    env
}

/// Runs a tool to its end (killed if the caller gives up); its standard output.
pub(crate) async fn run(tool: &str, args: &[&std::ffi::OsStr], dsn: &Dsn) -> Result<Vec<u8>> {
    let out = Command::new(tool)
        .args(args)
        .envs(env(dsn))
        .stdin(Stdio::null())
        .kill_on_drop(true)
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
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(StoreError::Snapshot(format!(
        "`{tool}` failed ({}): {}",
        out.status,
        stderr.trim()
    )))
}

/// `pg_dump --format=custom` of berth's tables (`berth_*`, with their sequences) into
/// `dest`: the application's own tables in the same database are not berth's to copy,
/// nor to replace on restore.
pub(crate) async fn snapshot(dsn: &Dsn, dest: &Path) -> Result<()> {
    run(
        "pg_dump",
        &[
            "--format=custom".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            "--table=berth_*".as_ref(),
            "--file".as_ref(),
            dest.as_os_str(),
        ],
        dsn,
    )
    .await
    .map(drop)
}

/// Restores a `pg_dump --format=custom` archive into the database of `url`, replacing
/// every object the archive holds (`--clean --if-exists`), in one transaction: a failed
/// restore changes nothing.
pub async fn restore(url: &str, dump: &Path) -> Result<()> {
    let dsn = super::parse_url(url)?;
    // berth's tables the archive does not hold were made by a later migration: they go,
    // so that the schema is the archive's and the next start migrates it again.
    let listing = run("pg_restore", &["--list".as_ref(), dump.as_os_str()], &dsn).await?;
    let held = archived_tables(&String::from_utf8_lossy(&listing));
    let (client, conn) = dsn
        .connect()
        .await
        .map_err(|e| StoreError::db("connecting for a restore", e))?;
    let conn = tokio::spawn(conn);
    let present = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename LIKE 'berth\\_%'",
            &[],
        )
        .await
        .map_err(|e| StoreError::db("listing berth's tables", e))?;
    for row in present {
        let table: String = row.get(0);
        if !held.contains(&table) {
            client
                .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\" CASCADE"))
                .await
                .map_err(|e| StoreError::db("dropping a table the archive does not hold", e))?;
        }
    }
    // The kept counts' triggers (migration 14) call functions `pg_dump --table` does not
    // hold: they are made here, so that the archive's triggers can be created on a fresh
    // database too.
    client
        .batch_execute(super::migrations::COUNT_FUNCTIONS)
        .await
        .map_err(|e| StoreError::db("creating the kept counts' functions", e))?;
    drop(client);
    let _ = conn.await;
    run(
        "pg_restore",
        &[
            "--clean".as_ref(),
            "--if-exists".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            "--single-transaction".as_ref(),
            "--exit-on-error".as_ref(),
            "--dbname".as_ref(),
            dsn.config.get_dbname().unwrap_or("postgres").as_ref(),
            dump.as_os_str(),
        ],
        &dsn,
    )
    .await
    .map(drop)
}

/// The tables a `pg_restore --list` shows, by name.
fn archived_tables(listing: &str) -> Vec<String> {
    crate::external::listed_tables(listing)
        .into_iter()
        .map(|(_, table)| table)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_are_read_from_a_listing() {
        let listing = ";\n; Archive created at 2026-12-05\n\
            215; 1259 16390 TABLE public berth_jobs postgres\n\
            216; 1259 16391 SEQUENCE public berth_jobs_id_seq postgres\n\
            3350; 0 16390 TABLE DATA public berth_jobs postgres\n";
        assert_eq!(super::archived_tables(listing), ["berth_jobs"]);
    }
}
