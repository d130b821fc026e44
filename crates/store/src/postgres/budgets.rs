//! The SQL for budgets' spending and the settings on PostgreSQL.

use tokio_postgres::GenericClient;

use crate::budgets::BudgetState;
use crate::error::{Result, StoreError};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

pub(crate) async fn budget_add(
    c: &impl GenericClient,
    name: &str,
    period_start: Timestamp,
    delta: i64,
    now: Timestamp,
) -> Result<BudgetState> {
    // One statement: a newer period starts over, the same (or an older) one adds.
    let row = c
        .query_one(
            "INSERT INTO berth_budgets AS b (name, period_start, spent, alerted, updated_at) \
             VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (name) DO UPDATE SET \
               spent = CASE WHEN b.period_start < excluded.period_start THEN excluded.spent \
                            ELSE b.spent + excluded.spent END, \
               alerted = CASE WHEN b.period_start < excluded.period_start THEN 0 \
                              ELSE b.alerted END, \
               period_start = GREATEST(b.period_start, excluded.period_start), \
               updated_at = excluded.updated_at \
             RETURNING period_start, spent, alerted",
            &[&name, &period_start.0, &delta, &now.0],
        )
        .await
        .map_err(db("adding to a budget"))?;
    Ok(BudgetState {
        period_start: Timestamp(row.get(0)),
        spent: row.get(1),
        alerted: row.get(2),
    })
}

pub(crate) async fn budget_alert(
    c: &impl GenericClient,
    name: &str,
    period_start: Timestamp,
    level: i32,
) -> Result<bool> {
    c.execute(
        "UPDATE berth_budgets SET alerted = $3 \
         WHERE name = $1 AND period_start = $2 AND alerted < $3",
        &[&name, &period_start.0, &level],
    )
    .await
    .map(|n| n == 1)
    .map_err(db("recording a budget alert"))
}

pub(crate) async fn budgets(c: &impl GenericClient) -> Result<Vec<(String, BudgetState)>> {
    c.query(
        "SELECT name, period_start, spent, alerted FROM berth_budgets ORDER BY name",
        &[],
    )
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| {
                (
                    r.get(0),
                    BudgetState {
                        period_start: Timestamp(r.get(1)),
                        spent: r.get(2),
                        alerted: r.get(3),
                    },
                )
            })
            .collect()
    })
    .map_err(db("listing budgets"))
}

pub(crate) async fn budget_reset(
    c: &impl GenericClient,
    name: &str,
    period_start: Timestamp,
    now: Timestamp,
) -> Result<()> {
    c.execute(
        "INSERT INTO berth_budgets (name, period_start, spent, alerted, updated_at) \
         VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (name) DO UPDATE SET period_start = excluded.period_start, spent = 0, \
           alerted = 0, updated_at = excluded.updated_at",
        &[&name, &period_start.0, &now.0],
    )
    .await
    .map(|_| ())
    .map_err(db("resetting a budget"))
}

pub(crate) async fn setting(
    c: &impl GenericClient,
    key: &str,
) -> Result<Option<serde_json::Value>> {
    c.query_opt("SELECT value FROM berth_settings WHERE key = $1", &[&key])
        .await
        .map(|r| r.map(|r| r.get(0)))
        .map_err(db("reading a setting"))
}

pub(crate) async fn set_setting(
    c: &impl GenericClient,
    key: &str,
    value: Option<&serde_json::Value>,
    now: Timestamp,
) -> Result<()> {
    let result = match value {
        Some(v) => {
            c.execute(
                "INSERT INTO berth_settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                   updated_at = excluded.updated_at",
                &[&key, v, &now.0],
            )
            .await
        }
        None => {
            c.execute("DELETE FROM berth_settings WHERE key = $1", &[&key])
                .await
        }
    };
    result.map(|_| ()).map_err(db("writing a setting"))
}

pub(crate) async fn swap_setting(
    c: &impl GenericClient,
    key: &str,
    expected: Option<&serde_json::Value>,
    value: Option<&serde_json::Value>,
    now: Timestamp,
) -> Result<bool> {
    // Each statement is one atomic step; JSONB compares by value.
    let n = match (expected, value) {
        (None, None) => {
            return c
                .query_opt("SELECT 1 FROM berth_settings WHERE key = $1", &[&key])
                .await
                .map(|r| r.is_none())
                .map_err(db("reading a setting"));
        }
        (None, Some(v)) => {
            c.execute(
                "INSERT INTO berth_settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
                &[&key, v, &now.0],
            )
            .await
        }
        (Some(old), Some(v)) => {
            c.execute(
                "UPDATE berth_settings SET value = $3, updated_at = $4 \
                 WHERE key = $1 AND value = $2",
                &[&key, old, v, &now.0],
            )
            .await
        }
        (Some(old), None) => {
            c.execute(
                "DELETE FROM berth_settings WHERE key = $1 AND value = $2",
                &[&key, old],
            )
            .await
        }
    };
    n.map(|n| n == 1).map_err(db("swapping a setting"))
}
