//! The SQL for users, tokens and sessions on PostgreSQL.

use tokio_postgres::{GenericClient, Row};

use crate::auth::{
    AuthDump, Lockout, NewToken, SessionRecord, TokenRecord, UserRecord, after_failure,
    normalize_roles,
};
use crate::error::{Result, StoreError};
use crate::model::Timestamp;

fn db(action: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::db(action, e)
}

const USER_COLUMNS: &str =
    "u.name, u.password_hash, u.roles, u.failed_logins, u.locked_until, u.created_at, u.updated_at";

fn user_at(r: &Row, at: usize) -> UserRecord {
    let roles: serde_json::Value = r.get(at + 2);
    UserRecord {
        name: r.get(at),
        password_hash: r.get(at + 1),
        roles: serde_json::from_value(roles).unwrap_or_default(),
        failed_logins: r.get::<_, i32>(at + 3).max(0) as u32,
        locked_until: r.get::<_, Option<i64>>(at + 4).map(Timestamp),
        created_at: Timestamp(r.get(at + 5)),
        updated_at: Timestamp(r.get(at + 6)),
    }
}

fn token_at(r: &Row) -> TokenRecord {
    TokenRecord {
        id: r.get(0),
        user: r.get(1),
        label: r.get(2),
        created_at: Timestamp(r.get(3)),
        expires_at: r.get::<_, Option<i64>>(4).map(Timestamp),
        scopes: serde_json::from_value(r.get(5)).unwrap_or_default(),
    }
}

fn roles_json(roles: &[String]) -> serde_json::Value {
    serde_json::json!(roles)
}

pub(crate) async fn user(c: &impl GenericClient, name: &str) -> Result<Option<UserRecord>> {
    c.query_opt(
        &format!("SELECT {USER_COLUMNS} FROM berth_users u WHERE u.name = $1"),
        &[&name],
    )
    .await
    .map(|r| r.map(|r| user_at(&r, 0)))
    .map_err(db("reading a user"))
}

async fn must_user(c: &impl GenericClient, name: &str) -> Result<UserRecord> {
    user(c, name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no user named `{name}`")))
}

pub(crate) async fn users(c: &impl GenericClient) -> Result<Vec<UserRecord>> {
    c.query(
        &format!("SELECT {USER_COLUMNS} FROM berth_users u ORDER BY u.name"),
        &[],
    )
    .await
    .map(|rows| rows.iter().map(|r| user_at(r, 0)).collect())
    .map_err(db("listing users"))
}

pub(crate) async fn user_create(
    c: &impl GenericClient,
    name: &str,
    password_hash: &str,
    roles: Vec<String>,
    now: Timestamp,
) -> Result<UserRecord> {
    let roles = normalize_roles(roles);
    let n = c
        .execute(
            "INSERT INTO berth_users (name, password_hash, roles, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING",
            &[&name, &password_hash, &roles_json(&roles), &now.0],
        )
        .await
        .map_err(db("adding a user"))?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "a user named `{name}` exists already"
        )));
    }
    must_user(c, name).await
}

pub(crate) async fn user_update(
    c: &impl GenericClient,
    name: &str,
    password_hash: Option<&str>,
    roles: Option<Vec<String>>,
    now: Timestamp,
) -> Result<UserRecord> {
    must_user(c, name).await?;
    if let Some(hash) = password_hash {
        c.execute(
            "UPDATE berth_users SET password_hash = $2, failed_logins = 0, locked_until = NULL, \
             updated_at = $3 WHERE name = $1",
            &[&name, &hash, &now.0],
        )
        .await
        .map_err(db("changing a password"))?;
        c.execute("DELETE FROM berth_sessions WHERE user_name = $1", &[&name])
            .await
            .map_err(db("ending a user's sessions"))?;
    }
    if let Some(roles) = roles {
        let roles = normalize_roles(roles);
        c.execute(
            "UPDATE berth_users SET roles = $2, updated_at = $3 WHERE name = $1",
            &[&name, &roles_json(&roles), &now.0],
        )
        .await
        .map_err(db("changing roles"))?;
    }
    must_user(c, name).await
}

pub(crate) async fn user_remove(c: &impl GenericClient, name: &str) -> Result<()> {
    // Tokens and sessions go with the user (ON DELETE CASCADE).
    let n = c
        .execute("DELETE FROM berth_users WHERE name = $1", &[&name])
        .await
        .map_err(db("removing a user"))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no user named `{name}`")));
    }
    Ok(())
}

