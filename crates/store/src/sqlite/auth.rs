//! The SQL for users, tokens and sessions.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::auth::{
    AuthDump, Lockout, NewToken, SessionRecord, TokenRecord, UserRecord, after_failure,
    normalize_roles,
};
use crate::error::{Result, StoreError};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

const USER_COLUMNS: &str =
    "u.name, u.password_hash, u.roles, u.failed_logins, u.locked_until, u.created_at, u.updated_at";

/// A user from the columns of [`USER_COLUMNS`], starting at `at`.
fn user_at(r: &Row<'_>, at: usize) -> rusqlite::Result<UserRecord> {
    let roles: String = r.get(at + 2)?;
    Ok(UserRecord {
        name: r.get(at)?,
        password_hash: r.get(at + 1)?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        failed_logins: r.get(at + 3)?,
        locked_until: r.get::<_, Option<i64>>(at + 4)?.map(Timestamp),
        created_at: Timestamp(r.get(at + 5)?),
        updated_at: Timestamp(r.get(at + 6)?),
    })
}

fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn user(conn: &Connection, name: &str) -> Result<Option<UserRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u WHERE u.name = ?1"
    ))
    .and_then(|mut s| s.query_row([name], |r| user_at(r, 0)).optional())
    .map_err(db("reading a user"))
}

pub(crate) fn users(conn: &Connection) -> Result<Vec<UserRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
    ))
    .and_then(|mut s| s.query_map([], |r| user_at(r, 0))?.collect())
    .map_err(db("listing users"))
}

fn must_user(conn: &Connection, name: &str) -> Result<UserRecord> {
    user(conn, name)?.ok_or_else(|| StoreError::NotFound(format!("no user named `{name}`")))
}

pub(crate) fn user_create(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    roles: Vec<String>,
    now: Timestamp,
) -> Result<UserRecord> {
    if user(conn, name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a user named `{name}` exists already"
        )));
    }
    let roles = normalize_roles(roles);
    conn.prepare_cached(
        "INSERT INTO users (name, password_hash, roles, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?4)",
    )
    .and_then(|mut s| s.execute(params![name, password_hash, roles_json(&roles), now.0]))
    .map_err(db("adding a user"))?;
    must_user(conn, name)
}

pub(crate) fn user_update(
    conn: &Connection,
    name: &str,
    password_hash: Option<&str>,
    roles: Option<Vec<String>>,
    now: Timestamp,
) -> Result<UserRecord> {
    must_user(conn, name)?;
    if let Some(hash) = password_hash {
        conn.prepare_cached(
            "UPDATE users SET password_hash = ?2, failed_logins = 0, locked_until = NULL, \
             updated_at = ?3 WHERE name = ?1",
        )
        .and_then(|mut s| s.execute(params![name, hash, now.0]))
        .map_err(db("changing a password"))?;
        conn.prepare_cached("DELETE FROM sessions WHERE user_name = ?1")
            .and_then(|mut s| s.execute([name]))
            .map_err(db("ending a user's sessions"))?;
    }
    if let Some(roles) = roles {
        let roles = normalize_roles(roles);
        conn.prepare_cached("UPDATE users SET roles = ?2, updated_at = ?3 WHERE name = ?1")
            .and_then(|mut s| s.execute(params![name, roles_json(&roles), now.0]))
            .map_err(db("changing roles"))?;
    }
    must_user(conn, name)
}

pub(crate) fn user_remove(conn: &Connection, name: &str) -> Result<()> {
    must_user(conn, name)?;
    for sql in [
        "DELETE FROM sessions WHERE user_name = ?1",
        "DELETE FROM tokens WHERE user_name = ?1",
        "DELETE FROM users WHERE name = ?1",
    ] {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([name]))
            .map_err(db("removing a user"))?;
    }
    Ok(())
}

pub(crate) fn login_failed(
    conn: &Connection,
    name: &str,
    lockout: Lockout,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    let Some(u) = user(conn, name)? else {
        return Ok(None);
    };
    let (failed, locked) = after_failure(u.failed_logins, now, lockout);
    conn.prepare_cached(
        "UPDATE users SET failed_logins = ?2, locked_until = coalesce(?3, locked_until) \
         WHERE name = ?1",
    )
    .and_then(|mut s| s.execute(params![name, failed, locked.map(|t| t.0)]))
    .map_err(db("counting a failed login"))?;
    Ok(locked)
}

pub(crate) fn login_succeeded(conn: &Connection, name: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE users SET failed_logins = 0, locked_until = NULL \
         WHERE name = ?1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
    )
    .and_then(|mut s| s.execute([name]))
    .map(|_| ())
    .map_err(db("recording a login"))
}

