//! Who may connect to the embedded broker, and which topics each client may use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use berth_store::{Lockout, Store, Timestamp};

use super::codec::ConnCode;
use super::topic::{covers, matches};

/// Failed logins in a row that lock a berth user out, and for how long.
const LOCKOUT: Lockout = Lockout {
    after: 10,
    lasts: Duration::from_secs(15 * 60),
};

/// One permission entry (`[[ingest.NAME.allow]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// This user only.
    pub user: Option<String>,
    /// Every berth user with this role.
    pub role: Option<String>,
    /// Topic filters it may publish to; `%u` stands for the user's name.
    pub publish: Vec<String>,
    /// Topic filters it may subscribe to; `%u` as above.
    pub subscribe: Vec<String>,
}

/// How clients log in.
pub struct AuthSpec {
    /// No login needed.
    pub anonymous: bool,
    /// Per-ingest devices: name → password (read from the environment at start).
    pub credentials: HashMap<String, String>,
    /// Topic permissions; empty allows every topic.
    pub allow: Vec<AllowRule>,
}

/// Who a connected client is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub user: Option<String>,
    pub roles: Vec<String>,
}

pub(crate) struct Auth {
    spec: AuthSpec,
    store: Arc<dyn Store>,
}

fn same(a: &[u8], b: &[u8]) -> bool {
    // Length leaks; the contents do not.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub(crate) fn new(spec: AuthSpec, store: Arc<dyn Store>) -> Self {
        Self { spec, store }
    }

    /// Checks a CONNECT's credentials.
    pub(crate) async fn login(
        &self,
        login: Option<(String, String)>,
        now: Timestamp,
    ) -> Result<Identity, ConnCode> {
        let Some((name, password)) = login else {
            return if self.spec.anonymous {
                Ok(Identity::default())
            } else {
                Err(ConnCode::NotAuthorized)
            };
        };
        if let Some(expected) = self.spec.credentials.get(&name) {
            return if same(expected.as_bytes(), password.as_bytes()) {
                Ok(Identity {
                    user: Some(name),
                    roles: Vec::new(),
                })
            } else {
                Err(ConnCode::BadLogin)
            };
        }
        let user = match self.store.user(&name).await {
            Ok(Some(user)) => user,
            Ok(None) => return Err(ConnCode::BadLogin),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the user for an MQTT login");
                return Err(ConnCode::NotAuthorized);
            }
        };
        if user.locked_until.is_some_and(|until| until > now) {
            return Err(ConnCode::NotAuthorized);
        }
        let hash = user.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if ok {
            if user.failed_logins > 0 {
                let _ = self.store.login_succeeded(&name).await;
            }
            Ok(Identity {
                user: Some(name),
                roles: user.roles,
            })
        } else {
            if let Ok(Some(until)) = self.store.login_failed(&name, LOCKOUT, now).await {
                tracing::warn!(user = %name, until = ?until, "MQTT logins of this user are locked after repeated failures");
            }
            Err(ConnCode::BadLogin)
        }
    }

    fn rules<'a>(&'a self, who: &'a Identity) -> impl Iterator<Item = &'a AllowRule> + 'a {
        self.spec.allow.iter().filter(move |r| {
            r.user.is_some() && r.user == who.user
                || r.role.as_ref().is_some_and(|role| who.roles.contains(role))
        })
    }

    fn expand(pattern: &str, who: &Identity) -> String {
        match &who.user {
            Some(user) => pattern.replace("%u", user),
            None => pattern.to_owned(),
        }
    }

    /// Whether `who` may publish to `topic`.
    pub(crate) fn may_publish(&self, who: &Identity, topic: &str) -> bool {
        self.spec.allow.is_empty()
            || self.rules(who).any(|r| {
                r.publish
                    .iter()
                    .any(|p| matches(topic, &Self::expand(p, who)))
            })
    }

    /// Whether `who` may subscribe to `filter`.
    pub(crate) fn may_subscribe(&self, who: &Identity, filter: &str) -> bool {
        self.spec.allow.is_empty()
            || self.rules(who).any(|r| {
                r.subscribe
                    .iter()
                    .any(|p| covers(&Self::expand(p, who), filter))
            })
    }
}
