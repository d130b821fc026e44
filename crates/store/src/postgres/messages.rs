//! The SQL for ingested messages and dead letters on PostgreSQL.

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row};

use super::flows::Pg;
use crate::error::{Result, StoreError};
use crate::flows::Fired;
use crate::flows::engine::start;
use crate::messages::{
    Message, MessageCount, MessageFilter, MessageStored, MessageTotals, NewMessage, Replay,
    errors_json, key_heads, may_replay,
};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

const COLUMNS: &str = "id, ingest, device, topic, kind, payload, received_at, dead, \
                       errors::text, job_id, workflow_id, replayed_at, duplicates";

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
        duplicates: r.get::<_, i64>(12) as u64,
    }
}

pub(crate) async fn insert(
    c: &impl GenericClient,
    messages: &[NewMessage],
    woken: &mut Vec<String>,
) -> Result<Vec<MessageStored>> {
    let heads = key_heads(messages);
    // Resends of messages stored before: their keys are held and not yet expired.
    let earlier = claim_keys(c, messages, &heads).await?;
    let duplicate = |i: usize| heads[i].is_some_and(|h| h != i || earlier.contains_key(&h));
    let kept: Vec<&NewMessage> = messages
        .iter()
        .enumerate()
        .filter(|(i, m)| m.is_kept() && !duplicate(*i))
        .map(|(_, m)| m)
        .collect();
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
    let mut out: Vec<MessageStored> = Vec::with_capacity(messages.len());
    let mut started: (Vec<i64>, Vec<Option<i64>>, Vec<Option<i64>>) = Default::default();
    // Per key: the first message's id, and how many resends to count on it.
    let mut firsts: Keyed = Keyed::default();
    for (i, m) in messages.iter().enumerate() {
        if duplicate(i) {
            let h = heads[i].unwrap_or(i);
            let first = earlier.get(&h).copied().unwrap_or_else(|| out[h].id);
            firsts.count(m, first);
            out.push(MessageStored {
                id: first,
                duplicate: true,
            });
            continue;
        }
        let id = if m.is_kept() { next.next() } else { None };
        if let (Some(id), Some(_)) = (id, heads[i]) {
            firsts.first(m, id);
        }
        if let Some(s) = m.start_for(id) {
            let fired = start(&Pg(c), &s, m.received_at, woken).await?;
            if let Some(id) = id {
                started.0.push(id);
                started.1.push(fired.job_id);
                started.2.push(fired.workflow_id);
            }
        }
        out.push(MessageStored {
            id,
            duplicate: false,
        });
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
    firsts.write(c).await?;
    let dead = crate::notices::dead_letter_events(messages);
    if !dead.is_empty() {
        super::events::record(c, &dead).await?;
    }
    Ok(out)
}

/// Takes the keys of the first keyed message of each key in the batch, where no message
/// holds them or theirs expired. Answers, by the index of each message whose key was
/// held, the holding message's id (if it was kept). Expired keys of these ingests go.
async fn claim_keys(
    c: &impl GenericClient,
    messages: &[NewMessage],
    heads: &[Option<usize>],
) -> Result<std::collections::HashMap<usize, Option<i64>>> {
    let firsts: Vec<usize> = (0..messages.len())
        .filter(|i| heads[*i] == Some(*i))
        .collect();
    let mut held = std::collections::HashMap::new();
    if firsts.is_empty() {
        return Ok(held);
    }
    let key = |i: &usize| messages[*i].key.as_ref().expect("a keyed message");
    let ingests: Vec<&str> = firsts
        .iter()
        .map(|i| messages[*i].ingest.as_str())
        .collect();
    let keys: Vec<&str> = firsts.iter().map(|i| key(i).value.as_str()).collect();
    let received: Vec<i64> = firsts.iter().map(|i| messages[*i].received_at.0).collect();
    let until: Vec<i64> = firsts.iter().map(|i| key(i).until.0).collect();
    let taken: std::collections::HashSet<(String, String)> = c
        .query(
            "INSERT INTO berth_message_keys (ingest, key, received_at, expires_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
             ON CONFLICT (ingest, key) DO UPDATE SET received_at = excluded.received_at, \
               expires_at = excluded.expires_at, message_id = NULL, duplicates = 0 \
             WHERE berth_message_keys.expires_at <= excluded.received_at \
             RETURNING ingest, key",
            &[&ingests, &keys, &received, &until],
        )
        .await
        .map_err(db("storing message keys"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let (mut hi, mut hk, mut hidx) = (Vec::new(), Vec::new(), Vec::new());
    for (n, i) in firsts.iter().enumerate() {
        if !taken.contains(&(ingests[n].to_owned(), keys[n].to_owned())) {
            hi.push(ingests[n]);
            hk.push(keys[n]);
            hidx.push(*i);
        }
    }
    if !hidx.is_empty() {
        let rows = c
            .query(
                "SELECT k.ingest, k.key, k.message_id FROM berth_message_keys k \
                 JOIN unnest($1::text[], $2::text[]) AS u(ingest, key) \
                   ON k.ingest = u.ingest AND k.key = u.key",
                &[&hi, &hk],
            )
            .await
            .map_err(db("reading message keys"))?;
        let at: std::collections::HashMap<(&str, &str), usize> =
            (0..hidx.len()).map(|n| ((hi[n], hk[n]), hidx[n])).collect();
        for r in &rows {
            let (ingest, key): (&str, &str) = (r.get(0), r.get(1));
            if let Some(i) = at.get(&(ingest, key)) {
                held.insert(*i, r.get::<_, Option<i64>>(2));
            }
        }
    }
    let mut expired: Vec<(&str, i64)> = Vec::new();
    for (n, ingest) in ingests.iter().enumerate() {
        match expired.iter_mut().find(|(i, _)| i == ingest) {
            Some(e) => e.1 = e.1.max(received[n]),
            None => expired.push((ingest, received[n])),
        }
    }
    for (ingest, now) in expired {
        c.execute(
            "DELETE FROM berth_message_keys WHERE ingest = $1 AND expires_at <= $2",
            &[&ingest, &now],
        )
        .await
        .map_err(db("pruning message keys"))?;
    }
    Ok(held)
}

/// What a batch writes back on its keys: the ids of the messages that took them, and the
/// resends counted on each key and first message.
#[derive(Default)]
struct Keyed {
    first_ingest: Vec<String>,
    first_key: Vec<String>,
    first_id: Vec<i64>,
    dup: std::collections::BTreeMap<(String, String), (Option<i64>, i64)>,
}

impl Keyed {
    fn first(&mut self, m: &NewMessage, id: i64) {
        if let Some(k) = &m.key {
            self.first_ingest.push(m.ingest.clone());
            self.first_key.push(k.value.clone());
            self.first_id.push(id);
        }
    }

    fn count(&mut self, m: &NewMessage, first: Option<i64>) {
        if let Some(k) = &m.key {
            self.dup
                .entry((m.ingest.clone(), k.value.clone()))
                .or_insert((first, 0))
                .1 += 1;
        }
    }

    async fn write(self, c: &impl GenericClient) -> Result<()> {
        if !self.first_id.is_empty() {
            c.execute(
                "UPDATE berth_message_keys k SET message_id = u.id \
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(ingest, key, id) \
                 WHERE k.ingest = u.ingest AND k.key = u.key",
                &[&self.first_ingest, &self.first_key, &self.first_id],
            )
            .await
            .map_err(db("storing message keys"))?;
        }
        if self.dup.is_empty() {
            return Ok(());
        }
        let (mut ingests, mut keys, mut ids, mut counts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((ingest, key), (id, n)) in self.dup {
            ingests.push(ingest);
            keys.push(key);
            ids.push(id);
            counts.push(n);
        }
        c.execute(
            "UPDATE berth_message_keys k SET duplicates = k.duplicates + u.n \
             FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(ingest, key, n) \
             WHERE k.ingest = u.ingest AND k.key = u.key",
            &[&ingests, &keys, &counts],
        )
        .await
        .map_err(db("counting duplicates"))?;
        c.execute(
            "UPDATE berth_messages m SET duplicates = m.duplicates + u.n \
             FROM (SELECT id, sum(n)::bigint AS n FROM unnest($1::bigint[], $2::bigint[]) AS x(id, n) \
                   WHERE id IS NOT NULL GROUP BY id) AS u \
             WHERE m.id = u.id",
            &[&ids, &counts],
        )
        .await
        .map_err(db("counting duplicates"))?;
        Ok(())
    }
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
        let fired = start(&Pg(c), &s, now, woken).await?;
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
             dead, errors, job_id, workflow_id, replayed_at, duplicates) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10, $11, $12, $13)",
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
                &(m.duplicates as i64),
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

/// Per ingest, from the signed rows migration 14's triggers append.
pub(crate) async fn totals(c: &impl GenericClient) -> Result<Vec<MessageTotals>> {
    let rows = c
        .query(
            "SELECT ingest, dead, sum(n)::BIGINT FROM berth_message_counts \
             GROUP BY ingest, dead HAVING sum(n) <> 0 ORDER BY ingest",
            &[],
        )
        .await
        .map_err(db("counting messages"))?;
    Ok(crate::messages::fold_totals(
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))),
    ))
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
