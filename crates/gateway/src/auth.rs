//! Who is asking: login sessions (a form at `/_berth/login`, a cookie), bearer tokens,
//! and the roles a route asks for.
//!
//! - Passwords are argon2id hashes (the `argon2` crate's defaults: 19 MiB, 2 passes);
//!   tokens and session ids are 32 random bytes, stored only as their SHA-256.
//! - The session cookie is `HttpOnly`, `SameSite=Lax`, and `Secure` on TLS listeners.
//! - Failed logins are slowed down (a growing pause per client address, an IPv6 client
//!   counted by its /64 network, up to
//!   [`MAX_PAUSE`]) and lock the user out after `lockout.after` failures in a row for
//!   `lockout.lasts`; a client address with [`MAX_FAILURES_PER_ADDR`] failures in
//!   [`FAILURE_WINDOW`] is refused outright for the rest of the window.
//! - Lookups are cached for [`CACHE_FOR`], so that a request does not wait on the store;
//!   a logout on this node ends the session here at once, elsewhere within that time.
//! - The cache and the failure counts hold at most [`MAX_CACHED`] and
//!   [`MAX_FAILING_CLIENTS`] entries, forgetting the least recently used.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use berth_store::{AuthStore, Lockout, Timestamp};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HeaderMap, HeaderValue, LOCATION,
    RETRY_AFTER, SET_COOKIE, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use ring::rand::{SecureRandom, SystemRandom};

use crate::body::{Body, empty, full};
use crate::bounded::{Bounded, client_key};
use crate::reply;
use crate::spec::{AuthMethod, RouteAuth};

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "berth_session";
/// Where the login form lives; every path under `/_berth/` is the gateway's own.
pub(crate) const LOGIN_PATH: &str = "/_berth/login";
/// Where a session ends.
pub(crate) const LOGOUT_PATH: &str = "/_berth/logout";
/// How long a looked-up session or token is trusted without asking the store again.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(5);
/// The most cached lookups; past it, the least recently used are forgotten (a client
/// sending a new made-up token with each request grows nothing).
const MAX_CACHED: usize = 100_000;
/// The most client keys whose failed logins are counted; past it, the least recently
/// used are forgotten.
const MAX_FAILING_CLIENTS: usize = 100_000;
/// The longest pause before a failed login is answered.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(4);
/// Failed logins from one address within [`FAILURE_WINDOW`] before it is refused.
pub(crate) const MAX_FAILURES_PER_ADDR: u32 = 20;
/// The window of [`MAX_FAILURES_PER_ADDR`].
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The largest login form accepted.
const MAX_FORM: usize = 8 << 10;
/// How long the login form may take to arrive.
const FORM_TIMEOUT: Duration = Duration::from_secs(10);
/// Shortest password `berth user add` accepts.
pub const MIN_PASSWORD: usize = 8;

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "the system's random source failed".to_owned())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A new API token: its public id (`tok_…`), its secret (`berth_…`, shown once) and the
/// secret's hash (stored).
pub fn new_token() -> Result<(String, String, String), String> {
    let id = format!("tok_{}", random_hex(6)?);
    let secret = format!("berth_{}", random_hex(32)?);
    let hash = sha256_hex(&secret);
    Ok((id, secret, hash))
}

/// The SHA-256 of `text`, in lowercase hex.
pub fn sha256_hex(text: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
}

fn random_hex(n: usize) -> Result<String, String> {
    let mut bytes = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system's random source failed".to_owned())?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user a request comes from, as forwarded to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) user: String,
    pub(crate) roles: Vec<String>,
    pub(crate) method: AuthMethod,
}

impl Identity {
    /// The headers that carry the identity to the service (`X-Berth-User`,
    /// `X-Berth-Roles`, `X-Berth-Auth`); the client's own `X-Berth-*` are removed
    /// before these are set.
    pub(crate) fn headers(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-berth-user", self.user.clone()),
            ("x-berth-roles", self.roles.join(",")),
            (
                "x-berth-auth",
                match self.method {
                    AuthMethod::Login => "login".to_owned(),
                    AuthMethod::Token => "token".to_owned(),
                },
            ),
        ];
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::try_from(value) {
                headers.insert(name, v);
            }
        }
    }
}

