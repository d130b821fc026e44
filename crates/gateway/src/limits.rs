//! Rate limits (token buckets per client address and per user) and maintenance mode.
//!
//! A bucket holds up to `burst` tokens and refills at the route's rate; a request takes
//! one, or is answered 429 with `Retry-After` when there is none. Buckets live in memory,
//! per node, shared by the worker threads, at most [`MAX_BUCKETS`] per route and kind.
//! The client address is the connection's own (an IPv6 client by its /64 network):
//! behind another proxy, every client of that proxy shares one bucket.
//!
//! Maintenance mode is a setting in the store (`berth maintenance on|off`), which every
//! node reads each [`MAINTENANCE_POLL`]. While it is on, every request is answered 503
//! with its message, but for users with the `admin` role (by session or token) and the
//! login pages, so that admins can still use the site.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use berth_store::SettingStore;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::body::{Body, full};
use crate::bounded::{Bounded, client_key};
use crate::reply;

/// How often nodes read the maintenance setting.
pub(crate) const MAINTENANCE_POLL: Duration = Duration::from_secs(1);
/// The store setting that holds maintenance mode.
pub const MAINTENANCE_KEY: &str = "maintenance";
/// The role that passes through maintenance mode.
pub const ADMIN_ROLE: &str = "admin";
/// The most buckets a route keeps per kind (address, user); past it, the least recently
/// used are forgotten (see [`Bounded`]).
const MAX_BUCKETS: usize = 100_000;

/// A route's limits: requests per second and burst, per address and per user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSpec {
    /// Per client address, if limited: requests per second.
    pub per_address: Option<f64>,
    /// Per user, if limited: requests per second.
    pub per_user: Option<f64>,
    /// The bucket's size; `None`: the rate's count per its unit, at least 1.
    pub burst: Option<u32>,
}

