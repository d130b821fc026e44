//! Batches: many items cut into jobs of `job_size` items each, tracked together.
//!
//! Each job's args are `{"items": [...]}`. A job that fails its last attempt is split in
//! halves (down to single items) and the halves run again, so one bad item does not fail
//! its neighbours; the store does this in the transaction that records the failure. A
//! batch ends when every item has completed, failed alone, or been cancelled. The store
//! announces the queues it fills (creation, splits, retries) after each commit
//! (`Store::wakeups`).

use berth_store::{Batch, BatchFailure, BatchFilter, NewBatch};
use serde_json::Value;

use crate::error::{QueueError, Result};
use crate::queues::Queues;

/// The most items one batch may hold.
pub const MAX_ITEMS: usize = 1_000_000;

/// A batch to start.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// The queue its jobs run on; must be configured.
    pub queue: String,
    /// The jobs' kind.
    pub kind: String,
    /// The items.
    pub items: Vec<Value>,
    /// Items per job.
    pub job_size: u32,
    /// Attempts per job (default: the queue's).
    pub max_attempts: Option<u32>,
    /// The jobs' priority.
    pub priority: i32,
}

/// A batch with its failed items.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct BatchReport {
    /// The batch.
    #[serde(flatten)]
    pub batch: Batch,
    /// Its failed and cancelled items with their errors (at most 1000).
    pub failures: Vec<BatchFailure>,
}

impl Queues {
    /// Creates a batch and its jobs, then wakes the queue.
    pub async fn batch_create(&self, req: BatchRequest) -> Result<Batch> {
        let spec = self.spec(&req.queue)?;
        if req.kind.trim().is_empty() {
            return Err(QueueError::Invalid("`kind` must not be empty".into()));
        }
        if req.items.is_empty() {
            return Err(QueueError::Invalid(
                "the batch has no items; give at least one".into(),
            ));
        }
        if req.items.len() > MAX_ITEMS {
            return Err(QueueError::Invalid(format!(
                "the batch has {} items; at most {MAX_ITEMS} fit in one batch — split the input",
                req.items.len()
            )));
        }
        if req.job_size == 0 {
            return Err(QueueError::Invalid("`job_size` must be at least 1".into()));
        }
        if req.max_attempts == Some(0) {
            return Err(QueueError::Invalid(
                "`max_attempts` must be at least 1".into(),
            ));
        }
        let batch = self
            .store()
            .batch_create(
                NewBatch {
                    max_attempts: req.max_attempts.unwrap_or(spec.max_attempts),
                    queue: req.queue,
                    kind: req.kind,
                    items: req.items,
                    job_size: req.job_size,
                    priority: req.priority,
                },
                self.now(),
            )
            .await?;
        Ok(batch)
    }

    /// One batch with its failed items.
    pub async fn batch(&self, id: i64) -> Result<BatchReport> {
        let batch = self
            .store()
            .batch(id)
            .await?
            .ok_or_else(|| berth_store::StoreError::NotFound(format!("no batch {id}")))?;
        let failures = self.store().batch_failures(id, 1000).await?;
        Ok(BatchReport { batch, failures })
    }

    /// Batches, newest first.
    pub async fn batches(&self, filter: BatchFilter) -> Result<Vec<Batch>> {
        Ok(self.store().batches(filter).await?)
    }

    /// Cancels a batch's unfinished jobs, stopping those running here.
    pub async fn batch_cancel(&self, id: i64) -> Result<Batch> {
        let (batch, cancelled) = self.store().batch_cancel(id, self.now()).await?;
        for job in cancelled {
            self.abort_job(job);
        }
        Ok(batch)
    }

    /// Runs a batch's failed and cancelled items again. Returns the batch and how many
    /// jobs will run.
    pub async fn batch_retry_failed(&self, id: i64) -> Result<(Batch, u64)> {
        Ok(self.store().batch_retry_failed(id, self.now()).await?)
    }
}
