//! Restoring an archive: checked first, unpacked beside the data it replaces, swapped in
//! by renames; the replaced data is moved aside and put back if anything fails.
//!
//! berth must not be running (the caller holds the data dir's lock).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_store::{PostgresOptions, PostgresStore, SnapshotFormat, Store};

use crate::archive::{Manifest, ManifestEntry, Unpack};
use crate::{BackupError, Phase, Reporter};

/// The file in the data dir that says a restore is under way (or died under way).
pub const RESTORE_MARKER: &str = "restore-in-progress";

/// What is restored into.
#[derive(Debug, Clone)]
pub enum RestoreTarget {
    /// The embedded store: the database file in the data dir.
    Sqlite {
        /// The data dir.
        data_dir: PathBuf,
        /// The database file's name in it.
        db_file: String,
    },
    /// A PostgreSQL database (its data dir holds the staging and the copy set aside).
    Postgres {
        /// The data dir.
        data_dir: PathBuf,
        /// The database.
        url: String,
    },
}

impl RestoreTarget {
    fn data_dir(&self) -> &Path {
        match self {
            RestoreTarget::Sqlite { data_dir, .. } | RestoreTarget::Postgres { data_dir, .. } => {
                data_dir
            }
        }
    }

    fn format(&self) -> SnapshotFormat {
        match self {
            RestoreTarget::Sqlite { .. } => SnapshotFormat::Sqlite,
            RestoreTarget::Postgres { .. } => SnapshotFormat::PgDump,
        }
    }
}

/// A restore to make.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    /// The archive.
    pub archive: PathBuf,
    /// The store to replace.
    pub target: RestoreTarget,
    /// The project dir: included directories are restored relative to it.
    pub base: PathBuf,
    /// Keep the replaced data (else it is removed once the restore succeeded).
    pub keep_replaced: bool,
    /// Names the staging and aside paths (`replaced-STAMP`); a time, say.
    pub stamp: String,
    /// The included directories of the current config, recorded as an archive records
    /// them: an archive's directories must be among them (an archive from elsewhere
    /// cannot write where the config does not say).
    pub includes: Vec<String>,
    /// The manifest of a [`crate::verify`] the caller already made of the archive (so it
    /// is not read twice before unpacking); unpacking checks every entry again.
    pub verified: Option<Manifest>,
    /// The application databases of the current config: an archive's databases must be
    /// among them (by name and kind), and are restored into them.
    pub databases: Vec<crate::DatabaseSpec>,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The archive's manifest.
    pub manifest: Manifest,
    /// The directories restored.
    pub dirs: Vec<PathBuf>,
    /// Where the replaced data was kept (empty unless asked to keep it).
    pub kept_aside: Vec<PathBuf>,
}

/// Where an archive's entries are unpacked.
struct Staging {
    store: PathBuf,
    store_entry: &'static str,
    /// Each archived database's entry and where it is unpacked.
    databases: Vec<(String, PathBuf)>,
    dirs: Vec<PathBuf>,
    /// Directories' modes, applied once everything is in place (deepest first), so that
    /// a read-only directory does not keep its own contents from being written: the
    /// included directory's index, the path below it, the mode.
    modes: Vec<(usize, String, u32)>,
}

