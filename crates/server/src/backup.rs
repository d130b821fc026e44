//! `[backup]` → archives on a schedule, made by the leader, pruned after each; and the
//! pieces `berth backup` shares with it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_api::types::{BackupInfo, BackupList, BackupStarted, BackupVerified};
use berth_backup::{
    ArchiveInfo, BackupError, BackupSpec, DatabaseSource, DatabaseSpec, Keep, Reporter,
};
use berth_config::{Config, DatabaseKind};
use berth_cron::Cron;
use berth_queue::{LeaderTask, Live, TickFuture};
use berth_store::{NewEvent, Store, Timestamp};
use jiff::tz::TimeZone;

/// What `[backup]` asks for, resolved.
#[derive(Debug, Clone)]
pub struct Backups {
    /// Where archives go and what they hold.
    pub spec: BackupSpec,
    /// The tiers.
    pub keep: Keep,
    /// Where a day, week, month and year begin; the schedule's zone.
    pub tz: TimeZone,
    /// When archives are made, if on a schedule.
    pub schedule: Option<Cron>,
    /// `[deploy] dir`: its releases name the archives their rollbacks restore.
    pub releases: Option<std::path::PathBuf>,
}

impl Backups {
    /// The archives the releases on disk were backed up to before their migrations: a
    /// rollback restores the databases from them, so no tier prunes them while the
    /// release is kept.
    ///
    /// An error if the releases cannot be read: then nothing may be pruned.
    pub fn for_rollbacks(&self) -> Result<std::collections::BTreeSet<String>, BackupError> {
        let Some(dir) = &self.releases else {
            return Ok(Default::default());
        };
        let releases = berth_deploy::Releases::new(dir.clone())
            .list()
            .map_err(|e| {
                BackupError::Refused(format!(
                    "cannot read the releases, whose rollbacks need their backups, so nothing \
                     is pruned: {e}"
                ))
            })?;
        Ok(releases.into_iter().filter_map(|r| r.backup).collect())
    }

    /// The archives kept among `archives`: the tiers', and those rollbacks need (all of
    /// them, if the releases cannot be read).
    pub fn kept(&self, archives: &[ArchiveInfo]) -> std::collections::BTreeSet<String> {
        match self.for_rollbacks() {
            Ok(pinned) => {
                let mut kept = berth_backup::plan(archives, self.keep, &self.tz);
                kept.extend(pinned);
                kept
            }
            Err(_) => archives.iter().map(|a| a.id.clone()).collect(),
        }
    }

    /// Prunes by [`kept`](Self::kept) (nothing with `dry_run`); refused if the releases
    /// cannot be read.
    pub fn prune(
        &self,
        dry_run: bool,
    ) -> Result<(Vec<ArchiveInfo>, Vec<ArchiveInfo>), BackupError> {
        berth_backup::prune(
            &self.spec.dir,
            self.keep,
            &self.tz,
            &self.for_rollbacks()?,
            dry_run,
        )
    }
}

/// The `[backup]` of a config, or, without one, the defaults (so that `berth backup save`
/// works before the table is written).
pub fn backups(config: &Config) -> anyhow::Result<Backups> {
    let base = config
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let b = config
        .backup
        .clone()
        .unwrap_or_else(|| berth_config::BackupConfig::defaults(&base));
    Ok(Backups {
        spec: BackupSpec {
            dir: b.dir,
            base,
            include: b.include,
            app: config.app.name.clone(),
            databases: b
                .databases
                .iter()
                .map(database)
                .collect::<anyhow::Result<_>>()?,
            missing_sqlite_is_empty: false,
        },
        keep: Keep {
            daily: b.keep.daily,
            weekly: b.keep.weekly,
            monthly: b.keep.monthly,
            yearly: b.keep.yearly,
        },
        tz: berth_cron::time_zone(&b.timezone).map_err(anyhow::Error::msg)?,
        schedule: b.schedule,
        releases: config.deploy.as_ref().map(|d| d.dir.clone()),
    })
}

/// A `[backup.database.NAME]`, its password read from the environment.
fn database(d: &berth_config::DatabaseConfig) -> anyhow::Result<DatabaseSpec> {
    let password = match &d.password_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            anyhow::anyhow!(
                "[backup.database.{}] reads its password from ${var}, which is not set; set \
                 it, or remove `password_env`",
                d.name
            )
        })?),
        None => None,
    };
    let source = match &d.kind {
        DatabaseKind::Postgres { url } => DatabaseSource::Postgres {
            url: url.clone(),
            password,
        },
        DatabaseKind::Mysql {
            host,
            port,
            user,
            database,
        } => DatabaseSource::Mysql(berth_store::external::Mysql {
            host: host.clone(),
            port: *port,
            user: user.clone(),
            database: database.clone(),
            password,
        }),
        DatabaseKind::Sqlite { path } => DatabaseSource::Sqlite { path: path.clone() },
    };
    Ok(DatabaseSpec {
        name: d.name.clone(),
        source,
    })
}

