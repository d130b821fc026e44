//! Jobs kept aside: final jobs moved out of the live table into an archive that no
//! pruning touches, where they stay listable, showable and exportable.

use serde::{Deserialize, Serialize};

use crate::model::{Job, JobState, Timestamp};

/// Which final jobs to move to the archive: one job, or those of a queue and/or of
/// some final states. Jobs of a batch still running, and steps of a workflow that is
/// running or failed (and so may be retried), stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArchiveSelect {
    /// Only this job (then `queue` and `states` must be empty).
    pub id: Option<i64>,
    /// Only this queue's.
    pub queue: Option<String>,
    /// Only these final states (empty: every final state).
    pub states: Vec<JobState>,
}

/// A job in the archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArchivedJob {
    /// The job as it was when it was archived, its history included.
    #[serde(flatten)]
    pub job: Job,
    /// When it was archived.
    pub archived_at: Timestamp,
    /// Its place in the archive, increasing in the order jobs were archived (the paging
    /// cursor: a job id may come back on SQLite once the newest jobs left the table).
    pub seq: i64,
}

/// Which archived jobs to list, most recently archived first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArchiveFilter {
    /// Only this queue's.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only entries archived before this `seq` (the next page).
    pub before_seq: Option<i64>,
    /// At most this many (1 to 1000).
    pub limit: u32,
}

impl ArchiveFilter {
    /// The limit, within 1 to 1000.
    pub fn limit(&self) -> u32 {
        self.limit.clamp(1, 1000)
    }
}

/// The states a selection takes: every final state when none is named. Refuses a state
/// that is not final, and a job id together with other filters.
pub(crate) fn archive_states(select: &ArchiveSelect) -> crate::Result<Vec<JobState>> {
    if select.id.is_some() && (select.queue.is_some() || !select.states.is_empty()) {
        return Err(crate::StoreError::Invalid(
            "archive one job by its id, or jobs by queue and state, not both".into(),
        ));
    }
    if let Some(s) = select.states.iter().find(|s| !s.is_final()) {
        return Err(crate::StoreError::Invalid(format!(
            "only final jobs are archived; `{s}` is not final (expected completed, discarded, cancelled or split)"
        )));
    }
    Ok(if select.states.is_empty() {
        JobState::ALL.into_iter().filter(|s| s.is_final()).collect()
    } else {
        select.states.clone()
    })
}

/// Why one job cannot be archived, from its state and its batch's or workflow's.
pub(crate) fn may_archive_one(
    job: &Job,
    batch_running: bool,
    workflow_open: bool,
) -> crate::Result<()> {
    if !job.state.is_final() {
        return Err(crate::StoreError::Conflict(format!(
            "job {} is {}; only final jobs (completed, discarded, cancelled, split) are archived",
            job.id, job.state
        )));
    }
    if let (Some(b), true) = (job.batch_id, batch_running) {
        return Err(crate::StoreError::Conflict(format!(
            "job {} belongs to batch {b}, which is still running; archive it once the batch has ended",
            job.id
        )));
    }
    if let (Some(w), true) = (job.workflow_id, workflow_open) {
        return Err(crate::StoreError::Conflict(format!(
            "job {} is a step of workflow {w}, which is running or may be retried; archive it once the workflow completed or was cancelled",
            job.id
        )));
    }
    Ok(())
}
