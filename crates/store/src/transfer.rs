//! Copying a whole store into another: how an embedded install moves to PostgreSQL
//! (`berth store migrate`). Jobs keep their ids, states and histories; paused queues stay
//! paused; schedules, batches and workflows keep their ids and states; recorded events
//! follow in order; users and API tokens are copied (login sessions are not: people log
//! in again); ingested messages and dead letters keep their ids; the job counts are
//! checked at the end.

use crate::error::{Result, StoreError};
use crate::model::{EventFilter, Timestamp};
use crate::store::*;

/// Jobs per page (one transaction on the target each).
const PAGE: u32 = 5_000;

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Jobs copied.
    pub jobs: u64,
    /// Paused queues carried over.
    pub paused_queues: Vec<String>,
    /// Recorded events copied (they get new ids, in the same order).
    pub events: u64,
    /// Schedules, batches and workflows copied.
    pub flows: u64,
    /// Users copied (with their tokens).
    pub users: u64,
    /// Ingested messages and dead letters copied.
    pub messages: u64,
}

/// Copies every job and queue state of `from` into `to`. Refuses a target that already
/// holds jobs unless `force`. `progress(done, total)` is called after every page.
pub async fn copy_all(
    from: &dyn Store,
    to: &dyn Store,
    force: bool,
    now: Timestamp,
    mut progress: impl FnMut(u64, u64),
) -> Result<CopyReport> {
    let existing = to.count_jobs().await?;
    if existing > 0 && !force {
        return Err(StoreError::Conflict(format!(
            "the target already holds {existing} jobs; nothing was copied. Copy into an empty database, or pass --force to add to it (the copy fails if job ids clash)"
        )));
    }
    // Paused queues first: a copy cut short must not leave their jobs free to run.
    let paused = from.paused_queues().await?;
    for q in &paused {
        to.set_paused(q, true, now).await?;
    }
    let total = from.count_jobs().await?;
    let mut copied = 0u64;
    let mut after = 0i64;
    progress(0, total);
    loop {
        let page = from.export_jobs(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        copied += page.len() as u64;
        to.import_jobs(page).await?;
        progress(copied, total);
    }
    let (source, target) = (from.count_jobs().await?, to.count_jobs().await?);
    if copied != source || target != existing + source {
        return Err(StoreError::Conflict(format!(
            "the counts do not match after the copy: {source} jobs in the source, {copied} copied, {target} in the target (which held {existing} before); was the source in use meanwhile?"
        )));
    }
    let dump = from.export_flows().await?;
    let flows = (dump.schedules.len() + dump.batches.len() + dump.workflows.len()) as u64;
    to.import_flows(dump).await?;
    let auth = from.export_auth().await?;
    let users = auth.users.len() as u64;
    to.import_auth(auth).await?;
    let events = copy_events(from, to).await?;
    let mut messages = 0u64;
    let mut after = 0i64;
    loop {
        let page = from.export_messages(after, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        messages += page.len() as u64;
        to.import_messages(page).await?;
    }
    Ok(CopyReport {
        messages,
        jobs: copied,
        paused_queues: paused,
        events,
        flows,
        users,
    })
}

/// Copies the recorded events, oldest first, in pages.
async fn copy_events(from: &dyn Store, to: &dyn Store) -> Result<u64> {
    // Listing pages backwards from the newest; kept in memory (a month of events).
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = from
            .events(EventFilter {
                before_id: before,
                limit: PAGE,
                ..EventFilter::default()
            })
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        before = Some(last.id);
        all.extend(page.into_iter().map(|e| e.event));
    }
    all.reverse();
    let total = all.len() as u64;
    for chunk in all.chunks(PAGE as usize) {
        to.record_events(chunk.to_vec()).await?;
    }
    Ok(total)
}