impl Staging {
    fn place(&self, name: &str) -> Result<PathBuf, BackupError> {
        if name == self.store_entry {
            return Ok(self.store.clone());
        }
        if let Some((_, path)) = self.databases.iter().find(|(e, _)| e == name) {
            return Ok(path.clone());
        }
        let rest = name.strip_prefix("files/").ok_or_else(|| {
            BackupError::Refused(format!(
                "the archive holds {name}, which berth does not restore"
            ))
        })?;
        let (index, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let dir = index
            .parse::<usize>()
            .ok()
            .and_then(|i| self.dirs.get(i))
            .ok_or_else(|| {
                BackupError::Refused(format!(
                    "the archive holds {name}, for no included directory"
                ))
            })?;
        Ok(if sub.is_empty() {
            dir.clone()
        } else {
            dir.join(sub)
        })
    }
}

fn io_at(what: &str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let what = format!("{what} {}", path.display());
    move |e| BackupError::io(what, e)
}

impl Unpack for Staging {
    fn file(&mut self, entry: &ManifestEntry, data: &mut dyn Read) -> Result<(), BackupError> {
        use std::os::unix::fs::OpenOptionsExt;
        if entry.path == crate::archive::PARTS {
            // Only for listings; the manifest says the same.
            return io::copy(data, &mut io::sink())
                .map(drop)
                .map_err(|e| BackupError::io("cannot read the archive", e));
        }
        let path = self.place(&entry.path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_at("cannot create", parent))?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.mode & 0o7777)
            .open(&path)
            .map_err(io_at("cannot create", &path))?;
        io::copy(data, &mut file).map_err(io_at("cannot write", &path))?;
        file.flush().map_err(io_at("cannot write", &path))?;
        file.sync_all().map_err(io_at("cannot sync", &path))
    }

    fn dir(&mut self, entry: &ManifestEntry) -> Result<(), BackupError> {
        let path = self.place(&entry.path)?;
        std::fs::create_dir_all(&path).map_err(io_at("cannot create", &path))?;
        if let Some(rest) = entry.path.strip_prefix("files/") {
            let (index, sub) = rest.split_once('/').unwrap_or((rest, ""));
            if let Ok(i) = index.parse() {
                self.modes.push((i, sub.to_owned(), entry.mode & 0o7777));
            }
        }
        Ok(())
    }

    fn symlink(&mut self, entry: &ManifestEntry) -> Result<(), BackupError> {
        let path = self.place(&entry.path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_at("cannot create", parent))?;
        }
        let target = entry.target.clone().unwrap_or_default();
        std::os::unix::fs::symlink(&target, &path).map_err(io_at("cannot create the link", &path))
    }
}

/// Renames done so far, undone in reverse if a later step fails.
#[derive(Default)]
struct Moves(Vec<(PathBuf, PathBuf)>);

impl Moves {
    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), BackupError> {
        std::fs::rename(from, to).map_err(|e| {
            BackupError::io(
                format!("cannot move {} to {}", from.display(), to.display()),
                e,
            )
        })?;
        self.0.push((from.to_path_buf(), to.to_path_buf()));
        Ok(())
    }

    /// Moves everything back; says what could not be.
    fn undo(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        while let Some((from, to)) = self.0.pop() {
            if let Err(e) = std::fs::rename(&to, &from) {
                tracing::error!(from = %to.display(), to = %from.display(), error = %e, "cannot move back; do it by hand");
                failed.push(format!(
                    "{} (still at {}: {e})",
                    from.display(),
                    to.display()
                ));
            }
        }
        failed
    }
}

fn remove(path: &Path) {
    let result = if path.is_dir() && !path.is_symlink() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if let Err(e) = result
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
    }
}

