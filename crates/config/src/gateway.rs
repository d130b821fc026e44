//! The `[gateway]` table and its `[[gateway.route]]`s: where berth listens for HTTP, with
//! which certificate, and where each request goes (a static directory, a service, a
//! fixed upstream URL, or a redirect).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeValue;

use crate::budget::BudgetConfig;
use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section, unknown_name};
use crate::service::ServiceConfig;

const TARGETS: &str = "exactly one of `static = \"dist\"`, `service = \"api\"`, \
    `proxy = \"http://127.0.0.1:9000\"`, `redirect = \"https://example.org/\"` or \
    `api = [\"messages:read\"]`, `dashboard = true`";
/// The scopes an `api` route may expose: reads only.
pub const API_ROUTE_SCOPES: [&str; 3] = ["messages:read", "jobs:read", "status:read"];
const LISTEN_EXPECTED: &str =
    "expected an IP address and port such as \"0.0.0.0:443\" or \"127.0.0.1:8080\"";

/// A role name: 1 to 64 letters, digits, `_` or `-` (routes' `roles`, `berth user`).
pub fn valid_role(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Let's Encrypt's production directory, the default ACME server.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The `[gateway]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// `listen`: one address or a list; every one serves the same routes.
    pub listen: Vec<SocketAddr>,
    /// `tls`: absent for plain HTTP.
    pub tls: Option<TlsConfig>,
    /// `http`: a plain-HTTP listener that redirects to HTTPS (and answers ACME HTTP-01
    /// challenges). Only with `tls`.
    pub http: Option<SocketAddr>,
    /// `access_log` (default `"combined"`): written to `logs/access.log` in the data dir.
    pub access_log: AccessLogFormat,
    /// `access_log_max_size` (default 100 MiB): the access log is rotated at this size.
    pub access_log_max_size: u64,
    /// `access_log_keep` (default 5, 0–100): rotated access logs kept.
    pub access_log_keep: u32,
    /// `max_body` (default 10 MiB): the largest request body proxied.
    pub max_body: u64,
    /// `timeout` (default 60s): how long an upstream may take to start its response.
    pub timeout: Duration,
    /// `connect_timeout` (default 5s): how long connecting to an upstream may take.
    pub connect_timeout: Duration,
    /// `websocket_idle` (default 10m): how long a proxied WebSocket (any upgraded
    /// connection) may pass no byte either way before the gateway closes it.
    pub websocket_idle: Duration,
    /// `session` (default 12h): how long a login lasts.
    pub session: Duration,
    /// `lockout_after` (default 5): failed logins in a row that lock a user out.
    pub lockout_after: u32,
    /// `lockout_for` (default 15m): how long the lockout lasts.
    pub lockout_for: Duration,
    /// `max_connections` (default 16384): connections the listeners hold open at once.
    pub max_connections: u32,
    /// `max_connections_per_address` (default 512, 0: no limit): connections one client
    /// address (an IPv6 client by its /64 network) holds open at once.
    pub max_connections_per_address: u32,
    /// The `[[gateway.route]]`s, in file order.
    pub routes: Vec<RouteConfig>,
}

/// `auth`: how a route's callers prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// `"login"`: the login form and a session cookie.
    Login,
    /// `"token"`: `Authorization: Bearer` with an API token.
    Token,
}

/// `tls`: where the certificate comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsConfig {
    /// `{ cert = "fullchain.pem", key = "privkey.pem" }`: PEM files, reloaded when they
    /// change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// `"self-signed"`: a certificate berth makes for `localhost` and keeps in the data
    /// dir; for development only.
    SelfSigned,
    /// `{ acme = "you@example.org", domains = [...] }`: certificates from an ACME server.
    Acme(AcmeConfig),
}

/// `tls = { acme = … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// `acme`: the account's contact address.
    pub email: String,
    /// `domains`: the names the certificate covers.
    pub domains: Vec<String>,
    /// `directory` (default Let's Encrypt's production directory).
    pub directory: String,
    /// `challenge` (default `"http-01"`).
    pub challenge: AcmeChallenge,
    /// `ca`: a PEM root to trust for the directory's own HTTPS (a test server's).
    pub ca: Option<PathBuf>,
    /// `renew_before` (default 30 days): renew once the certificate expires sooner.
    pub renew_before: Duration,
}

/// `challenge`: how the ACME server checks that berth answers for a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `"http-01"`: a file under `/.well-known/acme-challenge/` on port 80 (`http`).
    Http01,
    /// `"tls-alpn-01"`: a special certificate on the TLS port itself.
    TlsAlpn01,
}

