//! The kept counts' share that is not a trigger: rows inserted into `jobs` and
//! `messages` are added to `job_counts` and `message_counts` by the code that inserts them,
//! one statement per group at the end of a batch (migration 16). Updates and deletes are
//! counted by triggers (migration 15), so that no other statement can forget them.

use rusqlite::{Connection, params};

use crate::error::{Result, StoreError};

/// Rows inserted per group, in the order the groups were first seen.
#[derive(Debug, Default)]
pub(crate) struct Tally<K: PartialEq>(Vec<(K, i64)>);

impl<K: PartialEq> Tally<K> {
    pub(crate) fn add(&mut self, key: K) {
        // A batch holds few groups (usually one queue, one state): a scan beats a map.
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.0.push((key, 1)),
        }
    }
}

/// Adds inserted jobs, per (queue, state), to the kept counts.
pub(crate) fn add_jobs(conn: &Connection, tally: &Tally<(&str, &str)>) -> Result<()> {
    let mut add = conn
        .prepare_cached(
            "INSERT INTO job_counts (queue, state, n) VALUES (?1, ?2, ?3) \
             ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
        )
        .map_err(|e| StoreError::db("counting jobs", e))?;
    for ((queue, state), n) in &tally.0 {
        add.execute(params![queue, state, n])
            .map_err(|e| StoreError::db("counting jobs", e))?;
    }
    Ok(())
}

/// Adds inserted messages, per (ingest, dead), to the kept counts.
pub(crate) fn add_messages(conn: &Connection, tally: &Tally<(&str, bool)>) -> Result<()> {
    let mut add = conn
        .prepare_cached(
            "INSERT INTO message_counts (ingest, dead, n) VALUES (?1, ?2, ?3) \
             ON CONFLICT (ingest, dead) DO UPDATE SET n = n + excluded.n",
        )
        .map_err(|e| StoreError::db("counting messages", e))?;
    for ((ingest, dead), n) in &tally.0 {
        add.execute(params![ingest, dead, n])
            .map_err(|e| StoreError::db("counting messages", e))?;
    }
    Ok(())
}
