//! Writing and reading archives: a tar stream in zstd, the manifest last.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use berth_store::{SnapshotFormat, Store, Timestamp};
use ring::digest;
use serde::{Deserialize, Serialize};

use crate::{ArchiveInfo, BackupError, BackupSpec, OnProgress, Phase, Progress, Reporter};

/// The manifest's name in the archive.
pub(crate) const MANIFEST: &str = "manifest.json";
/// The first entry: what the archive holds, readable without reading it all.
pub const PARTS: &str = "parts.json";
/// The manifest format this build writes and reads.
const FORMAT: u32 = 1;
/// zstd's level: fast, and about as small as gzip -9 on databases.
const LEVEL: i32 = 3;
/// Progress is reported at most once per this many bytes.
const REPORT_EVERY: u64 = 4 << 20;

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (1).
    pub format: u32,
    /// The archive's id.
    pub id: String,
    /// The application.
    pub app: String,
    /// When the snapshot was taken.
    pub created_at: Timestamp,
    /// The berth that made it.
    pub berth_version: String,
    /// What kind of store copy `store/` holds.
    pub store: SnapshotFormat,
    /// The included directories as configured (relative to the project dir when inside
    /// it), in the order of `files/0`, `files/1`, ….
    pub includes: Vec<String>,
    /// The application's own databases, each in `databases/NAME.EXT` (none in archives
    /// made before they could be).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<ArchivedDatabase>,
    /// Every entry but the manifest, in archive order.
    pub entries: Vec<ManifestEntry>,
}

/// What an archive holds, in its first entry: `berth backup list` reads only that. It
/// is an entry like the others, checked against the manifest when the archive is read
/// whole; archives made before it was written have none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parts {
    /// What kind of store copy the archive holds.
    pub store: SnapshotFormat,
    /// The included directories, as in the manifest.
    pub includes: Vec<String>,
    /// The application's databases.
    #[serde(default)]
    pub databases: Vec<ArchivedDatabase>,
}

impl Parts {
    /// In words, for listings: "store, 2 dirs, databases shop (PostgreSQL), …".
    pub fn describe(&self) -> String {
        let mut out = String::from("store");
        match self.includes.len() {
            0 => {}
            1 => out.push_str(", 1 dir"),
            n => out.push_str(&format!(", {n} dirs")),
        }
        if !self.databases.is_empty() {
            let dbs: Vec<String> = self
                .databases
                .iter()
                .map(|d| format!("{} ({})", d.name, d.format.describe()))
                .collect();
            out.push_str(&format!(", {}", dbs.join(", ")));
        }
        out
    }
}

/// Reads an archive's parts from its first entry, without reading the rest: `None` for
/// an archive made before parts were written. Nothing is verified here.
pub fn parts(path: &Path) -> Result<Option<Parts>, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path)
        .map_err(|e| BackupError::io(format!("cannot open {}", path.display()), e))?;
    let decoder = zstd::Decoder::new(BufReader::new(file))
        .map_err(|e| damaged(format!("not a zstd archive ({e})")))?;
    let mut archive = tar::Archive::new(decoder);
    let cut = |e: io::Error| damaged(format!("it is truncated or corrupt ({e})"));
    let Some(entry) = archive.entries().map_err(cut)?.next() else {
        return Err(damaged("it is empty".into()));
    };
    let mut entry = entry.map_err(cut)?;
    if entry.path().map_err(cut)?.as_os_str() != PARTS || entry.size() > 1 << 20 {
        return Ok(None);
    }
    let mut text = String::new();
    entry.read_to_string(&mut text).map_err(cut)?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| damaged(format!("its {PARTS} is not valid ({e})")))
}

/// An application database an archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedDatabase {
    /// `[backup.database.NAME]`.
    pub name: String,
    /// How it is held.
    pub format: crate::DatabaseFormat,
}

/// One entry of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Its path in the archive.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    pub kind: EntryKind,
    /// Bytes (files only).
    pub size: u64,
    /// SHA-256 in hex (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Where a symlink points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Unix permission bits.
    pub mode: u32,
}

/// The kinds of entries an archive holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

impl Manifest {
    /// The store copy's path in the archive.
    pub fn store_entry(&self) -> &'static str {
        store_entry(self.store)
    }

    /// Bytes of files in all.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn store_entry(format: SnapshotFormat) -> &'static str {
    match format {
        SnapshotFormat::Sqlite => "store/berth.db",
        SnapshotFormat::PgDump => "store/berth.pgdump",
    }
}

