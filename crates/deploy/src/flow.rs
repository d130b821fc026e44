//! A deploy, step by step, and the rollbacks: by itself when a step after the build
//! fails, by hand (`berth rollback`), and at start for a deploy a killed berth left
//! half-done.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::{Store, Timestamp};
use serde_json::json;

use crate::lock::{self, Held, MIGRATED_KEY};
use crate::releases::{Release, ReleaseState, Releases, SourceInfo, StepRecord};
use crate::source::{self, Source};
use crate::{DeployError, DeploySpec, Target, humanize, step};

/// Called with the release's record at each change (the CLI's progress).
pub type Progress = Arc<dyn Fn(&Release) + Send + Sync>;

/// How often the health gate looks at the services.
const GATE_TICK: Duration = Duration::from_millis(250);
/// How often the smoke command runs during the health gate.
const SMOKE_EVERY: Duration = Duration::from_secs(5);

/// Runs deploys and rollbacks for one node.
pub struct Deployer {
    spec: DeploySpec,
    releases: Releases,
    store: Arc<dyn Store>,
    target: Arc<dyn Target>,
}

/// A deploy that holds the lock and has its release directory, not yet run.
pub struct Pending {
    release: Release,
    source: Source,
    lock: Held,
}

impl Pending {
    /// The new release's record.
    pub fn release(&self) -> &Release {
        &self.release
    }
}

/// One run's record and where changes go.
struct Run<'a> {
    d: &'a Deployer,
    r: Release,
    progress: Progress,
    steps: Vec<Instant>,
}

impl Run<'_> {
    fn save(&self) {
        if let Err(e) = self.d.releases.save(&self.r) {
            tracing::warn!(release = %self.r.id, error = %e, "cannot write the release's record");
        }
        (self.progress)(&self.r);
    }

    fn begin(&mut self, name: &str, detail: impl Into<String>, log: Option<&str>) -> usize {
        self.r.steps.push(StepRecord {
            name: name.to_owned(),
            state: "running".into(),
            detail: detail.into(),
            started_at: Timestamp::now(),
            seconds: None,
            log: log.map(str::to_owned),
            output_tail: None,
        });
        self.steps.push(Instant::now());
        self.save();
        self.r.steps.len() - 1
    }

    fn end(&mut self, i: usize, state: &str, detail: Option<String>, tail: Option<String>) {
        let s = &mut self.r.steps[i];
        s.state = state.to_owned();
        s.seconds = Some((self.steps[i].elapsed().as_secs_f64() * 10.0).round() / 10.0);
        if let Some(d) = detail {
            s.detail = d;
        }
        s.output_tail = tail.filter(|t| !t.is_empty());
        self.save();
    }

    /// A step that did not need to run.
    fn skip(&mut self, name: &str, why: impl Into<String>) {
        let i = self.begin(name, why, None);
        self.end(i, "skipped", None, None);
    }
}

impl Deployer {
    /// A deployer over `spec`'s releases directory.
    pub fn new(spec: DeploySpec, store: Arc<dyn Store>, target: Arc<dyn Target>) -> Self {
        let releases = Releases::new(spec.dir.clone());
        Self {
            spec,
            releases,
            store,
            target,
        }
    }

    /// The ref deployed when none is given.
    pub fn default_ref(&self) -> &str {
        &self.spec.git_ref
    }

    /// The releases directory.
    pub fn releases(&self) -> &Releases {
        &self.releases
    }