struct Cached {
    identity: Option<Identity>,
    until: Instant,
}

/// Why a password login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The store cannot be read.
    Unavailable,
    /// The user is locked out after repeated failures, for this long still.
    Locked(Duration),
    /// Too many checks are running; try again in a moment.
    Busy,
    /// Wrong name or password; `locked` when this failure locked the user out.
    Wrong {
        /// This failure locked the user.
        locked: bool,
    },
}

/// Checks berth users' passwords against the store, for every door that takes them (the
/// login form, the MQTT broker): locked-out users are refused before the check, a
/// failure is counted before the check (so that parallel guesses meet the lockout as
/// early as sequential ones) and taken back on success, an unknown name costs as much as
/// a known one, and only one check per core runs at a time.
pub struct Passwords {
    store: Arc<dyn AuthStore>,
    lockout: Lockout,
    /// Verified against when the user does not exist, so that the answer takes as long.
    /// Made at the first login for an unknown name, not at every start.
    dummy_hash: std::sync::OnceLock<String>,
    /// Password checks running at once (each takes 19 MiB and a core for a while).
    verifying: Arc<tokio::sync::Semaphore>,
    /// Failed logins of names that are no user, counted and locked out as a user's
    /// are (in this node's memory), so that no answer tells whether a name exists.
    unknown: std::sync::Mutex<Bounded<String, (u32, Option<Timestamp>)>>,
}

impl Passwords {
    /// Checks over `store`, locking users out as `lockout` says.
    pub fn new(store: Arc<dyn AuthStore>, lockout: Lockout) -> Self {
        Self {
            store,
            lockout,
            dummy_hash: std::sync::OnceLock::new(),
            verifying: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            unknown: std::sync::Mutex::new(Bounded::new(MAX_FAILING_CLIENTS)),
        }
    }

    /// Until when the unknown name `name` is locked out, if it is.
    fn unknown_locked(&self, name: &str, now: Timestamp) -> Option<Timestamp> {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        let (_, until) = unknown.get_mut(&name.to_owned())?;
        until.filter(|t| *t > now)
    }

    /// Counts a failed login of the unknown name `name` as the store counts a user's;
    /// until when it is now locked, if this failure locked it.
    fn unknown_failed(&self, name: &str, now: Timestamp) -> Option<Timestamp> {
        let mut unknown = self.unknown.lock().unwrap_or_else(|e| e.into_inner());
        let entry = unknown.get_or_insert_with(&name.to_owned(), || (0, None));
        let (failed, locked) = berth_store::after_failure(entry.0, now, self.lockout);
        *entry = (failed, locked.or(entry.1));
        locked
    }

    /// How long a lockout lasts.
    pub fn lockout(&self) -> Lockout {
        self.lockout
    }

    /// The user, if `password` is theirs.
    pub async fn check(
        &self,
        name: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<berth_store::UserRecord, Refused> {
        let user = self.store.user(name).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read a user to log in");
            Refused::Unavailable
        })?;
        let locked_until = match &user {
            Some(u) => u.locked_until.filter(|t| *t > now),
            None => self.unknown_locked(name, now),
        };
        if let Some(until) = locked_until {
            return Err(Refused::Locked(until.since(now)));
        }
        let Ok(_permit) = self.verifying.clone().try_acquire_owned() else {
            return Err(Refused::Busy);
        };
        let locked = match &user {
            Some(_) => self
                .store
                .login_failed(name, self.lockout, now)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot count a failed login");
                    None
                }),
            None => self.unknown_failed(name, now),
        };
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => self
                .dummy_hash
                .get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
                .clone(),
        };
        let given = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &given))
            .await
            .unwrap_or(false);
        match user {
            Some(user) if ok => {
                let _ = self.store.login_succeeded(name).await;
                Ok(user)
            }
            _ => Err(Refused::Wrong {
                locked: locked.is_some(),
            }),
        }
    }
}

