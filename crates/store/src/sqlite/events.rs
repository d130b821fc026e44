//! The SQL for recorded events.

use rusqlite::{Connection, params};

use crate::error::{Result, StoreError};
use crate::model::{EventFilter, EventRecord, NewEvent, Timestamp};

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(crate) fn record(conn: &Connection, events: &[NewEvent]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (at, node, source, subject, instance, kind, message, routed) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)",
        )
        .map_err(db("recording events"))?;
    for e in events {
        insert
            .execute(params![
                e.at.0, e.node, e.source, e.subject, e.instance, e.kind, e.message
            ])
            .map_err(db("recording events"))?;
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, f: &EventFilter) -> Result<Vec<EventRecord>> {
    // The kinds as ",a,b,", matched with instr: one statement for every filter.
    let kinds = if f.kinds.is_empty() {
        String::new()
    } else {
        format!(",{},", f.kinds.join(","))
    };
    conn.prepare_cached(
        "SELECT id, at, node, source, subject, instance, kind, message FROM events \
         WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR subject = ?2) \
           AND (?3 IS NULL OR id < ?3) AND (?4 IS NULL OR at >= ?4) \
           AND (?5 = '' OR instr(?5, ',' || kind || ',') > 0) \
         ORDER BY id DESC LIMIT ?6",
    )
    .and_then(|mut s| {
        s.query_map(
            params![
                f.source,
                f.subject,
                f.before_id,
                f.since.map(|t| t.0),
                kinds,
                f.limit
            ],
            |r| {
                Ok(EventRecord {
                    id: r.get(0)?,
                    event: NewEvent {
                        at: Timestamp(r.get(1)?),
                        node: r.get(2)?,
                        source: r.get(3)?,
                        subject: r.get(4)?,
                        instance: r.get(5)?,
                        kind: r.get(6)?,
                        message: r.get(7)?,
                    },
                })
            },
        )?
        .collect()
    })
    .map_err(db("listing events"))
}

pub(crate) fn prune(conn: &Connection, before: Timestamp) -> Result<u64> {
    conn.prepare_cached("DELETE FROM events WHERE at < ?1")
        .and_then(|mut s| s.execute([before.0]))
        .map(|n| n as u64)
        .map_err(db("forgetting old events"))
}