/// Reports progress at most every [`REPORT_EVERY`] bytes.
struct Meter<'a> {
    phase: Phase,
    done: u64,
    total: u64,
    last: u64,
    report: OnProgress<'a>,
}

impl Meter<'_> {
    fn add(&mut self, n: u64) {
        self.done += n;
        if self.done - self.last >= REPORT_EVERY {
            self.last = self.done;
            (self.report)(self.progress());
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            phase: self.phase,
            done: self.done,
            total: self.total,
        }
    }

    fn finish(&mut self) {
        self.last = self.done;
        (self.report)(self.progress());
    }
}

/// Reads through, hashing and counting.
struct Hashing<'m, 'a, R> {
    inner: R,
    sha: digest::Context,
    read: u64,
    meter: Option<&'m Mutex<Meter<'a>>>,
    /// A read of `inner` failed (so a failure of the consumer is the source's fault).
    failed: Option<String>,
}

impl<'m, 'a, R: Read> Hashing<'m, 'a, R> {
    fn new(inner: R, meter: Option<&'m Mutex<Meter<'a>>>) -> Self {
        Self {
            inner,
            sha: digest::Context::new(&digest::SHA256),
            read: 0,
            meter,
            failed: None,
        }
    }

    fn hex(self) -> String {
        hex(self.sha.finish().as_ref())
    }
}

impl<R: Read> Read for Hashing<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|e| self.failed = Some(e.to_string()))?;
        self.sha.update(&buf[..n]);
        self.read += n as u64;
        if let Some(m) = self.meter {
            m.lock().expect("not poisoned").add(n as u64);
        }
        Ok(n)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file or directory to archive.
struct Source {
    /// Its path in the archive.
    name: String,
    path: PathBuf,
    kind: EntryKind,
    size: u64,
    mode: u32,
    mtime: u64,
    target: Option<PathBuf>,
}

fn source(path: &Path, name: String, follow: bool) -> Result<Option<Source>, BackupError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    }
    .map_err(|e| BackupError::io(format!("cannot read {}", path.display()), e))?;
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else {
        tracing::warn!(path = %path.display(), "not a file, directory or link; left out of the backup");
        return Ok(None);
    };
    let target =
        match kind {
            EntryKind::Symlink => Some(std::fs::read_link(path).map_err(|e| {
                BackupError::io(format!("cannot read the link {}", path.display()), e)
            })?),
            _ => None,
        };
    Ok(Some(Source {
        name,
        path: path.to_path_buf(),
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        mode: meta.permissions().mode() & 0o7777,
        mtime: meta.mtime().max(0) as u64,
        target,
    }))
}

/// Every entry under `root`, the root first, names sorted (so that archives of the same
/// data list the same entries).
/// An included directory that is a link (uploads -> /mnt/shared/uploads) is archived as
/// the directory it points to (`follow` on the first call); links inside stay links.
fn walk(root: &Path, name: &str, follow: bool, out: &mut Vec<Source>) -> Result<(), BackupError> {
    let Some(s) = source(root, name.to_owned(), follow)? else {
        return Ok(());
    };
    let is_dir = s.kind == EntryKind::Dir;
    out.push(s);
    if !is_dir {
        return Ok(());
    }
    let mut children: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| BackupError::io(format!("cannot list {}", root.display()), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| BackupError::io(format!("cannot list {}", root.display()), e))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let file_name = child.file_name();
        let Some(part) = file_name.to_str() else {
            return Err(BackupError::Refused(format!(
                "{} has a name that is not UTF-8; rename it to back it up",
                child.path().display()
            )));
        };
        walk(&child.path(), &format!("{name}/{part}"), false, out)?;
    }
    Ok(())
}

/// How an included directory is recorded: relative to the project dir when inside it.
pub fn recorded(base: &Path, include: &Path) -> String {
    include
        .strip_prefix(base)
        .unwrap_or(include)
        .display()
        .to_string()
}

