//! `berth reload` and SIGHUP: re-read `berth.toml` and apply every change that can be
//! applied while berth runs, and say exactly which ones need a restart.
//!
//! Applied live, in this order (each piece built and checked first, so that a config
//! with errors, a missing secret or a missing static directory changes nothing):
//! - queues (`[queue.*]`, and the queues of workflow steps and schedule commands): new
//!   ones start, removed ones stop, changed ones hand over once their running jobs end;
//! - workflows and schedules: runs started from now on take the new definitions;
//! - services: new ones start, removed ones stop, changed ones roll;
//! - the gateway's routes and budgets (a raised limit counts from the next request);
//! - ingests: a changed one stops as at a stop of berth and starts again;
//! - notification channels and backup settings.
//!
//! Not applied, and reported as needing a restart: `[app]`, `[api]`, and the gateway's
//! sockets, certificate source, access log and login settings (or adding or removing
//! the gateway). Those keep comparing against what runs, so every reload reports them
//! until berth restarts.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use berth_api::types::{ReloadFailure, ReloadReport};
use berth_config::Config;
use berth_queue::{Clock, QueueControl, Queues};
use berth_supervise::Supervisor;
use tokio::sync::Mutex;

use crate::backup::BackupTask;
use crate::notify::NotifyTask;
use crate::{backup, gateway, ingest, notify, services, specs};

/// What a reload changes besides the services: the handles of everything that runs.
pub struct Parts {
    /// The queues (a new ingest's jobs and the queue control go through them).
    pub queues: Queues,
    /// Set once the runtime runs; a reload before that leaves the queues alone.
    pub queue_control: OnceLock<QueueControl>,
    /// The workflow definitions.
    pub workflows: berth_workflow::Workflows,
    /// The schedules.
    pub scheduler: berth_schedule::Scheduler,
    /// The gateway, if berth started with one.
    pub gateway: Option<Arc<berth_gateway::Gateway>>,
    /// The ingests.
    pub ingests: Arc<berth_ingest::Ingests>,
    /// The notifications' leader task.
    pub notify: Arc<NotifyTask>,
    /// The scheduled backups' leader task.
    pub backup: Arc<BackupTask>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// This node's name.
    pub node: String,
    /// The live release, when berth deploys the application: services and `run`
    /// handlers run in it.
    pub release: berth_queue::ReleaseDir,
    /// Where the gateway's webhook routes hand their bodies.
    pub hooks: berth_gateway::HookSink,
}

/// Applies a re-read config to what runs.
pub struct Reloader {
    /// The config berth runs with: as started, with every section a reload applied. The
    /// lock also keeps two reloads from interleaving.
    current: Mutex<Config>,
    supervisor: Arc<Supervisor>,
    parts: Parts,
}

/// What one reload did, section by section.
#[derive(Default)]
struct Report {
    applied: Vec<String>,
    restart: Vec<String>,
    failed: Vec<ReloadFailure>,
}

