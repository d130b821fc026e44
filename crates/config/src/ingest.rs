//! The `[ingest.NAME]` tables: where device messages come from (an embedded MQTT broker,
//! an external broker, a webhook on the gateway) and files (a watched directory), how
//! messages are checked (a JSON Schema), classified and attributed to a device, and what
//! is done with them (stored, turned into a job or a workflow start).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeValue;

use crate::diagnostic::Diagnostics;
use crate::queue::QueueConfig;
use crate::section::{Invalid, Section};
use crate::workflow::WorkflowConfig;

/// One `[ingest.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// The table key.
    pub name: String,
    /// `mqtt`: the embedded broker's listeners.
    pub mqtt: Option<MqttConfig>,
    /// `topics`: the topic filters whose messages this ingest takes in (MQTT wildcards
    /// `+` and `#`).
    pub topics: Vec<String>,
    /// `schema`: a JSON Schema file (drafts 7 and 2020-12), resolved against the config
    /// file's directory.
    pub schema: Option<PathBuf>,
    /// `classify`: where a message's kind comes from.
    pub classify: Option<Pick>,
    /// `device`: where the device's name comes from.
    pub device: Option<Pick>,
    /// `store` (default true): keep every valid message in the store.
    pub store: bool,
    /// `job` or `workflow`: what each valid message starts.
    pub start: Option<IngestStart>,
    /// `retention` (default 30d): how long messages and dead letters are kept.
    pub retention: Duration,
    /// `max_payload` (default 256 KiB): larger payloads become dead letters.
    pub max_payload: u64,
    /// `credentials`: device logins for devices that are not berth users, by name.
    pub credentials: BTreeMap<String, Credential>,
    /// `[[ingest.NAME.allow]]`: topic permissions; none means every logged-in client may
    /// publish and subscribe anywhere.
    pub allow: Vec<Allow>,
    /// `dir`: a watched directory whose files each start a job or a workflow.
    pub dir: Option<DirConfig>,
    /// `webhook`: a path on the gateway whose POSTed bodies are messages.
    pub webhook: Option<WebhookConfig>,
    /// `broker`: an external MQTT broker to subscribe to (instead of `mqtt`).
    pub broker: Option<BrokerConfig>,
    /// `key`: a JSON pointer to each message's own key (with its device): a resend with
    /// a key seen within `key_window` is a duplicate, not stored again.
    pub key: Option<String>,
    /// `key_window` (default 24h): how long a key is remembered; also for a webhook's
    /// `Idempotency-Key`.
    pub key_window: Duration,
}

/// `dir = { watch = "import", … }`: files dropped into `watch` move to `processing`, are
/// handled by a job each, then move to `done`, or to `error` with a log beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirConfig {
    /// `watch`: where files are dropped.
    pub watch: PathBuf,
    /// `processing` (default `watch/processing`): where a file waits for its job.
    pub processing: PathBuf,
    /// `done` (default `watch/done`): where a file goes once its job completed.
    pub done: PathBuf,
    /// `error` (default `watch/error`): where a file goes when its job failed for good,
    /// with `NAME.error.log` beside it.
    pub error: PathBuf,
    /// `pattern` (default `"*"`): file names taken (`*` and `?` wildcards); names
    /// starting with `.` are never taken.
    pub patterns: Vec<String>,
    /// `settle` (default 2s): a file is taken once unchanged for this long.
    pub settle: Duration,
}

/// `webhook = { path = "/hooks/stands", auth = "token" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `path`: the gateway path (a prefix: what follows it is the message's topic).
    pub path: String,
    /// `auth` (default `"token"`): how callers prove who they are; `None` for `"none"`.
    pub auth: Option<crate::gateway::AuthKind>,
    /// `roles`: with `auth`, the caller needs one of these.
    pub roles: Vec<String>,
}

/// `broker = { url = "mqtt://host:1883", … }`: an existing broker berth subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// The broker's host.
    pub host: String,
    /// Its port (default 1883).
    pub port: u16,
    /// `user`: the login name, if the broker wants one.
    pub user: Option<String>,
    /// `password_env`: the environment variable holding the password.
    pub password_env: Option<String>,
    /// `client_id` (default `berth-NAME`): a persistent session is kept under it, so
    /// that messages published while berth is down wait for it.
    pub client_id: String,
    /// `qos` (default 1): the QoS of the subscriptions.
    pub qos: u8,
}