/// Restores `plan.archive`: checks it whole first (nothing is touched if it is damaged),
/// unpacks it beside the data it replaces, then swaps it in. See the module docs.
pub async fn restore(plan: &RestorePlan, progress: Reporter) -> Result<RestoreReport, BackupError> {
    let manifest = match &plan.verified {
        Some(m) => m.clone(),
        None => {
            let (archive, report) = (plan.archive.clone(), progress.clone());
            blocking(move || crate::verify(&archive, &*report)).await?
        }
    };
    if manifest.store != plan.target.format() {
        let what = |f: SnapshotFormat| match f {
            SnapshotFormat::Sqlite => "the embedded SQLite store",
            SnapshotFormat::PgDump => "a PostgreSQL store",
        };
        return Err(BackupError::Refused(format!(
            "the archive holds {}, and this config's store is {}; restore it with a config of the same kind",
            what(manifest.store),
            what(plan.target.format())
        )));
    }
    if let Some(other) = manifest
        .includes
        .iter()
        .find(|i| !plan.includes.contains(i))
    {
        return Err(BackupError::Refused(format!(
            "the archive holds the directory {other}, which this config does not include; \
             add it to `include` in [backup] to restore it there"
        )));
    }
    // Each archived database must be one the config names, of the same kind: it is
    // restored into the config's database, never somewhere the archive says.
    let mut databases = Vec::new();
    for archived in &manifest.databases {
        let Some(db) = plan.databases.iter().find(|d| d.name == archived.name) else {
            return Err(BackupError::Refused(format!(
                "the archive holds the database `{}`, which this config does not name; add \
                 [backup.database.{}] to restore it",
                archived.name, archived.name
            )));
        };
        if db.source.format() != archived.format {
            return Err(BackupError::Refused(format!(
                "the archive holds `{}` as a {} database, and this config's \
                 [backup.database.{}] is {}; restore it with a config of the same kind",
                archived.name,
                archived.format.describe(),
                archived.name,
                db.source.format().describe()
            )));
        }
        databases.push(db.clone());
    }
    let data_dir = plan.target.data_dir();
    std::fs::create_dir_all(data_dir).map_err(io_at("cannot create", data_dir))?;
    let stamp = &plan.stamp;
    let dirs: Vec<PathBuf> = manifest
        .includes
        .iter()
        .map(|i| plan.base.join(i))
        .collect();
    let sibling = |p: &Path, what: &str| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        p.with_file_name(format!("{name}.{what}-{stamp}"))
    };
    let staging = Staging {
        store: data_dir.join(format!(".restore-{stamp}.store")),
        store_entry: manifest.store_entry(),
        databases: manifest
            .databases
            .iter()
            .map(|d| {
                (
                    d.format.entry(&d.name),
                    data_dir.join(format!(".restore-{stamp}.db-{}", d.name)),
                )
            })
            .collect(),
        dirs: dirs.iter().map(|d| sibling(d, "restoring")).collect(),
        modes: Vec::new(),
    };
    let staged: Vec<PathBuf> = std::iter::once(staging.store.clone())
        .chain(staging.dirs.iter().cloned())
        .chain(staging.databases.iter().map(|(_, p)| p.clone()))
        .collect();
    for p in &staged {
        if p.exists() {
            return Err(BackupError::Refused(format!(
                "{} is in the way (left by an earlier restore?); remove it and try again",
                p.display()
            )));
        }
    }
    let (unpacked, staging) = {
        let (archive, report) = (plan.archive.clone(), progress.clone());
        blocking(move || {
            let mut staging = staging;
            let read = crate::archive::read(&archive, Phase::Extract, &*report, &mut staging);
            Ok((read, staging))
        })
        .await?
    };
    let unpacked = unpacked.and_then(|m| {
        if m == manifest {
            Ok(())
        } else {
            Err(BackupError::Damaged {
                path: plan.archive.clone(),
                detail: "it changed since it was checked".into(),
            })
        }
    });
    if let Err(e) = unpacked {
        staged.iter().for_each(|p| remove(p));
        return Err(e);
    }
    // While the swap runs, a marker in the data dir keeps `berth up` from starting on
    // half-swapped data if this process dies.
    let marker = data_dir.join(RESTORE_MARKER);
    std::fs::write(
        &marker,
        format!(
            "a restore of {} began at {stamp}; if it did not finish, the replaced data is in \
             {}/replaced-{stamp} and beside each included directory (*.replaced-{stamp})\n",
            plan.archive.display(),
            data_dir.display()
        ),
    )
    .and_then(|()| File::open(data_dir)?.sync_all())
    .map_err(io_at("cannot write", &marker))?;
    let mut moves = Moves::default();
    let mut aside: Vec<PathBuf> = Vec::new();
    let swapped = swap(plan, &staging, &dirs, &databases, &mut moves, &mut aside).await;
    if let Err(e) = swapped {
        let stuck = moves.undo();
        staged.iter().for_each(|p| remove(p));
        if !stuck.is_empty() {
            return Err(BackupError::Refused(format!(
                "the restore failed ({e}), and these could not be moved back: {}; put them \
                 back by hand, then remove {}",
                stuck.join("; "),
                marker.display()
            )));
        }
        remove(&marker);
        return Err(e);
    }
    for (i, sub, mode) in staging.modes.iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        let path = if sub.is_empty() {
            dirs[*i].clone()
        } else {
            dirs[*i].join(sub)
        };
        if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)) {
            tracing::warn!(path = %path.display(), error = %e, "cannot set a restored directory's permissions");
        }
    }
    let _ = File::open(data_dir).and_then(|d| d.sync_all());
    remove(&staging.store);
    staging.databases.iter().for_each(|(_, p)| remove(p));
    remove(&marker);
    let kept_aside = if plan.keep_replaced {
        aside
    } else {
        aside.iter().for_each(|p| remove(p));
        Vec::new()
    };
    Ok(RestoreReport {
        manifest,
        dirs,
        kept_aside,
    })
}