/// `[KIND.NAME]` for every name new, gone or changed between two maps, with what
/// happened to it.
fn changes<T: PartialEq>(
    kind: &str,
    old: &std::collections::BTreeMap<String, T>,
    new: &std::collections::BTreeMap<String, T>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in new {
        match old.get(name) {
            None => out.push(format!("[{kind}.{name}] (new)")),
            Some(o) if o != v => out.push(format!("[{kind}.{name}] (changed)")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        out.push(format!("[{kind}.{name}] (removed)"));
    }
    out
}

/// The webhook routes the ingests add to the gateway.
fn webhooks(c: &Config) -> Vec<(String, Option<berth_config::WebhookConfig>)> {
    c.ingests
        .iter()
        .map(|(n, i)| (n.clone(), i.webhook.clone()))
        .collect()
}

/// The keys of `[app]` that differ.
fn app_changes(old: &berth_config::App, new: &berth_config::App) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.name != new.name {
        keys.push("name");
    }
    if old.data_dir != new.data_dir {
        keys.push("data_dir");
    }
    if old.durability != new.durability {
        keys.push("durability");
    }
    if old.shutdown_grace != new.shutdown_grace {
        keys.push("shutdown_grace");
    }
    if old.store != new.store {
        keys.push("store");
    }
    if old.store_connections != new.store_connections {
        keys.push("store_connections");
    }
    if old.leader_ttl != new.leader_ttl {
        keys.push("leader_ttl");
    }
    if old.lease_ttl != new.lease_ttl {
        keys.push("lease_ttl");
    }
    keys
}

impl Reloader {
    /// A reloader for a berth started with `config`.
    pub fn new(config: Config, supervisor: Arc<Supervisor>, parts: Parts) -> Self {
        Self {
            current: Mutex::new(config),
            supervisor,
            parts,
        }
    }

    /// Called once the runtime runs: from then on reloads change the queues too.
    pub fn set_queue_control(&self, control: QueueControl) {
        let _ = self.parts.queue_control.set(control);
    }

    /// Re-reads the config file and applies it. `Err` carries the config's errors (or an
    /// unreadable env file, a taken port, a missing secret or static directory), and
    /// then nothing was changed.
    pub async fn apply(&self) -> Result<ReloadReport, String> {
        let mut current = self.current.lock().await;
        let mut new = berth_config::load(&current.path).map_err(|e| e.to_string())?;
        berth_config::store_from_env(&mut new)?;
        let p = &self.parts;
        let err = |e: anyhow::Error| format!("{e:#}");

        // Everything is built and checked before anything changes.
        let release = p.release.get();
        // With [deploy] and no release yet, the services wait for the first deploy.
        let service_specs = if new.deploy.is_some() && release.is_none() {
            Vec::new()
        } else {
            services::service_specs(&new, release.as_deref()).map_err(err)?
        };
        let running = self.supervisor.services();
        // New services need free ports, checked before anything changes.
        for spec in &service_specs {
            if !running.contains(&spec.name) {
                services::check_ports(&new.services[&spec.name]).map_err(err)?;
            }
        }
        let queue_specs = specs::queue_specs(&new);
        let workflow_defs = specs::workflow_defs(&new);
        let schedule_defs = specs::schedule_defs(&new)?;
        let gateway_clock = {
            let clock = p.clock.clone();
            berth_gateway::Clock(Arc::new(move || clock.now()))
        };
        let gateway_spec =
            gateway::gateway_spec(&new, gateway_clock, &p.node, p.hooks.clone()).map_err(err)?;
        if let Some(spec) = &gateway_spec {
            berth_gateway::check(spec).map_err(|e| e.to_string())?;
        }
        let notifier = if current.notify != new.notify || current.app.name != new.app.name {
            let channels = notify::channel_specs(&new, None).map_err(err)?;
            Some(
                p.notify
                    .0
                    .get()
                    .reconfigured(&new.app.name, channels)
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let backups = backup::backups(&new).map_err(err)?;
        let changed_ingests: BTreeSet<String> = current
            .ingests
            .keys()
            .chain(new.ingests.keys())
            .filter(|n| current.ingests.get(*n) != new.ingests.get(*n))
            .cloned()
            .collect();
        let mut ingest_specs: std::collections::HashMap<String, berth_ingest::IngestSpec> =
            ingest::ingest_specs_of(&new, &p.queues, &p.workflows, p.clock.clone(), |n| {
                changed_ingests.contains(n)
            })
            .map_err(err)?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();

        let mut report = Report::default();
        // What berth runs with after this reload: the new config, but for what stays
        // as it was until a restart.
        let mut next = new.clone();

        // Queues first: the workflows, schedules and ingests applied below may use new
        // ones.
        let queue_changes = [
            changes("queue", &current.queues, &new.queues),
            changes("workflow", &current.workflows, &new.workflows),
            changes("schedule", &current.schedules, &new.schedules),
        ]
        .concat();
        match p.queue_control.get() {
            Some(control) => {
                control.apply(queue_specs).map_err(|e| e.to_string())?;
            }
            None if queue_changes.is_empty() => {}
            None => {
                report.restart.push(
                    "queues, workflows and schedules: berth was still starting; reload again"
                        .to_owned(),
                );
                next.queues = current.queues.clone();
                next.workflows = current.workflows.clone();
                next.schedules = current.schedules.clone();
            }
        }
        if p.queue_control.get().is_some() {
            p.workflows.set_defs(workflow_defs);
            p.scheduler.set_defs(schedule_defs);
            report.applied.extend(queue_changes);
        }

        let services = self.apply_services(service_specs, &mut report).await;

        for name in &changed_ingests {
            let spec = ingest_specs.remove(name);
            let what = match (
                current.ingests.contains_key(name),
                new.ingests.contains_key(name),
            ) {
                (false, _) => "new",
                (true, false) => "removed",
                (true, true) => "changed: restarted, its clients reconnect",
            };
            tracing::info!(ingest = %name, what, "reload: ingest");
            match p.ingests.replace(name, spec).await {
                Ok(()) => report.applied.push(format!("[ingest.{name}] ({what})")),
                Err(e) => {
                    tracing::warn!(ingest = %name, error = %e, "reload: the ingest did not start");
                    report.failed.push(ReloadFailure {
                        service: None,
                        section: Some(format!("[ingest.{name}]")),
                        error: e.to_string(),
                    });
                    // Tried again at the next reload.
                    next.ingests.remove(name);
                }
            }
        }
        // After the ingests: a new ingest's webhook route finds it running.
        if current.gateway != new.gateway
            || current.budgets != new.budgets
            || webhooks(&current) != webhooks(&new)
        {
            self.apply_gateway(&current, &new, gateway_spec, &mut next, &mut report)
                .await;
        }
        if let Some(notifier) = notifier {
            p.notify.0.set(notifier);
            report
                .applied
                .extend(changes("notify", &current.notify, &new.notify));
        }
        if current.backup != new.backup {
            p.backup.set(backups);
            report.applied.push("[backup]".to_owned());
        }

        let app = app_changes(&current.app, &new.app);
        if !app.is_empty() {
            report.restart.push(format!(
                "[app] {}: takes effect when berth restarts",
                app.join(", ")
            ));
        }
        next.app = current.app.clone();
        if current.api != new.api {
            report
                .restart
                .push("[api]: takes effect when berth restarts".to_owned());
        }
        next.api = current.api.clone();
        if current.deploy != new.deploy {
            report
                .restart
                .push("[deploy]: takes effect when berth restarts".to_owned());
        }
        next.deploy = current.deploy.clone();
        if !report.restart.is_empty() {
            tracing::warn!(
                sections = %report.restart.join("; "),
                "reload: these changes take effect at the next start of berth"
            );
        }
        *current = next;
        let (added, removed, restarted, unchanged) = services;
        Ok(ReloadReport {
            added,
            removed,
            restarted,
            unchanged,
            failed: report.failed,
            applied: report.applied,
            not_applied: report.restart,
        })
    }

    /// Starts the new services, stops the removed ones, rolls the changed ones. Returns
    /// (added, removed, restarted, unchanged); failures go to the report.
    /// The config berth runs with now.
    pub async fn config(&self) -> Config {
        self.current.lock().await.clone()
    }

    /// A deploy's switch: `run` handlers start in `path` from now on, and every service
    /// rolls onto it one instance at a time (a service not running yet, before the first
    /// release, starts). Stops at the first service that does not come up. Holds the
    /// reload lock, so that a reload never interleaves.
    pub async fn switch_release(&self, path: &Path) -> Result<(), String> {
        let current = self.current.lock().await;
        let specs = services::service_specs(&current, Some(path)).map_err(|e| format!("{e:#}"))?;
        self.parts.release.set(Some(path.to_path_buf()));
        for spec in specs {
            let name = spec.name.clone();
            match self.supervisor.spec(&name) {
                Ok(old) if *old == spec => {}
                Ok(_) => {
                    if let Err(e) = self.supervisor.update(spec).await {
                        // The instances rolled before the one that failed run the new
                        // release; the service's definition is the old one again: roll
                        // them all back onto it, so that it runs one release.
                        if let Err(back) = self.supervisor.restart(&name).await {
                            tracing::error!(service = %name, error = %back, "cannot roll the service back onto its previous release");
                        }
                        return Err(format!("service `{name}`: {e}"));
                    }
                }
                Err(_) => {
                    services::check_ports(&current.services[&name])
                        .map_err(|e| format!("service `{name}`: {e:#}"))?;
                    let limit = spec.start_timeout + std::time::Duration::from_secs(5);
                    self.supervisor
                        .add(spec)
                        .map_err(|e| format!("service `{name}`: {e}"))?;
                    // Its dependencies came first, so it starts now.
                    self.supervisor
                        .wait_ready(&name, limit)
                        .await
                        .map_err(|e| format!("service `{name}`: {e}"))?;
                }
            }
        }
        Ok(())
    }

    async fn apply_services(
        &self,
        specs: Vec<berth_supervise::ServiceSpec>,
        report: &mut Report,
    ) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        let running = self.supervisor.services();
        let wanted: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let mut removed = Vec::new();
        for name in running.iter().rev() {
            if !wanted.contains(&name.as_str()) {
                tracing::info!(service = %name, "reload: stopping a removed service");
                if self.supervisor.remove(name).await.is_ok() {
                    removed.push(name.clone());
                }
            }
        }
        let (mut added, mut restarted, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
        for spec in specs {
            let name = spec.name.clone();
            let outcome = match self.supervisor.spec(&name) {
                Err(_) => {
                    tracing::info!(service = %name, "reload: starting a new service");
                    self.supervisor.add(spec).map(|()| &mut added)
                }
                Ok(old) if *old == spec => Ok(&mut unchanged),
                Ok(_) => {
                    tracing::info!(service = %name, "reload: restarting a changed service");
                    self.supervisor.update(spec).await.map(|()| &mut restarted)
                }
            };
            match outcome {
                Ok(list) => list.push(name),
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "reload: the service's change failed");
                    report.failed.push(ReloadFailure {
                        service: Some(name.clone()),
                        section: None,
                        error: e.to_string(),
                    });
                }
            }
        }
        (added, removed, restarted, unchanged)
    }

    /// The gateway's routes and budgets, or what needs a restart.
    async fn apply_gateway(
        &self,
        current: &Config,
        new: &Config,
        spec: Option<berth_gateway::GatewaySpec>,
        next: &mut Config,
        report: &mut Report,
    ) {
        let budgets = changes("budget", &current.budgets, &new.budgets);
        match (&self.parts.gateway, spec) {
            (Some(gateway), Some(spec)) => match gateway.reload(&spec).await {
                Ok(fixed) => {
                    let (old_g, new_g) = (current.gateway.as_ref(), new.gateway.as_ref());
                    if old_g.map(|g| &g.routes) != new_g.map(|g| &g.routes)
                        || old_g
                            .map(|g| (g.max_body, g.timeout, g.connect_timeout, g.websocket_idle))
                            != new_g.map(|g| {
                                (g.max_body, g.timeout, g.connect_timeout, g.websocket_idle)
                            })
                        || webhooks(current) != webhooks(new)
                    {
                        report.applied.push("[gateway] routes".to_owned());
                    }
                    report.applied.extend(budgets);
                    if !fixed.is_empty() {
                        report.restart.push(format!(
                            "[gateway] {}: takes effect when berth restarts",
                            fixed.join(", ")
                        ));
                        // Keep comparing against what runs.
                        if let (Some(n), Some(o)) = (next.gateway.as_mut(), &current.gateway) {
                            n.listen = o.listen.clone();
                            n.tls = o.tls.clone();
                            n.http = o.http;
                            n.access_log = o.access_log;
                            n.session = o.session;
                            n.lockout_after = o.lockout_after;
                            n.lockout_for = o.lockout_for;
                            n.max_connections = o.max_connections;
                            n.max_connections_per_address = o.max_connections_per_address;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reload: the gateway's routes could not change");
                    report.failed.push(ReloadFailure {
                        service: None,
                        section: Some("[gateway]".into()),
                        error: e.to_string(),
                    });
                    next.gateway = current.gateway.clone();
                    next.budgets = current.budgets.clone();
                }
            },
            (None, None) => {
                // Budgets without a gateway are enforced nowhere: nothing to apply.
                report.applied.extend(budgets);
            }
            (None, Some(_)) => {
                report.restart.push(
                    "[gateway] (new): berth starts its listeners when it restarts".to_owned(),
                );
                next.gateway = None;
            }
            (Some(_), None) => {
                report.restart.push(
                    "[gateway] (removed): berth keeps serving it until it restarts".to_owned(),
                );
                next.gateway = current.gateway.clone();
                next.budgets = current.budgets.clone();
            }
        }
    }
}

#[async_trait::async_trait]
impl berth_api::Reload for Reloader {
    async fn reload(&self) -> Result<ReloadReport, String> {
        self.apply().await
    }
}
