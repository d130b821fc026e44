//! The SQL for nodes and the leader lease on PostgreSQL.

use std::time::Duration;

use tokio_postgres::GenericClient;

use crate::error::{Result, StoreError};
use crate::model::{LeaderLease, NodeInfo, Timestamp};

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(crate) async fn heartbeat(c: &impl GenericClient, n: &NodeInfo) -> Result<()> {
    c.execute(
        "INSERT INTO berth_nodes (id, host, pid, version, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, \
         version = excluded.version, started_at = excluded.started_at, \
         heartbeat_at = excluded.heartbeat_at",
        &[
            &n.id,
            &n.host,
            &i64::from(n.pid),
            &n.version,
            &n.started_at.0,
            &n.heartbeat_at.0,
        ],
    )
    .await
    .map(|_| ())
    .map_err(db("recording a node heartbeat"))
}

pub(crate) async fn nodes(c: &impl GenericClient) -> Result<Vec<NodeInfo>> {
    let rows = c
        .query(
            "SELECT id, host, pid, version, started_at, heartbeat_at FROM berth_nodes \
             ORDER BY heartbeat_at DESC, id",
            &[],
        )
        .await
        .map_err(db("listing nodes"))?;
    Ok(rows
        .iter()
        .map(|r| NodeInfo {
            id: r.get(0),
            host: r.get(1),
            pid: u32::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            version: r.get(3),
            started_at: Timestamp(r.get(4)),
            heartbeat_at: Timestamp(r.get(5)),
        })
        .collect())
}

pub(crate) async fn prune(c: &impl GenericClient, before: Timestamp) -> Result<u64> {
    c.execute(
        "DELETE FROM berth_nodes WHERE heartbeat_at < $1",
        &[&before.0],
    )
    .await
    .map_err(db("forgetting old nodes"))
}

pub(crate) async fn leader(c: &impl GenericClient) -> Result<LeaderLease> {
    let r = c
        .query_one(
            "SELECT holder, term, expires_at FROM berth_leader WHERE id = 1",
            &[],
        )
        .await
        .map_err(db("reading the leader lease"))?;
    Ok(LeaderLease {
        holder: r.get(0),
        term: r.get(1),
        expires_at: Timestamp(r.get(2)),
    })
}

pub(crate) async fn elect(
    c: &impl GenericClient,
    node: &str,
    term: Option<i64>,
    predecessors: Option<&str>,
    ttl: Duration,
    now: Timestamp,
) -> Result<LeaderLease> {
    let until = now.plus(ttl).0;
    // One statement: renew within our own term before expiry, or take a free or expired
    // lease, or one a dead predecessor held, with a new term. The row lock serialises
    // competing nodes.
    let r = c
        .query_opt(
            "UPDATE berth_leader SET \
               term = CASE WHEN holder = $1 AND term = $2 AND expires_at >= $4 THEN term ELSE term + 1 END, \
               holder = $1, expires_at = $3 \
             WHERE id = 1 AND ((holder = $1 AND term = $2 AND expires_at >= $4) \
                               OR holder IS NULL OR expires_at < $4 \
                               OR ($5 <> '' AND holder <> $1 AND left(holder, length($5)) = $5)) \
             RETURNING holder, term, expires_at",
            &[&node, &term.unwrap_or(-1), &until, &now.0, &predecessors.unwrap_or("")],
        )
        .await
        .map_err(db("renewing or taking the leader lease"))?;
    match r {
        Some(r) => Ok(LeaderLease {
            holder: r.get(0),
            term: r.get(1),
            expires_at: Timestamp(r.get(2)),
        }),
        None => leader(c).await,
    }
}

pub(crate) async fn resign(c: &impl GenericClient, node: &str, term: i64) -> Result<()> {
    c.execute(
        "UPDATE berth_leader SET holder = NULL, expires_at = 0 \
         WHERE id = 1 AND holder = $1 AND term = $2",
        &[&node, &term],
    )
    .await
    .map(|_| ())
    .map_err(db("resigning the leader lease"))
}
