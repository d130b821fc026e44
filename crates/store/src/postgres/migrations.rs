//! Versioned migrations for the PostgreSQL store, applied once under an advisory lock
//! when several nodes start together. Tables carry a `berth_` prefix so that they can
//! live in the application's own database.

use tokio_postgres::Client;

use crate::error::{Result, StoreError};

/// The advisory lock key that serialises migrations ("berth" in ASCII).
const LOCK_KEY: i64 = 0x0062_6572_7468;

const MIGRATIONS: &[&str] = &[
    // 1: jobs and queues.
    r#"
CREATE TABLE berth_jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            TEXT    NOT NULL CHECK (length(queue) BETWEEN 1 AND 128),
    kind             TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 255),
    args             JSONB   NOT NULL DEFAULT '{}',
    state            TEXT    NOT NULL CHECK (state IN ('pending','scheduled','available','running','retryable','completed','discarded','cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    scheduled_at     BIGINT  NOT NULL,
    attempted_at     BIGINT,
    attempted_by     TEXT,
    lease_expires_at BIGINT,
    finalized_at     BIGINT,
    errors           JSONB   NOT NULL DEFAULT '[]',
    result           JSONB,
    output           TEXT,
    unique_key       TEXT,
    batch_id         BIGINT,
    workflow_id      BIGINT,
    tags             JSONB   NOT NULL DEFAULT '[]',
    created_at       BIGINT  NOT NULL,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    CHECK ((state IN ('completed','discarded','cancelled')) = (finalized_at IS NOT NULL))
);
-- Fetch walks only available jobs, in hand-out order (the CTE's index).
CREATE INDEX berth_jobs_fetch ON berth_jobs (queue, priority, scheduled_at, id) WHERE state = 'available';
CREATE INDEX berth_jobs_due ON berth_jobs (scheduled_at) WHERE state IN ('scheduled', 'retryable');
-- Everything but available jobs (those have the fetch index): counts, the rescuer's
-- running rows, pruning. Leaving available rows out keeps the planner from ever sorting
-- every available job to fetch a few, which it did on a table not yet analyzed.
CREATE INDEX berth_jobs_state ON berth_jobs (state, queue, finalized_at) WHERE state <> 'available';
CREATE UNIQUE INDEX berth_jobs_unique ON berth_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'discarded', 'cancelled');

CREATE TABLE berth_queues (
    name       TEXT PRIMARY KEY,
    paused     BOOLEAN NOT NULL DEFAULT false,
    updated_at BIGINT  NOT NULL
);
"#,
    // 2: nodes and the leader lease.
    r#"
CREATE TABLE berth_nodes (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          BIGINT  NOT NULL,
    version      TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    heartbeat_at BIGINT  NOT NULL
);
CREATE TABLE berth_leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT,
    term       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
INSERT INTO berth_leader (id, holder, term, expires_at) VALUES (1, NULL, 0, 0);
"#,
    // 3: events (services' starts, exits, crash loops, …).
    r#"
CREATE TABLE berth_events (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       BIGINT NOT NULL,
    node     TEXT   NOT NULL,
    source   TEXT   NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    subject  TEXT   NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    instance BIGINT,
    kind     TEXT   NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    message  TEXT   NOT NULL
);
CREATE INDEX berth_events_subject ON berth_events (source, subject, id);
CREATE INDEX berth_events_at ON berth_events (at);
"#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the missing migrations under an advisory lock; refuses a database whose
/// schema is newer than this build knows. Returns how many were applied.
pub(crate) async fn migrate(client: &mut Client, describe: &str) -> Result<usize> {
    let db = |action| move |e| StoreError::db(action, e);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(db("waiting for the migration lock"))?;
    let result = apply(client, describe).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let applied = result?;
    unlock.map_err(db("releasing the migration lock"))?;
    Ok(applied)
}

async fn apply(client: &mut Client, describe: &str) -> Result<usize> {
    let db = |action| move |e| StoreError::db(action, e);
    // Created only when missing: CREATE TABLE IF NOT EXISTS would need the CREATE
    // privilege at every start, even on a migrated database.
    let exists: bool = client
        .query_one("SELECT to_regclass('berth_schema') IS NOT NULL", &[])
        .await
        .map_err(db("looking for the schema table"))?
        .get(0);
    if !exists {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS berth_schema (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                 berth      TEXT NOT NULL
             )",
            )
            .await
            .map_err(db("creating the schema table"))?;
    }
    let current: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM berth_schema",
            &[],
        )
        .await
        .map_err(db("reading the schema version"))?
        .get(0);
    if current > LATEST {
        return Err(StoreError::NewerSchema {
            path: describe.into(),
            found: current,
            supported: LATEST,
        });
    }
    let mut applied = 0;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i32 + 1;
        let tx = client
            .transaction()
            .await
            .map_err(db("starting a migration"))?;
        tx.batch_execute(sql)
            .await
            .map_err(db("applying a migration"))?;
        tx.execute(
            "INSERT INTO berth_schema (version, berth) VALUES ($1, $2)",
            &[&version, &env!("CARGO_PKG_VERSION")],
        )
        .await
        .map_err(db("recording the schema version"))?;
        tx.commit().await.map_err(db("committing a migration"))?;
        tracing::info!(version, "applied database migration");
        applied += 1;
    }
    Ok(applied)
}
