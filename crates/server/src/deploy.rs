//! `[deploy]` → the deployer, with what runs the application as its target: the
//! reloader (services roll onto a release under the reload lock), the `run` handlers'
//! release, backups and the application's databases, events.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::types::{ReleaseList, ReleaseView};
use berth_config::Config;
use berth_deploy::{
    DeployError, DeploySpec, Deployer, InstanceHealth, Release, Releases, Source, Target,
};
use berth_queue::ReleaseDir;
use berth_store::{NewEvent, Store, Timestamp};
use berth_supervise::{InstanceState, Supervisor};

use crate::reload::Reloader;

/// The deployer's settings from `[deploy]`, if the config has one.
pub fn deploy_spec(config: &Config, node: &str) -> Option<DeploySpec> {
    let d = config.deploy.as_ref()?;
    Some(DeploySpec {
        dir: d.dir.clone(),
        repo: d.repo.clone(),
        git_ref: d.git_ref.clone(),
        keep: d.keep,
        build: d.build.clone(),
        migrate: d.migrate.clone(),
        backup: d.backup,
        maintenance: d.maintenance,
        restore_on_rollback: d.restore_on_rollback,
        health: d.health,
        smoke: d.smoke.clone(),
        step_timeout: d.step_timeout,
        maintenance_key: berth_gateway::MAINTENANCE_KEY.to_owned(),
        env: vec![("BERTH_CONFIG".to_owned(), config.path.display().to_string())],
        node: node.to_owned(),
    })
}

/// What a deploy moves: the running berth's, or (`berth deploy` while berth is down)
/// nothing but the link, the backups and the databases.
pub struct AppTarget {
    store: Arc<dyn Store>,
    node: String,
    config: Config,
    release: ReleaseDir,
    running: Option<(Arc<Reloader>, Arc<Supervisor>)>,
}

impl AppTarget {
    /// The target of a running berth.
    pub fn running(
        store: Arc<dyn Store>,
        node: &str,
        config: &Config,
        release: ReleaseDir,
        reloader: Arc<Reloader>,
        supervisor: Arc<Supervisor>,
    ) -> Self {
        Self {
            store,
            node: node.to_owned(),
            config: config.clone(),
            release,
            running: Some((reloader, supervisor)),
        }
    }

    /// The target while berth is down: the switch only moves `current`; `berth up`
    /// starts the services there.
    pub fn stopped(store: Arc<dyn Store>, node: &str, config: &Config) -> Self {
        Self {
            store,
            node: node.to_owned(),
            config: config.clone(),
            release: ReleaseDir::default(),
            running: None,
        }
    }