/// Makes an archive of the store and the included directories in the backup dir, while
/// berth runs. See the crate docs for its layout and how it is written.
pub async fn save(
    store: &dyn Store,
    spec: &BackupSpec,
    now: Timestamp,
    progress: Reporter,
) -> Result<ArchiveInfo, BackupError> {
    // The archives hold the store (password and token hashes among it): a directory
    // berth creates is its owner's only, and so is each archive.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&spec.dir)
        .map_err(|e| {
            BackupError::io(
                format!("cannot create the backup dir {}", spec.dir.display()),
                e,
            )
        })?;
    for inc in &spec.include {
        if !inc.is_dir() {
            return Err(BackupError::Refused(format!(
                "the included directory {} does not exist; create it, or take it out of `include` in [backup]",
                inc.display()
            )));
        }
    }
    let (id, file) = claim(&spec.dir, now)?;
    let partial = spec.dir.join(format!(".{}.partial", crate::file_name(&id)));
    let snapshot = spec.dir.join(format!(".berth-{id}.store.partial"));
    let mut dumps: Vec<PathBuf> = Vec::new();
    let result = async {
        progress(Progress {
            phase: Phase::Snapshot,
            done: 0,
            total: 0,
        });
        let format = store.snapshot(&snapshot).await?;
        // Then the application's databases, each dumped beside the archive.
        let mut databases = Vec::new();
        for db in &spec.databases {
            let dump = spec.dir.join(format!(".berth-{id}.db-{}.partial", db.name));
            dumps.push(dump.clone());
            dump_database(db, &dump, spec.missing_sqlite_is_empty).await?;
            databases.push((
                ArchivedDatabase {
                    name: db.name.clone(),
                    format: db.source.format(),
                },
                dump,
            ));
        }
        let manifest = Manifest {
            format: FORMAT,
            id: id.clone(),
            app: spec.app.clone(),
            created_at: now,
            berth_version: env!("CARGO_PKG_VERSION").to_owned(),
            store: format,
            includes: spec
                .include
                .iter()
                .map(|i| recorded(&spec.base, i))
                .collect(),
            databases: databases.iter().map(|(d, _)| d.clone()).collect(),
            entries: Vec::new(),
        };
        let dump_files: Vec<(String, PathBuf)> = databases
            .iter()
            .map(|(d, path)| (d.format.entry(&d.name), path.clone()))
            .collect();
        let (spec2, partial2, snapshot2) = (spec.clone(), partial.clone(), snapshot.clone());
        let report = progress.clone();
        tokio::task::spawn_blocking(move || {
            write(
                file,
                &partial2,
                &snapshot2,
                &dump_files,
                manifest,
                &spec2,
                &*report,
            )
        })
        .await
        .map_err(|e| BackupError::Refused(format!("the archive writer failed: {e}")))??;
        let path = spec.dir.join(crate::file_name(&id));
        std::fs::rename(&partial, &path).map_err(|e| {
            BackupError::io(format!("cannot rename {} into place", partial.display()), e)
        })?;
        sync_dir(&spec.dir)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(ArchiveInfo {
            id: id.clone(),
            path,
            created: now,
            size,
        })
    }
    .await;
    let _ = std::fs::remove_file(&snapshot);
    for d in &dumps {
        let _ = std::fs::remove_file(d);
    }
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Dumps an application database into `dest` (a name error says which one).
async fn dump_database(
    db: &crate::DatabaseSpec,
    dest: &Path,
    missing_is_empty: bool,
) -> Result<(), BackupError> {
    use crate::DatabaseSource;
    let dumped = match &db.source {
        DatabaseSource::Postgres { url, password } => {
            berth_store::external::pg_dump(url, password.as_deref(), dest).await
        }
        DatabaseSource::Mysql(m) => berth_store::external::mysql_dump(m, dest).await,
        DatabaseSource::Sqlite { path } => {
            let (path, dest) = (path.clone(), dest.to_path_buf());
            tokio::task::spawn_blocking(move || {
                if missing_is_empty && !path.exists() {
                    berth_store::external::sqlite_empty(&dest)
                } else {
                    berth_store::external::sqlite_copy(&path, &dest)
                }
            })
            .await
            .map_err(|e| {
                berth_store::StoreError::Snapshot(format!("the copy's worker failed: {e}"))
            })?
        }
    };
    dumped.map_err(|e| {
        BackupError::Refused(format!(
            "the database `{}` ([backup.database.{}]) cannot be copied: {e}",
            db.name, db.name
        ))
    })
}

/// The id for an archive made at `now` (numbered if one of that second exists), with its
/// partial file created exclusively: two saves at once (the CLI and the schedule, two
/// nodes on a shared dir) never share one.
fn claim(dir: &Path, now: Timestamp) -> Result<(String, File), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let base = crate::id_at(now);
    for n in 1..1000 {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        if dir.join(crate::file_name(&id)).exists() {
            continue;
        }
        let partial = dir.join(format!(".{}.partial", crate::file_name(&id)));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
        {
            Ok(f) => return Ok((id, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(BackupError::io(
                    format!("cannot create {}", partial.display()),
                    e,
                ));
            }
        }
    }
    Err(BackupError::Refused(format!(
        "a thousand archives were begun in {} within one second; try again",
        dir.display()
    )))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(format!("cannot sync {}", dir.display()), e))
}

