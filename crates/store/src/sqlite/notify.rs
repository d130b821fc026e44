//! The SQL for the notification outbox.

use rusqlite::{Connection, Row, params};

use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::notices::{Delivery, DeliveryFilter, NotifyRoute, ROUTE_BATCH, channels_for};

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

/// An unrouted event: id, at, node, source, subject, kind, message.
type Unrouted = (i64, i64, String, String, String, String, String);

pub(crate) fn route(conn: &Connection, routes: &[NotifyRoute], now: Timestamp) -> Result<u32> {
    let events: Vec<Unrouted> = conn
        .prepare_cached(
            "SELECT id, at, node, source, subject, kind, message FROM events \
             WHERE routed = 0 ORDER BY id LIMIT ?1",
        )
        .and_then(|mut s| {
            s.query_map([ROUTE_BATCH], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect()
        })
        .map_err(db("reading events to notify"))?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO notify_deliveries \
             (channel, event_id, at, kind, subject, message, node, created_at, next_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .map_err(db("queueing notifications"))?;
    let mut mark = conn
        .prepare_cached("UPDATE events SET routed = 1 WHERE id = ?1")
        .map_err(db("queueing notifications"))?;
    for (id, at, node, source, subject, kind, message) in &events {
        let (kind, channels) = channels_for(routes, source, kind);
        for channel in channels {
            insert
                .execute(params![
                    channel, id, at, kind, subject, message, node, now.0
                ])
                .map_err(db("queueing notifications"))?;
        }
        mark.execute([id]).map_err(db("queueing notifications"))?;
    }
    Ok(events.len() as u32)
}

const COLUMNS: &str = "id, channel, event_id, at, kind, subject, message, node, created_at, \
                       next_at, attempts, last_error, sent_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        channel: r.get(1)?,
        event_id: r.get(2)?,
        at: Timestamp(r.get(3)?),
        kind: r.get(4)?,
        subject: r.get(5)?,
        message: r.get(6)?,
        node: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        next_at: Timestamp(r.get(9)?),
        attempts: r.get(10)?,
        last_error: r.get(11)?,
        sent_at: r.get::<_, Option<i64>>(12)?.map(Timestamp),
    })
}

pub(crate) fn due(
    conn: &Connection,
    channel: &str,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notify_deliveries \
         WHERE channel = ?1 AND sent_at IS NULL AND next_at <= ?2 ORDER BY id LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(params![channel, now.0, limit], from_row)?
            .collect()
    })
    .map_err(db("reading due notifications"))
}

pub(crate) fn done(conn: &Connection, ids: &[i64], now: Timestamp) -> Result<()> {
    let mut s = conn
        .prepare_cached(
            "UPDATE notify_deliveries SET sent_at = ?2, last_error = NULL \
             WHERE id = ?1 AND sent_at IS NULL",
        )
        .map_err(db("recording sent notifications"))?;
    for id in ids {
        s.execute(params![id, now.0])
            .map_err(db("recording sent notifications"))?;
    }
    Ok(())
}

pub(crate) fn retry(conn: &Connection, ids: &[i64], error: &str, next_at: Timestamp) -> Result<()> {
    let mut s = conn
        .prepare_cached(
            "UPDATE notify_deliveries SET attempts = attempts + 1, last_error = ?2, next_at = ?3 \
             WHERE id = ?1 AND sent_at IS NULL",
        )
        .map_err(db("recording a failed notification"))?;
    for id in ids {
        s.execute(params![id, error, next_at.0])
            .map_err(db("recording a failed notification"))?;
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, f: &DeliveryFilter) -> Result<Vec<Delivery>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM notify_deliveries \
         WHERE (?1 IS NULL OR channel = ?1) \
           AND (?2 IS NULL OR (sent_at IS NULL) = ?2) \
         ORDER BY id DESC LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(params![f.channel, f.pending, f.limit], from_row)?
            .collect()
    })
    .map_err(db("listing notifications"))
}

pub(crate) fn prune(conn: &Connection, sent_before: Timestamp, channels: &[String]) -> Result<u64> {
    let sent = conn
        .prepare_cached("DELETE FROM notify_deliveries WHERE sent_at < ?1")
        .and_then(|mut s| s.execute([sent_before.0]))
        .map_err(db("forgetting sent notifications"))?;
    // Deliveries of channels that are no longer configured can never be sent.
    let names = serde_json::to_string(channels).unwrap_or_else(|_| "[]".into());
    let orphaned = conn
        .prepare_cached(
            "DELETE FROM notify_deliveries WHERE sent_at IS NULL \
             AND channel NOT IN (SELECT value FROM json_each(?1))",
        )
        .and_then(|mut s| s.execute([names]))
        .map_err(db("forgetting notifications of removed channels"))?;
    Ok((sent + orphaned) as u64)
}
