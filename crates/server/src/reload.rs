//! `berth reload` and SIGHUP: re-read `berth.toml` and apply what changed to the
//! services — start the new ones, stop the removed ones, roll the changed ones onto
//! their new definition — and leave every unchanged service alone. A config with errors
//! changes nothing.

use std::sync::Arc;

use berth_config::Config;
use berth_supervise::Supervisor;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::services;

/// Applies a re-read config to the running services.
pub struct Reloader {
    /// The config berth runs with: as started, with the services as last reloaded. The
    /// lock also keeps two reloads from interleaving.
    current: Mutex<Config>,
    supervisor: Arc<Supervisor>,
}

impl Reloader {
    /// A reloader for a berth started with `config`.
    pub fn new(config: Config, supervisor: Arc<Supervisor>) -> Self {
        Self {
            current: Mutex::new(config),
            supervisor,
        }
    }

    /// Re-reads the config file and applies it. `Err` carries the config's errors (or an
    /// unreadable env file, a taken port), and then nothing was changed.
    pub async fn apply(&self) -> Result<Value, String> {
        let mut current = self.current.lock().await;
        let mut new = berth_config::load(&current.path).map_err(|e| e.to_string())?;
        berth_config::store_from_env(&mut new)?;
        let specs = services::service_specs(&new).map_err(|e| format!("{e:#}"))?;
        let running = self.supervisor.services();
        // New services need free ports, checked before anything changes.
        for spec in &specs {
            if !running.contains(&spec.name) {
                services::check_ports(&new.services[&spec.name]).map_err(|e| format!("{e:#}"))?;
            }
        }
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
        let (mut added, mut restarted, mut unchanged, mut failed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
                    failed.push(json!({ "service": name, "error": e.to_string() }));
                }
            }
        }
        let not_applied = not_applied(&current, &new);
        if !not_applied.is_empty() {
            tracing::warn!(
                sections = %not_applied.join(", "),
                "reload: these changes take effect at the next start of berth"
            );
        }
        // Only the services took effect: the other sections keep comparing against what
        // berth runs with, so every reload reports them until berth restarts.
        current.services = new.services;
        Ok(json!({
            "added": added,
            "removed": removed,
            "restarted": restarted,
            "unchanged": unchanged,
            "failed": failed,
            "not_applied": not_applied,
        }))
    }
}

#[async_trait::async_trait]
impl berth_api::Reload for Reloader {
    async fn reload(&self) -> Result<Value, String> {
        self.apply().await
    }
}

/// The sections whose changes a reload does not apply (they need a restart of berth).
fn not_applied(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.app != new.app {
        out.push("[app]".to_owned());
    }
    if old.api != new.api {
        out.push("[api]".to_owned());
    }
    for (name, queue) in &new.queues {
        if old.queues.get(name) != Some(queue) {
            out.push(format!("[queue.{name}]"));
        }
    }
    for name in old.queues.keys() {
        if !new.queues.contains_key(name) {
            out.push(format!("[queue.{name}] (removed)"));
        }
    }
    out
}