pub(crate) fn token_create(conn: &Connection, t: &NewToken) -> Result<()> {
    must_user(conn, &t.token.user)?;
    conn.prepare_cached(
        "INSERT INTO tokens (id, hash, user_name, label, created_at, expires_at, scopes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            t.token.id,
            t.hash,
            t.token.user,
            t.token.label,
            t.token.created_at.0,
            t.token.expires_at.map(|e| e.0),
            roles_json(&t.token.scopes)
        ])
    })
    .map(|_| ())
    .map_err(db("storing a token"))
}

pub(crate) fn token_revoke(conn: &Connection, id: &str) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM tokens WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(db("revoking a token"))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no token with id `{id}`")));
    }
    Ok(())
}

fn token_at(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        id: r.get(0)?,
        user: r.get(1)?,
        label: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        expires_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
        scopes: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
    })
}

pub(crate) fn tokens(conn: &Connection) -> Result<Vec<TokenRecord>> {
    conn.prepare_cached(
        "SELECT id, user_name, label, created_at, expires_at, scopes FROM tokens \
         ORDER BY created_at DESC, id",
    )
    .and_then(|mut s| s.query_map([], token_at)?.collect())
    .map_err(db("listing tokens"))
}

pub(crate) fn token_user(
    conn: &Connection,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(TokenRecord, UserRecord)>> {
    conn.prepare_cached(&format!(
        "SELECT t.id, t.user_name, t.label, t.created_at, t.expires_at, t.scopes, {USER_COLUMNS} \
         FROM tokens t JOIN users u ON u.name = t.user_name \
         WHERE t.hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)"
    ))
    .and_then(|mut s| {
        s.query_row(params![hash, now.0], |r| Ok((token_at(r)?, user_at(r, 6)?)))
            .optional()
    })
    .map_err(db("looking a token up"))
}

pub(crate) fn session_create(
    conn: &Connection,
    hash: &str,
    user: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    must_user(conn, user)?;
    conn.prepare_cached(
        "INSERT INTO sessions (hash, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![hash, user, now.0, expires_at.0]))
    .map(|_| ())
    .map_err(db("starting a session"))
}

pub(crate) fn session_user(
    conn: &Connection,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(SessionRecord, UserRecord)>> {
    conn.prepare_cached(&format!(
        "SELECT s.user_name, s.created_at, s.expires_at, {USER_COLUMNS} \
         FROM sessions s JOIN users u ON u.name = s.user_name \
         WHERE s.hash = ?1 AND s.expires_at > ?2"
    ))
    .and_then(|mut s| {
        s.query_row(params![hash, now.0], |r| {
            Ok((
                SessionRecord {
                    user: r.get(0)?,
                    created_at: Timestamp(r.get(1)?),
                    expires_at: Timestamp(r.get(2)?),
                },
                user_at(r, 3)?,
            ))
        })
        .optional()
    })
    .map_err(db("looking a session up"))
}

pub(crate) fn session_delete(conn: &Connection, hash: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM sessions WHERE hash = ?1")
        .and_then(|mut s| s.execute([hash]))
        .map(|_| ())
        .map_err(db("ending a session"))
}

pub(crate) fn prune_sessions(conn: &Connection, now: Timestamp) -> Result<u64> {
    conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")
        .and_then(|mut s| s.execute([now.0]))
        .map(|n| n as u64)
        .map_err(db("forgetting ended sessions"))
}

pub(crate) fn export(conn: &Connection) -> Result<AuthDump> {
    let users = users(conn)?;
    let tokens = conn
        .prepare_cached(
            "SELECT id, user_name, label, created_at, expires_at, scopes, hash FROM tokens ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(NewToken {
                    token: token_at(r)?,
                    hash: r.get(6)?,
                })
            })?
            .collect()
        })
        .map_err(db("reading tokens"))?;
    Ok(AuthDump { users, tokens })
}

pub(crate) fn import(conn: &Connection, dump: &AuthDump) -> Result<()> {
    for u in &dump.users {
        conn.prepare_cached(
            "INSERT INTO users (name, password_hash, roles, failed_logins, locked_until, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![
                u.name,
                u.password_hash,
                roles_json(&u.roles),
                u.failed_logins,
                u.locked_until.map(|t| t.0),
                u.created_at.0,
                u.updated_at.0
            ])
        })
        .map_err(db("copying users"))?;
    }
    for t in &dump.tokens {
        token_create(conn, t)?;
    }
    Ok(())
}