/// `access_log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// `"combined"`: the Apache/nginx combined format.
    #[default]
    Combined,
    /// `"json"`: one JSON object per line.
    Json,
    /// `"off"`.
    Off,
}

/// One `[[gateway.route]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// `host`: an exact name, `*.example.org`, or absent for any host.
    pub host: Option<String>,
    /// `path` (default `"/"`): a prefix that matches whole segments.
    pub path: String,
    /// Where the request goes.
    pub target: RouteTarget,
    /// `max_body`: overrides the gateway's.
    pub max_body: Option<u64>,
    /// `timeout`: overrides the gateway's.
    pub timeout: Option<Duration>,
    /// `auth`: who may ask (absent: anyone).
    pub auth: Option<AuthKind>,
    /// `roles`: with `auth`, the caller needs one of these.
    pub roles: Vec<String>,
    /// `budget`: the `[budget.NAME]` this route's requests spend.
    pub budget: Option<String>,
    /// `rate_limit`: token buckets per client address and per user.
    pub rate_limit: Option<RateLimitConfig>,
    /// `headers`: response headers set on every answer of the route (replacing the
    /// upstream's of the same name), such as `Strict-Transport-Security`. Names as
    /// written, each once (in any case).
    pub headers: Vec<(String, String)>,
}

/// `rate_limit = { per_address = "10/s", per_user = "600/min", burst = 20 }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Requests per second each client address may make, if limited.
    pub per_address: Option<f64>,
    /// Requests per second each user may make (routes with `auth`), if limited.
    pub per_user: Option<f64>,
    /// `burst`: how many requests may come at once (default: the count in the rate).
    pub burst: Option<u32>,
}

/// Where a route sends its requests.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteTarget {
    /// `static = "dir"`: files of a directory.
    Static {
        /// The directory, resolved against the config file's directory.
        dir: PathBuf,
        /// `index` (default `"index.html"`): the file served for a directory.
        index: String,
        /// `spa` (default false): serve the root index for paths that match no file.
        spa: bool,
        /// `strip_prefix` (default true): whether the route's path is removed before
        /// looking the file up.
        strip_prefix: bool,
    },
    /// `service = "api"`: the ready instances of a `[service.NAME]` with ports.
    Service {
        /// The service's name.
        name: String,
        /// `strip_prefix` (default false).
        strip_prefix: bool,
    },
    /// `proxy = "http://127.0.0.1:9000"`: a fixed upstream.
    Proxy {
        /// The upstream's address (`host:port`).
        authority: String,
        /// `strip_prefix` (default false).
        strip_prefix: bool,
    },
    /// `api = ["messages:read"]`: a read-only slice of berth's own API, for the app's
    /// pages; the route's path prefix is removed (`/stand-api/v1/messages` →
    /// `/v1/messages`), and only `GET`s the scopes allow pass.
    Api {
        /// The read scopes exposed (`messages:read`, `jobs:read`, `status:read`).
        scopes: Vec<String>,
    },
    /// `dashboard = true`: berth's dashboard (its pages and its API below `/v1/`), for
    /// people who log in on the gateway; `auth` defaults to `"login"` and `roles` to
    /// `["admin"]`.
    Dashboard,
    /// `redirect = "https://example.org/new"` with `status` (default 308).
    Redirect {
        /// Where to; the rest of the path after the route's prefix is appended when the
        /// target ends with `/`.
        to: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
}

impl RouteTarget {
    /// The key that chose this target, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RouteTarget::Static { .. } => "static",
            RouteTarget::Service { .. } => "service",
            RouteTarget::Proxy { .. } => "proxy",
            RouteTarget::Redirect { .. } => "redirect",
            RouteTarget::Api { .. } => "api",
            RouteTarget::Dashboard => "dashboard",
        }
    }
}

