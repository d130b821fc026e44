//! [`Scheduler`]: fires the configured schedules (on the leader only) and answers the
//! admin actions. What a firing makes available is announced by the store itself after
//! the commit (`Store::wakeups`), so nothing here wakes queues.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_queue::{LeaderTask, Live, Queues, TickFuture};
use berth_store::{Fired, FlowState, NewJob, ScheduleFire, ScheduleState, Start, Timestamp};
use berth_workflow::Workflows;
use serde::{Deserialize, Serialize};

use crate::def::{CatchUp, Overlap, ScheduleDef, StartDef};
use crate::error::{Result, ScheduleError};
use crate::plan::{Decision, decide};

/// The most planned times one pass looks at (a schedule every second, down for eleven
/// days); older ones count as skipped.
const MAX_DUE: usize = 1_000_000;

/// The configured schedules. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    queues: Queues,
    workflows: Workflows,
    /// Replaced whole by a reload; each stored state keeps its next time unless the
    /// expression or time zone changed.
    defs: Live<BTreeMap<String, Arc<ScheduleDef>>>,
}

/// The last run of a schedule and how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LastRun {
    /// Its planned time.
    pub planned_at: Timestamp,
    /// When it started.
    pub fired_at: Option<Timestamp>,
    /// The job it enqueued.
    pub job_id: Option<i64>,
    /// The workflow it started.
    pub workflow_id: Option<i64>,
    /// Its job's or workflow's state now (`None`: pruned since).
    pub outcome: Option<String>,
}

/// A schedule as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleInfo {
    /// Its name.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// What it starts, in words.
    pub target: String,
    /// Its overlap policy.
    pub overlap: Overlap,
    /// Its catch-up policy.
    pub catch_up: CatchUp,
    /// The next planned time.
    pub next_at: Timestamp,
    /// The last run.
    pub last: Option<LastRun>,
    /// Planned runs skipped in all.
    pub skipped: u64,
    /// Whether it is paused.
    pub paused: bool,
}

impl Scheduler {
    /// The schedules `defs`, starting jobs through `queues` and workflows through
    /// `workflows`.
    pub fn new(queues: Queues, workflows: Workflows, defs: Vec<ScheduleDef>) -> Self {
        Self {
            queues,
            workflows,
            defs: Live::new(by_name(defs)),
        }
    }

    /// Replaces the schedules (a reload): the next pass fires the new ones. A schedule
    /// whose expression and time zone are unchanged keeps its stored next time.
    pub fn set_defs(&self, defs: Vec<ScheduleDef>) {
        self.defs.set(by_name(defs));
    }

    fn def(&self, name: &str) -> Result<Arc<ScheduleDef>> {
        let defs = self.defs.get();
        defs.get(name).cloned().ok_or_else(|| {
            let (suggestion, known) =
                berth_queue::error::did_you_mean(name, defs.keys(), "schedule");
            ScheduleError::Unknown {
                name: name.to_string(),
                suggestion,
                known,
            }
        })
    }

    /// The stored states of the configured schedules, creating the missing ones (first
    /// run after now) and moving those whose expression or time zone changed.
    async fn states(&self, now: Timestamp) -> Result<BTreeMap<String, ScheduleState>> {
        let mut states: BTreeMap<String, ScheduleState> = self
            .queues
            .store()
            .schedules()
            .await?
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for def in self.defs.get().values() {
            let sig = def.signature();
            if states.get(&def.name).is_some_and(|s| s.signature == sig) {
                continue;
            }
            let Some(next) = def.next_after(now) else {
                continue;
            };
            let st = self
                .queues
                .store()
                .schedule_prepare(&def.name, &sig, next)
                .await?;
            tracing::info!(schedule = %def.name, next = %st.next_at, "schedule prepared");
            states.insert(def.name.clone(), st);
        }
        Ok(states)
    }