async fn swap(
    plan: &RestorePlan,
    staging: &Staging,
    dirs: &[PathBuf],
    databases: &[crate::DatabaseSpec],
    moves: &mut Moves,
    aside: &mut Vec<PathBuf>,
) -> Result<(), BackupError> {
    let stamp = &plan.stamp;
    let mut pg_undo: Option<(String, PathBuf)> = None;
    match &plan.target {
        RestoreTarget::Sqlite { data_dir, db_file } => {
            let aside_dir = data_dir.join(format!("replaced-{stamp}"));
            // The WAL and shared memory first: a database never sits beside another's WAL.
            for suffix in ["-wal", "-shm", ""] {
                let f = data_dir.join(format!("{db_file}{suffix}"));
                if f.exists() {
                    if !aside_dir.exists() {
                        std::fs::create_dir(&aside_dir)
                            .map_err(io_at("cannot create", &aside_dir))?;
                        aside.push(aside_dir.clone());
                    }
                    moves.rename(&f, &aside_dir.join(format!("{db_file}{suffix}")))?;
                }
            }
            moves.rename(&staging.store, &data_dir.join(db_file))?;
        }
        RestoreTarget::Postgres { data_dir, url } => {
            // A copy of what is replaced, first: pg_restore runs in one transaction, but a
            // later step could still fail.
            let copy = data_dir.join(format!("replaced-{stamp}.pgdump"));
            let current = PostgresStore::open(url, PostgresOptions::default()).await?;
            current.snapshot(&copy).await?;
            drop(current);
            aside.push(copy.clone());
            berth_store::postgres::restore_dump(url, &staging.store).await?;
            pg_undo = Some((url.clone(), copy));
        }
    }
    let result = (|| {
        for (i, target) in dirs.iter().enumerate() {
            if target.exists() || target.is_symlink() {
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let old = target.with_file_name(format!("{name}.replaced-{stamp}"));
                moves.rename(target, &old)?;
                aside.push(old);
            } else if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io_at("cannot create", parent))?;
            }
            moves.rename(&staging.dirs[i], target)?;
        }
        Ok(())
    })();
    // The application's databases: a SQLite file is swapped like the store; a server's
    // database is copied aside, then replaced (and put back if a later step fails).
    let mut db_undo: Vec<(crate::DatabaseSpec, PathBuf)> = Vec::new();
    let result = match result {
        Ok(()) => restore_databases(plan, staging, databases, moves, aside, &mut db_undo).await,
        Err(e) => Err(e),
    };
    // The restored store must open (and migrate, if the archive is older) before the
    // replaced data may go.
    let result = match result {
        Ok(()) => opens(&plan.target).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        for (db, copy) in db_undo.iter().rev() {
            if let Err(e) = load_database(db, copy).await {
                tracing::error!(database = %db.name, copy = %copy.display(), error = %e, "cannot put the replaced database back; restore that copy by hand");
            }
        }
        if let Some((url, copy)) = pg_undo
            && let Err(e) = berth_store::postgres::restore_dump(&url, &copy).await
        {
            tracing::error!(copy = %copy.display(), error = %e, "cannot put the replaced database back; restore that copy by hand");
        }
    }
    result
}