/// Makes an archive, then prunes by the tiers (`prune`) and records `backup.completed` or
/// `backup.failed` (which notifications can take). `subject` says who asked:
/// `scheduled` or `manual`.
pub async fn save_and_record(
    store: &dyn Store,
    backups: &Backups,
    node: &str,
    subject: &str,
    prune: bool,
    progress: Reporter,
) -> Result<(ArchiveInfo, Vec<ArchiveInfo>), BackupError> {
    let now = Timestamp::now();
    let result = async {
        let archive = berth_backup::save(store, &backups.spec, now, progress).await?;
        let removed = if prune {
            backups.prune(false)?.1
        } else {
            Vec::new()
        };
        Ok((archive, removed))
    }
    .await;
    let (kind, message) = match &result {
        Ok((a, removed)) => (
            "completed",
            format!(
                "backup {} made in {} ({} bytes){}",
                a.id,
                backups.spec.dir.display(),
                a.size,
                if removed.is_empty() {
                    String::new()
                } else {
                    format!("; {} older archives pruned", removed.len())
                }
            ),
        ),
        Err(e) => ("failed", format!("the {subject} backup failed: {e}")),
    };
    let event = NewEvent {
        at: Timestamp::now(),
        node: node.to_owned(),
        source: "backup".into(),
        subject: subject.to_owned(),
        instance: None,
        kind: kind.into(),
        message,
    };
    if let Err(e) = store.record_events(vec![event]).await {
        tracing::warn!(error = %e, "cannot record the backup's event");
    }
    result
}

/// Makes archives on `[backup] schedule` while this node leads. A time missed while berth
/// was down is made up for once, at start. A reload replaces the settings
/// ([`BackupTask::set`]); without a schedule the task does nothing.
pub struct BackupTask {
    store: Arc<dyn Store>,
    backups: Live<Backups>,
    node: String,
    next: Mutex<Option<Timestamp>>,
    busy: Arc<AtomicBool>,
}

impl BackupTask {
    /// The task of a config's `[backup]` (or its defaults).
    pub fn new(store: Arc<dyn Store>, backups: Backups, node: &str) -> Self {
        Self {
            store,
            backups: Live::new(backups),
            node: node.to_owned(),
            next: Mutex::new(None),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes new settings (a reload): the next time is worked out again, from the newest
    /// archive in the (possibly new) backup dir. A backup under way finishes first.
    pub fn set(&self, backups: Backups) {
        self.backups.set(backups);
        *self.next.lock().expect("not poisoned") = None;
    }

    fn next_after(backups: &Backups, t: Timestamp) -> Option<Timestamp> {
        let after = jiff::Timestamp::from_microsecond(t.0).ok()?;
        backups
            .schedule
            .as_ref()?
            .next_after(after, &backups.tz)
            .map(|n| Timestamp(n.as_microsecond()))
    }
}

impl LeaderTask for BackupTask {
    fn name(&self) -> &'static str {
        "backups"
    }

    fn tick(&self, now: Timestamp) -> TickFuture<'_> {
        Box::pin(async move {
            let backups = self.backups.get();
            if backups.schedule.is_none() {
                return Ok(None);
            }
            let due = {
                let mut next = self.next.lock().expect("not poisoned");
                // Worked out again once no backup runs: one under way (a reload came
                // meanwhile) is not yet the newest archive, and would be made twice.
                if next.is_none() && !self.busy.load(Ordering::Acquire) {
                    // From the newest archive: a scheduled time that passed since is due.
                    let newest = berth_backup::list(&backups.spec.dir)
                        .ok()
                        .and_then(|l| l.last().map(|a| a.created));
                    *next = Self::next_after(&backups, newest.unwrap_or(now));
                }
                match *next {
                    Some(t) if t <= now && !self.busy.load(Ordering::Acquire) => {
                        *next = Self::next_after(&backups, now);
                        true
                    }
                    _ => false,
                }
            };
            // Taken in one step: a backup started through the API meanwhile (which takes
            // it the same way) is the one made now.
            if due
                && self
                    .busy
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                let (store, backups, node, busy) = (
                    self.store.clone(),
                    (*backups).clone(),
                    self.node.clone(),
                    self.busy.clone(),
                );
                tokio::spawn(async move {
                    let _idle = berth_notify::Idle(&busy);
                    tracing::info!(dir = %backups.spec.dir.display(), "making the scheduled backup");
                    match save_and_record(
                        &*store,
                        &backups,
                        &node,
                        "scheduled",
                        true,
                        Arc::new(|_| {}),
                    )
                    .await
                    {
                        Ok((a, removed)) => tracing::info!(
                            id = %a.id,
                            bytes = a.size,
                            pruned = removed.len(),
                            "backup made"
                        ),
                        Err(e) => tracing::error!(error = %e, "the scheduled backup failed"),
                    }
                });
            }
            // While a backup runs, a scheduled time that passed waits for it (the loop
            // comes back within a second anyway).
            if self.busy.load(Ordering::Acquire) {
                return Ok(None);
            }
            Ok(*self.next.lock().expect("not poisoned"))
        })
    }
}

