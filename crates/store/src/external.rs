//! The application's own databases, which a backup archives beside berth's store: a
//! PostgreSQL database (`pg_dump`, and a restore through `psql` in one transaction), a
//! MySQL or MariaDB database (`mysqldump`, `mysql`), a SQLite file (the online backup
//! API). Passwords go to the tools in their environment, never on a command line where
//! any user of the machine could read them.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::error::{Result, StoreError};

/// Dumps a whole PostgreSQL database (`pg_dump --format=custom`, no owners or
/// privileges) into `dest`.
pub async fn pg_dump(url: &str, password: Option<&str>, dest: &Path) -> Result<()> {
    let config = pg_config(url, password)?;
    crate::postgres::dump::run(
        "pg_dump",
        &[
            "--format=custom".as_ref(),
            "--no-owner".as_ref(),
            "--no-privileges".as_ref(),
            "--file".as_ref(),
            dest.as_os_str(),
        ],
        &config,
    )
    .await
    .map(drop)
}

/// Puts a `pg_dump --format=custom` archive back in place of the database's tables, in
/// one transaction: the tables of the archive's schemas that the archive does not hold
/// (made by a later migration) are dropped, every object it holds is dropped and made
/// again with its rows. A failure changes nothing.
pub async fn pg_restore(url: &str, password: Option<&str>, dump: &Path) -> Result<()> {
    let config = pg_config(url, password)?;
    let listing = crate::postgres::dump::run(
        "pg_restore",
        &["--list".as_ref(), dump.as_os_str()],
        &config,
    )
    .await?;
    let held = listed_tables(&String::from_utf8_lossy(&listing));
    let mut schemas: Vec<&str> = held.iter().map(|(s, _)| s.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    let (client, conn) = config
        .connect()
        .await
        .map_err(|e| StoreError::db("connecting to the application's database", e))?;
    let conn = tokio::spawn(conn);
    let present = client
        .query(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1)",
            &[&schemas],
        )
        .await
        .map_err(|e| StoreError::db("listing the application's tables", e))?;
    drop(client);
    let _ = conn.await;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut script = String::new();
    for row in present {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        if !held.iter().any(|(s, t)| *s == schema && *t == table) {
            script.push_str(&format!(
                "DROP TABLE IF EXISTS {}.{} CASCADE;\n",
                quote(&schema),
                quote(&table)
            ));
        }
    }
    // pg_restore writes the archive as SQL, streamed into psql, which runs it (after the
    // drops) in one transaction.
    let env = crate::postgres::dump::env(&config);
    let mut sql = Command::new("pg_restore")
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--file=-",
        ])
        .arg(dump)
        .envs(env.clone())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| not_run("pg_restore", e, PG_CLIENTS))?;
    let stdout = sql.stdout.take().expect("piped");
    let fed = feed(
        "psql",
        &[
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            "--file=-",
        ],
        env,
        script.as_bytes(),
        stdout,
        PG_CLIENTS,
    )
    .await;
    let made = sql
        .wait_with_output()
        .await
        .map_err(|e| StoreError::Snapshot(format!("cannot run `pg_restore`: {e}")))?;
    // psql's error first: a pg_restore cut off by it says only that its pipe broke.
    fed?;
    finished("pg_restore", &made.status, &made.stderr)
}

const PG_CLIENTS: &str = "PostgreSQL's client tools (Debian: apt-get install postgresql-client)";

fn pg_config(url: &str, password: Option<&str>) -> Result<crate::postgres::Dsn> {
    let mut dsn = crate::postgres::parse_url(url)?;
    if let Some(p) = password {
        dsn.config.password(p);
    }
    Ok(dsn)
}

/// `(schema, table)` of every table a `pg_restore --list` shows
/// (`ID; OID OID TABLE SCHEMA NAME OWNER`; `TABLE DATA …`, the rows, is left out).
pub(crate) fn listed_tables(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "TABLE")?;
            if words.get(at + 1) == Some(&"DATA") {
                return None;
            }
            Some((
                (*words.get(at + 1)?).to_owned(),
                (*words.get(at + 2)?).to_owned(),
            ))
        })
        .collect()
}

/// How to reach a MySQL or MariaDB database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mysql {
    /// The host; `localhost` means the server's local socket.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The user.
    pub user: String,
    /// The database.
    pub database: String,
    /// The password, if it needs one.
    pub password: Option<String>,
}

impl Mysql {
    fn args(&self) -> Vec<String> {
        vec![
            "--no-defaults".into(),
            format!("--host={}", self.host),
            format!("--port={}", self.port),
            format!("--user={}", self.user),
        ]
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        self.password
            .iter()
            .map(|p| ("MYSQL_PWD", p.clone()))
            .collect()
    }
}

const MYSQL_CLIENTS: &str =
    "the MySQL or MariaDB client tools (Debian: apt-get install mariadb-client)";