pub(crate) fn gateway(
    section: &Section<'_, '_>,
    config_dir: &Path,
    services: &BTreeMap<String, ServiceConfig>,
    budgets: &BTreeMap<String, BudgetConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<GatewayConfig> {
    let listen = section.string_list(
        "listen",
        "address",
        "an address such as \"0.0.0.0:443\"",
        d,
        |text| {
            text.parse::<SocketAddr>()
                .map_err(|_| Invalid::Expected(LISTEN_EXPECTED.into()))
        },
    );
    let listen = match listen {
        Some(listen) if !listen.is_empty() => listen,
        Some(_)
            if section
                .get("listen")
                .is_some_and(|v| matches!(v.get_ref(), DeValue::Array(a) if a.is_empty())) =>
        {
            d.error(
                section.get("listen").map(|v| v.span()).unwrap_or_else(|| section.span()),
                "`listen` in [gateway] is empty: expected at least one address such as \"0.0.0.0:443\"",
            );
            Vec::new()
        }
        Some(_) => Vec::new(),
        None => {
            d.error(
                section.span(),
                "missing `listen` in [gateway]: expected a line such as `listen = \"0.0.0.0:443\"`",
            );
            Vec::new()
        }
    };
    let tls = tls(section, config_dir, d);
    let http = section.string("http", "address", d, |text| {
        text.parse::<SocketAddr>()
            .map_err(|_| Invalid::Expected(format!("{LISTEN_EXPECTED}, usually \"0.0.0.0:80\"")))
    });
    if http.is_some() && tls.is_none() && section.get("tls").is_none() {
        d.error(
            section.key_span("http").unwrap_or_else(|| section.span()),
            "`http` in [gateway] redirects plain HTTP to HTTPS, but [gateway] has no `tls`: \
             add `tls = \"self-signed\"` (or certificate files), or list the address in `listen`",
        );
    }
    if let Some(TlsConfig::Acme(acme)) = &tls
        && acme.challenge == AcmeChallenge::Http01
        && http.is_none()
        && section.get("http").is_none()
    {
        d.error(
            section.key_span("tls").unwrap_or_else(|| section.span()),
            "the ACME `http-01` challenge is answered on plain HTTP, but [gateway] has no `http` \
             listener: add `http = \"0.0.0.0:80\"`, or use `challenge = \"tls-alpn-01\"`",
        );
    }
    let access_log = section
        .string("access_log", "value", d, |text| match text {
            "combined" => Ok(AccessLogFormat::Combined),
            "json" => Ok(AccessLogFormat::Json),
            "off" => Ok(AccessLogFormat::Off),
            _ => Err(Invalid::Expected(
                "expected \"combined\", \"json\" or \"off\"".into(),
            )),
        })
        .unwrap_or_default();
    let access_log_max_size = section.size("access_log_max_size", d).unwrap_or(100 << 20);
    let access_log_keep = section
        .integer("access_log_keep", 0..=100, d)
        .map_or(5, |n| n as u32);
    let max_body = section.size("max_body", d).unwrap_or(10 << 20);
    let timeout = section
        .duration("timeout", false, d)
        .unwrap_or(Duration::from_secs(60));
    let connect_timeout = section
        .duration("connect_timeout", false, d)
        .unwrap_or(Duration::from_secs(5));
    let websocket_idle = section
        .duration("websocket_idle", false, d)
        .unwrap_or(Duration::from_secs(600));
    let session = section
        .duration("session", false, d)
        .unwrap_or(Duration::from_secs(12 * 3600));
    let lockout_after = section
        .integer("lockout_after", 1..=1000, d)
        .map_or(5, |n| n as u32);
    let lockout_for = section
        .duration("lockout_for", false, d)
        .unwrap_or(Duration::from_secs(15 * 60));
    let max_connections = section
        .integer("max_connections", 1..=1_000_000, d)
        .map_or(16_384, |n| n as u32);
    let max_connections_per_address = section
        .integer("max_connections_per_address", 0..=1_000_000, d)
        .map_or(512, |n| n as u32);
    let mut routes = Vec::new();
    let tables = section.table_array("route", "an array of tables such as [[gateway.route]]", d);
    // A gateway without routes is refused in `validate`, unless an ingest's webhook
    // gives it one.
    for table in &tables {
        if let Some(route) = route(table, config_dir, services, budgets, d) {
            routes.push((route, table.span()));
        }
    }
    section.finish(d);
    report_duplicate_routes(&routes, d);
    let routes = routes.into_iter().map(|(route, _)| route).collect();
    Some(GatewayConfig {
        listen,
        tls,
        http,
        access_log,
        access_log_max_size,
        access_log_keep,
        max_body,
        timeout,
        connect_timeout,
        websocket_idle,
        session,
        lockout_after,
        lockout_for,
        max_connections,
        max_connections_per_address,
        routes,
    })
}

fn tls(section: &Section<'_, '_>, config_dir: &Path, d: &mut Diagnostics<'_>) -> Option<TlsConfig> {
    const FORMS: &str = "\"self-signed\", { cert = \"fullchain.pem\", key = \"privkey.pem\" } \
                         or { acme = \"you@example.org\", domains = [\"example.org\"] }";
    let value = section.get("tls")?;
    match value.get_ref() {
        DeValue::String(_) => section.string("tls", "value", d, |text| match text {
            "self-signed" => Ok(TlsConfig::SelfSigned),
            _ => Err(Invalid::Expected(format!("expected {FORMS}"))),
        }),
        DeValue::Table(_) => {
            let table = section.child("tls", value, FORMS, d)?;
            if table.get("acme").is_some() {
                for key in ["cert", "key"] {
                    if let Some(span) = table.key_span(key) {
                        d.error(
                            span,
                            format!(
                                "`{key}` in `tls` names a file, and this `tls` has `acme`, \
                                 which fetches its certificate: expected {FORMS}"
                            ),
                        );
                    }
                }
                acme(&table, config_dir, d).map(TlsConfig::Acme)
            } else {
                let cert = table.path("cert", "\"fullchain.pem\"", config_dir, d);
                let key = table.path("key", "\"privkey.pem\"", config_dir, d);
                table.finish(d);
                for (name, found) in [("cert", cert.is_some()), ("key", key.is_some())] {
                    if !found && table.get(name).is_none() {
                        d.error(
                            table.span(),
                            format!(
                                "missing `{name}` in `tls`: expected both `cert` and `key` files, \
                                 such as {{ cert = \"fullchain.pem\", key = \"privkey.pem\" }}"
                            ),
                        );
                    }
                }
                Some(TlsConfig::Files {
                    cert: cert?,
                    key: key?,
                })
            }
        }
        _ => {
            section.wrong_type("tls", value, FORMS, d);
            None
        }
    }
}

fn acme(table: &Section<'_, '_>, config_dir: &Path, d: &mut Diagnostics<'_>) -> Option<AcmeConfig> {
    let email = table.string("acme", "contact address", d, |text| {
        let valid = text.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !text.contains(char::is_whitespace)
        });
        valid.then(|| text.to_owned()).ok_or_else(|| {
            Invalid::Expected("expected an email address such as \"ops@example.org\"".into())
        })
    });
    let domains = table.string_list(
        "domains",
        "domain",
        "a domain name such as \"example.org\"",
        d,
        |text| {
            valid_domain(text)
                .then(|| text.to_ascii_lowercase())
                .ok_or_else(|| {
                    Invalid::Expected(
                "expected a domain name such as \"example.org\" (ACME issues no certificates \
                 for IP addresses here)"
                    .into(),
            )
                })
        },
    );
    if table.get("domains").is_none() {
        d.error(
            table.span(),
            "missing `domains` in `tls`: expected the names the certificate covers, such as \
             domains = [\"example.org\", \"www.example.org\"]",
        );
    }
    let directory = table
        .string("directory", "URL", d, |text| {
            if text.starts_with("https://") && text.len() > "https://".len() {
                Ok(text.to_owned())
            } else {
                Err(Invalid::Expected(format!(
                    "expected the https:// URL of an ACME directory such as \"{LETS_ENCRYPT}\""
                )))
            }
        })
        .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    let challenge = table
        .string("challenge", "challenge", d, |text| match text {
            "http-01" => Ok(AcmeChallenge::Http01),
            "tls-alpn-01" => Ok(AcmeChallenge::TlsAlpn01),
            _ => Err(Invalid::Expected(
                "expected \"http-01\" or \"tls-alpn-01\"".into(),
            )),
        })
        .unwrap_or(AcmeChallenge::Http01);
    let ca = table.path("ca", "\"pebble-ca.pem\"", config_dir, d);
    let renew_before = table
        .duration("renew_before", false, d)
        .unwrap_or(Duration::from_secs(30 * 86_400));
    table.finish(d);
    let domains = domains?;
    let written = table
        .get("domains")
        .is_some_and(|v| !matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()));
    if domains.is_empty() {
        if !written {
            d.error(
                table
                    .get("domains")
                    .map(|v| v.span())
                    .unwrap_or_else(|| table.span()),
                "`domains` in `tls` is empty: expected at least one name such as \"example.org\"",
            );
        }
        return None;
    }
    Some(AcmeConfig {
        email: email?,
        domains,
        directory,
        challenge,
        ca,
        renew_before,
    })
}