/// The API's backups: list, verify, and a backup now that shares the scheduled backups'
/// guard, so that the two never run at once.
#[async_trait::async_trait]
impl berth_api::Backups for BackupTask {
    async fn list(&self) -> Result<BackupList, berth_api::DeployRefusal> {
        let backups = self.backups.get();
        let dir = backups.spec.dir.clone();
        let running = self.busy.load(Ordering::Acquire);
        tokio::task::spawn_blocking(move || {
            let archives = berth_backup::list(&dir).map_err(refusal)?;
            let kept = backups.kept(&archives);
            let rows = archives
                .iter()
                .map(|a| BackupInfo {
                    id: a.id.clone(),
                    path: a.path.display().to_string(),
                    created: a.created,
                    bytes: a.size,
                    kept: kept.contains(&a.id),
                    parts: berth_backup::parts(&a.path)
                        .ok()
                        .flatten()
                        .map(|p| p.describe()),
                })
                .collect();
            Ok(BackupList {
                dir: dir.display().to_string(),
                running,
                backups: rows,
            })
        })
        .await
        .map_err(|e| (500, "internal", format!("listing the backups failed: {e}")))?
    }

    async fn verify(&self, id: &str) -> Result<BackupVerified, berth_api::DeployRefusal> {
        // Only an archive of the backup dir, by its id: never a path of this machine.
        if id.is_empty() || id.contains('/') || id.contains("..") || id.ends_with(".zst") {
            return Err((
                400,
                "invalid",
                format!("{id:?} is not an archive id; the ids are in GET /v1/backups"),
            ));
        }
        let dir = self.backups.get().spec.dir.clone();
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            let archive = berth_backup::find(&dir, &id).map_err(refusal)?;
            let manifest = berth_backup::verify(&archive.path, &|_| {}).map_err(refusal)?;
            let files = manifest
                .entries
                .iter()
                .filter(|e| {
                    e.kind == berth_backup::EntryKind::File && e.path != berth_backup::PARTS
                })
                .count() as u64;
            Ok(BackupVerified {
                id: manifest.id.clone(),
                app: manifest.app.clone(),
                created_at: manifest.created_at,
                berth_version: manifest.berth_version.clone(),
                files,
                bytes: manifest.total_bytes(),
                databases: manifest.databases.iter().map(|d| d.name.clone()).collect(),
            })
        })
        .await
        .map_err(|e| (500, "internal", format!("verifying the backup failed: {e}")))?
    }

    fn save(&self, prune: bool, by: &str) -> Result<BackupStarted, berth_api::DeployRefusal> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err((
                409,
                "backup_running",
                "a backup is being made now; its archive appears in the list when it is done"
                    .into(),
            ));
        }
        let backups = (*self.backups.get()).clone();
        let dir = backups.spec.dir.display().to_string();
        let (store, node, busy, by) = (
            self.store.clone(),
            self.node.clone(),
            self.busy.clone(),
            by.to_owned(),
        );
        tracing::info!(dir = %dir, by = %by, "making a backup now");
        tokio::spawn(async move {
            let _idle = berth_notify::Idle(&busy);
            match save_and_record(&*store, &backups, &node, "manual", prune, Arc::new(|_| {})).await
            {
                Ok((a, removed)) => {
                    tracing::info!(id = %a.id, bytes = a.size, pruned = removed.len(), "backup made");
                }
                Err(e) => tracing::error!(error = %e, "the backup failed"),
            }
        });
        Ok(BackupStarted { dir, prune })
    }
}

/// A backup error as an API refusal.
fn refusal(e: BackupError) -> berth_api::DeployRefusal {
    match e {
        BackupError::NotFound(m) => (404, "unknown_backup", m),
        e @ BackupError::Damaged { .. } => (422, "backup_damaged", e.to_string()),
        e => (500, "internal", e.to_string()),
    }
}
