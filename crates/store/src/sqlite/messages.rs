//! The SQL for ingested messages and dead letters.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::flows::Lite;
use crate::error::{Result, StoreError};
use crate::flows::Fired;
use crate::flows::engine::{run_ready, start};
use crate::messages::{
    Message, MessageCount, MessageFilter, MessageKey, MessageStored, MessageTotals, NewMessage,
    Replay, errors_from_json, errors_json, key_heads, may_replay,
};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

const COLUMNS: &str = "id, ingest, device, topic, kind, payload, received_at, dead, errors, \
                       job_id, workflow_id, replayed_at, duplicates";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: r.get(0)?,
        ingest: r.get(1)?,
        device: r.get(2)?,
        topic: r.get(3)?,
        kind: r.get(4)?,
        payload: r.get(5)?,
        received_at: Timestamp(r.get(6)?),
        dead: r.get(7)?,
        errors: errors_from_json(&r.get::<_, String>(8)?),
        job_id: r.get(9)?,
        workflow_id: r.get(10)?,
        replayed_at: r.get::<_, Option<i64>>(11)?.map(Timestamp),
        duplicates: r.get::<_, i64>(12)? as u64,
    })
}

pub(crate) fn insert(
    conn: &Connection,
    messages: &[NewMessage],
    woken: &mut Vec<String>,
) -> Result<Vec<MessageStored>> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO messages (ingest, device, topic, kind, payload, received_at, dead, errors) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db("storing messages"))?;
    let heads = key_heads(messages);
    let mut out: Vec<MessageStored> = Vec::with_capacity(messages.len());
    let mut tally = super::counts::Tally::default();
    for (i, m) in messages.iter().enumerate() {
        // A resend: of a message earlier in this batch, or of one stored before.
        let earlier = match (heads[i], &m.key) {
            (Some(h), _) if h != i => Some(out[h].id),
            (Some(_), Some(key)) => claim_key(conn, m, key)?,
            _ => None,
        };
        if let (Some(first), Some(key)) = (earlier, &m.key) {
            count_duplicate(conn, &m.ingest, &key.value, first)?;
            out.push(MessageStored {
                id: first,
                duplicate: true,
            });
            continue;
        }
        let id = if m.is_kept() {
            insert
                .execute(params![
                    m.ingest,
                    m.device,
                    m.topic,
                    m.kind,
                    m.payload,
                    m.received_at.0,
                    m.is_dead(),
                    errors_json(&m.errors)
                ])
                .map_err(db("storing messages"))?;
            tally.add((m.ingest.as_str(), m.is_dead()));
            Some(conn.last_insert_rowid())
        } else {
            None
        };
        if let (Some(id), Some(key), Some(_)) = (id, &m.key, heads[i]) {
            conn.prepare_cached(
                "UPDATE message_keys SET message_id = ?1 WHERE ingest = ?2 AND key = ?3",
            )
            .and_then(|mut s| s.execute(params![id, m.ingest, key.value]))
            .map_err(db("storing message keys"))?;
        }
        if let Some(s) = m.start_for(id) {
            let fired = run_ready(start(&Lite(conn), &s, m.received_at, woken))?;
            if let Some(id) = id {
                set_started(conn, id, fired)?;
            }
        }
        out.push(MessageStored {
            id,
            duplicate: false,
        });
    }
    super::counts::add_messages(conn, &tally)?;
    let mut expired: Vec<(&str, i64)> = Vec::new();
    for m in messages.iter().filter(|m| m.key.is_some()) {
        match expired.iter_mut().find(|(i, _)| *i == m.ingest) {
            Some(e) => e.1 = e.1.max(m.received_at.0),
            None => expired.push((&m.ingest, m.received_at.0)),
        }
    }
    for (ingest, now) in expired {
        conn.prepare_cached("DELETE FROM message_keys WHERE ingest = ?1 AND expires_at <= ?2")
            .and_then(|mut s| s.execute(params![ingest, now]))
            .map_err(db("pruning message keys"))?;
    }
    super::events::record(conn, &crate::notices::dead_letter_events(messages))?;
    Ok(out)
}

/// Takes `key` for message `m` unless a message with it arrived and has not expired:
/// `None` when taken, else `Some` of that earlier message's id (if it was kept).
fn claim_key(conn: &Connection, m: &NewMessage, key: &MessageKey) -> Result<Option<Option<i64>>> {
    let taken = conn
        .prepare_cached(
            "INSERT INTO message_keys (ingest, key, received_at, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (ingest, key) DO UPDATE SET received_at = excluded.received_at, \
               expires_at = excluded.expires_at, message_id = NULL, duplicates = 0 \
             WHERE message_keys.expires_at <= excluded.received_at",
        )
        .and_then(|mut s| s.execute(params![m.ingest, key.value, m.received_at.0, key.until.0]))
        .map_err(db("storing message keys"))?;
    if taken == 1 {
        return Ok(None);
    }
    conn.prepare_cached("SELECT message_id FROM message_keys WHERE ingest = ?1 AND key = ?2")
        .and_then(|mut s| s.query_row(params![m.ingest, key.value], |r| r.get(0)))
        .map(Some)
        .map_err(db("reading message keys"))
}

/// Counts a dropped resend on its key and on the first message.
fn count_duplicate(conn: &Connection, ingest: &str, key: &str, first: Option<i64>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE message_keys SET duplicates = duplicates + 1 WHERE ingest = ?1 AND key = ?2",
    )
    .and_then(|mut s| s.execute(params![ingest, key]))
    .map_err(db("counting duplicates"))?;
    if let Some(id) = first {
        conn.prepare_cached("UPDATE messages SET duplicates = duplicates + 1 WHERE id = ?1")
            .and_then(|mut s| s.execute([id]))
            .map_err(db("counting duplicates"))?;
    }
    Ok(())
}

