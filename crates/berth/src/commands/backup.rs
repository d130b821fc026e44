//! `berth backup save|list|verify|restore|prune`.
//!
//! These run in the CLI's own process, on the store and the backup dir directly: `save`
//! and `verify` while berth runs or not; `restore` only while it is stopped (the data
//! dir's lock proves it), stopping it first when told to.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_backup::{InForce, Phase, Progress, RestorePlan, RestoreTarget};
use berth_config::{Config, StoreChoice};
use berth_server::backup::{Backups, backups};
use berth_server::lock::DataDirLock;
use berth_store::SqliteStore;
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;

/// Backup subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Make an archive of the store and the `include`d directories now, while berth runs
    /// or not.
    Save {
        /// Also remove the archives the `keep` tiers no longer keep.
        #[arg(long)]
        prune: bool,
    },
    /// The archives in the backup dir, oldest first, with what the tiers keep.
    List,
    /// Read an archive whole and check every entry against its manifest.
    Verify {
        /// The archive's id (from `backup list`), or its path.
        id: String,
    },
    /// Put an archive's store and directories in place of the current ones. berth must
    /// be stopped (or use --stop); the archive is checked first; the replaced data is
    /// kept aside until the restore succeeded.
    Restore {
        /// The archive's id (from `backup list`), or its path.
        id: String,
        /// Stop the berth running on this data dir first (SIGTERM, then wait for it).
        #[arg(long)]
        stop: bool,
        /// Keep the replaced data (beside it, named `*.replaced-TIME`) after success.
        #[arg(long)]
        keep_replaced: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Take maintenance mode and the paused queues and schedules from the archive
        /// too; by default they stay as they are when the restore starts (a restore is
        /// often the middle of a rollback).
        #[arg(long)]
        archive_settings: bool,
    },
    /// Remove the archives the `keep` tiers do not keep (the newest is always kept).
    Prune {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a backup subcommand.
pub async fn run(ctx: &Ctx, cmd: BackupCommand) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    let b = backups(&config)?;
    match cmd {
        BackupCommand::Save { prune } => save(ctx, &config, &b, prune).await,
        BackupCommand::List => list(ctx, &b),
        BackupCommand::Verify { id } => verify(ctx, &b, &id),
        BackupCommand::Restore {
            id,
            stop,
            keep_replaced,
            yes,
            archive_settings,
        } => {
            let how = RestoreHow {
                stop,
                keep_replaced,
                yes,
                archive_settings,
            };
            restore(ctx, &config, &b, &id, how).await
        }
        BackupCommand::Prune { dry_run } => {
            let (kept, removed) = b.prune(dry_run)?;
            if ctx.json {
                output::json(&json!({
                    "dry_run": dry_run,
                    "kept": kept.iter().map(|a| &a.id).collect::<Vec<_>>(),
                    "removed": removed.iter().map(|a| &a.id).collect::<Vec<_>>(),
                }));
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                for a in &removed {
                    outln!("{verb} {}", a.id);
                }
                outln!("{verb} {} archives; {} kept", removed.len(), kept.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Draws progress on a terminal (one line, redrawn), and nothing elsewhere.
struct Bar {
    tty: bool,
    started: Instant,
    last: Mutex<(Option<Phase>, Instant)>,
}

impl Bar {
    fn new(ctx: &Ctx) -> Self {
        Self {
            tty: !ctx.json && std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: Mutex::new((None, Instant::now())),
        }
    }

    fn show(&self, p: Progress) {
        if !self.tty {
            return;
        }
        let mut last = self.last.lock().expect("not poisoned");
        // A new phase starts a new line; within one, redraw at most 10 times a second.
        let new_phase = last.0 != Some(p.phase);
        if !new_phase && last.1.elapsed() < Duration::from_millis(100) && p.done < p.total {
            return;
        }
        if new_phase && last.0.is_some() {
            errln!();
        }
        *last = (Some(p.phase), Instant::now());
        let what = match p.phase {
            Phase::Snapshot => "copying the store",
            Phase::Archive => "writing the archive",
            Phase::Verify => "checking the archive",
            Phase::Extract => "unpacking",
        };
        const WIDTH: u64 = 30;
        let line = if let Some(filled) = (p.done.min(p.total) * WIDTH).checked_div(p.total) {
            format!(
                "{what:<20} [{}{}] {} of {}",
                "#".repeat(filled as usize),
                "-".repeat((WIDTH - filled) as usize),
                bytes(p.done),
                bytes(p.total)
            )
        } else {
            format!("{what:<20} …")
        };
        err!("\r{line}\x1b[K");
        let _ = std::io::stderr().flush();
    }

    /// The bar as a reporter for work on another thread.
    fn reporter(self: &Arc<Self>) -> berth_backup::Reporter {
        let bar = self.clone();
        Arc::new(move |p| bar.show(p))
    }

    fn done(&self) {
        if self.tty && self.last.lock().expect("not poisoned").0.is_some() {
            errln!(" ({:.1}s)", self.started.elapsed().as_secs_f64());
        }
    }
}

/// A size for people: 1.5 MB.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

async fn save(ctx: &Ctx, config: &Config, b: &Backups, prune: bool) -> anyhow::Result<ExitCode> {
    let store = berth_server::open_store(config).await?;
    let node = berth_server::node_of(config);
    let bar = Arc::new(Bar::new(ctx));
    let result = berth_server::backup::save_and_record(
        store.as_ref(),
        b,
        &node,
        "manual",
        prune,
        bar.reporter(),
    )
    .await;
    bar.done();
    let (archive, removed) = result.context("the backup failed; nothing was kept of it")?;
    if ctx.json {
        output::json(&json!({
            "id": archive.id,
            "path": archive.path,
            "bytes": archive.size,
            "pruned": removed.iter().map(|a| &a.id).collect::<Vec<_>>(),
        }));
    } else {
        outln!(
            "backup {} made: {} ({})",
            archive.id,
            archive.path.display(),
            bytes(archive.size)
        );
        if !removed.is_empty() {
            outln!("pruned {} older archives", removed.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(ctx: &Ctx, b: &Backups) -> anyhow::Result<ExitCode> {
    let archives = berth_backup::list(&b.spec.dir)?;
    let kept = b.kept(&archives);
    // Each archive's first entry names its parts (archives of older berths have none).
    let parts: Vec<Option<berth_backup::Parts>> = archives
        .iter()
        .map(|a| berth_backup::parts(&a.path).ok().flatten())
        .collect();
    if ctx.json {
        let rows: Vec<_> = archives
            .iter()
            .zip(&parts)
            .map(|(a, parts)| {
                json!({
                    "id": a.id,
                    "path": a.path,
                    "created": a.created,
                    "bytes": a.size,
                    "kept": kept.contains(&a.id),
                    "parts": parts,
                })
            })
            .collect();
        output::json(&json!({ "dir": b.spec.dir, "backups": rows }));
        return Ok(ExitCode::SUCCESS);
    }
    if archives.is_empty() {
        outln!(
            "no backups in {}; `berth backup save` makes one",
            b.spec.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = archives
        .iter()
        .zip(&parts)
        .map(|(a, parts)| {
            vec![
                a.id.clone(),
                a.created.to_string(),
                bytes(a.size),
                if kept.contains(&a.id) {
                    "keep"
                } else {
                    "prune"
                }
                .to_owned(),
                parts
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), berth_backup::Parts::describe),
            ]
        })
        .collect();
    output::table(&["ID", "CREATED", "SIZE", "TIERS", "HOLDS"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn verify(ctx: &Ctx, b: &Backups, id: &str) -> anyhow::Result<ExitCode> {
    let archive = berth_backup::find(&b.spec.dir, id)?;
    let bar = Bar::new(ctx);
    let result = berth_backup::verify(&archive.path, &|p| bar.show(p));
    bar.done();
    let manifest = result?;
    let files = manifest
        .entries
        .iter()
        .filter(|e| e.kind == berth_backup::EntryKind::File && e.path != berth_backup::PARTS)
        .count();
    if ctx.json {
        output::json(&json!({
            "id": manifest.id,
            "ok": true,
            "app": manifest.app,
            "created_at": manifest.created_at,
            "berth_version": manifest.berth_version,
            "store": manifest.store,
            "includes": manifest.includes,
            "databases": manifest.databases,
            "files": files,
            "bytes": manifest.total_bytes(),
        }));
    } else {
        outln!(
            "backup {} is whole: {files} files, {} ({} of {}, made by berth {} at {}); every checksum matches",
            manifest.id,
            bytes(manifest.total_bytes()),
            manifest.store_entry(),
            manifest.app,
            manifest.berth_version,
            manifest.created_at
        );
        for d in &manifest.databases {
            let entry = d.format.entry(&d.name);
            let size = manifest
                .entries
                .iter()
                .find(|e| e.path == entry)
                .map_or(0, |e| e.size);
            outln!(
                "  database {} ({}): {entry}, {}",
                d.name,
                d.format.describe(),
                bytes(size)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Takes the data dir's lock, stopping the berth that holds it if told to.
async fn lock_data_dir(config: &Config, stop: bool) -> anyhow::Result<DataDirLock> {
    let data_dir = &config.app.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    match DataDirLock::acquire(data_dir).map(DataDirLock::for_a_while) {
        Ok(lock) => return Ok(lock),
        Err(e) if !stop => {
            bail!(UsageError(format!(
                "{e:#}; a restore replaces the data it uses: stop it first, or pass --stop"
            )))
        }
        Err(_) => {}
    }
    let pid: i32 = std::fs::read_to_string(data_dir.join("berth.lock"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .context("berth holds the data dir but its pid is unknown; stop it by hand")?;
    errln!("stopping berth (pid {pid}) …");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .with_context(|| format!("cannot stop berth (pid {pid})"))?;
    let limit = config.app.shutdown_grace + Duration::from_secs(30);
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(lock) = DataDirLock::acquire(data_dir).map(DataDirLock::for_a_while) {
            return Ok(lock);
        }
        if started.elapsed() > limit {
            bail!("berth (pid {pid}) did not stop within {limit:?}; nothing was restored");
        }
    }
}

/// The restore's flags.
struct RestoreHow {
    stop: bool,
    keep_replaced: bool,
    yes: bool,
    archive_settings: bool,
}

/// The operational settings in force in the store a restore is about to replace, if it
/// has one (a restore into an empty project has none).
async fn settings_in_force(config: &Config) -> anyhow::Result<Option<InForce>> {
    let context = "cannot read the settings in force (maintenance mode, paused queues and \
                   schedules); pass --archive-settings to take the archive's";
    match &config.app.store {
        StoreChoice::Sqlite => {
            let path = config.app.data_dir.join(berth_server::DB_FILE);
            if !path.exists() {
                return Ok(None);
            }
            let store = SqliteStore::open(&path, Default::default()).context(context)?;
            let read = InForce::read(&store).await;
            // Closed before its files are moved aside.
            store.close();
            Ok(Some(read.context(context)?))
        }
        StoreChoice::Postgres { .. } => {
            let store = berth_server::open_store(config).await.context(context)?;
            Ok(Some(InForce::read(store.as_ref()).await.context(context)?))
        }
    }
}

async fn restore(
    ctx: &Ctx,
    config: &Config,
    b: &Backups,
    id: &str,
    how: RestoreHow,
) -> anyhow::Result<ExitCode> {
    let RestoreHow {
        stop,
        keep_replaced,
        yes,
        archive_settings,
    } = how;
    let archive = berth_backup::find(&b.spec.dir, id)?;
    // The archive is checked whole before anything is stopped or touched.
    let bar = Bar::new(ctx);
    let verified = berth_backup::verify(&archive.path, &|p| bar.show(p));
    bar.done();
    let verified = verified.context("nothing was restored")?;
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!(UsageError(
                "a restore replaces the store and the included directories; pass --yes to confirm"
                    .into()
            ));
        }
        err!(
            "Replace the store of {} and its included directories with backup {}? [y/N] ",
            config.app.name,
            archive.id
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            errln!("nothing was restored");
            return Ok(ExitCode::FAILURE);
        }
    }
    let lock = lock_data_dir(config, stop).await?;
    let in_force = if archive_settings {
        None
    } else {
        settings_in_force(config).await?
    };
    let data_dir = config.app.data_dir.clone();
    let target = match &config.app.store {
        StoreChoice::Sqlite => RestoreTarget::Sqlite {
            data_dir: data_dir.clone(),
            db_file: berth_server::DB_FILE.to_owned(),
        },
        StoreChoice::Postgres { url } => RestoreTarget::Postgres {
            data_dir: data_dir.clone(),
            url: url.clone(),
        },
    };
    let stamp = berth_backup::id_at(berth_store::Timestamp::now());
    let bar = Arc::new(Bar::new(ctx));
    let result = berth_backup::restore(
        &RestorePlan {
            archive: archive.path.clone(),
            target,
            base: b.spec.base.clone(),
            keep_replaced,
            stamp,
            verified: Some(verified),
            databases: b.spec.databases.clone(),
            includes: b
                .spec
                .include
                .iter()
                .map(|i| berth_backup::recorded(&b.spec.base, i))
                .collect(),
        },
        bar.reporter(),
    )
    .await;
    bar.done();
    let report = result.context("nothing was restored; the current data is as it was")?;
    // The restored store opens (and is migrated if the archive is older), and says what
    // it holds.
    let store = berth_server::open_store(config).await?;
    let jobs = store.count_jobs().await?;
    let kept = match &in_force {
        Some(settings) => settings
            .apply(store.as_ref(), berth_store::Timestamp::now())
            .await
            .context(
                "the backup was restored, but the settings in force before could not be put \
                 back: check `berth maintenance`, `berth queue list` and `berth schedule list`",
            )?,
        None => Vec::new(),
    };
    drop(store);
    drop(lock);
    if ctx.json {
        output::json(&json!({
            "id": report.manifest.id,
            "jobs": jobs,
            "dirs": report.dirs,
            "kept_aside": report.kept_aside,
            "settings_kept": kept,
        }));
    } else {
        outln!(
            "restored backup {} (made {}): {jobs} jobs{}",
            report.manifest.id,
            report.manifest.created_at,
            dirs_text(&report.dirs)
        );
        for p in &report.kept_aside {
            outln!("the replaced data is kept in {}", p.display());
        }
        for k in &kept {
            outln!("{k}");
        }
        outln!("start berth again with `berth up`");
    }
    Ok(ExitCode::SUCCESS)
}

fn dirs_text(dirs: &[std::path::PathBuf]) -> String {
    if dirs.is_empty() {
        return String::new();
    }
    let names: Vec<String> = dirs
        .iter()
        .map(|d| Path::new(d).display().to_string())
        .collect();
    format!(", and {}", names.join(", "))
}
