//! Who may connect to the embedded broker, and which topics each client may use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_store::Timestamp;

use super::codec::ConnCode;
use super::topic::{covers, matches};

/// How long every refused login holds its connection before the refusal: a device's, a
/// berth user's, a name that is neither. It slows guessing, and a refusal takes as long
/// whatever the name, so its timing does not tell which names exist.
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
    /// When repeated wrong passwords lock a device out (the gateway's, for users).
    pub lockout: berth_store::Lockout,
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
    /// Each device's wrong passwords in a row, and until when it is locked out. Only
    /// configured device names are kept, so it holds at most one entry per device.
    devices: Mutex<HashMap<String, (u32, Option<Timestamp>)>>,
}

impl Auth {
    pub(crate) fn new(spec: AuthSpec) -> Self {
        Self {
            spec,
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a device's password, counting wrong ones as a user's are counted: past the
    /// lockout's count, even the right password is refused for the lockout's time.
    fn device_login(&self, name: &str, device: &Device, password: &str) -> Result<(), ConnCode> {
        let now = Timestamp::now();
        let mut devices = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        let entry = devices.entry(name.to_owned()).or_insert((0, None));
        if entry.1.is_some_and(|until| until > now) {
            return Err(ConnCode::NotAuthorized);
        }
        // Compared as hashes: how long the comparison takes says nothing of the password.
        let hash = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        if hash(&device.password).as_ref() == hash(password).as_ref() {
            *entry = (0, None);
            return Ok(());
        }
        let (failed, locked) = berth_store::after_failure(entry.0, now, self.spec.lockout);
        *entry = (failed, locked.or(entry.1));
        Err(ConnCode::BadLogin)
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
        // Every refusal is answered the same time after the CONNECT arrived, whether the
        // name was a device's (a quick hash), a user's or no one's (a password hash that
        // takes tens of milliseconds): how long it takes tells nothing of the name.
        let refuse_at = tokio::time::Instant::now() + WRONG_PASSWORD_PAUSE;
        let refused = match self.spec.credentials.get(&name) {
            Some(device) => match self.device_login(&name, device, &password) {
                Ok(()) => return Ok(self.identity(Some(name), &device.roles)),
                Err(code) => code,
            },
            // A name that is no device is a berth user's, or no one's: the users'
            // checker answers both alike (and locks both alike).
            None => match &self.spec.users {
                None => ConnCode::BadLogin,
                Some(users) => match users.check(&name, &password).await {
                    Ok(roles) => return Ok(self.identity(Some(name), &roles)),
                    Err(LoginRefusal::Wrong) => ConnCode::BadLogin,
                    Err(LoginRefusal::Locked) => ConnCode::NotAuthorized,
                    Err(LoginRefusal::Unavailable) => return Err(ConnCode::Unavailable),
                },
            },
        };
        tokio::time::sleep_until(refuse_at).await;
        Err(refused)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(after: u32) -> Auth {
        let device = Device {
            password: "device-secret".into(),
            roles: Vec::new(),
        };
        Auth::new(AuthSpec {
            anonymous: false,
            credentials: HashMap::from([("stand01".to_owned(), device)]),
            users: None,
            allow: Vec::new(),
            lockout: berth_store::Lockout {
                after,
                lasts: Duration::from_secs(60),
            },
        })
    }

    fn login(name: &str, password: &str) -> Option<(String, String)> {
        Some((name.to_owned(), password.to_owned()))
    }

    /// A device is locked out after the lockout's count of wrong passwords, like a user:
    /// then even its right password is refused; every refusal waits the same pause.
    #[tokio::test]
    async fn a_device_is_locked_out_after_wrong_passwords() {
        let a = auth(2);
        assert!(a.login(login("stand01", "device-secret")).await.is_ok());
        let started = std::time::Instant::now();
        for _ in 0..2 {
            let refused = a.login(login("stand01", "nope")).await.unwrap_err();
            assert_eq!(refused, ConnCode::BadLogin);
        }
        assert!(started.elapsed() >= 2 * WRONG_PASSWORD_PAUSE);
        let refused = a
            .login(login("stand01", "device-secret"))
            .await
            .unwrap_err();
        assert_eq!(refused, ConnCode::NotAuthorized, "locked out");
        // Another device name, or none, is not touched by it.
        let unknown = a.login(login("stand99", "x")).await.unwrap_err();
        assert_eq!(unknown, ConnCode::BadLogin);
    }

    /// A right password starts the count over.
    #[tokio::test]
    async fn a_right_password_starts_the_count_over() {
        let a = auth(2);
        assert!(a.login(login("stand01", "nope")).await.is_err());
        assert!(a.login(login("stand01", "device-secret")).await.is_ok());
        assert!(a.login(login("stand01", "nope")).await.is_err());
        assert!(a.login(login("stand01", "device-secret")).await.is_ok());
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// A user check as slow as a password hash.
    struct Slow;

    #[async_trait::async_trait]
    impl UserLogin for Slow {
        async fn check(&self, _: &str, _: &str) -> Result<Vec<String>, LoginRefusal> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Err(LoginRefusal::Wrong)
        }
    }

    /// A wrong password for a device (a quick hash) and one for a user or an unknown name
    /// (a slow one) are refused after the same time: it tells nothing of the name.
    #[tokio::test(start_paused = true)]
    async fn every_refusal_takes_the_same_time() {
        let a = Auth::new(AuthSpec {
            anonymous: false,
            credentials: HashMap::from([(
                "stand01".to_owned(),
                Device {
                    password: "device-secret".into(),
                    roles: Vec::new(),
                },
            )]),
            users: Some(Arc::new(Slow)),
            allow: Vec::new(),
            lockout: berth_store::Lockout {
                after: 5,
                lasts: Duration::from_secs(60),
            },
        });
        for name in ["stand01", "alice", "nobody"] {
            let started = tokio::time::Instant::now();
            let refused = a
                .login(Some((name.to_owned(), "wrong".to_owned())))
                .await
                .unwrap_err();
            assert_eq!(refused, ConnCode::BadLogin, "{name}");
            assert_eq!(started.elapsed(), WRONG_PASSWORD_PAUSE, "{name}");
        }
    }
}