/// `tls = { cert = "…", key = "…" }` of an MQTT listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

/// The `mqtt` table: the embedded broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// `listen`: the MQTT-over-TCP address.
    pub listen: Option<SocketAddr>,
    /// `websocket`: the MQTT-over-WebSocket address.
    pub websocket: Option<SocketAddr>,
    /// `auth` (default `"password"`): whether clients must log in.
    pub anonymous: bool,
    /// `tls`: the listeners speak MQTT over TLS (and WebSocket over TLS).
    pub tls: Option<TlsFiles>,
    /// `max_connections_per_address` (default 512, 0: no limit): connections one client
    /// address (an IPv6 client by its /64 network) holds open on the broker at once.
    pub max_connections_per_address: u32,
}

/// Where a value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// A JSON pointer into the payload, such as `/type`.
    Pointer(String),
    /// A topic segment, counted from 1.
    Segment(usize),
}

/// What a valid message starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestStart {
    /// `job = { queue = "stands", kind = "…" }`; without `kind`, the message's kind (or
    /// the ingest's name when unclassified).
    Job {
        /// The queue.
        queue: String,
        /// The job kind.
        kind: Option<String>,
    },
    /// `workflow = "NAME"`.
    Workflow {
        /// The workflow.
        name: String,
    },
}

/// One device login of `credentials`: `stand01 = "STAND01_PASSWORD"`, or
/// `stand01 = { password_env = "STAND01_PASSWORD", roles = ["stands"] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The environment variable that holds the password (read at start).
    pub password_env: String,
    /// Roles, for `[[ingest.NAME.allow]]` entries with `role`.
    pub roles: Vec<String>,
}

/// One `[[ingest.NAME.allow]]` entry: topics a user or role may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// `user`: this user only.
    pub user: Option<String>,
    /// `role`: every berth user with this role.
    pub role: Option<String>,
    /// `publish`: topic filters it may publish to (`%u` stands for the user's name).
    pub publish: Vec<String>,
    /// `subscribe`: topic filters it may subscribe to (`%u` as above).
    pub subscribe: Vec<String>,
}

pub(crate) fn ingests(
    section: &Section<'_, '_>,
    config_dir: &Path,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, IngestConfig> {
    let mut out = BTreeMap::new();
    for (name, table) in section.named_tables("ingest", "stands", d) {
        if let Some(i) = ingest(name, &table, config_dir, queues, workflows, d) {
            out.insert(name.to_owned(), i);
        }
    }
    out
}

/// Whether `name` is a valid login name (a berth user or a device): 1 to 128 letters,
/// digits, `.`, `_`, `-` or `@` (so never an MQTT wildcard or level separator).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Checks an MQTT topic filter: `/`-separated levels, `+` alone in a level, `#` alone in
/// the last one.
pub fn topic_filter_error(filter: &str) -> Option<&'static str> {
    if filter.is_empty() {
        return Some("a topic filter cannot be empty");
    }
    if filter.contains('\0') {
        return Some("a topic filter cannot contain NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Some("`#` must stand alone as the last level, as in \"stands/#\"");
        }
        if level.contains('+') && *level != "+" {
            return Some("`+` must stand alone in its level, as in \"+/inbound\"");
        }
    }
    None
}

fn filters(section: &Section<'_, '_>, key: &str, d: &mut Diagnostics<'_>) -> Option<Vec<String>> {
    section.string_list(
        key,
        "topic filter",
        "a topic filter such as \"+/inbound\"",
        d,
        |f| match topic_filter_error(f) {
            None => Ok(f.to_owned()),
            Some(why) => Err(Invalid::Expected(format!(
                "expected a topic filter such as \"+/inbound\" or \"stands/#\": {why}"
            ))),
        },
    )
}

