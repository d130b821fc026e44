//! Versioned migrations for the PostgreSQL store, applied once under an advisory lock
//! when several nodes start together. Tables carry a `berth_` prefix so that they can
//! live in the application's own database.

use tokio_postgres::Client;

use crate::error::{Result, StoreError};

/// The advisory lock key that serialises migrations ("berth" in ASCII).
const LOCK_KEY: i64 = 0x0062_6572_7468;

/// The functions the kept counts' triggers call (migration 14). `pg_dump --table` keeps
/// triggers but not the functions they call, so a restore creates them first too
/// ([`COUNT_FUNCTIONS`]); `OR REPLACE` lets both run on a database that has them.
macro_rules! count_functions {
    () => {
        r#"
CREATE OR REPLACE FUNCTION berth_job_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_job_counts (queue, state, n)
    SELECT queue, state, count(*) FROM new_rows GROUP BY queue, state;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION berth_job_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_job_counts (queue, state, n)
    SELECT queue, state, sum(d) FROM (
        SELECT queue, state, -1 AS d FROM old_rows
        UNION ALL SELECT queue, state, 1 FROM new_rows
    ) moved GROUP BY queue, state HAVING sum(d) <> 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION berth_job_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_job_counts (queue, state, n)
    SELECT queue, state, -count(*) FROM old_rows GROUP BY queue, state;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION berth_message_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_message_counts (ingest, dead, n)
    SELECT ingest, dead, count(*) FROM new_rows GROUP BY ingest, dead;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION berth_message_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_message_counts (ingest, dead, n)
    SELECT ingest, dead, sum(d) FROM (
        SELECT ingest, dead, -1 AS d FROM old_rows
        UNION ALL SELECT ingest, dead, 1 FROM new_rows
    ) moved GROUP BY ingest, dead HAVING sum(d) <> 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION berth_message_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO berth_message_counts (ingest, dead, n)
    SELECT ingest, dead, -count(*) FROM old_rows GROUP BY ingest, dead;
    RETURN NULL;
END $$;
"#
    };
}

/// [`count_functions!`] as a constant, for a restore.
pub(crate) const COUNT_FUNCTIONS: &str = count_functions!();

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
    // 4: schedules, batches and workflows.
    r#"
CREATE TABLE berth_schedules (
    name             TEXT    PRIMARY KEY,
    signature        TEXT    NOT NULL,
    next_at          BIGINT  NOT NULL,
    last_planned_at  BIGINT,
    last_fired_at    BIGINT,
    last_job_id      BIGINT,
    last_workflow_id BIGINT,
    skipped          BIGINT  NOT NULL DEFAULT 0,
    paused           BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE berth_batches (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    queue           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('running','completed','failed','cancelled')),
    total_items     BIGINT  NOT NULL CHECK (total_items >= 1),
    job_size        INTEGER NOT NULL CHECK (job_size >= 1),
    max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),
    priority        INTEGER NOT NULL DEFAULT 0,
    done_items      BIGINT  NOT NULL DEFAULT 0 CHECK (done_items >= 0),
    failed_items    BIGINT  NOT NULL DEFAULT 0 CHECK (failed_items >= 0),
    cancelled_items BIGINT  NOT NULL DEFAULT 0 CHECK (cancelled_items >= 0),
    created_at      BIGINT  NOT NULL,
    finalized_at    BIGINT,
    CHECK ((state = 'running') = (finalized_at IS NULL))
);
CREATE INDEX berth_batches_finalized ON berth_batches (finalized_at) WHERE finalized_at IS NOT NULL;