/// A DNS name of letters, digits and hyphens in dot-separated labels (a leading `*.`
/// allowed), with at least one dot or `localhost`.
fn valid_domain(text: &str) -> bool {
    let name = text.strip_prefix("*.").unwrap_or(text);
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    let not_ip = name.parse::<std::net::IpAddr>().is_err();
    labels_ok && not_ip && (name.contains('.') || name == "localhost")
}

/// Where a route's keys apply: each key some kinds of route do not take, the kinds that
/// take it, and how its error names them. A key a route's kind does not take is an error
/// on that key.
const ROUTE_KEY_KINDS: &[(&str, &[&str], &str)] = &[
    ("status", &["redirect"], "`redirect`"),
    ("index", &["static"], "`static`"),
    ("spa", &["static"], "`static`"),
    (
        "strip_prefix",
        &["static", "service", "proxy"],
        "`static`, `service` and `proxy`",
    ),
    (
        "max_body",
        &["service", "proxy", "dashboard"],
        "`service` and `proxy`",
    ),
    (
        "timeout",
        &["service", "proxy", "api"],
        "`service` and `proxy`",
    ),
    (
        "auth",
        &["static", "service", "proxy", "api", "dashboard"],
        "`static`, `service` and `proxy`",
    ),
    ("budget", &["service", "proxy"], "`service` and `proxy`"),
    (
        "rate_limit",
        &["static", "service", "proxy", "api", "dashboard"],
        "`static`, `service` and `proxy`",
    ),
];