    /// Fires what is due by `now`. Returns when the next schedule is due.
    pub async fn tick(&self, now: Timestamp) -> Result<Option<Timestamp>> {
        let states = self.states(now).await?;
        let mut next: Option<Timestamp> = None;
        for def in self.defs.get().values() {
            let Some(state) = states.get(&def.name) else {
                continue;
            };
            let due_at = match self.pass(def, state, now).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(schedule = %def.name, error = %e, "firing a schedule failed");
                    None
                }
            };
            next = match (next, due_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }

    /// One schedule's pass. Returns when it is next due.
    async fn pass(
        &self,
        def: &ScheduleDef,
        state: &ScheduleState,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        if def.due_at(state.next_at) > now {
            return Ok(Some(def.due_at(state.next_at)));
        }
        // Every planned time due by now, from the stored one on.
        let mut due = vec![state.next_at];
        let mut after = def.next_after(state.next_at);
        while let Some(t) = after {
            if def.due_at(t) > now || due.len() >= MAX_DUE {
                break;
            }
            due.push(t);
            after = def.next_after(t);
        }
        let Some(after_due) = after else {
            return Ok(None);
        };
        let latest = *due.last().expect("one due time at least");
        let decision = if state.paused {
            Decision {
                fires: Vec::new(),
                next_at: after_due,
                skipped: due.len() as u64,
                hold: false,
            }
        } else {
            decide(
                def.overlap,
                def.catch_up,
                &due,
                after_due,
                def.due_at(latest),
                now,
                self.previous_running(state).await?,
            )
        };
        if decision.hold {
            // Looked at again on the next pass (at least every second).
            return Ok(None);
        }
        self.apply(def, state.next_at, latest, &decision).await?;
        Ok(Some(def.due_at(decision.next_at)))
    }

    /// Writes a decision: each firing a compare-and-set from the stored next time.
    async fn apply(
        &self,
        def: &ScheduleDef,
        stored_next: Timestamp,
        latest: Timestamp,
        d: &Decision,
    ) -> Result<()> {
        let store = self.queues.store();
        let now = self.queues.now();
        if d.fires.is_empty() {
            let fire = ScheduleFire {
                name: def.name.clone(),
                expect_next: Some(stored_next),
                next_at: d.next_at,
                planned: latest,
                start: None,
                skipped: d.skipped,
            };
            if store.schedule_fire(fire, now).await?.is_some() && d.skipped > 0 {
                tracing::info!(schedule = %def.name, skipped = d.skipped, next = %d.next_at, "planned runs skipped");
            }
            return Ok(());
        }
        let mut expect = stored_next;
        for (i, planned) in d.fires.iter().enumerate() {
            let next_at = d.fires.get(i + 1).copied().unwrap_or(d.next_at);
            let fire = ScheduleFire {
                name: def.name.clone(),
                expect_next: Some(expect),
                next_at,
                planned: *planned,
                start: Some(self.start_for(def, *planned, false)?),
                skipped: if i == 0 { d.skipped } else { 0 },
            };
            match store.schedule_fire(fire, now).await? {
                Some(fired) => {
                    tracing::info!(schedule = %def.name, planned = %planned, job = ?fired.job_id, workflow = ?fired.workflow_id, "schedule fired");
                }
                // Another node (or an earlier pass) fired it: nothing more to do here.
                None => return Ok(()),
            }
            expect = next_at;
        }
        Ok(())
    }