fn pick(section: &Section<'_, '_>, key: &str, d: &mut Diagnostics<'_>) -> Option<Pick> {
    let value = section.get(key)?;
    let expected = "a JSON pointer such as \"/type\", or a topic segment counted from 1 such as 2";
    match value.get_ref() {
        DeValue::Integer(_) => section
            .integer(key, 1..=64, d)
            .map(|n| Pick::Segment(n as usize)),
        DeValue::String(_) => section.string(key, "JSON pointer", d, |p| {
            if p.starts_with('/') {
                Ok(Pick::Pointer(p.to_owned()))
            } else {
                Err(Invalid::Expected(format!("expected {expected}")))
            }
        }),
        _ => {
            section.wrong_type(key, value, expected, d);
            None
        }
    }
}

fn ingest(
    name: &str,
    section: &Section<'_, '_>,
    config_dir: &Path,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<IngestConfig> {
    let mqtt = mqtt(name, section, config_dir, d);
    let dir = dir(name, section, config_dir, d);
    let webhook = webhook(name, section, d);
    let broker = broker(name, section, d);
    let sources = ["mqtt", "broker", "dir", "webhook"];
    if sources.iter().all(|k| section.get(k).is_none()) {
        d.error(
            section.span(),
            format!(
                "[ingest.{name}] has no source: expected `mqtt = {{ listen = \"0.0.0.0:1883\" }}`, \
                 `broker = {{ url = \"mqtt://127.0.0.1:1883\" }}`, `dir = {{ watch = \"import\" }}` \
                 or `webhook = {{ path = \"/hooks/{name}\" }}`"
            ),
        );
    }
    if section.get("mqtt").is_some() && section.get("broker").is_some() {
        d.error(
            place_of(section, "broker"),
            format!(
                "[ingest.{name}] has both `mqtt` (berth's own broker) and `broker` (an external \
                 one): expected one of them"
            ),
        );
    }
    let takes_topics = section.get("mqtt").is_some() || section.get("broker").is_some();
    let topics = filters(section, "topics", d).unwrap_or_default();
    if let Some(value) = section.get("topics")
        && matches!(value.get_ref(), DeValue::Array(items) if items.is_empty())
    {
        d.error(
            value.span(),
            format!(
                "empty `topics` in [ingest.{name}]: the ingest would take nothing in; expected \
                 filters such as `topics = [\"+/inbound\"]`"
            ),
        );
    }
    let any_source = sources.iter().any(|k| section.get(k).is_some());
    if any_source && !takes_topics && section.get("topics").is_some() {
        d.error(
            place_of(section, "topics"),
            format!(
                "`topics` in [ingest.{name}] filters MQTT messages, but the ingest has no \
                 `mqtt` or `broker`: remove it (a webhook's topic is the rest of its path)"
            ),
        );
    }
    if takes_topics && section.get("topics").is_none() {
        d.error(
            section.span(),
            format!(
                "missing `topics` in [ingest.{name}]: expected the topic filters to take in, \
                 such as `topics = [\"+/inbound\"]`"
            ),
        );
    }
    let schema = section.path("schema", "\"protocol.schema.json\"", config_dir, d);
    let classify = pick(section, "classify", d);
    let device = pick(section, "device", d);
    let store = section.boolean("store", d).unwrap_or(true);
    let start = start(name, section, queues, workflows, d);
    if section.get("dir").is_some() {
        if section.get("job").is_none() && section.get("workflow").is_none() {
            d.error(
                place_of(section, "dir"),
                format!(
                    "[ingest.{name}] has `dir` but neither `job` nor `workflow`: each dropped \
                     file is handled by a job or a workflow; expected \
                     `job = {{ queue = \"imports\" }}` or `workflow = \"import\"`"
                ),
            );
        }
        let message_source = ["mqtt", "broker", "webhook"]
            .iter()
            .any(|k| section.get(k).is_some());
        for key in ["schema", "classify", "device", "key", "key_window"] {
            if !message_source && section.get(key).is_some() {
                d.error(
                    place_of(section, key),
                    format!(
                        "`{key}` in [ingest.{name}] checks messages, but the ingest only takes \
                         files (`dir`), which are handed to their job as they are: remove it"
                    ),
                );
            }
        }
    }
    if !store
        && start.is_none()
        && section.get("job").is_none()
        && section.get("workflow").is_none()
    {
        d.error(
            section.span(),
            format!(
                "[ingest.{name}] has `store = false` and nothing to start, so every message \
                 would be thrown away: expected `job = {{ queue = \"…\" }}`, \
                 `workflow = \"…\"`, or `store = true`"
            ),
        );
    }
    let retention = section
        .duration("retention", false, d)
        .unwrap_or(Duration::from_secs(30 * 86_400));
    let max_payload = section.size("max_payload", d).unwrap_or(256 * 1024);
    let key = section.string("key", "JSON pointer", d, |p| {
        if p.starts_with('/') {
            Ok(p.to_owned())
        } else {
            Err(Invalid::Expected(
                "expected a JSON pointer to the message's own key, such as \"/seq\"".into(),
            ))
        }
    });
    let key_window = section
        .duration("key_window", false, d)
        .unwrap_or(Duration::from_secs(86_400));
    if key_window > Duration::from_secs(365 * 86_400) {
        d.error(
            place_of(section, "key_window"),
            "invalid `key_window`: expected at most \"365d\" (keys are remembered that long)",
        );
    }
    if max_payload > 64 * 1024 * 1024 {
        d.error(
            section
                .get("max_payload")
                .map(|v| v.span())
                .unwrap_or(section.span()),
            "invalid `max_payload`: expected at most \"64MiB\"",
        );
    }
    let credentials = credentials(name, section, d);
    let allow = allow(name, section, d);
    let place = |key: &str| place_of(section, key);
    check_grants(name, section, &credentials, &allow, d);
    match &mqtt {
        None => {
            for key in ["credentials", "allow"] {
                if section.get(key).is_some() {
                    d.error(
                        place(key),
                        format!(
                            "`{key}` in [ingest.{name}] is for MQTT clients, but the ingest has \
                             no `mqtt` listener"
                        ),
                    );
                }
            }
        }
        Some(m) => {
            if m.anonymous && section.get("allow").is_some() {
                d.error(
                    place("allow"),
                    format!(
                        "[ingest.{name}] has `auth = \"anonymous\"` and `allow` entries, which \
                         name users that never log in: expected `auth = \"password\"`, or no \
                         `allow`"
                    ),
                );
            }
            if m.listen.is_some() && m.listen == m.websocket {
                d.error(
                    place("mqtt"),
                    format!(
                        "`mqtt` of [ingest.{name}] has `listen` and `websocket` on the same \
                         address: expected two ports, such as 1883 and 8083"
                    ),
                );
            }
        }
    }
    section.finish(d);
    Some(IngestConfig {
        name: name.to_owned(),
        mqtt,
        topics,
        schema,
        classify,
        device,
        store,
        start,
        retention,
        max_payload,
        credentials,
        allow,
        dir,
        webhook,
        broker,
        key,
        key_window,
    })
}

/// `mqtt = { listen, websocket, auth, tls }`: the embedded broker's listeners.
fn mqtt(
    name: &str,
    section: &Section<'_, '_>,
    config_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<MqttConfig> {
    section
        .table("mqtt", "a table such as { listen = \"0.0.0.0:1883\" }", d)
        .map(|m| {
            let addr = |key: &str, d: &mut Diagnostics<'_>| {
                m.string(key, "address", d, |a| {
                    a.parse::<SocketAddr>().map_err(|_| {
                        Invalid::Expected(
                            "expected an address with a port, such as \"0.0.0.0:1883\"".into(),
                        )
                    })
                })
            };
            let listen = addr("listen", d);
            let websocket = addr("websocket", d);
            if m.get("listen").is_none() && m.get("websocket").is_none() {
                d.error(
                    m.span(),
                    format!(
                        "`mqtt` of [ingest.{name}] has no listener: expected \
                         `listen = \"0.0.0.0:1883\"`, `websocket = \"0.0.0.0:8083\"`, or both"
                    ),
                );
            }
            let anonymous = m
                .string("auth", "auth", d, |a| match a {
                    "password" => Ok(false),
                    "anonymous" => Ok(true),
                    _ => Err(Invalid::Expected(
                        "expected \"password\" (clients log in as berth users or with \
                         `credentials`) or \"anonymous\""
                            .into(),
                    )),
                })
                .unwrap_or(false);
            let tls = m
                .table(
                    "tls",
                    "a table such as { cert = \"cert.pem\", key = \"key.pem\" }",
                    d,
                )
                .and_then(|t| {
                    let cert = t.path("cert", "\"fullchain.pem\"", config_dir, d);
                    let key = t.path("key", "\"privkey.pem\"", config_dir, d);
                    t.finish(d);
                    if t.get("cert").is_none() || t.get("key").is_none() {
                        d.error(
                            t.span(),
                            format!(
                                "`tls` of [ingest.{name}.mqtt] needs both files: expected \
                                 {{ cert = \"fullchain.pem\", key = \"privkey.pem\" }}"
                            ),
                        );
                    }
                    Some(TlsFiles {
                        cert: cert?,
                        key: key?,
                    })
                });
            let max_connections_per_address = m
                .integer("max_connections_per_address", 0..=1_000_000, d)
                .map_or(512, |n| n as u32);
            m.finish(d);
            MqttConfig {
                listen,
                websocket,
                anonymous,
                tls,
                max_connections_per_address,
            }
        })
}

/// `credentials`: device logins that are not berth users.
fn credentials(
    name: &str,
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, Credential> {
    let mut credentials = BTreeMap::new();
    if let Some(c) = section.table(
        "credentials",
        "a table such as { stand01 = \"STAND01_PASSWORD\" }",
        d,
    ) {
        for (key, value) in c.entries() {
            let user: &str = key.get_ref().as_ref();
            if !valid_user_name(user) {
                d.error(
                    key.span(),
                    format!(
                        "invalid device name `{user}` in `credentials` of [ingest.{name}]: \
                         expected 1 to 128 letters, digits, `.`, `_`, `-` or `@`, such as stand01"
                    ),
                );
                continue;
            }
            let env_name = |v: &str| {
                if valid_env_name(v) {
                    Ok(v.to_owned())
                } else {
                    Err(Invalid::Expected(
                        "expected the name of an environment variable that holds the \
                         password, such as \"STAND01_PASSWORD\" (the password never sits in \
                         this file)"
                            .into(),
                    ))
                }
            };
            let credential = if value.get_ref().is_str() {
                c.string(user, "variable name", d, env_name)
                    .map(|password_env| Credential {
                        password_env,
                        roles: Vec::new(),
                    })
            } else {
                let expected = "the name of the variable that holds the password, such as \
                                \"STAND01_PASSWORD\", or a table such as { password_env = \
                                \"STAND01_PASSWORD\", roles = [\"stands\"] }";
                c.child(user, value, expected, d).and_then(|t| {
                    let roles = t
                        .string_list("roles", "role", "a role name such as \"stands\"", d, |r| {
                            crate::gateway::valid_role(r)
                                .then(|| r.to_owned())
                                .ok_or_else(|| {
                                    Invalid::Expected(
                                        "expected letters, digits, `_` and `-`, such as \"stands\""
                                            .into(),
                                    )
                                })
                        })
                        .unwrap_or_default();
                    let password_env = t.string("password_env", "variable name", d, env_name);
                    t.finish(d);
                    if t.get("password_env").is_none() {
                        d.error(
                            t.span(),
                            format!(
                                "missing `password_env` for `{user}` in `credentials` of \
                                 [ingest.{name}]: expected the name of the variable that holds \
                                 its password, such as password_env = \"STAND01_PASSWORD\""
                            ),
                        );
                    }
                    password_env.map(|password_env| Credential {
                        password_env,
                        roles,
                    })
                })
            };
            if let Some(credential) = credential {
                credentials.insert(user.to_owned(), credential);
            }
        }
    }
    credentials
}

/// `[[ingest.NAME.allow]]`: topic permissions by user or role.
fn allow(name: &str, section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Vec<Allow> {
    let mut allow = Vec::new();
    for a in section.table_array("allow", "tables such as [[ingest.NAME.allow]]", d) {
        let text = |key: &str, d: &mut Diagnostics<'_>| {
            a.string(key, key, d, |v| {
                if v.is_empty() {
                    Err(Invalid::Expected(format!("expected a {key} name")))
                } else {
                    Ok(v.to_owned())
                }
            })
        };
        let user = text("user", d);
        let role = text("role", d);
        if (a.get("user").is_some()) == (a.get("role").is_some()) {
            d.error(
                a.span(),
                format!(
                    "an [[ingest.{name}.allow]] entry names whom it allows: expected either \
                     `user = \"stand01\"` or `role = \"stands\"`"
                ),
            );
        }
        let publish = filters(&a, "publish", d).unwrap_or_default();
        let subscribe = filters(&a, "subscribe", d).unwrap_or_default();
        a.finish(d);
        allow.push(Allow {
            user,
            role,
            publish,
            subscribe,
        });
    }
    allow
}

/// A device login that no entry grants a topic could connect and then do nothing: every
/// publish refused. (A berth user's roles are not known here; a device's are.)
fn check_grants(
    name: &str,
    section: &Section<'_, '_>,
    credentials: &BTreeMap<String, Credential>,
    allow: &[Allow],
    d: &mut Diagnostics<'_>,
) {
    if !allow.is_empty() {
        let credentials_span = section.get("credentials").map(|v| v.span());
        for (user, credential) in credentials {
            let granted = allow.iter().any(|a| {
                a.user.as_deref() == Some(user.as_str())
                    || a.role
                        .as_ref()
                        .is_some_and(|r| credential.roles.contains(r))
            });
            if !granted {
                let roles = if credential.roles.is_empty() {
                    "it has no roles".to_owned()
                } else {
                    format!("its roles: {}", credential.roles.join(", "))
                };
                d.error(
                    credentials_span.clone().unwrap_or_else(|| section.span()),
                    format!(
                        "device `{user}` in `credentials` of [ingest.{name}] is allowed no topic: \
                         no [[ingest.{name}.allow]] entry names it or one of its roles ({roles}), \
                         so every publish and subscription would be refused; expected an entry \
                         with user = \"{user}\", or roles for it, such as {user} = {{ \
                         password_env = \"{}\", roles = [\"stands\"] }}",
                        credential.password_env
                    ),
                );
            }
        }
    }
}

fn place_of(section: &Section<'_, '_>, key: &str) -> std::ops::Range<usize> {
    section.key_span(key).unwrap_or_else(|| section.span())
}

/// A file-name pattern: `*` and `?` wildcards, no `/`.
fn pattern_error(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        Some("a pattern cannot be empty")
    } else if p.contains('/') {
        Some("a pattern matches file names, so it cannot contain `/`")
    } else {
        None
    }
}

fn dir(
    name: &str,
    section: &Section<'_, '_>,
    config_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<DirConfig> {
    let t = section.table("dir", "a table such as { watch = \"import\" }", d)?;
    if t.get("watch").is_none() {
        d.error(
            t.span(),
            format!(
                "missing `watch` in `dir` of [ingest.{name}]: expected the directory files are \
                 dropped into, such as {{ watch = \"import\" }}"
            ),
        );
    }
    let watch = t.path("watch", "\"import\"", config_dir, d);
    let sub = |key: &str, d: &mut Diagnostics<'_>| {
        t.path(key, &format!("\"import/{key}\""), config_dir, d)
    };
    let processing = sub("processing", d);
    let done = sub("done", d);
    let error = sub("error", d);
    let patterns = t
        .string_list(
            "pattern",
            "pattern",
            "a file-name pattern such as \"*.csv\"",
            d,
            |p| match pattern_error(p) {
                None => Ok(p.to_owned()),
                Some(why) => Err(Invalid::Expected(format!(
                    "expected a file-name pattern such as \"*.csv\": {why}"
                ))),
            },
        )
        .unwrap_or_else(|| vec!["*".to_owned()]);
    let settle = t
        .duration("settle", true, d)
        .unwrap_or(Duration::from_secs(2));
    t.finish(d);
    let watch = watch?;
    let processing = processing.unwrap_or_else(|| watch.join("processing"));
    let done = done.unwrap_or_else(|| watch.join("done"));
    let error = error.unwrap_or_else(|| watch.join("error"));
    let all = [
        ("watch", &watch),
        ("processing", &processing),
        ("done", &done),
        ("error", &error),
    ];
    for (i, (a, pa)) in all.iter().enumerate() {
        for (b, pb) in &all[i + 1..] {
            if pa == pb {
                d.error(
                    t.span(),
                    format!(
                        "`{a}` and `{b}` in `dir` of [ingest.{name}] are the same directory \
                         ({}): expected four different directories",
                        pa.display()
                    ),
                );
            }
        }
    }
    Some(DirConfig {
        watch,
        processing,
        done,
        error,
        patterns,
        settle,
    })
}

fn webhook(
    name: &str,
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> Option<WebhookConfig> {
    let t = section.table("webhook", "a table such as { path = \"/hooks/stands\" }", d)?;
    if t.get("path").is_none() {
        d.error(
            t.span(),
            format!(
                "missing `path` in `webhook` of [ingest.{name}]: expected the gateway path it \
                 answers, such as {{ path = \"/hooks/{name}\" }}"
            ),
        );
    }
    let path = t.string("path", "path", d, |p| {
        let ok = p.starts_with('/')
            && p.len() > 1
            && !p.ends_with('/')
            && !p.contains(['?', '#', ' ', '%', '\\'])
            && !p
                .split('/')
                .skip(1)
                .any(|s| s.is_empty() || s == "." || s == "..");
        if ok && !p.starts_with("/_berth/") {
            Ok(p.to_owned())
        } else {
            Err(Invalid::Expected(
                "expected a path such as \"/hooks/stands\": starting with `/`, without a \
                 trailing `/`, empty or dot segments, a query or `/_berth/`"
                    .into(),
            ))
        }
    });
    let auth = t
        .string("auth", "value", d, |a| match a {
            "token" => Ok(Some(crate::gateway::AuthKind::Token)),
            "login" => Ok(Some(crate::gateway::AuthKind::Login)),
            "none" => Ok(None),
            _ => Err(Invalid::Expected(
                "expected \"token\" (an API token, the default), \"login\" (a session \
                 cookie) or \"none\" (anyone who can reach the gateway)"
                    .into(),
            )),
        })
        .unwrap_or(Some(crate::gateway::AuthKind::Token));
    let roles = t
        .string_list("roles", "role", "a role name such as \"devices\"", d, |r| {
            crate::gateway::valid_role(r)
                .then(|| r.to_owned())
                .ok_or_else(|| {
                    Invalid::Expected(
                        "expected letters, digits, `_` and `-`, such as \"devices\"".into(),
                    )
                })
        })
        .unwrap_or_default();
    if auth.is_none() && !roles.is_empty() {
        d.error(
            t.span(),
            format!(
                "`webhook` of [ingest.{name}] has `roles` and `auth = \"none\"`: roles need a \
                 caller who logs in; expected `auth = \"token\"`, or no `roles`"
            ),
        );
    }
    t.finish(d);
    Some(WebhookConfig {
        path: path?,
        auth,
        roles,
    })
}

fn broker(name: &str, section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<BrokerConfig> {
    let t = section.table(
        "broker",
        "a table such as { url = \"mqtt://127.0.0.1:1883\" }",
        d,
    )?;
    if t.get("url").is_none() {
        d.error(
            t.span(),
            format!(
                "missing `url` in `broker` of [ingest.{name}]: expected {{ url = \"mqtt://127.0.0.1:1883\" }}"
            ),
        );
    }
    let url = t.string("url", "URL", d, |u| {
        parse_mqtt_url(u).ok_or_else(|| {
            Invalid::Expected(
                "expected mqtt://HOST or mqtt://HOST:PORT, such as \"mqtt://127.0.0.1:1883\" \
                 (the login goes in `user` and `password_env`, not in the URL)"
                    .into(),
            )
        })
    });
    let user = t.string("user", "user name", d, |u| {
        if u.is_empty() {
            Err(Invalid::Expected("expected the broker's login name".into()))
        } else {
            Ok(u.to_owned())
        }
    });
    let password_env = t.string("password_env", "variable name", d, |v| {
        if valid_env_name(v) {
            Ok(v.to_owned())
        } else {
            Err(Invalid::Expected(
                "expected the name of an environment variable that holds the password, such \
                 as \"BROKER_PASSWORD\""
                    .into(),
            ))
        }
    });
    if password_env.is_some() && user.is_none() && t.get("user").is_none() {
        d.error(
            t.span(),
            format!("`broker` of [ingest.{name}] has `password_env` but no `user`: expected both"),
        );
    }
    let client_id = t
        .string("client_id", "client id", d, |c| {
            if c.is_empty() || c.len() > 128 || c.contains(['/', '+', '#']) {
                Err(Invalid::Expected(
                    "expected 1 to 128 characters without `/`, `+` or `#`, such as \"berth-stands\""
                        .into(),
                ))
            } else {
                Ok(c.to_owned())
            }
        })
        .unwrap_or_else(|| format!("berth-{name}"));
    let qos = t.integer("qos", 0..=2, d).map(|q| q as u8).unwrap_or(1);
    t.finish(d);
    let (host, port) = url?;
    Some(BrokerConfig {
        host,
        port,
        user,
        password_env,
        client_id,
        qos,
    })
}

/// `mqtt://HOST[:PORT]`, with no path, login or query.
fn parse_mqtt_url(u: &str) -> Option<(String, u16)> {
    let rest = u.strip_prefix("mqtt://")?;
    if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after {
            "" => 1883,
            p => p.strip_prefix(':')?.parse().ok()?,
        };
        (h.to_owned(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (rest.to_owned(), 1883),
        }
    };
    (!host.is_empty() && port != 0).then_some((host, port))
}

fn valid_env_name(v: &str) -> bool {
    !v.is_empty()
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !v.starts_with(|c: char| c.is_ascii_digit())
}

fn start(
    name: &str,
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<IngestStart> {
    // Both are checked when both are given: every mistake at once.
    let workflow = section.get("workflow").is_some().then(|| {
        section.string("workflow", "workflow", d, |w| {
            if workflows.contains_key(w) {
                return Ok(IngestStart::Workflow { name: w.to_owned() });
            }
            let names: Vec<&str> = workflows.keys().map(String::as_str).collect();
            Err(Invalid::Message(crate::section::unknown_name(
                format!("unknown workflow `{w}` in [ingest.{name}]"),
                w,
                &names,
                "no [workflow.NAME] is defined",
            )))
        })
    });
    let job = section
        .get("job")
        .is_some()
        .then(|| job_start(name, section, queues, d));
    match (workflow, job) {
        (Some(_), Some(_)) => {
            d.error(
                section.span(),
                format!("[ingest.{name}] has both `job` and `workflow`: expected one of them"),
            );
            None
        }
        (Some(workflow), None) => workflow,
        (None, Some(job)) => job,
        (None, None) => None,
    }
}

/// The job an ingest's `job` table starts.
fn job_start(
    name: &str,
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<IngestStart> {
    let job = section.table("job", "a table such as { queue = \"stands\" }", d)?;
    if job.get("queue").is_none() {
        d.error(
            job.span(),
            format!(
                "missing `queue` in `job` of [ingest.{name}]: expected {{ queue = \"stands\" }}"
            ),
        );
    }
    let queue = job.string("queue", "queue", d, |q| {
        if queues.contains_key(q) {
            return Ok(q.to_owned());
        }
        let names: Vec<&str> = queues.keys().map(String::as_str).collect();
        Err(Invalid::Message(crate::section::unknown_name(
            format!("unknown queue `{q}` in `job` of [ingest.{name}]"),
            q,
            &names,
            "no [queue.NAME] is defined",
        )))
    });
    let kind = job.string("kind", "kind", d, |k| {
        if k.trim().is_empty() {
            Err(Invalid::Expected(
                "expected a job kind such as \"reading\"".into(),
            ))
        } else {
            Ok(k.to_owned())
        }
    });
    job.finish(d);
    Some(IngestStart::Job {
        queue: queue?,
        kind,
    })
}