fn write(
    file: File,
    partial: &Path,
    snapshot: &Path,
    dumps: &[(String, PathBuf)],
    mut manifest: Manifest,
    spec: &BackupSpec,
    progress: OnProgress<'_>,
) -> Result<(), BackupError> {
    let at = |what: &str| {
        let partial = partial.display().to_string();
        let what = what.to_owned();
        move |e: io::Error| BackupError::io(format!("{what} {partial}"), e)
    };
    let mut sources = Vec::new();
    let parts = serde_json::to_vec_pretty(&Parts {
        store: manifest.store,
        includes: manifest.includes.clone(),
        databases: manifest.databases.clone(),
    })
    .expect("parts serialize");
    let store_name = store_entry(manifest.store).to_owned();
    let Some(store) = source(snapshot, store_name, false)? else {
        return Err(BackupError::Refused(
            "the store's copy is not a file".into(),
        ));
    };
    sources.push(store);
    for (name, path) in dumps {
        let Some(dump) = source(path, name.clone(), false)? else {
            return Err(BackupError::Refused(format!(
                "the dump {} is not a file",
                path.display()
            )));
        };
        sources.push(dump);
    }
    for (i, inc) in spec.include.iter().enumerate() {
        walk(inc, &format!("files/{i}"), true, &mut sources)?;
    }
    let total = sources.iter().map(|s| s.size).sum();
    let meter = Mutex::new(Meter {
        phase: Phase::Archive,
        done: 0,
        total,
        last: 0,
        report: progress,
    });
    meter.lock().expect("not poisoned").finish();
    let mut encoder =
        zstd::Encoder::new(BufWriter::new(file), LEVEL).map_err(at("cannot write"))?;
    encoder.include_checksum(true).map_err(at("cannot write"))?;
    let mut tar = tar::Builder::new(encoder);
    {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(parts.len() as u64);
        header.set_mode(0o644);
        header.set_mtime((manifest.created_at.0 / 1_000_000).max(0) as u64);
        tar.append_data(&mut header, PARTS, parts.as_slice())
            .map_err(at("cannot write"))?;
        manifest.entries.push(ManifestEntry {
            path: PARTS.into(),
            kind: EntryKind::File,
            size: parts.len() as u64,
            sha256: Some(hex(digest::digest(&digest::SHA256, &parts).as_ref())),
            target: None,
            mode: 0o644,
        });
    }
    for s in &sources {
        let mut header = tar::Header::new_gnu();
        header.set_mode(s.mode);
        header.set_mtime(s.mtime);
        let mut entry = ManifestEntry {
            path: s.name.clone(),
            kind: s.kind,
            size: 0,
            sha256: None,
            target: None,
            mode: s.mode,
        };
        match s.kind {
            EntryKind::File => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(s.size);
                let file = File::open(&s.path)
                    .map_err(|e| BackupError::io(format!("cannot read {}", s.path.display()), e))?;
                let mut reader = Hashing::new(file.take(s.size), Some(&meter));
                tar.append_data(&mut header, &s.name, &mut reader)
                    .map_err(|e| {
                        BackupError::io(format!("cannot archive {}", s.path.display()), e)
                    })?;
                if reader.read != s.size {
                    return Err(BackupError::Refused(format!(
                        "{} shrank while it was archived ({} of {} bytes); try again",
                        s.path.display(),
                        reader.read,
                        s.size
                    )));
                }
                entry.size = s.size;
                entry.sha256 = Some(reader.hex());
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                tar.append_data(&mut header, &s.name, io::empty())
                    .map_err(at("cannot write"))?;
            }
            EntryKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = s.target.clone().unwrap_or_default();
                tar.append_link(&mut header, &s.name, &target)
                    .map_err(at("cannot write"))?;
                entry.target = Some(target.display().to_string());
            }
        }
        manifest.entries.push(entry);
    }
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime((manifest.created_at.0 / 1_000_000).max(0) as u64);
    tar.append_data(&mut header, MANIFEST, json.as_slice())
        .map_err(at("cannot write"))?;
    let encoder = tar.into_inner().map_err(at("cannot write"))?;
    let writer = encoder.finish().map_err(at("cannot write"))?;
    let file = writer
        .into_inner()
        .map_err(|e| at("cannot write")(e.into_error()))?;
    file.sync_all().map_err(at("cannot sync"))?;
    meter.lock().expect("not poisoned").finish();
    Ok(())
}