pub(crate) async fn login_failed(
    c: &impl GenericClient,
    name: &str,
    lockout: Lockout,
    now: Timestamp,
) -> Result<Option<Timestamp>> {
    // The row lock makes concurrent failures count one after the other.
    let Some(row) = c
        .query_opt(
            "SELECT failed_logins FROM berth_users WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .await
        .map_err(db("counting a failed login"))?
    else {
        return Ok(None);
    };
    let failed = row.get::<_, i32>(0).max(0) as u32;
    let (failed, locked) = after_failure(failed, now, lockout);
    c.execute(
        "UPDATE berth_users SET failed_logins = $2, locked_until = coalesce($3, locked_until) \
         WHERE name = $1",
        &[&name, &(failed as i32), &locked.map(|t| t.0)],
    )
    .await
    .map_err(db("counting a failed login"))?;
    Ok(locked)
}

pub(crate) async fn login_succeeded(c: &impl GenericClient, name: &str) -> Result<()> {
    c.execute(
        "UPDATE berth_users SET failed_logins = 0, locked_until = NULL \
         WHERE name = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
        &[&name],
    )
    .await
    .map(|_| ())
    .map_err(db("recording a login"))
}

pub(crate) async fn token_create(c: &impl GenericClient, t: &NewToken) -> Result<()> {
    must_user(c, &t.token.user).await?;
    c.execute(
        "INSERT INTO berth_tokens (id, hash, user_name, label, created_at, expires_at, scopes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &t.token.id,
            &t.hash,
            &t.token.user,
            &t.token.label,
            &t.token.created_at.0,
            &t.token.expires_at.map(|e| e.0),
            &roles_json(&t.token.scopes),
        ],
    )
    .await
    .map(|_| ())
    .map_err(db("storing a token"))
}

pub(crate) async fn token_revoke(c: &impl GenericClient, id: &str) -> Result<()> {
    let n = c
        .execute("DELETE FROM berth_tokens WHERE id = $1", &[&id])
        .await
        .map_err(db("revoking a token"))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("no token with id `{id}`")));
    }
    Ok(())
}

pub(crate) async fn tokens(c: &impl GenericClient) -> Result<Vec<TokenRecord>> {
    c.query(
        "SELECT id, user_name, label, created_at, expires_at, scopes FROM berth_tokens \
         ORDER BY created_at DESC, id",
        &[],
    )
    .await
    .map(|rows| rows.iter().map(token_at).collect())
    .map_err(db("listing tokens"))
}

pub(crate) async fn token_user(
    c: &impl GenericClient,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(TokenRecord, UserRecord)>> {
    c.query_opt(
        &format!(
            "SELECT t.id, t.user_name, t.label, t.created_at, t.expires_at, t.scopes, {USER_COLUMNS} \
             FROM berth_tokens t JOIN berth_users u ON u.name = t.user_name \
             WHERE t.hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ),
        &[&hash, &now.0],
    )
    .await
    .map(|r| r.map(|r| (token_at(&r), user_at(&r, 6))))
    .map_err(db("looking a token up"))
}

pub(crate) async fn session_create(
    c: &impl GenericClient,
    hash: &str,
    user: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    must_user(c, user).await?;
    c.execute(
        "INSERT INTO berth_sessions (hash, user_name, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        &[&hash, &user, &now.0, &expires_at.0],
    )
    .await
    .map(|_| ())
    .map_err(db("starting a session"))
}

pub(crate) async fn session_user(
    c: &impl GenericClient,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(SessionRecord, UserRecord)>> {
    c.query_opt(
        &format!(
            "SELECT s.user_name, s.created_at, s.expires_at, {USER_COLUMNS} \
             FROM berth_sessions s JOIN berth_users u ON u.name = s.user_name \
             WHERE s.hash = $1 AND s.expires_at > $2"
        ),
        &[&hash, &now.0],
    )
    .await
    .map(|r| {
        r.map(|r| {
            (
                SessionRecord {
                    user: r.get(0),
                    created_at: Timestamp(r.get(1)),
                    expires_at: Timestamp(r.get(2)),
                },
                user_at(&r, 3),
            )
        })
    })
    .map_err(db("looking a session up"))
}

pub(crate) async fn session_delete(c: &impl GenericClient, hash: &str) -> Result<()> {
    c.execute("DELETE FROM berth_sessions WHERE hash = $1", &[&hash])
        .await
        .map(|_| ())
        .map_err(db("ending a session"))
}

pub(crate) async fn prune_sessions(c: &impl GenericClient, now: Timestamp) -> Result<u64> {
    c.execute(
        "DELETE FROM berth_sessions WHERE expires_at <= $1",
        &[&now.0],
    )
    .await
    .map_err(db("forgetting ended sessions"))
}

pub(crate) async fn export(c: &impl GenericClient) -> Result<AuthDump> {
    let users = users(c).await?;
    let tokens = c
        .query(
            "SELECT id, user_name, label, created_at, expires_at, scopes, hash FROM berth_tokens \
             ORDER BY id",
            &[],
        )
        .await
        .map_err(db("reading tokens"))?
        .iter()
        .map(|r| NewToken {
            token: token_at(r),
            hash: r.get(6),
        })
        .collect();
    Ok(AuthDump { users, tokens })
}

pub(crate) async fn import(c: &impl GenericClient, dump: &AuthDump) -> Result<()> {
    for u in &dump.users {
        c.execute(
            "INSERT INTO berth_users (name, password_hash, roles, failed_logins, locked_until, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &u.name,
                &u.password_hash,
                &roles_json(&u.roles),
                &(u.failed_logins as i32),
                &u.locked_until.map(|t| t.0),
                &u.created_at.0,
                &u.updated_at.0,
            ],
        )
        .await
        .map_err(db("copying users"))?;
    }
    for t in &dump.tokens {
        token_create(c, t).await?;
    }
    Ok(())
}