/// Token buckets keyed by `K`.
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<Bounded<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(Bounded::new(MAX_BUCKETS)),
        }
    }

    /// Takes a token for `key`; `Err(wait)` if there is none yet.
    pub(crate) fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.get_or_insert_with(key, || (self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// A route's buckets.
#[derive(Debug)]
pub(crate) struct RouteLimits {
    spec: RateLimitSpec,
    per_address: Option<Buckets<IpAddr>>,
    per_user: Option<Buckets<String>>,
}

impl RouteLimits {
    /// The limits these buckets enforce.
    pub(crate) fn spec(&self) -> RateLimitSpec {
        self.spec
    }

    pub(crate) fn new(spec: &RateLimitSpec) -> Self {
        let burst = |rate: f64| spec.burst.map_or_else(|| default_burst(rate), f64::from);
        Self {
            spec: *spec,
            per_address: spec.per_address.map(|r| Buckets::new(r, burst(r))),
            per_user: spec.per_user.map(|r| Buckets::new(r, burst(r))),
        }
    }

    /// Whether a request from `peer` may go on (the per-address limit, an IPv6 client
    /// counted by its /64 network).
    pub(crate) fn admit(&self, peer: IpAddr) -> Result<(), Box<Response<Body>>> {
        match &self.per_address {
            Some(b) => b
                .take(&client_key(peer), Instant::now())
                .map_err(|wait| Box::new(too_many("address", wait))),
            None => Ok(()),
        }
    }

    /// Whether a request of `user` may go on (the per-user limit, checked after auth).
    pub(crate) fn admit_user(&self, user: &str) -> Result<(), Box<Response<Body>>> {
        match &self.per_user {
            Some(b) => b
                .take(&user.to_owned(), Instant::now())
                .map_err(|wait| Box::new(too_many("user", wait))),
            None => Ok(()),
        }
    }
}

/// Without `burst`: a second's worth of requests (600/min → 10), at least 1.
fn default_burst(rate_per_second: f64) -> f64 {
    if rate_per_second >= 1.0 {
        rate_per_second.ceil()
    } else {
        1.0
    }
}

fn too_many(whose: &str, wait: Duration) -> Response<Body> {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this {whose}; try again in {secs} s"),
    );
    if let Ok(v) = HeaderValue::try_from(secs.to_string()) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

/// Maintenance mode as this node last read it.
#[derive(Debug, Default)]
pub(crate) struct Maintenance {
    /// Read on every request: a plain load, which two cores can share without
    /// contention (a lock's read would write to its cache line each time).
    on: std::sync::atomic::AtomicBool,
    state: RwLock<Option<String>>,
}

impl Maintenance {
    /// Whether maintenance mode is on (one atomic load).
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `Some(message)` while maintenance mode is on.
    pub(crate) fn current(&self) -> Option<String> {
        if !self.on.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, message: Option<String>) {
        self.on
            .store(message.is_some(), std::sync::atomic::Ordering::Relaxed);
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = message;
    }

    /// Reads the setting every [`MAINTENANCE_POLL`] until `stop` (`load` read it at start).
    pub(crate) async fn follow(
        self: Arc<Self>,
        store: Arc<dyn SettingStore>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(MAINTENANCE_POLL) => {}
            }
            match store.setting(MAINTENANCE_KEY).await {
                Ok(value) => {
                    let next = value.map(|v| message_of(&v));
                    if next != self.current() {
                        match &next {
                            Some(m) => tracing::warn!(message = %m, "maintenance mode is on"),
                            None => tracing::info!("maintenance mode is off"),
                        }
                    }
                    self.set(next);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the maintenance setting"),
            }
        }
    }

    /// Reads the setting once (at start, so that the first requests see it).
    pub(crate) async fn load(&self, store: &dyn SettingStore) {
        if let Ok(value) = store.setting(MAINTENANCE_KEY).await {
            self.set(value.map(|v| message_of(&v)));
        }
    }
}

fn message_of(value: &Value) -> String {
    value["message"]
        .as_str()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("This site is down for maintenance. Please come back soon.")
        .to_owned()
}

/// The 503 of maintenance mode: a page for browsers, JSON for the rest.
pub(crate) fn maintenance_page<B>(req: &Request<B>, message: &str) -> Response<Body> {
    let html = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let mut r = if html {
        let escaped = crate::auth::html_escape(message);
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>Down for maintenance</title><style>body{{font-family:system-ui,sans-serif;\
             max-width:36em;margin:15vh auto;padding:0 1em}}</style></head>\
             <body><h1>Down for maintenance</h1><p>{escaped}</p></body></html>\n"
        );
        let mut r = Response::new(full(page));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        r
    } else {
        reply::error(StatusCode::SERVICE_UNAVAILABLE, "maintenance", message)
    };
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("60"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let b: Buckets<u8> = Buckets::new(2.0, 3.0);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(&1, t0).is_ok());
        }
        let wait = b.take(&1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(&2, t0).is_ok(), "another key has its own bucket");
        assert!(b.take(&1, t0 + Duration::from_millis(500)).is_ok());
        assert!(b.take(&1, t0 + Duration::from_millis(600)).is_err());
        // Refilled, but never past the burst.
        for _ in 0..3 {
            assert!(b.take(&1, t0 + Duration::from_secs(60)).is_ok());
        }
        assert!(b.take(&1, t0 + Duration::from_secs(60)).is_err());
    }

    /// One client rotating through its IPv6 /64 (2^64 addresses) is one client; many
    /// clients, each with a bucket still draining, hold at most `MAX_BUCKETS`.
    #[test]
    fn rotating_addresses_share_a_bucket_and_buckets_stay_bounded() {
        let limits = RouteLimits::new(&RateLimitSpec {
            per_address: Some(1.0),
            per_user: None,
            burst: Some(5),
        });
        let in_one_64 = |i: u32| {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                7,
                7,
                0,
                0,
                (i >> 16) as u16,
                i as u16,
            ))
        };
        let admitted = (0..100)
            .filter(|i| limits.admit(in_one_64(*i)).is_ok())
            .count();
        assert_eq!(admitted, 5, "the burst of one client, not one per address");
        let b = limits.per_address.as_ref().unwrap();
        let t0 = Instant::now();
        for i in 0..(3 * MAX_BUCKETS as u32) {
            let client = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                (i >> 16) as u16,
                i as u16,
                0,
                0,
                0,
                1,
            ));
            let _ = b.take(&client_key(client), t0);
        }
        let held = b.buckets.lock().unwrap().len();
        assert!(held <= MAX_BUCKETS, "{held} buckets");
    }

    #[test]
    fn bursts_default_to_the_rate() {
        assert_eq!(default_burst(10.0), 10.0);
        assert_eq!(default_burst(0.5), 1.0);
    }
}
