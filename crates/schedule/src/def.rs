//! A schedule's definition, as the server built it from `[schedule.NAME]`.

use std::time::Duration;

use berth_cron::Cron;
use berth_store::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartDef {
    /// A job on a queue (a `command` shortcut is a job on the schedule's own queue).
    Job {
        /// The queue.
        queue: String,
        /// The job's kind.
        kind: String,
        /// Its args.
        args: Value,
        /// Attempts allowed (default: the queue's).
        max_attempts: Option<u32>,
    },
    /// A workflow.
    Workflow {
        /// The workflow's name.
        name: String,
        /// Its input.
        args: Value,
    },
}

/// What to do with a run that is due while the previous one has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// Skip it (the default).
    Skip,
    /// Start it anyway.
    Allow,
    /// Start it once the previous one has finished.
    Queue,
}

/// What to do with the planned times missed while berth was down (or the leader away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase", tag = "policy")]
pub enum CatchUp {
    /// Run none of them; a run less than [`crate::plan::GRACE`] late still runs.
    Skip,
    /// Run once for all of them (the default).
    Once,
    /// Run each, oldest first, but at most the latest `limit`.
    All {
        /// The most missed runs started.
        limit: u32,
    },
}

/// One schedule.
#[derive(Debug, Clone)]
pub struct ScheduleDef {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub cron: Cron,
    /// The time zone the expression is read in.
    pub tz: TimeZone,
    /// The time zone's name, as configured.
    pub tz_name: String,
    /// What a run starts.
    pub start: StartDef,
    /// Runs overlapping the previous one.
    pub overlap: Overlap,
    /// Runs missed while down.
    pub catch_up: CatchUp,
    /// Each run starts up to this much after its planned time (the same offset on every
    /// node, drawn from the name and the planned time), so that many schedules on the
    /// same minute do not all start at once.
    pub jitter: Duration,
}

impl ScheduleDef {
    /// What the stored next time was computed from: when it changes, the next time is
    /// computed afresh.
    pub fn signature(&self) -> String {
        format!("{} {}", self.cron.as_str(), self.tz_name)
    }

    /// The first planned time strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let after = jiff::Timestamp::from_microsecond(t.0).ok()?;
        self.cron
            .next_after(after, &self.tz)
            .map(|n| Timestamp(n.as_microsecond()))
    }

    /// When the run planned for `planned` is due: the planned time plus this schedule's
    /// jitter for it.
    pub fn due_at(&self, planned: Timestamp) -> Timestamp {
        let span = self.jitter.as_micros() as u64;
        if span == 0 {
            return planned;
        }
        // FNV-1a over the name and the planned time: every node draws the same offset.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes().chain(planned.0.to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        planned.plus(Duration::from_micros(h % span))
    }

    /// What it starts, in words.
    pub fn target(&self) -> String {
        match &self.start {
            StartDef::Job { queue, kind, .. } => format!("job {kind} on queue {queue}"),
            StartDef::Workflow { name, .. } => format!("workflow {name}"),
        }
    }
}