/// Sessions, tokens and logins over the store; shared by every worker.
pub(crate) struct Auth {
    store: Arc<dyn AuthStore>,
    session_ttl: Duration,
    passwords: Passwords,
    cache: Mutex<Bounded<String, Cached>>,
    /// Failed logins per client key ([`client_key`]).
    failures: Mutex<Bounded<IpAddr, (u32, Instant)>>,
}

impl Auth {
    pub(crate) fn new(store: Arc<dyn AuthStore>, session_ttl: Duration, lockout: Lockout) -> Self {
        Self {
            passwords: Passwords::new(store.clone(), lockout),
            store,
            session_ttl,
            cache: Mutex::new(Bounded::new(MAX_CACHED)),
            failures: Mutex::new(Bounded::new(MAX_FAILING_CLIENTS)),
        }
    }

    /// The identity for a route that asks for `auth`, or the response that refuses it.
    pub(crate) async fn check<B>(
        &self,
        auth: &RouteAuth,
        req: &Request<B>,
    ) -> Result<Identity, Response<Body>> {
        let found = match auth.method {
            AuthMethod::Login => match session_cookie(req.headers()) {
                Some(id) => self.lookup(AuthMethod::Login, &sha256_hex(&id)).await,
                None => None,
            },
            AuthMethod::Token => match bearer(req.headers()) {
                Some(token) => self.lookup(AuthMethod::Token, &sha256_hex(&token)).await,
                None => None,
            },
        };
        let Some(identity) = found else {
            return Err(match auth.method {
                AuthMethod::Login if wants_html(req) => {
                    let next = req
                        .uri()
                        .path_and_query()
                        .map_or("/", |pq| pq.as_str())
                        .to_owned();
                    see_other(&format!("{LOGIN_PATH}?next={}", encode_component(&next)))
                }
                AuthMethod::Login => reply::error(
                    StatusCode::UNAUTHORIZED,
                    "login_required",
                    format!("this route needs a login; sign in at {LOGIN_PATH}"),
                ),
                AuthMethod::Token => {
                    let mut r = reply::error(
                        StatusCode::UNAUTHORIZED,
                        "token_required",
                        "this route needs a valid API token: `Authorization: Bearer berth_…` (create one with `berth token create USER`)",
                    );
                    r.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"berth\""),
                    );
                    r
                }
            });
        };
        if !auth.roles.is_empty() && !identity.roles.iter().any(|r| auth.roles.contains(r)) {
            return Err(reply::error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "`{}` lacks the role this route needs: one of {}",
                    identity.user,
                    auth.roles.join(", ")
                ),
            ));
        }
        Ok(identity)
    }

    /// Whoever the request says it is, by session cookie or bearer token, if anyone.
    pub(crate) async fn identify<B>(&self, req: &Request<B>) -> Option<Identity> {
        if let Some(id) = session_cookie(req.headers())
            && let Some(found) = self.lookup(AuthMethod::Login, &sha256_hex(&id)).await
        {
            return Some(found);
        }
        match bearer(req.headers()) {
            Some(token) => self.lookup(AuthMethod::Token, &sha256_hex(&token)).await,
            None => None,
        }
    }

    /// The session or token with this hash, from the cache or the store.
    async fn lookup(&self, method: AuthMethod, hash: &str) -> Option<Identity> {
        let key = format!("{method:?}:{hash}");
        let now = Instant::now();
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
            && hit.until > now
        {
            return hit.identity.clone();
        }
        let at = Timestamp::now();
        let found = match method {
            AuthMethod::Login => self
                .store
                .session_user(hash, at)
                .await
                .map(|r| r.map(|(_, u)| u)),
            // A token with API scopes reaches only what they name, on the API: it is no
            // login on gateway routes.
            AuthMethod::Token => self
                .store
                .token_user(hash, at)
                .await
                .map(|r| r.filter(|(t, _)| t.scopes.is_empty()).map(|(_, u)| u)),
        };
        let identity = match found {
            Ok(user) => user.map(|u| Identity {
                user: u.name,
                roles: u.roles,
                method,
            }),
            Err(e) => {
                // Not cached: the next request asks again.
                tracing::warn!(error = %e, "cannot look a session or token up");
                return None;
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            key,
            Cached {
                identity: identity.clone(),
                until: now + CACHE_FOR,
            },
        );
        identity
    }

    /// Answers a request under `/_berth/`.
    pub(crate) async fn own_page(
        &self,
        req: Request<Incoming>,
        peer: IpAddr,
        tls: bool,
    ) -> Response<Body> {
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, LOGIN_PATH) => {
                let next = query_param(req.uri().query(), "next").unwrap_or_else(|| "/".into());
                login_form(StatusCode::OK, &next, None)
            }
            (&Method::POST, LOGIN_PATH) => self.login(req, peer, tls).await,
            (&Method::POST, LOGOUT_PATH) => self.logout(req.headers(), tls).await,
            _ => reply::error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "paths under /_berth/ are berth's own; there are {LOGIN_PATH} and {LOGOUT_PATH}"
                ),
            ),
        }
    }

    async fn login(&self, req: Request<Incoming>, peer: IpAddr, tls: bool) -> Response<Body> {
        if let Some(wait) = self.refused_for(peer) {
            return too_many(wait);
        }
        let body = match tokio::time::timeout(
            FORM_TIMEOUT,
            Limited::new(req.into_body(), MAX_FORM).collect(),
        )
        .await
        {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => {
                return reply::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "form_too_large",
                    format!("the login form is limited to {MAX_FORM} bytes"),
                );
            }
            Err(_) => {
                return reply::error(
                    StatusCode::REQUEST_TIMEOUT,
                    "form_too_slow",
                    "the login form did not arrive in time",
                );
            }
        };
        let form = parse_form(&body);
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        let (name, password) = (field("user"), field("password"));
        let next = safe_next(&field("next"));
        if name.is_empty() || password.is_empty() {
            return login_form(
                StatusCode::BAD_REQUEST,
                &next,
                Some("Enter your name and password."),
            );
        }
        let now = Timestamp::now();
        let failures = self.count_failure(peer);
        match self.passwords.check(&name, &password, now).await {
            Ok(_) => {}
            Err(Refused::Unavailable) => {
                return reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "logins cannot be checked right now; try again shortly",
                );
            }
            Err(Refused::Locked(wait)) => {
                return login_form_status(
                    StatusCode::TOO_MANY_REQUESTS,
                    &next,
                    &format!(
                        "Too many failed logins for this name; try again in {} minutes.",
                        wait.as_secs().div_ceil(60)
                    ),
                    Some(wait),
                );
            }
            Err(Refused::Busy) => {
                let mut r = reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many logins at once; try again in a moment",
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                return r;
            }
            Err(Refused::Wrong { locked }) => {
                tokio::time::sleep(pause_after(failures)).await;
                tracing::info!(user = ?name, %peer, "failed login");
                let message = if locked {
                    format!(
                        "Wrong name or password. This name is now locked for {} minutes.",
                        self.passwords.lockout().lasts.as_secs().div_ceil(60)
                    )
                } else {
                    "Wrong name or password.".to_owned()
                };
                return login_form(StatusCode::UNAUTHORIZED, &next, Some(&message));
            }
        }
        self.forget_failure(peer);
        let Ok(id) = random_hex(32) else {
            return reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no_randomness",
                "the system's random source failed",
            );
        };
        let expires = now.plus(self.session_ttl);
        if let Err(e) = self
            .store
            .session_create(&sha256_hex(&id), &name, expires, now)
            .await
        {
            tracing::warn!(error = %e, "cannot store a session");
            return reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the session cannot be stored right now; try again shortly",
            );
        }
        tracing::info!(user = %name, %peer, "logged in");
        let mut response = see_other(&next);
        let cookie = format!(
            "{COOKIE_NAME}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.session_ttl.as_secs(),
            if tls { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::try_from(cookie) {
            response.headers_mut().insert(SET_COOKIE, v);
        }
        response
    }

    async fn logout(&self, headers: &HeaderMap, tls: bool) -> Response<Body> {
        if let Some(id) = session_cookie(headers) {
            let hash = sha256_hex(&id);
            if let Err(e) = self.store.session_delete(&hash).await {
                tracing::warn!(error = %e, "cannot end a session");
                return reply::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the session cannot be ended right now; try again shortly",
                );
            }
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&format!("{:?}:{hash}", AuthMethod::Login));
        }
        let mut response = see_other(LOGIN_PATH);
        let cookie = format!(
            "{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
            if tls { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::try_from(cookie) {
            response.headers_mut().insert(SET_COOKIE, v);
        }
        response
    }

    /// `Some(wait)` when `peer` failed too often lately.
    fn refused_for(&self, peer: IpAddr) -> Option<Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (count, since) = failures.get_mut(&client_key(peer))?;
        let elapsed = since.elapsed();
        (*count >= MAX_FAILURES_PER_ADDR && elapsed < FAILURE_WINDOW)
            .then(|| FAILURE_WINDOW - elapsed)
    }

    /// Takes back the failure counted for `peer` before a check that succeeded.
    fn forget_failure(&self, peer: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = failures.get_mut(&client_key(peer)) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    /// Counts a failure of `peer`; returns its failures in the current window.
    fn count_failure(&self, peer: IpAddr) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.get_or_insert_with(&client_key(peer), || (0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
        entry.0
    }
}

/// 250 ms after the first failure, doubling, up to [`MAX_PAUSE`].
pub(crate) fn pause_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(8);
    (Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_PAUSE)
}

