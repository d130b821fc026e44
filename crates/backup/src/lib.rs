//! berth's backups: a consistent snapshot of the store (SQLite's backup API, or
//! `pg_dump`) and the directories the config includes, in one zstd-compressed tar
//! archive with a manifest of SHA-256 checksums; retention by daily, weekly, monthly and
//! yearly tiers; verification; restore that keeps the replaced data aside until it
//! succeeded.
//!
//! # An archive
//! `berth-YYYYMMDDTHHMMSSZ.tar.zst` in the backup dir (the id is the UTC time it was
//! made). Inside, in order: `store/berth.db` (or `store/berth.pgdump`), `files/N/…` for
//! the N-th included directory, and last `manifest.json`: what the archive holds, each
//! entry with its size and SHA-256. It is written as `.berth-ID.tar.zst.partial`,
//! synced, and renamed into place: a crash leaves no half archive under an archive's
//! name. zstd's frame checksum is on, so a flipped byte is found even before the
//! manifest is read.
//!
//! # Layout
//! - `lib.rs`: specs, ids, listing.
//! - `archive.rs`: writing and reading archives (save, verify, extract).
//! - `retention.rs`: which archives the tiers keep.
//! - `restore.rs`: putting an archive's contents in place of the current data.
//! - `settings.rs`: the operational settings (maintenance mode, paused queues and
//!   schedules) a restore keeps as they were.

mod archive;
mod error;
mod restore;
mod retention;
mod settings;

use std::path::{Path, PathBuf};

use berth_store::Timestamp;
use serde::{Deserialize, Serialize};

pub use archive::{
    ArchivedDatabase, EntryKind, Manifest, ManifestEntry, PARTS, Parts, parts, recorded, save,
    verify,
};
pub use error::BackupError;
pub use restore::{
    RESTORE_MARKER, RestorePlan, RestoreReport, RestoreTarget, restore, restore_databases_only,
};
pub use retention::{Keep, plan, prune};
pub use settings::InForce;

/// What a backup holds and where it goes.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    /// The backup dir.
    pub dir: PathBuf,
    /// The project dir: included directories are recorded relative to it.
    pub base: PathBuf,
    /// Directories archived with the store.
    pub include: Vec<PathBuf>,
    /// The application's name, recorded in the manifest.
    pub app: String,
    /// The application's own databases, archived beside the store.
    pub databases: Vec<DatabaseSpec>,
    /// A SQLite database file that does not exist is archived as an empty database
    /// (a deploy's backup before the first migration, which creates the file), not
    /// refused. Off for other backups, where a missing file is a wrong path.
    pub missing_sqlite_is_empty: bool,
}

/// One application database a backup takes (`[backup.database.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSpec {
    /// Its name; the archive holds it as `databases/NAME.EXT`.
    pub name: String,
    /// Where it is.
    pub source: DatabaseSource,
}

/// Where an application database is, with what reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// A PostgreSQL database: its URL, and the password if it needs one.
    Postgres {
        /// `postgres://USER@HOST:PORT/DATABASE`.
        url: String,
        /// Read from the environment.
        password: Option<String>,
    },
    /// A MySQL or MariaDB database.
    Mysql(berth_store::external::Mysql),
    /// A SQLite file.
    Sqlite {
        /// The file.
        path: PathBuf,
    },
}

impl DatabaseSource {
    /// How it is archived.
    pub fn format(&self) -> DatabaseFormat {
        match self {
            DatabaseSource::Postgres { .. } => DatabaseFormat::PgDump,
            DatabaseSource::Mysql(_) => DatabaseFormat::MysqlDump,
            DatabaseSource::Sqlite { .. } => DatabaseFormat::Sqlite,
        }
    }
}

/// How an application database is held in an archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseFormat {
    /// `pg_dump --format=custom`.
    PgDump,
    /// `mysqldump` (SQL).
    MysqlDump,
    /// A SQLite database file.
    Sqlite,
}

impl DatabaseFormat {
    /// The entry's name in an archive for database `name`.
    pub fn entry(self, name: &str) -> String {
        let ext = match self {
            DatabaseFormat::PgDump => "pgdump",
            DatabaseFormat::MysqlDump => "sql",
            DatabaseFormat::Sqlite => "sqlite",
        };
        format!("databases/{name}.{ext}")
    }

    /// In words, for listings.
    pub fn describe(self) -> &'static str {
        match self {
            DatabaseFormat::PgDump => "PostgreSQL",
            DatabaseFormat::MysqlDump => "MySQL",
            DatabaseFormat::Sqlite => "SQLite",
        }
    }
}

