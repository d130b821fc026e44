//! The SQL for nodes and the leader lease.

use std::time::Duration;

use rusqlite::{Connection, params};

use crate::error::{Result, StoreError};
use crate::model::{LeaderLease, NodeInfo, Timestamp};

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(crate) fn heartbeat(conn: &Connection, n: &NodeInfo) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO nodes (id, host, pid, version, started_at, heartbeat_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
         version = excluded.version, started_at = excluded.started_at, \
         heartbeat_at = excluded.heartbeat_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            n.id,
            n.host,
            n.pid,
            n.version,
            n.started_at.0,
            n.heartbeat_at.0
        ])
    })
    .map(|_| ())
    .map_err(db("recording a node heartbeat"))
}

pub(crate) fn nodes(conn: &Connection) -> Result<Vec<NodeInfo>> {
    conn.prepare_cached(
        "SELECT id, host, pid, version, started_at, heartbeat_at FROM nodes \
         ORDER BY heartbeat_at DESC, id",
    )
    .and_then(|mut s| {
        s.query_map([], |r| {
            Ok(NodeInfo {
                id: r.get(0)?,
                host: r.get(1)?,
                pid: r.get(2)?,
                version: r.get(3)?,
                started_at: Timestamp(r.get(4)?),
                heartbeat_at: Timestamp(r.get(5)?),
            })
        })?
        .collect()
    })
    .map_err(db("listing nodes"))
}

pub(crate) fn prune(conn: &Connection, before: Timestamp) -> Result<u64> {
    conn.prepare_cached("DELETE FROM nodes WHERE heartbeat_at < ?1")
        .and_then(|mut s| s.execute([before.0]))
        .map(|n| n as u64)
        .map_err(db("forgetting old nodes"))
}

pub(crate) fn leader(conn: &Connection) -> Result<LeaderLease> {
    conn.prepare_cached("SELECT holder, term, expires_at FROM leader WHERE id = 1")
        .and_then(|mut s| {
            s.query_row([], |r| {
                Ok(LeaderLease {
                    holder: r.get(0)?,
                    term: r.get(1)?,
                    expires_at: Timestamp(r.get(2)?),
                })
            })
        })
        .map_err(db("reading the leader lease"))
}

pub(crate) fn elect(
    conn: &Connection,
    node: &str,
    term: Option<i64>,
    predecessors: Option<&str>,
    ttl: Duration,
    now: Timestamp,
) -> Result<LeaderLease> {
    let until = now.plus(ttl).0;
    // Renew: only the holder, only within its own term, only before the lease ran out.
    let renewed = match term {
        Some(term) => conn
            .prepare_cached(
                "UPDATE leader SET expires_at = ?1 \
                 WHERE id = 1 AND holder = ?2 AND term = ?3 AND expires_at >= ?4",
            )
            .and_then(|mut s| s.execute(params![until, node, term, now.0]))
            .map_err(db("renewing the leader lease"))?,
        None => 0,
    };
    if renewed == 0 {
        // Take over a free or expired lease, or one a dead predecessor held, with a new
        // term.
        conn.prepare_cached(
            "UPDATE leader SET holder = ?1, term = term + 1, expires_at = ?2 \
             WHERE id = 1 AND (holder IS NULL OR expires_at < ?3 \
               OR (?4 <> '' AND holder <> ?1 AND substr(holder, 1, length(?4)) = ?4))",
        )
        .and_then(|mut s| s.execute(params![node, until, now.0, predecessors.unwrap_or("")]))
        .map_err(db("taking the leader lease"))?;
    }
    leader(conn)
}

pub(crate) fn resign(conn: &Connection, node: &str, term: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE leader SET holder = NULL, expires_at = 0 WHERE id = 1 AND holder = ?1 AND term = ?2",
    )
    .and_then(|mut s| s.execute(params![node, term]))
    .map(|_| ())
    .map_err(db("resigning the leader lease"))
}
