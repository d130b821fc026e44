//! The SQL for the notification outbox on PostgreSQL.

use tokio_postgres::{GenericClient, Row};

use crate::error::{Result, StoreError};
use crate::model::Timestamp;
use crate::notices::{Delivery, DeliveryFilter, NotifyRoute, ROUTE_BATCH, channels_for};

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

/// The deliveries of one routing call, column by column for `unnest`.
#[derive(Default)]
struct Columns<'a> {
    channel: Vec<&'a str>,
    event_id: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<String>,
    subject: Vec<&'a str>,
    message: Vec<&'a str>,
    node: Vec<&'a str>,
}

/// Routes in one transaction. Events are locked (`SKIP LOCKED`): two routers never route
/// one event twice, and an event whose transaction commits late is routed at a later call
/// (a cursor over ids could skip it).
pub(crate) async fn route(
    c: &impl GenericClient,
    routes: &[NotifyRoute],
    now: Timestamp,
) -> Result<u32> {
    let events = c
        .query(
            "SELECT id, at, node, source, subject, kind, message FROM berth_events \
             WHERE NOT routed ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
            &[&i64::from(ROUTE_BATCH)],
        )
        .await
        .map_err(db("reading events to notify"))?;
    let mut cols = Columns::default();
    let mut ids = Vec::with_capacity(events.len());
    for e in &events {
        let id: i64 = e.get(0);
        ids.push(id);
        let (kind, channels) = channels_for(routes, e.get(3), e.get(5));
        for channel in channels {
            cols.channel.push(channel);
            cols.event_id.push(id);
            cols.at.push(e.get(1));
            cols.kind.push(kind.clone());
            cols.subject.push(e.get(4));
            cols.message.push(e.get(6));
            cols.node.push(e.get(2));
        }
    }
    if !cols.channel.is_empty() {
        c.execute(
            "INSERT INTO berth_notify_deliveries \
             (channel, event_id, at, kind, subject, message, node, created_at, next_at) \
             SELECT channel, event_id, at, kind, subject, message, node, $8, $8 \
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
                         $6::text[], $7::text[]) WITH ORDINALITY \
                  AS d(channel, event_id, at, kind, subject, message, node, n) ORDER BY n",
            &[
                &cols.channel,
                &cols.event_id,
                &cols.at,
                &cols.kind,
                &cols.subject,
                &cols.message,
                &cols.node,
                &now.0,
            ],
        )
        .await
        .map_err(db("queueing notifications"))?;
    }
    if !ids.is_empty() {
        c.execute(
            "UPDATE berth_events SET routed = true WHERE id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db("queueing notifications"))?;
    }
    Ok(ids.len() as u32)
}

const COLUMNS: &str = "id, channel, event_id, at, kind, subject, message, node, created_at, \
                       next_at, attempts, last_error, sent_at";

fn from_row(r: &Row) -> Delivery {
    Delivery {
        id: r.get(0),
        channel: r.get(1),
        event_id: r.get(2),
        at: Timestamp(r.get(3)),
        kind: r.get(4),
        subject: r.get(5),
        message: r.get(6),
        node: r.get(7),
        created_at: Timestamp(r.get(8)),
        next_at: Timestamp(r.get(9)),
        attempts: r.get::<_, i32>(10) as u32,
        last_error: r.get(11),
        sent_at: r.get::<_, Option<i64>>(12).map(Timestamp),
    }
}

pub(crate) async fn due(
    c: &impl GenericClient,
    channel: &str,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<Delivery>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM berth_notify_deliveries \
                 WHERE channel = $1 AND sent_at IS NULL AND next_at <= $2 ORDER BY id LIMIT $3"
            ),
            &[&channel, &now.0, &i64::from(limit)],
        )
        .await
        .map_err(db("reading due notifications"))?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn done(c: &impl GenericClient, ids: &[i64], now: Timestamp) -> Result<()> {
    c.execute(
        "UPDATE berth_notify_deliveries SET sent_at = $2, last_error = NULL \
         WHERE id = ANY($1) AND sent_at IS NULL",
        &[&ids, &now.0],
    )
    .await
    .map(drop)
    .map_err(db("recording sent notifications"))
}

pub(crate) async fn retry(
    c: &impl GenericClient,
    ids: &[i64],
    error: &str,
    next_at: Timestamp,
) -> Result<()> {
    c.execute(
        "UPDATE berth_notify_deliveries SET attempts = attempts + 1, last_error = $2, next_at = $3 \
         WHERE id = ANY($1) AND sent_at IS NULL",
        &[&ids, &error, &next_at.0],
    )
    .await
    .map(drop)
    .map_err(db("recording a failed notification"))
}

pub(crate) async fn list(c: &impl GenericClient, f: &DeliveryFilter) -> Result<Vec<Delivery>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM berth_notify_deliveries \
                 WHERE ($1::text IS NULL OR channel = $1) \
                   AND ($2::bool IS NULL OR (sent_at IS NULL) = $2) \
                 ORDER BY id DESC LIMIT $3"
            ),
            &[&f.channel, &f.pending, &i64::from(f.limit)],
        )
        .await
        .map_err(db("listing notifications"))?;
    Ok(rows.iter().map(from_row).collect())
}

pub(crate) async fn prune(
    c: &impl GenericClient,
    sent_before: Timestamp,
    channels: &[String],
) -> Result<u64> {
    let sent = c
        .execute(
            "DELETE FROM berth_notify_deliveries WHERE sent_at < $1",
            &[&sent_before.0],
        )
        .await
        .map_err(db("forgetting sent notifications"))?;
    // Deliveries of channels that are no longer configured can never be sent.
    let orphaned = c
        .execute(
            "DELETE FROM berth_notify_deliveries WHERE sent_at IS NULL AND NOT (channel = ANY($1))",
            &[&channels],
        )
        .await
        .map_err(db("forgetting notifications of removed channels"))?;
    Ok(sent + orphaned)
}