    fn env(&self, id: &str) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "BERTH_RELEASE".to_owned(),
                self.releases.path(id).display().to_string(),
            ),
            ("BERTH_RELEASE_ID".to_owned(), id.to_owned()),
        ];
        env.extend(self.spec.env.iter().cloned());
        env
    }

    /// Takes the deploy lock and makes the new release's directory. A second deploy,
    /// here or on another node, is refused with who holds the lock.
    pub async fn begin(&self, source: Source, by: &str) -> Result<Pending, DeployError> {
        if let Source::Git(_) = &source
            && self.spec.repo.is_none()
        {
            // Say so before anything is made.
            source::fetch(&source, None, Path::new(""), Path::new("")).await?;
        }
        let now = Timestamp::now();
        let id = self.releases.create(now)?;
        let lock = match lock::claim(self.store.clone(), &self.spec.node, &id).await {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir_all(self.releases.path(&id));
                let _ = std::fs::remove_dir_all(self.releases.meta(&id));
                return Err(e);
            }
        };
        let release = Release {
            id: id.clone(),
            source: SourceInfo {
                kind: match &source {
                    Source::Git(_) => "git",
                    Source::Dir(_) => "dir",
                    Source::Archive(_) => "archive",
                }
                .into(),
                git_ref: match &source {
                    Source::Git(r) => Some(r.clone()),
                    _ => None,
                },
                commit: None,
                path: match &source {
                    Source::Dir(p) | Source::Archive(p) => Some(p.display().to_string()),
                    Source::Git(_) => None,
                },
            },
            by: by.to_owned(),
            node: self.spec.node.clone(),
            created_at: now,
            finished_at: None,
            state: ReleaseState::Building,
            previous: self.releases.current(),
            backup: None,
            migrated: false,
            switched: false,
            maintenance_on: false,
            maintenance_value: None,
            error: None,
            rollback: None,
            steps: Vec::new(),
        };
        if let Err(e) = self.releases.save(&release) {
            lock.release().await;
            return Err(e);
        }
        Ok(Pending {
            release,
            source,
            lock,
        })
    }

    /// Runs a deploy to its end: the release's final record (deployed, failed, or
    /// rolled back with the reason).
    pub async fn run(&self, pending: Pending, progress: Progress) -> Release {
        let Pending {
            release,
            source,
            lock,
        } = pending;
        let mut run = Run {
            d: self,
            r: release,
            progress,
            steps: Vec::new(),
        };
        let started = Instant::now();
        self.target
            .event(
                "started",
                &run.r.id,
                format!(
                    "deploy of release {} ({}) began, by {}",
                    run.r.id,
                    run.r.source.describe(),
                    run.r.by
                ),
            )
            .await;
        run.save();
        self.deploy(&mut run, &source, &lock).await;
        run.r.finished_at = Some(Timestamp::now());
        let took = humanize(started.elapsed());
        match run.r.state {
            ReleaseState::Deployed => {
                let removed = self
                    .releases
                    .prune(self.spec.keep, &|p| self.target.in_use(p));
                if !removed.is_empty() {
                    run.skip("prune", format!("removed {}", removed.join(", ")));
                }
                self.target
                    .event(
                        "completed",
                        &run.r.id,
                        format!(
                            "release {} ({}) is live, deployed in {took}",
                            run.r.id,
                            run.r.source.describe()
                        ),
                    )
                    .await;
            }
            _ => {
                let failed = run
                    .r
                    .steps
                    .iter()
                    .rev()
                    .find(|s| s.state == "failed")
                    .cloned();
                let mut message = format!(
                    "deploy of release {} ({}) failed{}: {}",
                    run.r.id,
                    run.r.source.describe(),
                    failed
                        .as_ref()
                        .map(|s| format!(" at {}", s.name))
                        .unwrap_or_default(),
                    run.r.error.clone().unwrap_or_default()
                );
                if let Some(tail) = failed.and_then(|s| s.output_tail) {
                    message.push_str(&format!("\n\n{tail}"));
                }
                self.target.event("failed", &run.r.id, message).await;
                if run.r.state == ReleaseState::RolledBack {
                    self.target
                        .event(
                            "rolled_back",
                            &run.r.id,
                            format!(
                                "release {} was rolled back to {}: {}",
                                run.r.id,
                                run.r.previous.as_deref().unwrap_or("nothing"),
                                run.r.rollback.clone().unwrap_or_default()
                            ),
                        )
                        .await;
                }
            }
        }
        run.save();
        lock.release().await;
        run.r
    }

    async fn deploy(&self, run: &mut Run<'_>, source: &Source, lock: &Held) {
        let id = run.r.id.clone();
        let path = self.releases.path(&id);
        let meta = self.releases.meta(&id);
        // Fetch.
        let i = run.begin("fetch", run.r.source.describe(), None);
        match source::fetch(
            source,
            self.spec.repo.as_deref(),
            &self.releases.dir().join(".berth/repo.git"),
            &path,
        )
        .await
        {
            Ok(info) => {
                run.r.source = info;
                let d = run.r.source.describe();
                run.end(i, "ok", Some(d), None);
            }
            Err(e) => return fail(run, i, e.to_string(), None),
        }
        // Build, while the old release serves.
        let env = self.env(&id);
        let n = self.spec.build.len();
        for (k, command) in self.spec.build.iter().enumerate() {
            let log = format!("build-{}.log", k + 1);
            let i = run.begin(&format!("build {}/{n}", k + 1), command.clone(), Some(&log));
            let ran = step::run(
                command,
                &path,
                &env,
                &meta.join(&log),
                self.spec.step_timeout,
            )
            .await;
            if !ran.ok {
                return fail(run, i, format!("`{command}` {}", ran.how), Some(ran.tail));
            }
            run.end(i, "ok", None, None);
        }
        run.r.state = ReleaseState::Deploying;
        run.save();
        // The backup the rollback restores from.
        if self.spec.backup {
            let i = run.begin("backup", "the store, the app's databases and files", None);
            match self.target.backup(&id).await {
                Ok((archive, _)) => {
                    run.r.backup = Some(archive.clone());
                    run.end(i, "ok", Some(format!("backup {archive}")), None);
                }
                Err(e) => return fail(run, i, format!("the backup failed: {e}"), None),
            }
        }
        // Maintenance mode, if asked for, from the migration to the switch's end.
        if self.spec.maintenance {
            let i = run.begin("maintenance on", "", None);
            match self.store.setting(&self.spec.maintenance_key).await {
                Ok(Some(_)) => run.end(
                    i,
                    "skipped",
                    Some("already on; it stays on after the deploy".into()),
                    None,
                ),
                Ok(None) => match self
                    .maintenance_on(&format!("deploying release {id}"))
                    .await
                {
                    Ok(v) => {
                        run.r.maintenance_on = true;
                        run.r.maintenance_value = Some(v);
                        run.end(i, "ok", Some("on".into()), None);
                    }
                    Err(e) => return fail(run, i, format!("cannot turn it on: {e}"), None),
                },
                Err(e) => return fail(run, i, format!("cannot read it: {e}"), None),
            }
        }
        if let Err(e) = lock.check() {
            let i = run.begin("lock", "", None);
            run.end(i, "failed", Some(e.clone()), None);
            return self.roll_back(run, e).await;
        }
        // The migration, once.
        if let Some(command) = &self.spec.migrate {
            let commit = run.r.source.commit.clone();
            let done = match (&commit, self.store.setting(MIGRATED_KEY).await) {
                (Some(c), Ok(Some(v))) if v["commit"].as_str() == Some(c) => Some(v),
                _ => None,
            };
            if let Some(v) = done {
                run.skip(
                    "migrate",
                    format!(
                        "commit {} was migrated by release {} on node {}",
                        commit.as_deref().map_or("", |c| &c[..c.len().min(10)]),
                        v["release"].as_str().unwrap_or("?"),
                        v["node"].as_str().unwrap_or("?")
                    ),
                );
            } else {
                run.r.migrated = true;
                let i = run.begin("migrate", command.clone(), Some("migrate.log"));
                let ran = step::run(
                    command,
                    &path,
                    &env,
                    &meta.join("migrate.log"),
                    self.spec.step_timeout,
                )
                .await;
                if !ran.ok {
                    run.end(i, "failed", None, Some(ran.tail));
                    return self
                        .roll_back(run, format!("the migration `{command}` {}", ran.how))
                        .await;
                }
                run.end(i, "ok", None, None);
                let mark = json!({
                    "commit": commit,
                    "release": id,
                    "node": self.spec.node,
                    "at": Timestamp::now(),
                });
                if let Err(e) = self
                    .store
                    .set_setting(MIGRATED_KEY, Some(mark), Timestamp::now())
                    .await
                {
                    tracing::warn!(error = %e, "cannot record the migration");
                }
            }
        }
        // The switch.
        if let Err(e) = lock.check() {
            let i = run.begin("lock", "", None);
            run.end(i, "failed", Some(e.clone()), None);
            return self.roll_back(run, e).await;
        }
        let i = run.begin("switch", format!("current -> {id}"), None);
        run.r.switched = true;
        run.save();
        if let Err(e) = self.releases.point(&id) {
            run.end(i, "failed", Some(e.to_string()), None);
            return self.roll_back(run, e.to_string()).await;
        }
        if let Err(e) = self.target.switch(&path).await {
            run.end(i, "failed", Some(e.clone()), None);
            return self.roll_back(run, format!("the switch failed: {e}")).await;
        }
        run.end(i, "ok", None, None);
        self.maintenance_off(run).await;
        if !self.target.runs() {
            run.skip(
                "health",
                "berth is not running: `berth up` starts the services on this release",
            );
            run.r.state = ReleaseState::Deployed;
            return;
        }
        // The health gate.
        let i = run.begin(
            "health",
            format!(
                "the services stay up for {}{}",
                humanize(self.spec.health),
                if self.spec.smoke.is_some() {
                    " and the smoke test passes"
                } else {
                    ""
                }
            ),
            self.spec.smoke.as_ref().map(|_| "smoke.log"),
        );
        if let Err((why, tail)) = self.gate(&path, &meta.join("smoke.log"), &env).await {
            run.end(i, "failed", None, tail);
            return self
                .roll_back(run, format!("the health gate failed: {why}"))
                .await;
        }
        run.end(i, "ok", None, None);
        run.r.state = ReleaseState::Deployed;
    }

    async fn maintenance_off(&self, run: &mut Run<'_>) {
        if !run.r.maintenance_on {
            return;
        }
        let i = run.begin("maintenance off", "", None);
        match self
            .maintenance_off_if(run.r.maintenance_value.clone())
            .await
        {
            Ok(true) => {
                run.r.maintenance_on = false;
                run.end(i, "ok", None, None);
            }
            Ok(false) => {
                run.r.maintenance_on = false;
                run.end(
                    i,
                    "skipped",
                    Some(
                        "it was changed during the deploy (`berth maintenance`); left as it is"
                            .into(),
                    ),
                    None,
                );
            }
            Err(e) => run.end(
                i,
                "failed",
                Some(format!(
                    "cannot turn it off: {e}; run `berth maintenance off`"
                )),
                None,
            ),
        }
    }

    /// Turns maintenance mode on with `message`, then waits for the gateways to follow
    /// (they look each second). Returns the value written.
    async fn maintenance_on(&self, message: &str) -> Result<serde_json::Value, DeployError> {
        let on = json!({ "message": message, "since": Timestamp::now() });
        if !self
            .store
            .swap_setting(
                &self.spec.maintenance_key,
                None,
                Some(on.clone()),
                Timestamp::now(),
            )
            .await?
        {
            return Err(DeployError::Refused(
                "it was turned on meanwhile by someone else".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(on)
    }

    /// Turns maintenance mode off if it still holds `value` (what this deploy wrote),
    /// then waits for the gateways to follow: whether it did.
    async fn maintenance_off_if(
        &self,
        value: Option<serde_json::Value>,
    ) -> Result<bool, DeployError> {
        let off = self
            .store
            .swap_setting(&self.spec.maintenance_key, value, None, Timestamp::now())
            .await?;
        if off {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        Ok(off)
    }

    /// The services stay running (same processes, no restarts) for `health`, and the
    /// smoke command passes each time it runs.
    async fn gate(
        &self,
        path: &Path,
        smoke_log: &Path,
        env: &[(String, String)],
    ) -> Result<(), (String, Option<String>)> {
        let start = self.target.instances();
        if let Some(bad) = start.iter().find(|i| !i.running) {
            return Err((format!("{} is {}", bad.name, bad.state), None));
        }
        let end = Instant::now() + self.spec.health;
        let mut next_smoke = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(smoke) = &self.spec.smoke
                && (now >= next_smoke || now >= end)
            {
                let ran = step::run(smoke, path, env, smoke_log, self.spec.step_timeout).await;
                if !ran.ok {
                    return Err((
                        format!("the smoke test `{smoke}` {}", ran.how),
                        Some(ran.tail),
                    ));
                }
                next_smoke = Instant::now() + SMOKE_EVERY;
            }
            for now in self.target.instances() {
                let Some(before) = start.iter().find(|b| b.name == now.name) else {
                    continue;
                };
                if !now.running {
                    return Err((format!("{} is {}", now.name, now.state), None));
                }
                if now.pid != before.pid || now.restarts != before.restarts {
                    return Err((
                        format!(
                            "{} restarted during the gate ({} restarts)",
                            now.name, now.restarts
                        ),
                        None,
                    ));
                }
            }
            if Instant::now() >= end {
                return Ok(());
            }
            tokio::time::sleep(GATE_TICK.min(end.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Puts back what the deploy changed: `current` and the services on the previous
    /// release, the databases (when a migration ran and `restore_on_rollback` is set),
    /// maintenance mode as it was.
    async fn roll_back(&self, run: &mut Run<'_>, why: String) {
        run.r.error = Some(why);
        let i = run.begin("rollback", "", None);
        let mut said = Vec::new();
        let mut ok = true;
        if run.r.switched {
            match run.r.previous.clone() {
                Some(prev) => {
                    let moved = self.releases.point(&prev);
                    match moved {
                        Ok(()) => match self.target.switch(&self.releases.path(&prev)).await {
                            Ok(()) => said.push(format!("the services run release {prev} again")),
                            Err(e) => {
                                ok = false;
                                said.push(format!(
                                    "current points at {prev} again, but its services did not all come back: {e}"
                                ));
                            }
                        },
                        Err(e) => {
                            ok = false;
                            said.push(format!("cannot point current back at {prev}: {e}"));
                        }
                    }
                }
                None => {
                    ok = false;
                    said.push(
                        "there is no previous release to go back to: this one stays current".into(),
                    );
                }
            }
        }
        if let Some((what, restored)) = self.restore_after(&run.r).await {
            said.push(what);
            ok &= restored;
        }
        self.maintenance_off(run).await;
        if run.r.maintenance_on {
            ok = false;
        }
        run.r.rollback = Some(said.join("; "));
        run.r.state = if run.r.switched || run.r.migrated {
            ReleaseState::RolledBack
        } else {
            ReleaseState::Failed
        };
        let detail = run.r.rollback.clone();
        run.end(i, if ok { "ok" } else { "failed" }, detail, None);
    }

    /// The databases after a failed deploy: restored from its backup when a migration
    /// ran and `restore_on_rollback` says so, under maintenance mode (turned on for the
    /// restore if it is off, so that no request writes into data about to be replaced).
    /// What was done, in words, and whether it went as it should.
    async fn restore_after(&self, r: &Release) -> Option<(String, bool)> {
        if !r.migrated {
            return None;
        }
        if !self.spec.restore_on_rollback {
            return Some((
                "the databases keep what the migration did (restore_on_rollback is off)".into(),
                true,
            ));
        }
        let Some(backup) = &r.backup else {
            return Some((
                "the databases keep what the migration did: no backup was taken".into(),
                true,
            ));
        };
        let ours = match self.store.setting(&self.spec.maintenance_key).await {
            Ok(None) => self
                .maintenance_on(&format!("restoring the databases of release {}", r.id))
                .await
                .ok(),
            _ => None,
        };
        let restored = self.target.restore_databases(backup).await;
        if let Some(v) = ours {
            let _ = self.maintenance_off_if(Some(v)).await;
        }
        Some(match restored {
            Ok(what) => {
                let _ = self
                    .store
                    .set_setting(MIGRATED_KEY, None, Timestamp::now())
                    .await;
                (format!("{what} from backup {backup}"), true)
            }
            Err(e) => (
                format!(
                    "the databases could NOT be restored from backup {backup}: {e}; restore them with `berth backup restore {backup}`"
                ),
                false,
            ),
        })
    }

    /// `berth rollback [RELEASE]`: the live release gives way to `to` (default: the one
    /// live before it), with no build. The databases are restored when the release
    /// left behind ran a migration, `restore_on_rollback` is set and `restore` allows.
    pub async fn rollback(
        &self,
        to: Option<&str>,
        by: &str,
        restore: bool,
    ) -> Result<Release, DeployError> {
        let Some(current) = self.releases.current() else {
            return Err(DeployError::Refused(
                "no release is live: there is nothing to roll back".into(),
            ));
        };
        let mut cur = self.releases.load(&current)?;
        let to = match to {
            Some(t) => t.to_owned(),
            None => self.before(&cur)?,
        };
        if to == current {
            return Err(DeployError::Refused(format!(
                "release {to} is the live one already"
            )));
        }
        let target = self.releases.load(&to)?;
        if !self.releases.path(&to).is_dir() {
            return Err(DeployError::Refused(format!(
                "release {to}'s directory {} is gone (removed by hand?); deploy its source again instead",
                self.releases.path(&to).display()
            )));
        }
        if target.state != ReleaseState::Deployed {
            return Err(DeployError::Refused(format!(
                "release {to} is {}: only a release that passed its health gate can be rolled back to",
                target.shown_state(Some(&current), None)
            )));
        }
        let lock = lock::claim(self.store.clone(), &self.spec.node, &to).await?;
        let started = Instant::now();
        let result = async {
            self.releases.point(&to)?;
            if let Err(e) = self.target.switch(&self.releases.path(&to)).await {
                // Back to where it was.
                let _ = self.releases.point(&current);
                let back = self.target.switch(&self.releases.path(&current)).await;
                return Err(DeployError::Refused(format!(
                    "release {to}'s services did not come up: {e}; {}",
                    match back {
                        Ok(()) => format!("release {current} stays live"),
                        Err(e) => format!("and release {current}'s did not all come back: {e}"),
                    }
                )));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            lock.release().await;
            return Err(e);
        }
        let mut said = vec![format!("rolled back by {by} to release {to}")];
        let mut restored = true;
        if restore && cur.previous.as_deref() == Some(to.as_str()) {
            if let Some((what, ok)) = self.restore_after(&cur).await {
                said.push(what);
                restored = ok;
            }
        } else if cur.migrated {
            said.push("the databases are left as they are".into());
        }
        cur.state = ReleaseState::RolledBack;
        cur.rollback = Some(said.join("; "));
        cur.steps.push(StepRecord {
            name: "rollback".into(),
            state: if restored { "ok" } else { "failed" }.into(),
            detail: said.join("; "),
            started_at: Timestamp::now(),
            seconds: Some((started.elapsed().as_secs_f64() * 10.0).round() / 10.0),
            log: None,
            output_tail: None,
        });
        let saved = self.releases.save(&cur);
        self.target
            .event(
                "rolled_back",
                &current,
                format!(
                    "release {current} was rolled back to {to}: {}",
                    said.join("; ")
                ),
            )
            .await;
        lock.release().await;
        saved?;
        if !restored {
            return Err(DeployError::Refused(format!(
                "the services run release {to}, but {}",
                said.last().cloned().unwrap_or_default()
            )));
        }
        Ok(cur)
    }

    /// The deployed release live before `cur`.
    fn before(&self, cur: &Release) -> Result<String, DeployError> {
        if let Some(p) = &cur.previous
            && self
                .releases
                .load(p)
                .is_ok_and(|r| r.state == ReleaseState::Deployed)
        {
            return Ok(p.clone());
        }
        self.releases
            .list()?
            .into_iter()
            .rev()
            .find(|r| r.id < cur.id && r.state == ReleaseState::Deployed)
            .map(|r| r.id)
            .ok_or_else(|| {
                DeployError::Refused(format!(
                    "no release before {} passed its health gate: there is none to roll back to",
                    cur.id
                ))
            })
    }

    /// At start, before the services (and before a deploy by the CLI while berth is
    /// down): a deploy this node's previous run left unfinished (berth or the command was
    /// killed) is ended. A build is marked failed; a deploy that had begun to switch puts
    /// `current` back on the previous release, if `current` still points at it (a later
    /// release that took its place stays), and the databases back as a rollback would,
    /// if no later migration ran since and no other deploy holds the lock. Returns what
    /// was done, in words.
    pub async fn recover(&self) -> Vec<String> {
        let mut said = Vec::new();
        if let Some(r) = lock::release_own(self.store.as_ref(), &self.spec.node).await {
            said.push(format!(
                "released the deploy lock of release {r}, left by this node's previous run"
            ));
        }
        let Ok(all) = self.releases.list() else {
            return said;
        };
        for mut r in all.into_iter().filter(|r| r.state.unfinished()) {
            let at = r
                .steps
                .iter()
                .rev()
                .find(|s| s.state == "running")
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "its start".into());
            for s in r.steps.iter_mut().filter(|s| s.state == "running") {
                s.state = "failed".into();
            }
            r.error = Some(format!("berth stopped during the deploy, at {at}"));
            let mut done = Vec::new();
            let current = self.releases.current();
            if r.switched {
                match (&r.previous, current.as_deref()) {
                    (_, Some(c)) if c != r.id => {
                        done.push(format!("release {c} took its place since; left as it is"))
                    }
                    (Some(prev), _) => match self.releases.point(prev) {
                        Ok(()) => done.push(format!("current points at {prev} again")),
                        Err(e) => done.push(format!("cannot point current back at {prev}: {e}")),
                    },
                    (None, _) => done.push("no previous release: this one stays current".into()),
                }
            }
            if r.migrated {
                let later = match self.store.setting(MIGRATED_KEY).await {
                    Ok(Some(v)) => v["release"].as_str() != Some(r.id.as_str()),
                    _ => false,
                };
                let superseded = current.as_deref().is_some_and(|c| c != r.id && r.switched);
                if later || superseded {
                    done.push(
                        "a later deploy migrated or took its place since: the databases are left as they are"
                            .into(),
                    );
                } else {
                    match lock::claim(self.store.clone(), &self.spec.node, &r.id).await {
                        Ok(held) => {
                            done.extend(self.restore_after(&r).await.map(|(what, _)| what));
                            held.release().await;
                        }
                        Err(e) => done.push(format!("the databases are left as they are: {e}")),
                    }
                }
            }
            if r.maintenance_on {
                match self.maintenance_off_if(r.maintenance_value.clone()).await {
                    Ok(true) => done.push("maintenance mode is off again".into()),
                    Ok(false) => {}
                    Err(e) => done.push(format!("cannot turn maintenance mode off: {e}")),
                }
                r.maintenance_on = false;
            }
            r.state = if r.switched || r.migrated {
                ReleaseState::RolledBack
            } else {
                ReleaseState::Failed
            };
            r.rollback = (!done.is_empty()).then(|| done.join("; "));
            r.finished_at = Some(Timestamp::now());
            let _ = self.releases.save(&r);
            let line = format!(
                "release {} was interrupted at {at}{}",
                r.id,
                r.rollback
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
            self.target.event("failed", &r.id, line.clone()).await;
            if r.state == ReleaseState::RolledBack {
                self.target.event("rolled_back", &r.id, line.clone()).await;
            }
            said.push(line);
        }
        said
    }
}

/// Ends a deploy that failed before anything that runs changed.
fn fail(run: &mut Run<'_>, i: usize, why: String, tail: Option<String>) {
    run.end(i, "failed", None, tail);
    run.r.error = Some(why);
    run.r.state = ReleaseState::Failed;
}
