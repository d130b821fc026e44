//! Who may connect to the embedded broker, and which topics each client may use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::codec::ConnCode;
use super::topic::{covers, matches};

/// How long a wrong device password holds its connection before the refusal (slows
/// guessing; device passwords have no lockout).
const WRONG_PASSWORD_PAUSE: Duration = Duration::from_secs(1);

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

/// Why a berth user's login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Wrong name or password.
    Wrong,
    /// Locked out after repeated failures.
    Locked,
    /// The check cannot be made now (the store is down, too many checks at once).
    Unavailable,
}

/// Checks berth users' passwords (the server gives the gateway's checker, so that both
/// doors share its lockout, its cost for unknown names and its limit on checks at once).
#[async_trait::async_trait]
pub trait UserLogin: Send + Sync {
    /// The user's roles, if `password` is theirs.
    async fn check(&self, name: &str, password: &str) -> Result<Vec<String>, LoginRefusal>;
}

/// A device login of an ingest's own.
#[derive(Debug, Clone)]
pub struct Device {
    /// Its password (read from the environment at start).
    pub password: String,
    /// Its roles, for `allow` entries with a role.
    pub roles: Vec<String>,
}

/// How clients log in.
pub struct AuthSpec {
    /// No login needed.
    pub anonymous: bool,
    /// Per-ingest devices, by name.
    pub credentials: HashMap<String, Device>,
    /// Berth users, when they may log in.
    pub users: Option<Arc<dyn UserLogin>>,
    /// Topic permissions; empty allows every topic.
    pub allow: Vec<AllowRule>,
}

/// Who a connected client is, with its permissions spelled out at login.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    pub user: Option<String>,
    /// The filters it may publish to; `None`: every topic.
    publish: Option<Vec<String>>,
    /// The filters it may subscribe within; `None`: every topic.
    subscribe: Option<Vec<String>>,
}

impl Identity {
    /// Whether it may publish to `topic`.
    pub(crate) fn may_publish(&self, topic: &str) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|filters| filters.iter().any(|f| matches(topic, f)))
    }

    /// Whether it may subscribe to `filter`.
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        self.subscribe
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| covers(p, filter)))
    }
}

pub(crate) struct Auth {
    spec: AuthSpec,
}

impl Auth {
    pub(crate) fn new(spec: AuthSpec) -> Self {
        Self { spec }
    }

    /// Checks a CONNECT's credentials.
    pub(crate) async fn login(
        &self,
        login: Option<(String, String)>,
    ) -> Result<Identity, ConnCode> {
        let Some((name, password)) = login else {
            return if self.spec.anonymous {
                Ok(self.identity(None, &[]))
            } else {
                Err(ConnCode::NotAuthorized)
            };
        };
        if let Some(device) = self.spec.credentials.get(&name) {
            // Compared as hashes: how long the comparison takes says nothing of the password.
            let hash = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            let same = hash(&device.password).as_ref() == hash(&password).as_ref();
            if !same {
                tokio::time::sleep(WRONG_PASSWORD_PAUSE).await;
                return Err(ConnCode::BadLogin);
            }
            return Ok(self.identity(Some(name), &device.roles));
        }
        let Some(users) = &self.spec.users else {
            return Err(ConnCode::BadLogin);
        };
        match users.check(&name, &password).await {
            Ok(roles) => Ok(self.identity(Some(name), &roles)),
            Err(LoginRefusal::Wrong) => Err(ConnCode::BadLogin),
            Err(LoginRefusal::Locked) => Err(ConnCode::NotAuthorized),
            Err(LoginRefusal::Unavailable) => Err(ConnCode::Unavailable),
        }
    }

    /// The identity of `user` with `roles`: the union of the entries that name either,
    /// with `%u` spelled out.
    fn identity(&self, user: Option<String>, roles: &[String]) -> Identity {
        if self.spec.allow.is_empty() {
            return Identity {
                user,
                publish: None,
                subscribe: None,
            };
        }
        let expand = |p: &String| match &user {
            Some(u) => p.replace("%u", u),
            None => p.clone(),
        };
        let mine: Vec<&AllowRule> = self
            .spec
            .allow
            .iter()
            .filter(|r| {
                r.user.is_some() && r.user == user
                    || r.role.as_ref().is_some_and(|role| roles.contains(role))
            })
            .collect();
        Identity {
            publish: Some(mine.iter().flat_map(|r| &r.publish).map(expand).collect()),
            subscribe: Some(mine.iter().flat_map(|r| &r.subscribe).map(expand).collect()),
            user,
        }
    }
}