/// How far a long step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The step.
    pub phase: Phase,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all (0 while unknown).
    pub total: u64,
}

/// The steps that report progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Copying the store.
    Snapshot,
    /// Writing the archive.
    Archive,
    /// Reading an archive to check it.
    Verify,
    /// Unpacking an archive to restore it.
    Extract,
}

/// Receives progress reports.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// Receives progress reports from a blocking thread (saves and restores run their file
/// work with `spawn_blocking`: never `block_in_place`, which would retire a runtime
/// worker and, with it, the `PR_SET_PDEATHSIG` of the processes it forked).
pub type Reporter = std::sync::Arc<dyn Fn(Progress) + Send + Sync>;

/// An archive in the backup dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveInfo {
    /// Its id: the UTC time it was made, `YYYYMMDDTHHMMSSZ` (with `-N` if several were
    /// made in one second).
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// When it was made (from the id).
    pub created: Timestamp,
    /// Its size in bytes.
    pub size: u64,
}

const PREFIX: &str = "berth-";
const SUFFIX: &str = ".tar.zst";

/// The file name of archive `id`.
pub fn file_name(id: &str) -> String {
    format!("{PREFIX}{id}{SUFFIX}")
}

/// The id of an archive made at `t` (to the second, UTC).
pub fn id_at(t: Timestamp) -> String {
    let ts = jiff::Timestamp::from_microsecond(t.0).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// When the archive of `id` was made, if `id` is an archive id.
pub fn time_of(id: &str) -> Option<Timestamp> {
    let base = id.split_once('-').map_or(id, |(b, _)| b);
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", base.strip_suffix('Z')?).ok()?;
    let ts = civil.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(Timestamp(ts.as_microsecond()))
}

/// The archives in `dir`, oldest first. Partial files, and anything not named like an
/// archive, are left out; a missing dir has none.
pub fn list(dir: &Path) -> Result<Vec<ArchiveInfo>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BackupError::io(format!("cannot list {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| BackupError::io(format!("cannot list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(id) = name
            .strip_prefix(PREFIX)
            .and_then(|n| n.strip_suffix(SUFFIX))
        else {
            continue;
        };
        let Some(created) = time_of(id) else { continue };
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        out.push(ArchiveInfo {
            id: id.to_owned(),
            path: entry.path(),
            created,
            size,
        });
    }
    out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    Ok(out)
}

/// The archive named by `id` in `dir`, or the archive file `id` names as a path.
pub fn find(dir: &Path, id: &str) -> Result<ArchiveInfo, BackupError> {
    let as_path = Path::new(id);
    if id.contains('/') || id.ends_with(SUFFIX) {
        let meta = std::fs::metadata(as_path)
            .map_err(|e| BackupError::io(format!("cannot read {}", as_path.display()), e))?;
        let stem = as_path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .unwrap_or("");
        return Ok(ArchiveInfo {
            id: stem.to_owned(),
            path: as_path.to_path_buf(),
            created: time_of(stem).unwrap_or(Timestamp(0)),
            size: meta.len(),
        });
    }
    list(dir)?.into_iter().find(|a| a.id == id).ok_or_else(|| {
        BackupError::NotFound(format!(
            "no backup {id} in {}; `berth backup list` shows them",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_utc_times_and_read_back() {
        let t: Timestamp = "2026-12-05T03:00:07.250Z".parse().unwrap();
        assert_eq!(id_at(t), "20261205T030007Z");
        assert_eq!(
            time_of("20261205T030007Z"),
            Some("2026-12-05T03:00:07Z".parse().unwrap())
        );
        assert_eq!(
            time_of("20261205T030007Z-2"),
            Some("2026-12-05T03:00:07Z".parse().unwrap())
        );
        assert_eq!(time_of("yesterday"), None);
    }

    #[test]
    fn only_archives_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "berth-20261205T030000Z.tar.zst",
            "berth-20261204T030000Z.tar.zst",
            "berth-20261204T030000Z-2.tar.zst",
            ".berth-20261206T030000Z.tar.zst.partial",
            "notes.txt",
            "berth-garbage.tar.zst",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let ids: Vec<String> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(
            ids,
            ["20261204T030000Z", "20261204T030000Z-2", "20261205T030000Z"]
        );
        assert!(find(dir.path(), "20261205T030000Z").is_ok());
        assert!(matches!(
            find(dir.path(), "20261207T030000Z"),
            Err(BackupError::NotFound(_))
        ));
    }
}
