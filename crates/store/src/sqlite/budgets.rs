//! The SQL for budgets' spending and the settings.

use rusqlite::{Connection, OptionalExtension, params};

use crate::budgets::{BudgetState, budget_after};
use crate::error::{Result, StoreError};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

fn budget_row(conn: &Connection, name: &str) -> Result<Option<BudgetState>> {
    conn.prepare_cached("SELECT period_start, spent, alerted FROM budgets WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok(BudgetState {
                    period_start: Timestamp(r.get(0)?),
                    spent: r.get(1)?,
                    alerted: r.get(2)?,
                })
            })
            .optional()
        })
        .map_err(db("reading a budget"))
}

fn budget_write(conn: &Connection, name: &str, b: &BudgetState, now: Timestamp) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO budgets (name, period_start, spent, alerted, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (name) DO UPDATE SET period_start = excluded.period_start, \
           spent = excluded.spent, alerted = excluded.alerted, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| s.execute(params![name, b.period_start.0, b.spent, b.alerted, now.0]))
    .map(|_| ())
    .map_err(db("writing a budget"))
}

pub(crate) fn budget_add(
    conn: &Connection,
    name: &str,
    period_start: Timestamp,
    delta: i64,
    now: Timestamp,
) -> Result<BudgetState> {
    // The writer thread runs one operation at a time: read, then write, is atomic here.
    let state = budget_after(budget_row(conn, name)?, period_start, delta);
    budget_write(conn, name, &state, now)?;
    Ok(state)
}

pub(crate) fn budget_alert(
    conn: &Connection,
    name: &str,
    period_start: Timestamp,
    level: i32,
) -> Result<bool> {
    conn.prepare_cached(
        "UPDATE budgets SET alerted = ?3 WHERE name = ?1 AND period_start = ?2 AND alerted < ?3",
    )
    .and_then(|mut s| s.execute(params![name, period_start.0, level]))
    .map(|n| n == 1)
    .map_err(db("recording a budget alert"))
}

pub(crate) fn budgets(conn: &Connection) -> Result<Vec<(String, BudgetState)>> {
    conn.prepare_cached("SELECT name, period_start, spent, alerted FROM budgets ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    BudgetState {
                        period_start: Timestamp(r.get(1)?),
                        spent: r.get(2)?,
                        alerted: r.get(3)?,
                    },
                ))
            })?
            .collect()
        })
        .map_err(db("listing budgets"))
}

pub(crate) fn budget_reset(
    conn: &Connection,
    name: &str,
    period_start: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let state = BudgetState {
        period_start,
        spent: 0,
        alerted: 0,
    };
    budget_write(conn, name, &state, now)
}

pub(crate) fn setting(conn: &Connection, key: &str) -> Result<Option<serde_json::Value>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get::<_, String>(0)).optional())
        .map(|v| v.and_then(|v| serde_json::from_str(&v).ok()))
        .map_err(db("reading a setting"))
}

pub(crate) fn set_setting(
    conn: &Connection,
    key: &str,
    value: Option<&serde_json::Value>,
    now: Timestamp,
) -> Result<()> {
    let result = match value {
        Some(v) => conn
            .prepare_cached(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                   updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![key, v.to_string(), now.0])),
        None => conn
            .prepare_cached("DELETE FROM settings WHERE key = ?1")
            .and_then(|mut s| s.execute([key])),
    };
    result.map(|_| ()).map_err(db("writing a setting"))
}

pub(crate) fn swap_setting(
    conn: &Connection,
    key: &str,
    expected: Option<&serde_json::Value>,
    value: Option<&serde_json::Value>,
    now: Timestamp,
) -> Result<bool> {
    // The writer runs one write at a time: reading, then writing, is one step.
    let current = setting(conn, key)?;
    if current.as_ref() != expected {
        return Ok(false);
    }
    set_setting(conn, key, value, now)?;
    Ok(true)
}