/// Dumps a MySQL or MariaDB database (`mysqldump --single-transaction`, with its
/// routines, triggers and events) into `dest`.
pub async fn mysql_dump(db: &Mysql, dest: &Path) -> Result<()> {
    let mut args = db.args();
    args.extend([
        "--single-transaction".into(),
        "--routines".into(),
        "--triggers".into(),
        "--events".into(),
        "--add-drop-table".into(),
        format!("--result-file={}", dest.display()),
        db.database.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    output("mysqldump", &args, db.env(), MYSQL_CLIENTS)
        .await
        .map(drop)
}

/// Puts a `mysqldump` back: the tables the dump does not hold (made by a later
/// migration) are dropped, then the dump runs (each of its tables dropped and made again
/// with its rows). MySQL commits each table change on its own, so a failure half-way
/// leaves the tables done so far.
pub async fn mysql_restore(db: &Mysql, dump: &Path) -> Result<()> {
    let held = dumped_tables(dump)?;
    let mut args = db.args();
    args.extend([
        "--batch".into(),
        "--skip-column-names".into(),
        "--execute=SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            .into(),
        db.database.clone(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let present = output("mysql", &args, db.env(), MYSQL_CLIENTS).await?;
    let mut input = String::from("SET FOREIGN_KEY_CHECKS=0;\n");
    for table in String::from_utf8_lossy(&present).lines() {
        if !table.is_empty() && !held.iter().any(|h| h == table) {
            input.push_str(&format!(
                "DROP TABLE IF EXISTS `{}`;\n",
                table.replace('`', "``")
            ));
        }
    }
    let file = tokio::fs::File::open(dump)
        .await
        .map_err(|e| StoreError::Snapshot(format!("cannot read {}: {e}", dump.display())))?;
    let mut args = db.args();
    args.push(db.database.clone());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    feed(
        "mysql",
        &args,
        db.env(),
        input.as_bytes(),
        file,
        MYSQL_CLIENTS,
    )
    .await
}

/// The tables a `mysqldump` file makes (`CREATE TABLE \`NAME\``), read line by line.
fn dumped_tables(dump: &Path) -> Result<Vec<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open(dump)
        .map_err(|e| StoreError::Snapshot(format!("cannot read {}: {e}", dump.display())))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line =
            line.map_err(|e| StoreError::Snapshot(format!("cannot read {}: {e}", dump.display())))?;
        if let Some(rest) = line.strip_prefix(b"CREATE TABLE `".as_slice())
            && let Some(end) = name_end(rest)
        {
            out.push(String::from_utf8_lossy(&rest[..end]).replace("``", "`"));
        }
    }
    Ok(out)
}

/// Where a backquoted name ends (a doubled backquote is part of it).
fn name_end(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < rest.len() {
        if rest[i] == b'`' {
            if rest.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Copies a SQLite database file into `dest`, consistently while the application writes
/// to it (one read transaction of SQLite's online backup).
pub fn sqlite_copy(src: &Path, dest: &Path) -> Result<()> {
    if !src.is_file() {
        return Err(StoreError::Snapshot(format!(
            "the database file {} does not exist",
            src.display()
        )));
    }
    let conn = rusqlite::Connection::open_with_flags(
        src,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::Snapshot(format!("cannot open {}: {e}", src.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| StoreError::Snapshot(format!("cannot open {}: {e}", src.display())))?;
    crate::sqlite::snapshot::write(&conn, dest)
}

/// Writes an empty SQLite database to `dest`: the copy of one that does not exist yet.
pub fn sqlite_empty(dest: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open_in_memory()
        .map_err(|e| StoreError::Snapshot(format!("cannot open an empty database: {e}")))?;
    crate::sqlite::snapshot::write(&conn, dest)
}

/// Runs a tool to its end; its standard output, or an error with what it said.
async fn output(
    tool: &str,
    args: &[&str],
    env: Vec<(&'static str, String)>,
    install: &str,
) -> Result<Vec<u8>> {
    let out = Command::new(tool)
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| not_run(tool, e, install))?;
    finished(tool, &out.status, &out.stderr)?;
    Ok(out.stdout)
}

/// Runs a tool with `first`, then all of `rest`, on its standard input.
async fn feed(
    tool: &str,
    args: &[&str],
    env: Vec<(&'static str, String)>,
    first: &[u8],
    mut rest: impl tokio::io::AsyncRead + Unpin,
    install: &str,
) -> Result<()> {
    let mut child = Command::new(tool)
        .args(args)
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| not_run(tool, e, install))?;
    let mut stdin = child.stdin.take().expect("piped");
    // Owns the pipe: it closes when the input is written, which is the tool's end of
    // input (a pipe's `shutdown` only flushes).
    let write = async move {
        stdin.write_all(first).await?;
        tokio::io::copy(&mut rest, &mut stdin).await?;
        stdin.flush().await
    };
    let (written, out) = tokio::join!(write, child.wait_with_output());
    let out = out.map_err(|e| StoreError::Snapshot(format!("cannot run `{tool}`: {e}")))?;
    finished(tool, &out.status, &out.stderr)?;
    written.map_err(|e| StoreError::Snapshot(format!("cannot feed `{tool}`: {e}")))
}

fn not_run(tool: &str, e: std::io::Error, install: &str) -> StoreError {
    StoreError::Snapshot(if e.kind() == std::io::ErrorKind::NotFound {
        format!("`{tool}` was not found on the PATH; install {install}")
    } else {
        format!("cannot run `{tool}`: {e}")
    })
}

fn finished(tool: &str, status: &std::process::ExitStatus, stderr: &[u8]) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    Err(StoreError::Snapshot(format!(
        "`{tool}` failed ({status}): {}",
        String::from_utf8_lossy(stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_are_read_from_a_listing_and_a_dump() {
        let listing = ";\n215; 1259 16390 TABLE public orders app\n\
            216; 1259 16391 SEQUENCE public orders_id_seq app\n\
            3350; 0 16390 TABLE DATA public orders app\n\
            217; 1259 16395 TABLE shop items app\n";
        assert_eq!(
            super::listed_tables(listing),
            [
                ("public".to_owned(), "orders".to_owned()),
                ("shop".to_owned(), "items".to_owned())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("dump.sql");
        std::fs::write(
            &dump,
            "DROP TABLE IF EXISTS `courses`;\nCREATE TABLE `courses` (\n  `id` int\n);\n\
             CREATE TABLE `odd``name` (x int);\n",
        )
        .unwrap();
        assert_eq!(
            super::dumped_tables(&dump).unwrap(),
            ["courses", "odd`name"]
        );
    }
}
