//! Versioned schema migrations for the SQLite store.
//!
//! The version lives in `PRAGMA user_version`; the file is marked as berth's with
//! `PRAGMA application_id`. A database whose version is newer than this build knows is
//! refused before anything is written to it.

use std::path::Path;

use rusqlite::Connection;

use crate::error::{Result, StoreError};

/// `PRAGMA application_id` of a berth database ("brth").
pub const APPLICATION_ID: i64 = 0x6272_7468;

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: jobs and queues.
    r#"
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    queue            TEXT    NOT NULL CHECK (length(queue) BETWEEN 1 AND 128),
    kind             TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 255),
    args             TEXT    NOT NULL DEFAULT '{}',
    -- Lists of states are spelled with OR, never IN: SQLite builds a temporary table for
    -- every IN list of constants it evaluates, which halved the insert rate.
    state            TEXT    NOT NULL CHECK (state = 'pending' OR state = 'scheduled'
                             OR state = 'available' OR state = 'running' OR state = 'retryable'
                             OR state = 'completed' OR state = 'discarded' OR state = 'cancelled'),
    priority         INTEGER NOT NULL DEFAULT 0,
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    scheduled_at     INTEGER NOT NULL,
    attempted_at     INTEGER,
    attempted_by     TEXT,
    lease_expires_at INTEGER,
    finalized_at     INTEGER,
    errors           TEXT    NOT NULL DEFAULT '[]',
    result           TEXT,
    output           TEXT,
    unique_key       TEXT,
    batch_id         INTEGER,
    workflow_id      INTEGER,
    tags             TEXT    NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    -- A running job always holds a lease, and only a running job does.
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)),
    -- Final states, and only they, carry the time they were reached.
    CHECK ((state = 'completed' OR state = 'discarded' OR state = 'cancelled') = (finalized_at IS NOT NULL))
);
-- Fetch walks only available jobs, in the order they are handed out.
CREATE INDEX jobs_fetch ON jobs (queue, priority, scheduled_at, id) WHERE state = 'available';
-- The stager finds due scheduled and retryable jobs.
CREATE INDEX jobs_due ON jobs (scheduled_at) WHERE state = 'scheduled' OR state = 'retryable';
-- Counts per state and queue (available jobs are in the fetch index, not here),
-- listing by state, the rescuer's scan of running jobs (few:
-- at most the sum of the concurrencies), and pruning by age. There is deliberately no
-- index on lease_expires_at: every fetch and finish would pay for it, the rescuer reads
-- it once every few seconds.
CREATE INDEX jobs_state ON jobs (state, queue, finalized_at) WHERE state <> 'available';
-- A unique key is unique among the jobs that are not final.
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state <> 'completed' AND state <> 'discarded' AND state <> 'cancelled';

CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 2: nodes and the leader lease.
    r#"
CREATE TABLE nodes (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    version      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE leader (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT,
    term       INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO leader (id, holder, term, expires_at) VALUES (1, NULL, 0, 0);
"#,
    // 3: events (services' starts, exits, crash loops, …).
    r#"
CREATE TABLE events (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    node     TEXT    NOT NULL,
    source   TEXT    NOT NULL CHECK (length(source) BETWEEN 1 AND 64),
    subject  TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    instance INTEGER,
    kind     TEXT    NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    message  TEXT    NOT NULL
);
CREATE INDEX events_subject ON events (source, subject, id);
CREATE INDEX events_at ON events (at);
"#,
    // 4: schedules, batches and workflows.
    r#"
CREATE TABLE schedules (
    name             TEXT    PRIMARY KEY,
    signature        TEXT    NOT NULL,
    next_at          INTEGER NOT NULL,
    last_planned_at  INTEGER,
    last_fired_at    INTEGER,
    last_job_id      INTEGER,
    last_workflow_id INTEGER,
    skipped          INTEGER NOT NULL DEFAULT 0,
    paused           INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1))
) WITHOUT ROWID;

CREATE TABLE batches (
    id              INTEGER PRIMARY KEY,
    queue           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state = 'running' OR state = 'completed'
                            OR state = 'failed' OR state = 'cancelled'),
    total_items     INTEGER NOT NULL CHECK (total_items >= 1),
    job_size        INTEGER NOT NULL CHECK (job_size >= 1),
    max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),
    priority        INTEGER NOT NULL DEFAULT 0,
    done_items      INTEGER NOT NULL DEFAULT 0 CHECK (done_items >= 0),
    failed_items    INTEGER NOT NULL DEFAULT 0 CHECK (failed_items >= 0),
    cancelled_items INTEGER NOT NULL DEFAULT 0 CHECK (cancelled_items >= 0),
    created_at      INTEGER NOT NULL,
    finalized_at    INTEGER,
    CHECK ((state = 'running') = (finalized_at IS NULL))
);
CREATE INDEX batches_finalized ON batches (finalized_at) WHERE finalized_at IS NOT NULL;