/// Counts the compressed bytes read, for progress.
struct Counting<'m, 'a, R> {
    inner: R,
    meter: &'m Mutex<Meter<'a>>,
}

impl<R: Read> Read for Counting<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.lock().expect("not poisoned").add(n as u64);
        Ok(n)
    }
}

/// Where an entry's contents go while an archive is read.
pub(crate) trait Unpack {
    /// A file's bytes: read them all from `data` (they are hashed as they pass).
    fn file(&mut self, entry: &ManifestEntry, data: &mut dyn Read) -> Result<(), BackupError>;
    /// A directory.
    fn dir(&mut self, entry: &ManifestEntry) -> Result<(), BackupError>;
    /// A symbolic link.
    fn symlink(&mut self, entry: &ManifestEntry) -> Result<(), BackupError>;
}

/// Reads nothing out: only checks.
struct Check;

impl Unpack for Check {
    fn file(&mut self, _: &ManifestEntry, data: &mut dyn Read) -> Result<(), BackupError> {
        io::copy(data, &mut io::sink())
            .map(drop)
            .map_err(|e| BackupError::io("cannot read the archive", e))
    }
    fn dir(&mut self, _: &ManifestEntry) -> Result<(), BackupError> {
        Ok(())
    }
    fn symlink(&mut self, _: &ManifestEntry) -> Result<(), BackupError> {
        Ok(())
    }
}

/// Reads the whole archive and checks it: it must be complete (zstd's checksum, the
/// manifest last), every entry must be the manifest's, in order, with its size and
/// SHA-256. Returns the manifest.
pub fn verify(path: &Path, progress: OnProgress<'_>) -> Result<Manifest, BackupError> {
    read(path, Phase::Verify, progress, &mut Check)
}

