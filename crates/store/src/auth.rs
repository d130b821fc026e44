//! The gateway's users, API tokens and login sessions, as stored. Passwords arrive
//! hashed (argon2id, by the caller) and tokens and session ids as SHA-256 hashes: the
//! store never sees a secret.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// A user who can log in to routes with `auth`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UserRecord {
    /// The login name.
    pub name: String,
    /// The password's PHC string (`$argon2id$…`).
    pub password_hash: String,
    /// The roles, sorted.
    pub roles: Vec<String>,
    /// Failed logins since the last success.
    pub failed_logins: u32,
    /// Logins are refused until then, after too many failures.
    pub locked_until: Option<Timestamp>,
    /// When the user was added.
    pub created_at: Timestamp,
    /// When the password or roles last changed.
    pub updated_at: Timestamp,
}

/// An API token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenRecord {
    /// Its public id (`tok_…`), by which it is listed and revoked.
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// What it is for, as its creator said.
    pub label: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// What it may do on the admin API (`messages:read`, `jobs:read`,
    /// `jobs:push:QUEUE`, …); empty: nothing there, it only logs in on gateway routes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A token to store: its record and the SHA-256 of its secret (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewToken {
    /// The record.
    pub token: TokenRecord,
    /// The secret's hash.
    pub hash: String,
}

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The user logged in.
    pub user: String,
    /// When they logged in.
    pub created_at: Timestamp,
    /// When the session ends.
    pub expires_at: Timestamp,
}

/// When repeated failures lock a user out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Failures in a row that lock the user.
    pub after: u32,
    /// For how long.
    pub lasts: Duration,
}

/// Users and tokens, for `store migrate` (sessions are not carried: users log in again).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuthDump {
    /// Every user.
    pub users: Vec<UserRecord>,
    /// Every token, with its hash.
    pub tokens: Vec<NewToken>,
}

/// Roles as stored: sorted, without repeats.
pub(crate) fn normalize_roles(mut roles: Vec<String>) -> Vec<String> {
    roles.sort();
    roles.dedup();
    roles
}

/// After a failed login: the new count, and until when the user is locked, if now.
pub fn after_failure(failed: u32, now: Timestamp, lockout: Lockout) -> (u32, Option<Timestamp>) {
    let failed = failed.saturating_add(1);
    if failed >= lockout.after {
        // The count starts over once the lock is served.
        (0, Some(now.plus(lockout.lasts)))
    } else {
        (failed, None)
    }
}