CREATE TABLE workflows (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state = 'running' OR state = 'completed'
                         OR state = 'failed' OR state = 'cancelled'),
    input        TEXT    NOT NULL DEFAULT 'null',
    result       TEXT,
    error        TEXT,
    started_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    deadline     INTEGER,
    finalized_at INTEGER,
    CHECK ((state = 'running') = (finalized_at IS NULL))
);
CREATE INDEX workflows_running ON workflows (deadline) WHERE state = 'running';
CREATE INDEX workflows_finalized ON workflows (finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX workflows_name ON workflows (name, id);

CREATE TABLE workflow_steps (
    workflow_id INTEGER NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    step        TEXT    NOT NULL,
    job_id      INTEGER NOT NULL,
    parents     TEXT    NOT NULL DEFAULT '[]',
    optional    INTEGER NOT NULL DEFAULT 0 CHECK (optional IN (0, 1)),
    PRIMARY KEY (workflow_id, step)
) WITHOUT ROWID;

CREATE INDEX jobs_batch ON jobs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;
"#,
    // 5: the gateway's users, API tokens and login sessions.
    r#"
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    roles         TEXT    NOT NULL DEFAULT '[]',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- Only a hash of a token or a session id is kept: a copy of the database opens nothing.
CREATE TABLE tokens (
    id         TEXT    PRIMARY KEY,
    hash       TEXT    NOT NULL UNIQUE,
    user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    label      TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE INDEX tokens_user ON tokens (user_name);

CREATE TABLE sessions (
    hash       TEXT    PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_expiry ON sessions (expires_at);
"#,
    // 6: the gateway's budgets and settings (maintenance mode).
    r#"
-- Spending in millionths of the budget's unit, so that sums are exact.
CREATE TABLE budgets (
    name         TEXT    PRIMARY KEY,
    period_start INTEGER NOT NULL,
    spent        INTEGER NOT NULL DEFAULT 0,
    alerted      INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    // 7: messages taken in by ingests, and dead letters.
    r#"
-- AUTOINCREMENT: ids are never reused, even once retention pruned every message (jobs
-- keep the id of the message that started them).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ingest      TEXT    NOT NULL,
    device      TEXT,
    topic       TEXT    NOT NULL,
    kind        TEXT,
    payload     BLOB    NOT NULL,
    received_at INTEGER NOT NULL,
    dead        INTEGER NOT NULL DEFAULT 0,
    errors      TEXT    NOT NULL DEFAULT '[]',
    job_id      INTEGER,
    workflow_id INTEGER,
    replayed_at INTEGER
);
-- Retention and time filters per ingest; dead letters on their own; per device.
CREATE INDEX messages_ingest_time ON messages (ingest, received_at);
CREATE INDEX messages_dead ON messages (id) WHERE dead = 1;
CREATE INDEX messages_device ON messages (device, id) WHERE device IS NOT NULL;
"#,
    // 8: the notification outbox. Events recorded before it are taken as routed, so that
    // an upgrade does not notify what happened long ago.
    r#"
ALTER TABLE events ADD COLUMN routed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX events_unrouted ON events (id) WHERE routed = 0;

-- AUTOINCREMENT: a delivery's id is what receivers drop duplicates by; it is never
-- reused, even once pruning removed the newest.
CREATE TABLE notify_deliveries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT    NOT NULL,
    event_id   INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at    INTEGER
);
CREATE INDEX notify_due ON notify_deliveries (channel, next_at) WHERE sent_at IS NULL;
CREATE INDEX notify_sent ON notify_deliveries (sent_at) WHERE sent_at IS NOT NULL;
"#,
    // 9: a workflow's unique key: a second start with the same key, while the first runs,
    // starts nothing.
    r#"
ALTER TABLE workflows ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX workflows_unique ON workflows (unique_key)
    WHERE unique_key IS NOT NULL AND state = 'running';
"#,
    // 10: messages' own keys: a resend with a key seen within the ingest's window is
    // counted on the first message, not stored again.
    r#"
ALTER TABLE messages ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
CREATE TABLE message_keys (
    ingest      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    message_id  INTEGER,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ingest, key)
) WITHOUT ROWID;
CREATE INDEX message_keys_expiry ON message_keys (ingest, expires_at);
"#,
    // 11: a chunk split after its last attempt is `split`, not `discarded`: failed work
    // counts failed work. The two CHECKs of `jobs` that list states take 'split' too: a
    // looser CHECK changes nothing on disk, so the table's SQL is edited in place, as
    // SQLite documents (https://sqlite.org/lang_altertable.html, section 7); `migrate`
    // bumps the schema version around it.
    r#"
UPDATE sqlite_schema
    SET sql = replace(sql, 'OR state = ''cancelled'')', 'OR state = ''cancelled'' OR state = ''split'')')
    WHERE type = 'table' AND name = 'jobs';
"#,
    // 12: the chunks split before 11 become `split`; a split chunk holds no unique key.
    r#"
UPDATE jobs SET state = 'split'
    WHERE state = 'discarded' AND json_extract(result, '$.split_into') IS NOT NULL;
DROP INDEX jobs_unique;
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state <> 'completed' AND state <> 'discarded'
      AND state <> 'cancelled' AND state <> 'split';
"#,
    // 13: the job archive: final jobs kept aside, outside the live table and its pruning.
    // `seq` orders it (a job id may come back once the newest jobs left `jobs`).
    r#"
CREATE TABLE archived_jobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          INTEGER NOT NULL,
    queue       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    archived_at INTEGER NOT NULL,
    job         TEXT    NOT NULL
);
CREATE INDEX archived_jobs_id ON archived_jobs (id);
CREATE INDEX archived_jobs_queue ON archived_jobs (queue, state, seq);
"#,
    // 14: what a token may do on the admin API.
    r#"
