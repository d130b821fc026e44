//! The rules both stores apply before they write: which admin action a job's state
//! allows, what may be pruned or purged. Kept here once so that the two SQL dialects
//! cannot drift apart.

use crate::error::{Result, StoreError};
use crate::model::{JobState, NewJob, QueueStats};

/// Insert: every job of the batch well-formed; an error names the job's place in it.
pub(crate) fn may_insert(jobs: &[NewJob]) -> Result<()> {
    for (i, job) in jobs.iter().enumerate() {
        let wrong = if job.queue.is_empty() || job.queue.len() > 128 {
            "a job's queue must be 1 to 128 characters"
        } else if job.kind.is_empty() || job.kind.len() > 255 {
            "a job's kind must be 1 to 255 characters"
        } else if job.max_attempts == 0 {
            "max_attempts must be at least 1"
        } else {
            continue;
        };
        return Err(StoreError::Invalid(format!("job {i}: {wrong}")));
    }
    Ok(())
}

/// Cancel or discard: only a job that has not finished.
pub(crate) fn may_finalize(id: i64, from: JobState, action: &'static str) -> Result<()> {
    if from.is_final() {
        return Err(StoreError::InvalidState {
            id,
            state: from,
            action,
            hint: "; it has already finished (use retry to run it again)",
        });
    }
    Ok(())
}

/// Retry: not a job that is already waiting to run or running.
pub(crate) fn may_retry(id: i64, from: JobState) -> Result<()> {
    if matches!(
        from,
        JobState::Running | JobState::Available | JobState::Pending
    ) {
        return Err(StoreError::InvalidState {
            id,
            state: from,
            action: "retry",
            hint: "; it is already waiting to run or running",
        });
    }
    Ok(())
}

/// Delete: not a running job.
pub(crate) fn may_delete(id: i64, from: JobState) -> Result<()> {
    if from == JobState::Running {
        return Err(StoreError::InvalidState {
            id,
            state: from,
            action: "delete",
            hint: "; cancel it first",
        });
    }
    Ok(())
}

/// Prune: only final states.
pub(crate) fn may_prune(state: JobState) -> Result<()> {
    if !state.is_final() {
        return Err(StoreError::Invalid(format!(
            "only final jobs can be pruned, not {state} ones"
        )));
    }
    Ok(())
}

/// Purge: never running jobs.
pub(crate) fn may_purge(states: &[JobState]) -> Result<()> {
    if states.contains(&JobState::Running) {
        return Err(StoreError::Invalid(
            "running jobs cannot be purged; cancel them first".into(),
        ));
    }
    Ok(())
}

/// The counts of a queue with no jobs.
pub(crate) fn empty_stats(name: &str) -> QueueStats {
    QueueStats {
        name: name.to_string(),
        paused: false,
        counts: JobState::ALL.iter().map(|s| (*s, 0)).collect(),
        oldest_available_at: None,
    }
}