/// The route kinds, each named by its key.
const ROUTE_KINDS: [&str; 6] = ["static", "service", "proxy", "redirect", "api", "dashboard"];

fn route(
    section: &Section<'_, '_>,
    config_dir: &Path,
    services: &BTreeMap<String, ServiceConfig>,
    budgets: &BTreeMap<String, BudgetConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<RouteConfig> {
    let host = route_host(section, d);
    let path = route_path(section, d);
    let kind = route_kind(section, &path, d);
    for (key, kinds, shown) in ROUTE_KEY_KINDS {
        // Asked of every route, so that each is a key a route takes whatever its kind.
        let span = section.key_span(key);
        if let (Some(kind), Some(span)) = (kind, span)
            && !kinds.contains(&kind)
        {
            d.error(
                span,
                format!(
                    "`{key}` applies to {shown} routes only, and this route is a `{kind}` route"
                ),
            );
        }
    }
    let target = kind.and_then(|kind| route_target(section, kind, config_dir, services, d));
    let max_body = section.size("max_body", d);
    let timeout = section.duration("timeout", false, d);
    let (auth, roles) = route_access(section, kind == Some("dashboard"), d);
    let budget = section.string("budget", "budget", d, |text| {
        if budgets.contains_key(text) {
            return Ok(text.to_owned());
        }
        let known: Vec<&str> = budgets.keys().map(String::as_str).collect();
        Err(Invalid::Message(unknown_name(
            format!("unknown budget `{text}` for `budget` {}", section.place()),
            text,
            &known,
            "expected the name of a [budget.NAME] in this file",
        )))
    });
    let rate_limit = rate_limit(section, auth.is_some(), d);
    let headers = response_headers(section, d);
    section.finish(d);
    let target = target?;
    Some(RouteConfig {
        host,
        path,
        target,
        max_body,
        timeout,
        auth,
        roles,
        budget,
        rate_limit,
        headers,
    })
}

/// Response headers that describe the connection or frame the body: berth writes them.
const FRAMING_HEADERS: [&str; 9] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "date",
];