fn set_started(conn: &Connection, id: i64, fired: Fired) -> Result<()> {
    conn.prepare_cached("UPDATE messages SET job_id = ?1, workflow_id = ?2 WHERE id = ?3")
        .and_then(|mut s| s.execute(params![fired.job_id, fired.workflow_id, id]))
        .map(drop)
        .map_err(db("storing messages"))
}

pub(crate) fn get(conn: &Connection, id: i64) -> Result<Option<Message>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM messages WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], from_row).optional())
        .map_err(db("reading a message"))
}

/// `SELECT what FROM messages WHERE …` with only the filters given, so that the indexes
/// serve (the partial one on dead letters needs the literal); `before_id` when `paged`.
fn select(what: &str, f: &MessageFilter, paged: bool) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = format!(
        "SELECT {what} FROM messages WHERE dead = {}",
        i32::from(f.dead)
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(i) = &f.ingest {
        arg(&mut sql, " AND ingest = ?", i.clone().into());
    }
    if let Some(d) = &f.device {
        arg(&mut sql, " AND device = ?", d.clone().into());
    }
    if let Some(k) = &f.kind {
        arg(&mut sql, " AND kind = ?", k.clone().into());
    }
    if let Some(t) = f.since {
        arg(&mut sql, " AND received_at >= ?", t.0.into());
    }
    if let Some(t) = f.until {
        arg(&mut sql, " AND received_at < ?", t.0.into());
    }
    if let Some(b) = f.before_id.filter(|_| paged) {
        arg(&mut sql, " AND id < ?", b.into());
    }
    (sql, args)
}

pub(crate) fn list(conn: &Connection, f: &MessageFilter) -> Result<Vec<Message>> {
    let (mut sql, args) = select(COLUMNS, f, true);
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", f.limit()));
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(rusqlite::params_from_iter(args.iter()), from_row)?
                .collect()
        })
        .map_err(db("listing messages"))
}

pub(crate) fn replay(
    conn: &Connection,
    id: i64,
    replay: &Replay,
    now: Timestamp,
    woken: &mut Vec<String>,
) -> Result<Message> {
    let message =
        get(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("no message with id {id}")))?;
    may_replay(&message)?;
    let dead = !replay.errors.is_empty();
    let start_now = replay.start_for(id);
    conn.prepare_cached(
        "UPDATE messages SET device = ?1, kind = ?2, dead = ?3, errors = ?4, replayed_at = ?5 \
         WHERE id = ?6",
    )
    .and_then(|mut s| {
        s.execute(params![
            replay.device,
            replay.kind,
            dead,
            errors_json(&replay.errors),
            now.0,
            id
        ])
    })
    .map_err(db("replaying a message"))?;
    if let Some(s) = start_now {
        let fired = run_ready(start(&Lite(conn), &s, now, woken))?;
        set_started(conn, id, fired)?;
    }
    get(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("no message with id {id}")))
}

pub(crate) fn prune(conn: &Connection, ingest: &str, before: Timestamp, limit: u32) -> Result<u64> {
    conn.prepare_cached(
        "DELETE FROM messages WHERE id IN \
         (SELECT id FROM messages WHERE ingest = ?1 AND received_at < ?2 LIMIT ?3)",
    )
    .and_then(|mut s| s.execute(params![ingest, before.0, limit]))
    .map(|n| n as u64)
    .map_err(db("forgetting old messages"))
}

pub(crate) fn export(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<Message>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))
    .and_then(|mut s| s.query_map(params![after_id, limit], from_row)?.collect())
    .map_err(db("exporting messages"))
}

pub(crate) fn import(conn: &Connection, messages: &[Message]) -> Result<()> {
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT INTO messages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))
        .map_err(db("importing messages"))?;
    let mut tally = super::counts::Tally::default();
    for m in messages {
        tally.add((m.ingest.as_str(), m.dead));
        insert
            .execute(params![
                m.id,
                m.ingest,
                m.device,
                m.topic,
                m.kind,
                m.payload,
                m.received_at.0,
                m.dead,
                errors_json(&m.errors),
                m.job_id,
                m.workflow_id,
                m.replayed_at.map(|t| t.0),
                m.duplicates as i64
            ])
            .map_err(db("importing messages"))?;
    }
    super::counts::add_messages(conn, &tally)?;
    Ok(())
}

/// Per ingest, from the counts migration 15's triggers keep.
pub(crate) fn totals(conn: &Connection) -> Result<Vec<MessageTotals>> {
    let rows: Vec<(String, bool, i64)> = conn
        .prepare_cached("SELECT ingest, dead, n FROM message_counts WHERE n <> 0 ORDER BY ingest")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(db("counting messages"))?;
    Ok(crate::messages::fold_totals(rows))
}

pub(crate) fn counts(conn: &Connection, f: &MessageFilter) -> Result<Vec<MessageCount>> {
    let (mut sql, args) = select("device, kind, count(*)", f, false);
    sql.push_str(" GROUP BY device, kind ORDER BY count(*) DESC, device, kind LIMIT 10000");
    let mut stmt = conn.prepare(&sql).map_err(db("counting messages"))?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok(MessageCount {
                device: r.get(0)?,
                kind: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(db("counting messages"))?;
    Ok(rows)
}