fn too_many(wait: Duration) -> Response<Body> {
    let mut r = reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_logins",
        format!(
            "too many failed logins from this address; try again in {} minutes",
            wait.as_secs().div_ceil(60)
        ),
    );
    if let Ok(v) = HeaderValue::try_from(wait.as_secs().to_string()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

fn see_other(location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::try_from(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Only a path of this site: never `//host` or `https://…` (an open redirect).
fn safe_next(next: &str) -> String {
    // Browsers drop tabs and newlines from URLs: `/\t/evil` would become `//evil`.
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains(|c: char| c == '\\' || c.is_control() || c.is_whitespace());
    if ok { next.to_owned() } else { "/".to_owned() }
}

fn wants_html<B>(req: &Request<B>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// The dashboard's CSRF token for the session a request carries: derived from the
/// session's secret, so a page can hold it while another site, which cannot read the
/// `HttpOnly` cookie, cannot make it.
pub(crate) fn csrf_token(headers: &HeaderMap) -> Option<String> {
    session_cookie(headers).map(|s| sha256_hex(&format!("berth-csrf:{s}")))
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// `application/x-www-form-urlencoded`, decoded; bad escapes leave a field empty.
fn parse_form(body: &Bytes) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode_component(k), decode_component(v)))
        .collect()
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode_component(v))
}

fn decode_component(text: &str) -> String {
    crate::statics::percent_decode(&text.replace('+', " ")).unwrap_or_default()
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn login_form(status: StatusCode, next: &str, error: Option<&str>) -> Response<Body> {
    login_form_status(status, next, error.unwrap_or_default(), None)
}

fn login_form_status(
    status: StatusCode,
    next: &str,
    error: &str,
    retry_after: Option<Duration>,
) -> Response<Body> {
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            html_escape(error)
        )
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign in</title><link rel=\"icon\" href=\"data:,\"><style>\
         body{{font-family:system-ui,sans-serif;display:flex;justify-content:center;margin-top:12vh}}\
         form{{display:flex;flex-direction:column;gap:.6em;width:18em}}\
         input,button{{font:inherit;padding:.45em}}.error{{color:#b00020}}</style></head>\
         <body><form method=\"post\" action=\"{LOGIN_PATH}\"><h1>Sign in</h1>{error}\
         <label>Name <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form></body></html>\n",
        html_escape(&safe_next(next))
    );
    let mut r = Response::new(full(page));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if let Some(wait) = retry_after
        && let Ok(v) = HeaderValue::try_from(wait.as_secs().to_string())
    {
        h.insert(RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horse "));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (id, secret, hash) = new_token().unwrap();
        let (id2, secret2, _) = new_token().unwrap();
        assert!(id.starts_with("tok_") && secret.starts_with("berth_"));
        assert_ne!((id, secret.clone()), (id2, secret2));
        assert_eq!(hash, sha256_hex(&secret));
        assert_eq!(hash.len(), 64);
    }

    #[test]
    fn next_never_leaves_the_site() {
        assert_eq!(safe_next("/admin?x=1"), "/admin?x=1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "evil",
            "/\\evil",
            "",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    fn auth_on_a_fresh_store(dir: &std::path::Path) -> Auth {
        let store = berth_store::SqliteStore::open(&dir.join("berth.db"), Default::default())
            .expect("a fresh store");
        let lockout = Lockout {
            after: 5,
            lasts: Duration::from_secs(60),
        };
        Auth::new(Arc::new(store), Duration::from_secs(3600), lockout)
    }

    /// A client rotating its IPv6 address within its /64 is refused like one address;
    /// failures from more networks than the map holds keep it bounded.
    #[tokio::test]
    async fn failed_logins_count_per_64_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_on_a_fresh_store(dir.path());
        let rotating =
            |i: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i));
        for i in 0..MAX_FAILURES_PER_ADDR as u16 {
            assert!(auth.refused_for(rotating(i)).is_none(), "failure {i}");
            auth.count_failure(rotating(i));
        }
        assert!(
            auth.refused_for(rotating(999)).is_some(),
            "a new address in the same /64"
        );
        let elsewhere = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(auth.refused_for(elsewhere).is_none(), "another /64");
        for i in 0..(3 * MAX_FAILING_CLIENTS as u32) {
            let net = IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb9,
                (i >> 16) as u16,
                i as u16,
                0,
                0,
                0,
                1,
            ));
            auth.count_failure(net);
        }
        let held = auth.failures.lock().unwrap().len();
        assert!(held <= MAX_FAILING_CLIENTS, "{held} clients");
    }

    /// Made-up tokens, each new, are looked up once each and never grow the cache past
    /// its cap.
    #[tokio::test]
    async fn made_up_tokens_keep_the_cache_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let auth = auth_on_a_fresh_store(dir.path());
        for i in 0..(MAX_CACHED + 10_000) {
            let hash = sha256_hex(&format!("berth_made_up_{i}"));
            assert!(auth.lookup(AuthMethod::Token, &hash).await.is_none());
        }
        let held = auth.cache.lock().unwrap().len();
        assert!(held <= MAX_CACHED, "{held} cached lookups");
    }

    #[test]
    fn pauses_grow_and_stop_growing() {
        assert_eq!(pause_after(1), Duration::from_millis(250));
        assert_eq!(pause_after(2), Duration::from_millis(500));
        assert_eq!(pause_after(5), Duration::from_secs(4));
        assert_eq!(pause_after(50), MAX_PAUSE);
    }

    #[test]
    fn forms_and_cookies_are_read() {
        let form = parse_form(&Bytes::from_static(
            b"user=al+ice&password=p%26ss&next=%2Fx",
        ));
        assert_eq!(form["user"], "al ice");
        assert_eq!(form["password"], "p&ss");
        assert_eq!(form["next"], "/x");
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; berth_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer berth_xyz"));
        assert_eq!(bearer(&h).as_deref(), Some("berth_xyz"));
    }
}