/// `headers = { Strict-Transport-Security = "max-age=31536000", … }`.
fn response_headers(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Vec<(String, String)> {
    const FORM: &str = "a table of header names and values such as headers = { \
                        Strict-Transport-Security = \"max-age=31536000\", \
                        X-Content-Type-Options = \"nosniff\" }";
    let Some(table) = section.table("headers", FORM, d) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for (key, value) in table.entries() {
        let name: &str = key.get_ref().as_ref();
        let token = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            d.error(
                key.span(),
                format!(
                    "invalid header name `{name}` in `headers` {}: expected letters, digits and \
                     `-` (any of !#$%&'*+-.^_`|~), such as X-Frame-Options",
                    section.place()
                ),
            );
            continue;
        }
        let lower = name.to_ascii_lowercase();
        if FRAMING_HEADERS.contains(&lower.as_str()) {
            d.error(
                key.span(),
                format!(
                    "`{name}` in `headers` {} describes the connection or frames the body, \
                     which berth writes itself: expected a header such as \
                     Strict-Transport-Security or X-Frame-Options",
                    section.place()
                ),
            );
            continue;
        }
        if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            d.error(
                key.span(),
                format!(
                    "`{name}` is in `headers` {} twice (names are compared in any case): \
                     expected each header once",
                    section.place()
                ),
            );
            continue;
        }
        let DeValue::String(text) = value.get_ref() else {
            table.wrong_type(name, value, "a string such as \"nosniff\"", d);
            continue;
        };
        let fine = !text.trim().is_empty()
            && text.len() <= 8192
            && text
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if !fine {
            d.error(
                value.span(),
                format!(
                    "invalid value for `{name}` in `headers` {}: expected 1 to 8192 printable \
                     ASCII characters on one line, such as \"max-age=31536000\"",
                    section.place()
                ),
            );
            continue;
        }
        out.push((name.to_owned(), text.trim().to_owned()));
    }
    out
}