CREATE TABLE berth_workflows (
    id           BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name         TEXT   NOT NULL,
    state        TEXT   NOT NULL CHECK (state IN ('running','completed','failed','cancelled')),
    input        JSONB  NOT NULL DEFAULT 'null',
    result       JSONB,
    error        TEXT,
    started_by   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    deadline     BIGINT,
    finalized_at BIGINT,
    CHECK ((state = 'running') = (finalized_at IS NULL))
);
CREATE INDEX berth_workflows_running ON berth_workflows (deadline) WHERE state = 'running';
CREATE INDEX berth_workflows_finalized ON berth_workflows (finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX berth_workflows_name ON berth_workflows (name, id);

CREATE TABLE berth_workflow_steps (
    workflow_id BIGINT  NOT NULL REFERENCES berth_workflows (id) ON DELETE CASCADE,
    step        TEXT    NOT NULL,
    job_id      BIGINT  NOT NULL,
    parents     JSONB   NOT NULL DEFAULT '[]',
    optional    BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (workflow_id, step)
);

CREATE INDEX berth_jobs_batch ON berth_jobs (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX berth_jobs_workflow ON berth_jobs (workflow_id) WHERE workflow_id IS NOT NULL;
"#,
    // 5: the gateway's users, API tokens and login sessions.
    r#"
CREATE TABLE berth_users (
    name          TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    roles         JSONB   NOT NULL DEFAULT '[]',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE berth_tokens (
    id         TEXT    PRIMARY KEY,
    hash       TEXT    NOT NULL UNIQUE,
    user_name  TEXT    NOT NULL REFERENCES berth_users (name) ON DELETE CASCADE,
    label      TEXT    NOT NULL DEFAULT '',
    created_at BIGINT  NOT NULL,
    expires_at BIGINT
);
CREATE INDEX berth_tokens_user ON berth_tokens (user_name);

CREATE TABLE berth_sessions (
    hash       TEXT    PRIMARY KEY,
    user_name  TEXT    NOT NULL REFERENCES berth_users (name) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX berth_sessions_user ON berth_sessions (user_name);
CREATE INDEX berth_sessions_expiry ON berth_sessions (expires_at);
"#,
    // 6: the gateway's budgets and settings (maintenance mode).
    r#"
CREATE TABLE berth_budgets (
    name         TEXT    PRIMARY KEY,
    period_start BIGINT  NOT NULL,
    spent        BIGINT  NOT NULL DEFAULT 0,
    alerted      INTEGER NOT NULL DEFAULT 0,
    updated_at   BIGINT  NOT NULL
);

CREATE TABLE berth_settings (
    key        TEXT    PRIMARY KEY,
    value      JSONB   NOT NULL,
    updated_at BIGINT  NOT NULL
);
"#,
    // 7: messages taken in by ingests, and dead letters.
    r#"
CREATE TABLE berth_messages (
    id          BIGSERIAL PRIMARY KEY,
    ingest      TEXT    NOT NULL,
    device      TEXT,
    topic       TEXT    NOT NULL,
    kind        TEXT,
    payload     BYTEA   NOT NULL,
    received_at BIGINT  NOT NULL,
    dead        BOOLEAN NOT NULL DEFAULT FALSE,
    errors      JSONB   NOT NULL DEFAULT '[]',
    job_id      BIGINT,
    workflow_id BIGINT,
    replayed_at BIGINT
);
CREATE INDEX berth_messages_ingest_time ON berth_messages (ingest, received_at);
CREATE INDEX berth_messages_dead ON berth_messages (id) WHERE dead;
CREATE INDEX berth_messages_device ON berth_messages (device, id) WHERE device IS NOT NULL;
"#,
    // 8: the notification outbox. Events recorded before it are taken as routed, so that
    // an upgrade does not notify what happened long ago.
    r#"
ALTER TABLE berth_events ADD COLUMN routed BOOLEAN NOT NULL DEFAULT true;
CREATE INDEX berth_events_unrouted ON berth_events (id) WHERE NOT routed;

CREATE TABLE berth_notify_deliveries (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel    TEXT    NOT NULL,
    event_id   BIGINT  NOT NULL,
    at         BIGINT  NOT NULL,
    kind       TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    next_at    BIGINT  NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at    BIGINT
);
CREATE INDEX berth_notify_due ON berth_notify_deliveries (channel, next_at) WHERE sent_at IS NULL;
CREATE INDEX berth_notify_sent ON berth_notify_deliveries (sent_at) WHERE sent_at IS NOT NULL;
"#,
    // 9: a workflow's unique key: a second start with the same key, while the first runs,
    // starts nothing.
    r#"
ALTER TABLE berth_workflows ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX berth_workflows_unique ON berth_workflows (unique_key)
    WHERE unique_key IS NOT NULL AND state = 'running';
"#,
    // 10: messages' own keys: a resend with a key seen within the ingest's window is
    // counted on the first message, not stored again.
    r#"
ALTER TABLE berth_messages ADD COLUMN duplicates BIGINT NOT NULL DEFAULT 0;
CREATE TABLE berth_message_keys (
    ingest      TEXT   NOT NULL,
    key         TEXT   NOT NULL,
    received_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    message_id  BIGINT,
    duplicates  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ingest, key)
);
CREATE INDEX berth_message_keys_expiry ON berth_message_keys (ingest, expires_at);
"#,
    // 11: a chunk split after its last attempt is `split`, not `discarded`: failed work
    // counts failed work.
    r#"
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'berth_jobs'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%discarded%'
    LOOP
        EXECUTE format('ALTER TABLE berth_jobs DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
ALTER TABLE berth_jobs ADD CONSTRAINT berth_jobs_state_check CHECK (state IN
    ('pending','scheduled','available','running','retryable','completed','discarded','cancelled','split'));
UPDATE berth_jobs SET state = 'split'
    WHERE state = 'discarded' AND result IS NOT NULL AND result ? 'split_into';
ALTER TABLE berth_jobs ADD CONSTRAINT berth_jobs_final_check
    CHECK ((state IN ('completed','discarded','cancelled','split')) = (finalized_at IS NOT NULL));
DROP INDEX berth_jobs_unique;
CREATE UNIQUE INDEX berth_jobs_unique ON berth_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state NOT IN ('completed', 'discarded', 'cancelled', 'split');
"#,
    // 12: the job archive: final jobs kept aside, outside the live table and its pruning.
    r#"
CREATE TABLE berth_archived_jobs (
    seq         BIGSERIAL PRIMARY KEY,
    id          BIGINT NOT NULL,
    queue       TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    archived_at BIGINT NOT NULL,
    job         JSONB  NOT NULL
);
CREATE INDEX berth_archived_jobs_id ON berth_archived_jobs (id);
CREATE INDEX berth_archived_jobs_queue ON berth_archived_jobs (queue, state, seq);
"#,
    // 13: what a token may do on the admin API.
    r#"
ALTER TABLE berth_tokens ADD COLUMN scopes JSONB NOT NULL DEFAULT '[]';
"#,
    // 14: counts kept by the store, so that status, `queue list`, `/metrics` and the
    // dashboard read a few rows instead of counting every job and message. Statement
    // triggers append one signed row per (queue, state) a statement changed, so that
    // concurrent transactions never wait on a shared counter row; the leader folds the
    // rows together each second (`fold_counts`). The triggers come first: creating them
    // locks out writers until the initial counts below are committed.
    concat!(
        count_functions!(),
        r#"
CREATE TABLE berth_job_counts (
    queue TEXT   NOT NULL,
    state TEXT   NOT NULL,
    n     BIGINT NOT NULL
);
CREATE TRIGGER berth_job_counts_insert AFTER INSERT ON berth_jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION berth_job_counts_insert();
CREATE TRIGGER berth_job_counts_update AFTER UPDATE ON berth_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION berth_job_counts_update();
CREATE TRIGGER berth_job_counts_delete AFTER DELETE ON berth_jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION berth_job_counts_delete();
INSERT INTO berth_job_counts (queue, state, n)
SELECT queue, state, count(*) FROM berth_jobs GROUP BY queue, state;

CREATE TABLE berth_message_counts (
    ingest TEXT    NOT NULL,
    dead   BOOLEAN NOT NULL,
    n      BIGINT  NOT NULL
);
CREATE TRIGGER berth_message_counts_insert AFTER INSERT ON berth_messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION berth_message_counts_insert();
CREATE TRIGGER berth_message_counts_update AFTER UPDATE ON berth_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION berth_message_counts_update();
CREATE TRIGGER berth_message_counts_delete AFTER DELETE ON berth_messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION berth_message_counts_delete();
INSERT INTO berth_message_counts (ingest, dead, n)
SELECT ingest, dead, count(*) FROM berth_messages GROUP BY ingest, dead;
        "#
    ),
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
