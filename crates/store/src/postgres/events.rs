//! The SQL for recorded events on PostgreSQL.

use tokio_postgres::GenericClient;

use crate::error::{Result, StoreError};
use crate::model::{EventFilter, EventRecord, NewEvent, Timestamp};

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(crate) async fn record(c: &impl GenericClient, events: &[NewEvent]) -> Result<()> {
    // One statement for the batch; WITH ORDINALITY keeps the ids in the given order.
    let mut at = Vec::with_capacity(events.len());
    let (mut node, mut source, mut subject, mut kind, mut message) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut instance: Vec<Option<i64>> = Vec::new();
    for e in events {
        at.push(e.at.0);
        node.push(e.node.as_str());
        source.push(e.source.as_str());
        subject.push(e.subject.as_str());
        instance.push(e.instance.map(i64::from));
        kind.push(e.kind.as_str());
        message.push(e.message.as_str());
    }
    c.execute(
        "INSERT INTO berth_events (at, node, source, subject, instance, kind, message, routed) \
         SELECT at, node, source, subject, instance, kind, message, false \
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
                     $6::text[], $7::text[]) \
              WITH ORDINALITY AS e(at, node, source, subject, instance, kind, message, n) \
         ORDER BY n",
        &[&at, &node, &source, &subject, &instance, &kind, &message],
    )
    .await
    .map(|_| ())
    .map_err(db("recording events"))
}

pub(crate) async fn list(c: &impl GenericClient, f: &EventFilter) -> Result<Vec<EventRecord>> {
    let rows = c
        .query(
            "SELECT id, at, node, source, subject, instance, kind, message FROM berth_events \
             WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR subject = $2) \
               AND ($3::bigint IS NULL OR id < $3) AND ($4::bigint IS NULL OR at >= $4) \
               AND (cardinality($5::text[]) = 0 OR kind = ANY($5)) \
             ORDER BY id DESC LIMIT $6",
            &[
                &f.source,
                &f.subject,
                &f.before_id,
                &f.since.map(|t| t.0),
                &f.kinds,
                &i64::from(f.limit),
            ],
        )
        .await
        .map_err(db("listing events"))?;
    Ok(rows
        .iter()
        .map(|r| EventRecord {
            id: r.get(0),
            event: NewEvent {
                at: Timestamp(r.get(1)),
                node: r.get(2),
                source: r.get(3),
                subject: r.get(4),
                instance: r
                    .get::<_, Option<i64>>(5)
                    .and_then(|i| u32::try_from(i).ok()),
                kind: r.get(6),
                message: r.get(7),
            },
        })
        .collect())
}

pub(crate) async fn prune(c: &impl GenericClient, before: Timestamp) -> Result<u64> {
    c.execute("DELETE FROM berth_events WHERE at < $1", &[&before.0])
        .await
        .map_err(db("forgetting old events"))
}