ALTER TABLE tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
"#,
    // 15: counts kept by the store, so that status, `queue list`, `/metrics` and the
    // dashboard read a few rows instead of counting every job and message. Triggers move
    // them in the same transaction as the rows they count, whatever statement moved those.
    r#"
CREATE TABLE job_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
INSERT INTO job_counts (queue, state, n) SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF queue, state ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;
CREATE TABLE message_counts (
    ingest TEXT    NOT NULL,
    dead   INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (ingest, dead)
) WITHOUT ROWID;
INSERT INTO message_counts (ingest, dead, n) SELECT ingest, dead, count(*) FROM messages GROUP BY ingest, dead;
CREATE TRIGGER message_counts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_counts (ingest, dead, n) VALUES (NEW.ingest, NEW.dead, 1)
    ON CONFLICT (ingest, dead) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER message_counts_update AFTER UPDATE OF ingest, dead ON messages
WHEN OLD.dead IS NOT NEW.dead OR OLD.ingest IS NOT NEW.ingest BEGIN
    UPDATE message_counts SET n = n - 1 WHERE ingest = OLD.ingest AND dead = OLD.dead;
    INSERT INTO message_counts (ingest, dead, n) VALUES (NEW.ingest, NEW.dead, 1)
    ON CONFLICT (ingest, dead) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER message_counts_delete AFTER DELETE ON messages BEGIN
    UPDATE message_counts SET n = n - 1 WHERE ingest = OLD.ingest AND dead = OLD.dead;
END;
"#,
    // 16: inserts are counted by the statements that insert, once per batch and group
    // (`counts::add_jobs`, `counts::add_messages`): a row trigger on every insert halved
    // the bulk enqueue rate. Updates and deletes keep their triggers.
    r#"
DROP TRIGGER job_counts_insert;
DROP TRIGGER message_counts_insert;
"#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Checks, reading only, that the file is a berth database this build can use. Nothing is
/// written to a refused file.
pub fn check(conn: &Connection, path: &Path) -> Result<()> {
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    // The first read of the header: a file that is not SQLite fails here.
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(corrupt)?;
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(corrupt)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(corrupt)?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables > 0 || version != 0) {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "it is an SQLite database of another application (application_id {app_id:#x}, {tables} tables)"
            ),
        });
    }
    if version > LATEST {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: LATEST,
        });
    }
    Ok(())
}

/// Applies the missing migrations, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| StoreError::db("reading the schema version", e))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let to = i as i64 + 1;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::db("starting a migration", e))?;
        // A migration that edits a table's SQL in place (a looser CHECK) does so as SQLite
        // documents: with writable_schema on, then the schema version bumped so that
        // every connection reads the schema again.
        let edits_schema = sql.contains("UPDATE sqlite_schema");
        if edits_schema {
            tx.execute_batch("PRAGMA writable_schema = ON")
                .map_err(|e| StoreError::db("applying a migration", e))?;
        }
        tx.execute_batch(sql)
            .map_err(|e| StoreError::db("applying a migration", e))?;
        if edits_schema {
            let schema: i64 = tx
                .query_row("PRAGMA schema_version", [], |r| r.get(0))
                .map_err(|e| StoreError::db("applying a migration", e))?;
            tx.execute_batch(&format!(
                "PRAGMA schema_version = {}; PRAGMA writable_schema = RESET;",
                schema + 1
            ))
            .map_err(|e| StoreError::db("applying a migration", e))?;
        }
        tx.execute_batch(&format!(
            "PRAGMA user_version = {to}; PRAGMA application_id = {APPLICATION_ID};"
        ))
        .map_err(|e| StoreError::db("recording the schema version", e))?;
        tx.commit()
            .map_err(|e| StoreError::db("committing a migration", e))?;
        tracing::info!(version = to, "applied database migration");
    }
    Ok(())
}