/// Puts each archived application database in place of the configured one. `undo`
/// collects the copies of the server databases replaced so far.
async fn restore_databases(
    plan: &RestorePlan,
    staging: &Staging,
    databases: &[crate::DatabaseSpec],
    moves: &mut Moves,
    aside: &mut Vec<PathBuf>,
    undo: &mut Vec<(crate::DatabaseSpec, PathBuf)>,
) -> Result<(), BackupError> {
    use crate::DatabaseSource;
    let stamp = &plan.stamp;
    let data_dir = plan.target.data_dir();
    for db in databases {
        let entry = db.source.format().entry(&db.name);
        let Some((_, staged)) = staging.databases.iter().find(|(e, _)| *e == entry) else {
            continue;
        };
        match &db.source {
            DatabaseSource::Sqlite { path } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                // The WAL and shared memory first: a database never sits beside
                // another's WAL.
                for suffix in ["-wal", "-shm", ""] {
                    let f = path.with_file_name(format!("{name}{suffix}"));
                    if f.exists() {
                        let old = path.with_file_name(format!("{name}{suffix}.replaced-{stamp}"));
                        moves.rename(&f, &old)?;
                        aside.push(old);
                    }
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io_at("cannot create", parent))?;
                }
                moves.rename(staged, path)?;
            }
            DatabaseSource::Postgres { .. } | DatabaseSource::Mysql(_) => {
                let ext = match db.source.format() {
                    crate::DatabaseFormat::PgDump => "pgdump",
                    _ => "sql",
                };
                let copy = data_dir.join(format!("replaced-{stamp}.db-{}.{ext}", db.name));
                dump_current(db, &copy).await?;
                aside.push(copy.clone());
                load_database(db, staged).await?;
                undo.push((db.clone(), copy));
            }
        }
    }
    Ok(())
}

/// Copies a server database as it is now (before it is replaced).
async fn dump_current(db: &crate::DatabaseSpec, dest: &Path) -> Result<(), BackupError> {
    use crate::DatabaseSource;
    let done = match &db.source {
        DatabaseSource::Postgres { url, password } => {
            berth_store::external::pg_dump(url, password.as_deref(), dest).await
        }
        DatabaseSource::Mysql(m) => berth_store::external::mysql_dump(m, dest).await,
        DatabaseSource::Sqlite { .. } => Ok(()),
    };
    done.map_err(|e| {
        BackupError::Refused(format!(
            "the database `{}` cannot be copied before it is replaced: {e}",
            db.name
        ))
    })
}

/// Loads a dump into a server database, in place of what it holds.
async fn load_database(db: &crate::DatabaseSpec, dump: &Path) -> Result<(), BackupError> {
    use crate::DatabaseSource;
    let done = match &db.source {
        DatabaseSource::Postgres { url, password } => {
            berth_store::external::pg_restore(url, password.as_deref(), dump).await
        }
        DatabaseSource::Mysql(m) => berth_store::external::mysql_restore(m, dump).await,
        DatabaseSource::Sqlite { .. } => Ok(()),
    };
    done.map_err(|e| {
        BackupError::Refused(format!(
            "the database `{}` cannot be restored: {e}",
            db.name
        ))
    })
}

/// Runs file work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Refused(format!("the restore's worker failed: {e}")))?
}

/// Opens the restored store once (migrating it if the archive came from an older berth).
async fn opens(target: &RestoreTarget) -> Result<(), BackupError> {
    let opened = match target {
        RestoreTarget::Sqlite { data_dir, db_file } => {
            // Closed before this returns: its connections' last checkpoint and removal of
            // the `-wal` file must not race whatever comes next (removing the replaced
            // data, a `berth up`).
            berth_store::SqliteStore::open(&data_dir.join(db_file), Default::default())
                .map(berth_store::SqliteStore::close)
        }
        RestoreTarget::Postgres { url, .. } => PostgresStore::open(url, PostgresOptions::default())
            .await
            .map(drop),
    };
    opened.map_err(|e| {
        BackupError::Refused(format!(
            "the restored store cannot be used ({e}); the replaced data was put back"
        ))
    })
}

/// Takes only the application databases' entries out of an archive, checking the whole
/// archive as it goes; the rest is read and dropped.
struct DatabasesOnly {
    /// Each entry's name and where it is unpacked.
    wanted: Vec<(String, PathBuf)>,
}