/// What a route of `kind` serves, from its kind's own keys.
fn route_target(
    section: &Section<'_, '_>,
    kind: &str,
    config_dir: &Path,
    services: &BTreeMap<String, ServiceConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<RouteTarget> {
    Some(match kind {
        "static" => static_target(section, config_dir, d)?,
        "service" => {
            let name = section.string("service", "service", d, |text| Ok(text.to_owned()))?;
            check_service(section, &name, services, d);
            RouteTarget::Service {
                name,
                strip_prefix: section.boolean("strip_prefix", d).unwrap_or(false),
            }
        }
        "proxy" => RouteTarget::Proxy {
            authority: section.string("proxy", "URL", d, upstream_authority)?,
            strip_prefix: section.boolean("strip_prefix", d).unwrap_or(false),
        },
        "api" => api_target(section, d)?,
        "dashboard" => {
            if section.boolean("dashboard", d) == Some(false) {
                d.error(
                    section.key_span("dashboard").unwrap_or_else(|| section.span()),
                    "`dashboard = false` serves nothing: remove the route, or set `dashboard = true`",
                );
            }
            RouteTarget::Dashboard
        }
        _ => redirect_target(section, d)?,
    })
}

fn route_host(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<String> {
    section.string("host", "host", d, |text| {
        valid_domain(text)
            .then(|| text.to_ascii_lowercase())
            .ok_or_else(|| {
                Invalid::Expected(
                    "expected a host name such as \"example.org\" or \"*.example.org\"".into(),
                )
            })
    })
}

fn route_path(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> String {
    section
        .string("path", "path", d, |text| {
            let valid = text.starts_with('/')
                && !text.contains(['?', '#', ' '])
                && !text.split('/').any(|s| s == ".." || s == ".");
            if valid {
                // "/api/" and "/api" are the same prefix.
                let trimmed = text.trim_end_matches('/');
                Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
            } else {
                Err(Invalid::Expected(
                    "expected a path prefix starting with `/`, such as \"/\" or \"/api\"".into(),
                ))
            }
        })
        .unwrap_or_else(|| "/".to_owned())
}

/// The route's kind: the one target key it has.
fn route_kind(
    section: &Section<'_, '_>,
    path: &str,
    d: &mut Diagnostics<'_>,
) -> Option<&'static str> {
    let chosen: Vec<&str> = ROUTE_KINDS
        .into_iter()
        .filter(|k| section.get(k).is_some())
        .collect();
    if let [kind] = chosen[..] {
        return Some(kind);
    }
    let found = if chosen.is_empty() {
        "none".to_owned()
    } else {
        let keys: Vec<String> = chosen.iter().map(|k| format!("`{k}`")).collect();
        keys.join(" and ")
    };
    let route = describe(section, path);
    d.error(
        section.span(),
        format!("a route {route} needs {TARGETS}; found {found}"),
    );
    None
}

fn static_target(
    section: &Section<'_, '_>,
    config_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<RouteTarget> {
    let dir = section.path("static", "\"dist\"", config_dir, d)?;
    let index = section
        .string("index", "file name", d, |text| {
            let valid = !text.is_empty() && !text.contains('/') && text != ".." && text != ".";
            valid.then(|| text.to_owned()).ok_or_else(|| {
                Invalid::Expected("expected a file name such as \"index.html\"".into())
            })
        })
        .unwrap_or_else(|| "index.html".to_owned());
    Some(RouteTarget::Static {
        dir,
        index,
        spa: section.boolean("spa", d).unwrap_or(false),
        strip_prefix: section.boolean("strip_prefix", d).unwrap_or(true),
    })
}

fn api_target(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<RouteTarget> {
    let scopes = section.string_list(
        "api",
        "scope",
        "a list of read scopes such as [\"messages:read\", \"jobs:read\"]",
        d,
        |text| {
            API_ROUTE_SCOPES
                .contains(&text)
                .then(|| text.to_owned())
                .ok_or_else(|| {
                    Invalid::Expected(format!(
                        "expected a read scope: {}; a route never exposes writes",
                        API_ROUTE_SCOPES.join(", ")
                    ))
                })
        },
    )?;
    let at = section.key_span("api").unwrap_or_else(|| section.span());
    let listed_none = section
        .get("api")
        .is_some_and(|v| matches!(v.get_ref(), DeValue::Array(a) if a.is_empty()));
    if listed_none {
        d.error(
            at.clone(),
            "`api` exposes nothing: name at least one read scope such as \"messages:read\"",
        );
    }
    if section.get("auth").is_none() {
        d.error(
            at,
            "an `api` route shows berth's data: add `auth = \"login\"` or `auth = \"token\"` (and `roles`) to say who may read it",
        );
    }
    Some(RouteTarget::Api { scopes })
}

fn redirect_target(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<RouteTarget> {
    let to = section.string("redirect", "URL", d, |text| {
        let valid = (text.starts_with("https://")
            || text.starts_with("http://")
            || text.starts_with('/'))
            && !text.contains(char::is_whitespace);
        valid.then(|| text.to_owned()).ok_or_else(|| {
            Invalid::Expected(
                "expected an absolute URL such as \"https://example.org/\" or a path such as \"/new\"".into(),
            )
        })
    })?;
    let status = match section.integer("status", 300..=399, d) {
        Some(code @ (301 | 302 | 303 | 307 | 308)) => code as u16,
        Some(_) => {
            let span = section
                .get("status")
                .map(|v| v.span())
                .unwrap_or_else(|| section.span());
            d.error(
                span,
                "invalid `status` for a redirect: expected 301, 302, 303, 307 or 308",
            );
            308
        }
        None => 308,
    };
    Some(RouteTarget::Redirect { to, status })
}

/// Who may use a route: `auth` and `roles`. A dashboard route is for the gateway's
/// admins unless it says otherwise.
fn route_access(
    section: &Section<'_, '_>,
    dashboard: bool,
    d: &mut Diagnostics<'_>,
) -> (Option<AuthKind>, Vec<String>) {
    let auth = section.string("auth", "value", d, |text| match text {
        "login" => Ok(AuthKind::Login),
        "token" => Ok(AuthKind::Token),
        _ => Err(Invalid::Expected(
            "expected \"login\" (a login form and a session cookie) or \"token\" (an API token)"
                .into(),
        )),
    });
    let roles = section
        .string_list(
            "roles",
            "role",
            "a role name such as \"admin\"",
            d,
            |text| {
                valid_role(text).then(|| text.to_owned()).ok_or_else(|| {
                    Invalid::Expected(
                        "expected letters, digits, `_` and `-`, such as \"admin\"".into(),
                    )
                })
            },
        )
        .unwrap_or_default();
    let auth = auth.or(dashboard.then_some(AuthKind::Login));
    let roles = if dashboard && section.get("roles").is_none() {
        vec!["admin".to_owned()] // the gateway's ADMIN_ROLE
    } else {
        roles
    };
    let roles_at = || section.key_span("roles").unwrap_or_else(|| section.span());
    if dashboard && roles.is_empty() {
        d.error(
            roles_at(),
            "a dashboard route acts on all of berth (deploys, purges, restarts): name the roles that may use it, such as [\"admin\"]; an empty list would let every user in",
        );
    }
    if !roles.is_empty() && section.get("auth").is_none() && !dashboard {
        d.error(
            roles_at(),
            "`roles` needs `auth` on the same route: add `auth = \"login\"` or `auth = \"token\"`",
        );
    }
    (auth, roles)
}

fn rate_limit(
    section: &Section<'_, '_>,
    has_auth: bool,
    d: &mut Diagnostics<'_>,
) -> Option<RateLimitConfig> {
    const FORM: &str =
        "a table such as rate_limit = { per_address = \"10/s\", per_user = \"600/min\" }";
    let table = section.table("rate_limit", FORM, d)?;
    let rate = |key: &str, d: &mut Diagnostics<'_>| {
        table.string(key, "rate", d, |text| {
            parse_rate(text).ok_or_else(|| {
                Invalid::Expected(
                    "expected requests per unit of time, such as \"10/s\", \"600/min\" or \"5000/h\"".into(),
                )
            })
        })
    };
    let per_address = rate("per_address", d);
    let per_user = rate("per_user", d);
    let burst = table.integer("burst", 1..=1_000_000, d).map(|n| n as u32);
    table.finish(d);
    if per_user.is_some() && !has_auth {
        d.error(
            table.key_span("per_user").unwrap_or_else(|| table.span()),
            "`per_user` limits the callers a route knows, and this route has no `auth`: add `auth = \"login\"` or `auth = \"token\"`, or use `per_address`",
        );
    }
    if table.get("per_address").is_none() && table.get("per_user").is_none() {
        d.error(
            table.span(),
            format!("`rate_limit` limits nothing: expected {FORM}"),
        );
        return None;
    }
    Some(RateLimitConfig {
        per_address,
        per_user,
        burst,
    })
}

/// `"10/s"` → 10.0 per second; `None` for anything else (or a rate of zero).
fn parse_rate(text: &str) -> Option<f64> {
    let (count, unit) = text.split_once('/')?;
    let count: f64 = count
        .trim()
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite() && *c > 0.0)?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        "d" | "day" => 86_400.0,
        _ => return None,
    };
    Some(count / seconds)
}

fn check_service(
    section: &Section<'_, '_>,
    name: &str,
    services: &BTreeMap<String, ServiceConfig>,
    d: &mut Diagnostics<'_>,
) {
    let span = section
        .get("service")
        .map(|v| v.span())
        .unwrap_or_else(|| section.span());
    match services.get(name) {
        Some(service) if service.ports.is_none() => d.error(
            span,
            format!(
                "service `{name}` has no port, so the gateway cannot reach it: add \
                 `port = 8000` to [service.{name}] and start it on {{port}}"
            ),
        ),
        Some(_) => {}
        None => {
            let known: Vec<&str> = services.keys().map(String::as_str).collect();
            let message = unknown_name(
                format!("unknown service `{name}` {}", section.place()),
                name,
                &known,
                "expected the name of a [service.NAME] in this file",
            );
            d.error(span, message);
        }
    }
}

/// `http://HOST:PORT` (a path is not allowed: the request's path is kept) → `HOST:PORT`.
fn upstream_authority(text: &str) -> Result<String, Invalid> {
    const EXPECTED: &str =
        "expected an http:// URL of a host and port, such as \"http://127.0.0.1:9000\"";
    let rest = text.strip_prefix("http://").ok_or_else(|| {
        Invalid::Expected(if text.starts_with("https://") {
            format!("https upstreams are not supported; {EXPECTED}")
        } else {
            EXPECTED.into()
        })
    })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(Invalid::Expected(format!(
            "{EXPECTED}, without a path (the request's own path is sent)"
        )));
    }
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(Invalid::Expected(EXPECTED.into()));
    }
    Ok(authority.to_owned())
}

fn describe(section: &Section<'_, '_>, path: &str) -> String {
    format!("for `{path}` {}", section.place())
}

/// Two routes with the same host and path: the second could never match.
fn report_duplicate_routes(routes: &[(RouteConfig, Range<usize>)], d: &mut Diagnostics<'_>) {
    for (i, (route, span)) in routes.iter().enumerate() {
        let earlier = routes[..i]
            .iter()
            .any(|(r, _)| r.host == route.host && r.path == route.path);
        if earlier {
            d.error(
                span.clone(),
                format!(
                    "a second route for path `{}`{}: it would never match; expected each host \
                     and path once",
                    route.path,
                    route
                        .host
                        .as_deref()
                        .map(|h| format!(" on host `{h}`"))
                        .unwrap_or_default()
                ),
            );
        }
    }
}
