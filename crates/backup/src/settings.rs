//! The operational settings a restore keeps: maintenance mode, paused queues and paused
//! schedules, as they were when the restore began.
//!
//! They live in the store, so an archive carries the ones in force when it was made. A
//! restore is often the middle of a rollback: the site was put in maintenance mode and a
//! queue paused *after* the backup, and putting the archive's settings back would reopen
//! the site and restart the queue at the worst moment. So a restore reads them from the
//! store it replaces ([`InForce::read`]) and writes them into the restored one
//! ([`InForce::apply`]) unless told to take the archive's.

use std::collections::{BTreeMap, BTreeSet};

use berth_store::{ScheduleState, Store, StoreError, Timestamp};
use serde_json::Value;

/// The settings key of maintenance mode.
const MAINTENANCE: &str = "maintenance";

/// Operational settings as one store holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InForce {
    /// Maintenance mode's message and start, while it is on.
    pub maintenance: Option<Value>,
    /// The paused queues.
    pub paused_queues: BTreeSet<String>,
    /// The paused schedules, with their stored state (to recreate one the archive does
    /// not know yet).
    pub paused_schedules: BTreeMap<String, ScheduleState>,
}

impl InForce {
    /// Reads them from `store`.
    pub async fn read(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            maintenance: store.setting(MAINTENANCE).await?,
            paused_queues: store.paused_queues().await?.into_iter().collect(),
            paused_schedules: store
                .schedules()
                .await?
                .into_iter()
                .filter(|s| s.paused)
                .map(|s| (s.name.clone(), s))
                .collect(),
        })
    }

    /// Makes `store` hold these settings. Returns what had to change, in words, for the
    /// restore's report.
    pub async fn apply(
        &self,
        store: &dyn Store,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut changed = Vec::new();
        let restored = InForce::read(store).await?;
        if restored.maintenance != self.maintenance {
            store
                .set_setting(MAINTENANCE, self.maintenance.clone(), now)
                .await?;
            changed.push(match &self.maintenance {
                Some(_) => "maintenance mode stays on (it was off in the archive)".to_owned(),
                None => "maintenance mode stays off (it was on in the archive)".to_owned(),
            });
        }
        for q in self.paused_queues.difference(&restored.paused_queues) {
            store.set_paused(q, true, now).await?;
            changed.push(format!("queue `{q}` stays paused"));
        }
        for q in restored.paused_queues.difference(&self.paused_queues) {
            store.set_paused(q, false, now).await?;
            changed.push(format!(
                "queue `{q}` stays running (it was paused in the archive)"
            ));
        }
        for (name, state) in &self.paused_schedules {
            if restored.paused_schedules.contains_key(name) {
                continue;
            }
            // A schedule the archive does not know yet gets the state it had, paused.
            store
                .schedule_prepare(name, &state.signature, state.next_at)
                .await?;
            store.schedule_set_paused(name, true).await?;
            changed.push(format!("schedule `{name}` stays paused"));
        }
        for name in restored.paused_schedules.keys() {
            if !self.paused_schedules.contains_key(name) {
                store.schedule_set_paused(name, false).await?;
                changed.push(format!(
                    "schedule `{name}` stays running (it was paused in the archive)"
                ));
            }
        }
        Ok(changed)
    }
}
