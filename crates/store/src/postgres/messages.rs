//! The SQL for ingested messages and dead letters on PostgreSQL.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::flows::start;
use crate::error::{Result, StoreError};
use crate::flows::Fired;
use crate::messages::{
    Message, MessageCount, MessageFilter, NewMessage, Replay, errors_json, may_replay,
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
) -> Result<Vec<Option<i64>>> {
    let kept: Vec<&NewMessage> = messages.iter().filter(|m| m.is_kept()).collect();
    // The ids first, ascending, so that each row gets the id of its place in the batch
    // (the order in which an INSERT … SELECT draws from the sequence is not promised).
    let mut new_ids: Vec<i64> = c
        .query(
            "SELECT nextval(pg_get_serial_sequence('berth_messages', 'id')) \
             FROM generate_series(1, $1::bigint)",
            &[&(kept.len() as i64)],
        )
        .await
        .map_err(db("storing messages"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    new_ids.sort_unstable();
    if !kept.is_empty() {
        let mut cols = Columns::default();
        for m in &kept {
            cols.push(m);
        }
        c.execute(
            "INSERT INTO berth_messages (id, ingest, device, topic, kind, payload, received_at, dead, errors) \
             SELECT id, ingest, device, topic, kind, payload, received_at, dead, errors::jsonb \
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                         $6::bytea[], $7::bigint[], $8::bool[], $9::text[]) \
                  AS m(id, ingest, device, topic, kind, payload, received_at, dead, errors)",
            &[
                &new_ids,
                &cols.ingest,
                &cols.device,
                &cols.topic,
                &cols.kind,
                &cols.payload,
                &cols.received,
                &cols.dead,
                &cols.errors,
            ],
        )
        .await
        .map_err(db("storing messages"))?;
    }
    let mut next = new_ids.into_iter();
    let mut ids = Vec::with_capacity(messages.len());
    let mut started: (Vec<i64>, Vec<Option<i64>>, Vec<Option<i64>>) = Default::default();
    for m in messages {
        let id = if m.is_kept() { next.next() } else { None };
        if let Some(s) = m.start_for(id) {
            let fired = start(c, &s, m.received_at, woken).await?;
            if let Some(id) = id {
                started.0.push(id);
                started.1.push(fired.job_id);
                started.2.push(fired.workflow_id);
            }
        }
        ids.push(id);
    }
    if !started.0.is_empty() {
        c.execute(
            "UPDATE berth_messages m SET job_id = s.job_id, workflow_id = s.workflow_id \
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS s(id, job_id, workflow_id) \
             WHERE m.id = s.id",
            &[&started.0, &started.1, &started.2],
        )
        .await
        .map_err(db("storing messages"))?;
    }
    let dead = crate::notices::dead_letter_events(messages);
    if !dead.is_empty() {
        super::events::record(c, &dead).await?;
    }
    Ok(ids)
}

/// A batch of messages as column arrays, for one `unnest` insert.
#[derive(Default)]
struct Columns<'a> {
    ingest: Vec<&'a str>,
    device: Vec<Option<&'a str>>,
    topic: Vec<&'a str>,
    kind: Vec<Option<&'a str>>,
    payload: Vec<&'a [u8]>,
    received: Vec<i64>,
    dead: Vec<bool>,
    errors: Vec<String>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, m: &'a NewMessage) {
        self.ingest.push(&m.ingest);
        self.device.push(m.device.as_deref());
        self.topic.push(&m.topic);
        self.kind.push(m.kind.as_deref());
        self.payload.push(&m.payload);
        self.received.push(m.received_at.0);
        self.dead.push(m.is_dead());
        self.errors.push(errors_json(&m.errors));
    }
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
    // Only the filters given, so that the indexes serve (the partial one on dead
    // letters needs the literal).
    let mut sql = format!(
        "SELECT {COLUMNS} FROM berth_messages WHERE dead = {}",
        f.dead
    );
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let since = f.since.map(|t| t.0);
    let until = f.until.map(|t| t.0);
    let given: [(&str, Option<&(dyn ToSql + Sync)>); 6] = [
        ("ingest =", f.ingest.as_ref().map(|v| v as _)),
        ("device =", f.device.as_ref().map(|v| v as _)),
        ("kind =", f.kind.as_ref().map(|v| v as _)),
        ("received_at >=", since.as_ref().map(|v| v as _)),
        ("received_at <", until.as_ref().map(|v| v as _)),
        ("id <", f.before_id.as_ref().map(|v| v as _)),
    ];
    for (clause, value) in given {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ${}", args.len()));
        }
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit()));
    let rows = c.query(&sql, &args).await.map_err(db("listing messages"))?;
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
    let start_now = replay.start_for(id);
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
    if let Some(s) = start_now {
        let fired = start(c, &s, now, woken).await?;
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
    // Later inserts get ids above every imported one (and the sequence never goes back).
    c.execute(
        "SELECT setval(pg_get_serial_sequence('berth_messages', 'id'), \
         GREATEST((SELECT COALESCE(max(id), 0) FROM berth_messages), \
                  (SELECT last_value FROM berth_messages_id_seq), 1))",
        &[],
    )
    .await
    .map(drop)
    .map_err(db("importing messages"))
}

pub(crate) async fn counts(c: &impl GenericClient, f: &MessageFilter) -> Result<Vec<MessageCount>> {
    let mut sql = format!(
        "SELECT device, kind, count(*) FROM berth_messages WHERE dead = {}",
        f.dead
    );
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    let since = f.since.map(|t| t.0);
    let until = f.until.map(|t| t.0);
    let given: [(&str, Option<&(dyn ToSql + Sync)>); 5] = [
        ("ingest =", f.ingest.as_ref().map(|v| v as _)),
        ("device =", f.device.as_ref().map(|v| v as _)),
        ("kind =", f.kind.as_ref().map(|v| v as _)),
        ("received_at >=", since.as_ref().map(|v| v as _)),
        ("received_at <", until.as_ref().map(|v| v as _)),
    ];
    for (clause, value) in given {
        if let Some(v) = value {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ${}", args.len()));
        }
    }
    sql.push_str(" GROUP BY device, kind ORDER BY count(*) DESC, device, kind LIMIT 10000");
    let rows = c
        .query(&sql, &args)
        .await
        .map_err(db("counting messages"))?;
    Ok(rows
        .iter()
        .map(|r| MessageCount {
            device: r.get(0),
            kind: r.get(1),
            count: r.get::<_, i64>(2) as u64,
        })
        .collect())
}
