//! The SQL for ingested messages and dead letters on PostgreSQL.

use tokio_postgres::{GenericClient, Row};

use super::flows::start;
use crate::error::{Result, StoreError};
use crate::flows::Fired;
use crate::messages::{
    Message, MessageFilter, NewMessage, Replay, errors_json, may_replay, with_message_id,
};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

const COLUMNS: &str = "id, ingest, device, topic, kind, payload, received_at, dead, \
                       errors::text, job_id, workflow_id, replayed_at";

fn from_row(r: &Row) -> Message {
    Message {
        id: r.get(0),
        ingest: r.get(1),
        device: r.get(2),
        topic: r.get(3),
        kind: r.get(4),
        payload: r.get(5),
        received_at: Timestamp(r.get(6)),
        dead: r.get(7),
        errors: crate::messages::errors_from_json(r.get(8)),
        job_id: r.get(9),
        workflow_id: r.get(10),
        replayed_at: r.get::<_, Option<i64>>(11).map(Timestamp),
    }
}

pub(crate) async fn insert(
    c: &impl GenericClient,
    messages: &[NewMessage],
    woken: &mut Vec<String>,
) -> Result<Vec<i64>> {
    // One statement for the batch; WITH ORDINALITY keeps the ids in the given order.
    let n = messages.len();
    let (mut ingest, mut device, mut topic, mut kind) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut payload, mut received, mut dead, mut errors) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for m in messages {
        ingest.push(m.ingest.as_str());
        device.push(m.device.as_deref());
        topic.push(m.topic.as_str());
        kind.push(m.kind.as_deref());
        payload.push(m.payload.as_slice());
        received.push(m.received_at.0);
        dead.push(!m.errors.is_empty());
        errors.push(errors_json(&m.errors));
    }
    let rows = c
        .query(
            "INSERT INTO berth_messages (ingest, device, topic, kind, payload, received_at, dead, errors) \
             SELECT ingest, device, topic, kind, payload, received_at, dead, errors::jsonb \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], \
                         $6::bigint[], $7::bool[], $8::text[]) \
                  WITH ORDINALITY AS m(ingest, device, topic, kind, payload, received_at, dead, errors, n) \
             ORDER BY n RETURNING id",
            &[
                &ingest, &device, &topic, &kind, &payload, &received, &dead, &errors,
            ],
        )
        .await
        .map_err(db("storing messages"))?;
    // RETURNING follows the insert order, which ORDER BY n fixed.
    let mut ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    for (m, &id) in messages.iter().zip(&ids) {
        if let (Some(s), false) = (&m.start, !m.errors.is_empty()) {
            let fired = start(c, &with_message_id(s, id), m.received_at, woken).await?;
            set_started(c, id, fired).await?;
        }
    }
    Ok(ids)
}

async fn set_started(c: &impl GenericClient, id: i64, fired: Fired) -> Result<()> {
    c.execute(
        "UPDATE berth_messages SET job_id = $1, workflow_id = $2 WHERE id = $3",
        &[&fired.job_id, &fired.workflow_id, &id],
    )
    .await
    .map(drop)
    .map_err(db("storing messages"))
}

pub(crate) async fn get(c: &impl GenericClient, id: i64) -> Result<Option<Message>> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM berth_messages WHERE id = $1"),
        &[&id],
    )
    .await
    .map(|r| r.as_ref().map(from_row))
    .map_err(db("reading a message"))
}

pub(crate) async fn list(c: &impl GenericClient, f: &MessageFilter) -> Result<Vec<Message>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM berth_messages \
                 WHERE dead = $1 AND ($2::text IS NULL OR ingest = $2) \
                   AND ($3::text IS NULL OR device = $3) AND ($4::text IS NULL OR kind = $4) \
                   AND ($5::bigint IS NULL OR received_at >= $5) \
                   AND ($6::bigint IS NULL OR received_at < $6) \
                   AND ($7::bigint IS NULL OR id < $7) \
                 ORDER BY id DESC LIMIT $8"
            ),
            &[
                &f.dead,
                &f.ingest,
                &f.device,
                &f.kind,
                &f.since.map(|t| t.0),
                &f.until.map(|t| t.0),
                &f.before_id,
                &i64::from(f.limit.clamp(1, 10_000)),
            ],
        )
        .await
        .map_err(db("listing messages"))?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn replay(
    c: &impl GenericClient,
    id: i64,
    replay: &Replay,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Message> {
    let not_found = || StoreError::NotFound(format!("no message with id {id}"));
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM berth_messages WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(db("replaying a message"))?
        .ok_or_else(not_found)?;
    may_replay(&from_row(&row))?;
    let dead = !replay.errors.is_empty();
    c.execute(
        "UPDATE berth_messages SET device = $1, kind = $2, dead = $3, errors = $4::text::jsonb, \
         replayed_at = $5 WHERE id = $6",
        &[
            &replay.device,
            &replay.kind,
            &dead,
            &errors_json(&replay.errors),
            &now.0,
            &id,
        ],
    )
    .await
    .map_err(db("replaying a message"))?;
    if let (Some(s), false) = (&replay.start, dead) {
        let fired = start(c, &with_message_id(s, id), now, woken).await?;
        set_started(c, id, fired).await?;
    }
    get(c, id).await?.ok_or_else(not_found)
}

pub(crate) async fn prune(
    c: &impl GenericClient,
    ingest: &str,
    before: Timestamp,
    limit: u32,
) -> Result<u64> {
    c.execute(
        "DELETE FROM berth_messages WHERE id IN \
         (SELECT id FROM berth_messages WHERE ingest = $1 AND received_at < $2 LIMIT $3)",
        &[&ingest, &before.0, &i64::from(limit)],
    )
    .await
    .map_err(db("forgetting old messages"))
}

pub(crate) async fn export(
    c: &impl GenericClient,
    after_id: i64,
    limit: u32,
) -> Result<Vec<Message>> {
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM berth_messages WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after_id, &i64::from(limit)],
        )
        .await
        .map_err(db("exporting messages"))?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn import(c: &impl GenericClient, messages: &[Message]) -> Result<()> {
    let statement = c
        .prepare(
            "INSERT INTO berth_messages (id, ingest, device, topic, kind, payload, received_at, \
             dead, errors, job_id, workflow_id, replayed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12)",
        )
        .await
        .map_err(db("importing messages"))?;
    for m in messages {
        c.execute(
            &statement,
            &[
                &m.id,
                &m.ingest,
                &m.device,
                &m.topic,
                &m.kind,
                &m.payload,
                &m.received_at.0,
                &m.dead,
                &errors_json(&m.errors),
                &m.job_id,
                &m.workflow_id,
                &m.replayed_at.map(|t| t.0),
            ],
        )
        .await
        .map_err(db("importing messages"))?;
    }
    // Later inserts get ids above every imported one.
    c.execute(
        "SELECT setval(pg_get_serial_sequence('berth_messages', 'id'), \
         GREATEST((SELECT COALESCE(max(id), 0) FROM berth_messages), 1))",
        &[],
    )
    .await
    .map(drop)
    .map_err(db("importing messages"))
}