impl Unpack for DatabasesOnly {
    fn file(&mut self, entry: &ManifestEntry, data: &mut dyn Read) -> Result<(), BackupError> {
        let Some((_, path)) = self.wanted.iter().find(|(e, _)| *e == entry.path) else {
            return io::copy(data, &mut io::sink())
                .map(drop)
                .map_err(|e| BackupError::io("cannot read the archive", e));
        };
        let mut file = std::fs::File::create(path).map_err(io_at("cannot create", path))?;
        io::copy(data, &mut file).map_err(io_at("cannot write", path))?;
        file.sync_all().map_err(io_at("cannot sync", path))
    }
    fn dir(&mut self, _: &ManifestEntry) -> Result<(), BackupError> {
        Ok(())
    }
    fn symlink(&mut self, _: &ManifestEntry) -> Result<(), BackupError> {
        Ok(())
    }
}

/// Puts the application's databases back from `archive`, leaving berth's store and the
/// included directories as they are: a deploy's rollback after its migration. Every
/// database the archive holds must be one `databases` names, of the same kind. The
/// archive is checked whole before anything changes; each database replaced is first
/// copied into `work` (a server database) or moved aside as `FILE.replaced-STAMP` (a
/// SQLite file). Returns the names restored.
pub async fn restore_databases_only(
    archive: &Path,
    databases: &[crate::DatabaseSpec],
    work: &Path,
    stamp: &str,
) -> Result<Vec<String>, BackupError> {
    use crate::DatabaseSource;
    std::fs::create_dir_all(work).map_err(io_at("cannot create", work))?;
    let manifest = crate::verify(archive, &|_| {})?;
    let mut pairs = Vec::new();
    for archived in &manifest.databases {
        let Some(db) = databases.iter().find(|d| d.name == archived.name) else {
            return Err(BackupError::Refused(format!(
                "the archive holds the database `{}`, which this config does not name",
                archived.name
            )));
        };
        if db.source.format() != archived.format {
            return Err(BackupError::Refused(format!(
                "the archive holds `{}` as a {} database, and the config names a {} one",
                archived.name,
                archived.format.describe(),
                db.source.format().describe()
            )));
        }
        let staged = work.join(format!("restore-{stamp}.db-{}", db.name));
        pairs.push((db.clone(), archived.format.entry(&db.name), staged));
    }
    let mut only = DatabasesOnly {
        wanted: pairs
            .iter()
            .map(|(_, e, p)| (e.clone(), p.clone()))
            .collect(),
    };
    let archive_path = archive.to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        crate::archive::read(&archive_path, Phase::Extract, &|_| {}, &mut only).map(drop)
    })
    .await
    .map_err(|e| BackupError::Refused(format!("the archive reader failed: {e}")))?;
    let cleanup = || {
        for (_, _, p) in &pairs {
            let _ = std::fs::remove_file(p);
        }
    };
    if let Err(e) = read {
        cleanup();
        return Err(e);
    }
    let mut done = Vec::new();
    let mut result = Ok(());
    for (db, _, staged) in &pairs {
        let step = match &db.source {
            DatabaseSource::Sqlite { path } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let incoming = path.with_file_name(format!("{name}.restoring-{stamp}"));
                (|| {
                    std::fs::copy(staged, &incoming).map_err(io_at("cannot write", &incoming))?;
                    for suffix in ["-wal", "-shm", ""] {
                        let f = path.with_file_name(format!("{name}{suffix}"));
                        if f.exists() {
                            let old =
                                path.with_file_name(format!("{name}{suffix}.replaced-{stamp}"));
                            std::fs::rename(&f, &old).map_err(io_at("cannot move", &f))?;
                        }
                    }
                    std::fs::rename(&incoming, path).map_err(io_at("cannot move", &incoming))
                })()
            }
            DatabaseSource::Postgres { .. } | DatabaseSource::Mysql(_) => {
                let copy = work.join(format!("replaced-{stamp}.db-{}", db.name));
                match dump_current(db, &copy).await {
                    Ok(()) => load_database(db, staged).await,
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        done.push(db.name.clone());
    }
    cleanup();
    result.map(|()| done)
}