    async fn config(&self) -> Config {
        match &self.running {
            Some((reloader, _)) => reloader.config().await,
            None => self.config.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Target for AppTarget {
    async fn switch(&self, path: &Path) -> Result<(), String> {
        match &self.running {
            Some((reloader, _)) => reloader.switch_release(path).await,
            None => {
                self.release.set(Some(path.to_path_buf()));
                Ok(())
            }
        }
    }

    fn runs(&self) -> bool {
        self.running.is_some()
    }

    fn instances(&self) -> Vec<InstanceHealth> {
        let Some((_, supervisor)) = &self.running else {
            return Vec::new();
        };
        // Only the services that run in the live release: those the switch rolled
        // (a service of its own, stopped by hand or done, is not the deploy's).
        let Some(release) = self.release.get() else {
            return Vec::new();
        };
        let in_release = |name: &str| {
            supervisor.spec(name).is_ok_and(|s| {
                s.cwd.as_deref().is_some_and(|c| c.starts_with(&release))
                    || s.command.contains(&*release.to_string_lossy())
            })
        };
        supervisor
            .status()
            .into_iter()
            .filter(|s| in_release(&s.service))
            .map(|s| InstanceHealth {
                name: format!("{}.{}", s.service, s.instance),
                running: s.state == InstanceState::Running,
                state: match &s.last_exit {
                    Some(e) if s.state != InstanceState::Running => {
                        format!("{} (last: {})", s.state, e.exit)
                    }
                    _ => s.state.to_string(),
                },
                restarts: s.restarts,
                pid: s.pid,
            })
            .collect()
    }

    async fn backup(&self, subject: &str) -> Result<(String, PathBuf), String> {
        let config = self.config().await;
        let mut backups = crate::backup::backups(&config).map_err(|e| format!("{e:#}"))?;
        // Before the first migration, the app's SQLite file may not exist yet: its
        // rollback restores it empty. Once a release has migrated, a missing file is a
        // wrong path, refused as by `berth backup save`.
        backups.spec.missing_sqlite_is_empty = match &config.deploy {
            Some(d) => !berth_deploy::Releases::new(d.dir.clone())
                .list()
                .map_err(|e| e.to_string())?
                .iter()
                .any(|r| r.migrated),
            None => false,
        };
        crate::backup::save_and_record(
            self.store.as_ref(),
            &backups,
            &self.node,
            &format!("deploy {subject}"),
            false,
            Arc::new(|_| {}),
        )
        .await
        .map(|(a, _)| (a.id, a.path))
        .map_err(|e| e.to_string())
    }

    async fn restore_databases(&self, id: &str) -> Result<String, String> {
        let config = self.config().await;
        let backups = crate::backup::backups(&config).map_err(|e| format!("{e:#}"))?;
        let archive = berth_backup::find(&backups.spec.dir, id).map_err(|e| e.to_string())?;
        let stamp = berth_backup::id_at(Timestamp::now());
        let restored = berth_backup::restore_databases_only(
            &archive.path,
            &backups.spec.databases,
            &config.app.data_dir.join("deploy-restore"),
            &stamp,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(if restored.is_empty() {
            "the backup holds no application database ([backup.database.NAME]); nothing was restored"
                .to_owned()
        } else {
            format!("the databases {} were restored", restored.join(", "))
        })
    }

    fn in_use(&self, path: &Path) -> bool {
        self.release.in_use(path)
    }

    async fn event(&self, kind: &str, subject: &str, message: String) {
        let event = NewEvent {
            at: Timestamp::now(),
            node: self.node.clone(),
            source: "deploy".into(),
            subject: subject.to_owned(),
            instance: None,
            kind: kind.to_owned(),
            message,
        };
        if let Err(e) = self.store.record_events(vec![event]).await {
            tracing::warn!(error = %e, "cannot record the deploy's event");
        }
    }
}

/// The releases as JSON: the live one, and each record with its shown state.
pub fn releases_json(releases: &Releases) -> Result<ReleaseList, DeployError> {
    let all = releases.list()?;
    let current = releases.current();
    let previous = current
        .as_deref()
        .and_then(|c| all.iter().find(|r| r.id == c))
        .and_then(|r| r.previous.clone());
    Ok(ReleaseList {
        dir: releases.dir().display().to_string(),
        releases: all
            .iter()
            .map(|r| release_json(r, current.as_deref(), previous.as_deref()))
            .collect(),
        current,
    })
}

/// One release's record, with its state as shown.
pub fn release_json(r: &Release, current: Option<&str>, previous: Option<&str>) -> ReleaseView {
    ReleaseView {
        shown_state: Some(r.shown_state(current, previous).to_owned()),
        release: r.clone(),
    }
}

/// The API's deploys, over a running berth's deployer.
pub struct Deploys {
    deployer: Arc<Deployer>,
}

impl Deploys {
    /// Deploys through `deployer`.
    pub fn new(deployer: Arc<Deployer>) -> Self {
        Self { deployer }
    }
}

fn refusal(e: DeployError) -> berth_api::DeployRefusal {
    match e {
        DeployError::Busy(m) => (409, "deploy_running", m),
        DeployError::Refused(m) => (400, "refused", m),
        other => (500, "internal", other.to_string()),
    }
}

#[async_trait::async_trait]
impl berth_api::Deploys for Deploys {
    fn releases(&self) -> Result<ReleaseList, berth_api::DeployRefusal> {
        releases_json(self.deployer.releases()).map_err(refusal)
    }

    fn release(&self, id: &str) -> Result<ReleaseView, berth_api::DeployRefusal> {
        let releases = self.deployer.releases();
        let r = releases.load(id).map_err(|e| match e {
            DeployError::Refused(m) => (404, "unknown_release", m),
            other => refusal(other),
        })?;
        let current = releases.current();
        let previous = current
            .as_deref()
            .and_then(|c| releases.load(c).ok())
            .and_then(|c| c.previous);
        Ok(release_json(&r, current.as_deref(), previous.as_deref()))
    }

    async fn deploy(
        &self,
        source: Option<String>,
        by: String,
    ) -> Result<Release, berth_api::DeployRefusal> {
        let source = match source {
            None => Source::Git(self.deployer.default_ref().to_owned()),
            Some(s) if s.starts_with('/') => {
                let p = PathBuf::from(&s);
                if p.is_dir() {
                    Source::Dir(p)
                } else if p.is_file() {
                    Source::Archive(p)
                } else {
                    return Err((
                        400,
                        "refused",
                        format!("{s} is neither a directory nor an archive on this node"),
                    ));
                }
            }
            Some(s) => Source::Git(s),
        };
        let pending = self.deployer.begin(source, &by).await.map_err(refusal)?;
        let record = pending.release().clone();
        let deployer = self.deployer.clone();
        tokio::spawn(async move {
            let done = deployer.run(pending, Arc::new(|_| {})).await;
            tracing::info!(release = %done.id, state = ?done.state, "deploy ended");
        });
        Ok(record)
    }

    async fn rollback(
        &self,
        to: Option<String>,
        by: String,
        restore: bool,
    ) -> Result<Release, berth_api::DeployRefusal> {
        // In a task of its own: a client that hangs up does not cut the rollback short.
        let deployer = self.deployer.clone();
        let r = tokio::spawn(async move { deployer.rollback(to.as_deref(), &by, restore).await })
            .await
            .map_err(|e| (500, "internal", format!("the rollback's task failed: {e}")))?
            .map_err(refusal)?;
        Ok(r)
    }
}