/// Reads an archive through `unpack`, checking it as [`verify`] does. An entry whose
/// checksum does not match has already been handed to `unpack` when the mismatch is
/// found: callers unpack to a staging place and use it only on success.
pub(crate) fn read(
    path: &Path,
    phase: Phase,
    progress: OnProgress<'_>,
    unpack: &mut dyn Unpack,
) -> Result<Manifest, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path)
        .map_err(|e| BackupError::io(format!("cannot open {}", path.display()), e))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let meter = Mutex::new(Meter {
        phase,
        done: 0,
        total,
        last: 0,
        report: progress,
    });
    let counting = Counting {
        inner: BufReader::new(file),
        meter: &meter,
    };
    let decoder =
        zstd::Decoder::new(counting).map_err(|e| damaged(format!("not a zstd archive ({e})")))?;
    let mut archive = tar::Archive::new(decoder);
    let cut = |e: io::Error| damaged(format!("it is truncated or corrupt ({e})"));
    let mut seen: Vec<ManifestEntry> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut links: Vec<String> = Vec::new();
    for entry in archive.entries().map_err(cut)? {
        let mut entry = entry.map_err(cut)?;
        let name = entry
            .path()
            .map_err(cut)?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| damaged("an entry's name is not UTF-8".into()))?;
        if manifest.is_some() {
            return Err(damaged(format!(
                "{name} follows the manifest, which must be last"
            )));
        }
        // Nor through a link the archive made earlier (`l -> /`, then `l/x`).
        if !safe(&name) || links.iter().any(|l| name.starts_with(&format!("{l}/"))) {
            return Err(damaged(format!(
                "the entry {name:?} would be written outside its place"
            )));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        if name == MANIFEST {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(cut)?;
            let m: Manifest = serde_json::from_str(&text)
                .map_err(|e| damaged(format!("its manifest is not valid ({e})")))?;
            if m.format != FORMAT {
                return Err(damaged(format!(
                    "its manifest has format {}, which this berth does not read (it reads {FORMAT})",
                    m.format
                )));
            }
            manifest = Some(m);
            continue;
        }
        let mut record = ManifestEntry {
            path: name.clone(),
            kind: EntryKind::File,
            size: 0,
            sha256: None,
            target: None,
            mode,
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let size = entry.size();
                let mut reader = Hashing::new(&mut entry, None);
                record.size = size;
                let unpacked = unpack.file(&record, &mut reader);
                if let Some(e) = reader.failed.take() {
                    return Err(damaged(format!("it is truncated or corrupt ({e})")));
                }
                unpacked?;
                if reader.read != size {
                    return Err(damaged(format!("{name} ends early")));
                }
                record.sha256 = Some(reader.hex());
            }
            tar::EntryType::Directory => {
                record.kind = EntryKind::Dir;
                unpack.dir(&record)?;
            }
            tar::EntryType::Symlink => {
                links.push(name.clone());
                record.kind = EntryKind::Symlink;
                record.target = entry
                    .link_name()
                    .map_err(cut)?
                    .map(|t| t.display().to_string());
                unpack.symlink(&record)?;
            }
            other => {
                return Err(damaged(format!(
                    "{name} is of a kind berth does not write ({other:?})"
                )));
            }
        }
        seen.push(record);
    }
    // tar stops at its end marker: read on to the end of the zstd stream, so that its
    // content checksum is checked and nothing follows unread (only tar's zero padding
    // may remain).
    let mut rest = archive.into_inner();
    let mut buf = [0u8; 8192];
    loop {
        let n = rest.read(&mut buf).map_err(cut)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Err(damaged("bytes follow the end of the archive".into()));
        }
    }
    let manifest = manifest.ok_or_else(|| {
        damaged("it has no manifest: it is truncated, or not a berth backup".into())
    })?;
    if let Some(detail) = difference(&manifest.entries, &seen) {
        return Err(damaged(detail));
    }
    meter.lock().expect("not poisoned").finish();
    Ok(manifest)
}

/// The first way the entries read differ from the manifest's, if any.
fn difference(expected: &[ManifestEntry], seen: &[ManifestEntry]) -> Option<String> {
    for (i, e) in expected.iter().enumerate() {
        let Some(s) = seen.get(i) else {
            return Some(format!(
                "{} is in the manifest but not in the archive",
                e.path
            ));
        };
        if s.path != e.path {
            return Some(format!(
                "found {} where the manifest lists {}",
                s.path, e.path
            ));
        }
        if s.kind != e.kind || s.target != e.target {
            return Some(format!("{} is not what the manifest says it is", e.path));
        }
        if s.size != e.size {
            return Some(format!(
                "{} has {} bytes; the manifest says {}",
                e.path, s.size, e.size
            ));
        }
        if s.sha256 != e.sha256 {
            return Some(format!(
                "{} does not match its checksum in the manifest (it was changed)",
                e.path
            ));
        }
    }
    seen.get(expected.len())
        .map(|s| format!("{} is in the archive but not in the manifest", s.path))
}

/// A relative path without `..`.
fn safe(name: &str) -> bool {
    let p = Path::new(name);
    !name.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, sha: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            kind: EntryKind::File,
            size: 1,
            sha256: Some(sha.into()),
            target: None,
            mode: 0o644,
        }
    }

    #[test]
    fn differences_name_the_entry() {
        let m = [entry("a", "1"), entry("b", "2")];
        assert_eq!(difference(&m, &m), None);
        assert!(
            difference(&m, &m[..1])
                .unwrap()
                .contains("b is in the manifest but not")
        );
        assert!(
            difference(&m, &[entry("a", "1"), entry("b", "3")])
                .unwrap()
                .contains("b does not match its checksum")
        );
        assert!(
            difference(&m[..1], &m)
                .unwrap()
                .contains("b is in the archive but not in the manifest")
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe("files/0/a/b.txt"));
        assert!(!safe("../etc/passwd"));
        assert!(!safe("/etc/passwd"));
        assert!(!safe("files/0/../../x"));
    }
}