    /// What a run planned for `planned` starts.
    fn start_for(&self, def: &ScheduleDef, planned: Timestamp, by_hand: bool) -> Result<Start> {
        Ok(match &def.start {
            StartDef::Job {
                queue,
                kind,
                args,
                max_attempts,
            } => {
                let spec = self.queues.spec(queue)?;
                let mut job = NewJob::new(queue.clone(), kind.clone(), args.clone());
                job.max_attempts = max_attempts.unwrap_or(spec.max_attempts);
                job.scheduled_at = Some(def.due_at(planned));
                job.tags = vec![format!("schedule:{}", def.name)];
                // A second guard besides the compare-and-set: one job per planned time.
                if !by_hand {
                    job.unique_key = Some(format!("schedule:{}:{planned}", def.name));
                }
                Start::Job(job)
            }
            StartDef::Workflow { name, args } => {
                let mut w = self.workflows.instance(
                    name,
                    args.clone(),
                    &format!("schedule:{}", def.name),
                )?;
                // The planned time it was started for, kept with it (and a second guard).
                if !by_hand {
                    w.unique_key = Some(format!("schedule:{}:{planned}", def.name));
                }
                Start::Workflow(w)
            }
        })
    }

    /// Whether the schedule's last run has not finished.
    async fn previous_running(&self, state: &ScheduleState) -> Result<bool> {
        let store = self.queues.store();
        if let Some(id) = state.last_job_id
            && let Some(job) = store.job(id).await?
        {
            return Ok(!job.state.is_final());
        }
        if let Some(id) = state.last_workflow_id
            && let Some(w) = store.workflow(id).await?
        {
            return Ok(w.state == FlowState::Running);
        }
        Ok(false)
    }

    /// Every configured schedule with its next and last run.
    pub async fn list(&self) -> Result<Vec<ScheduleInfo>> {
        let states = self.states(self.queues.now()).await?;
        let mut out = Vec::new();
        for def in self.defs.get().values() {
            let Some(st) = states.get(&def.name) else {
                continue;
            };
            out.push(self.info(def, st).await?);
        }
        Ok(out)
    }

    async fn info(&self, def: &ScheduleDef, st: &ScheduleState) -> Result<ScheduleInfo> {
        let store = self.queues.store();
        let outcome = if let Some(id) = st.last_job_id {
            store.job(id).await?.map(|j| j.state.to_string())
        } else if let Some(id) = st.last_workflow_id {
            store.workflow(id).await?.map(|w| w.state.to_string())
        } else {
            None
        };
        Ok(ScheduleInfo {
            name: def.name.clone(),
            cron: def.cron.as_str().to_string(),
            timezone: def.tz_name.clone(),
            target: def.target(),
            overlap: def.overlap,
            catch_up: def.catch_up,
            next_at: st.next_at,
            last: st.last_planned_at.map(|planned_at| LastRun {
                planned_at,
                fired_at: st.last_fired_at,
                job_id: st.last_job_id,
                workflow_id: st.last_workflow_id,
                outcome,
            }),
            skipped: st.skipped,
            paused: st.paused,
        })
    }

    /// Starts a run now, outside the plan: the next planned time stays as it is.
    pub async fn run_now(&self, name: &str) -> Result<Fired> {
        let def = self.def(name)?;
        let now = self.queues.now();
        self.states(now).await?;
        let fire = ScheduleFire {
            name: def.name.clone(),
            expect_next: None,
            next_at: now,
            planned: now,
            start: Some(self.start_for(&def, now, true)?),
            skipped: 0,
        };
        let fired = self
            .queues
            .store()
            .schedule_fire(fire, now)
            .await?
            .expect("a run by hand always fires");
        Ok(fired)
    }

    /// Pauses or resumes a schedule; a paused schedule's planned times pass, counted as
    /// skipped.
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<ScheduleInfo> {
        let def = self.def(name)?;
        self.states(self.queues.now()).await?;
        let st = self
            .queues
            .store()
            .schedule_set_paused(name, paused)
            .await?;
        self.info(&def, &st).await
    }
}

impl LeaderTask for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn tick(&self, now: Timestamp) -> TickFuture<'_> {
        Box::pin(async move { Scheduler::tick(self, now).await.map_err(|e| e.to_string()) })
    }
}

fn by_name(defs: Vec<ScheduleDef>) -> BTreeMap<String, Arc<ScheduleDef>> {
    defs.into_iter()
        .map(|d| (d.name.clone(), Arc::new(d)))
        .collect()
}
