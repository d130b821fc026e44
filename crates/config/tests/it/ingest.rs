//! `[ingest.NAME]`: what is accepted with its defaults, and each mistake refused with
//! what would be right.

use std::path::PathBuf;
use std::time::Duration;

use berth_config::{
    Allow, AuthKind, BrokerConfig, Credential, DirConfig, IngestStart, MqttConfig, Pick, TlsFiles,
    WebhookConfig,
};

use crate::{diagnostics, exactly, valid, with_app};

#[test]
fn a_full_ingest_reads_with_its_defaults() {
    let config = valid(&with_app(
        r##"
[queue.stands]
handler = "pull"

[ingest.stands]
mqtt = { listen = "0.0.0.0:1883", websocket = "127.0.0.1:8083" }
topics = ["+/inbound", "lab/#"]
schema = "protocol.schema.json"
classify = "/type"
device = 1
job = { queue = "stands" }
credentials = { stand01 = { password_env = "STAND01_PASSWORD", roles = ["stands"] }, lab = "LAB_PASSWORD" }

[[ingest.stands.allow]]
role = "stands"
publish = ["%u/inbound"]
subscribe = ["%u/commands"]

[[ingest.stands.allow]]
user = "lab"
publish = ["lab/#"]

[ingest.drops]
mqtt = { listen = "127.0.0.1:1884", auth = "anonymous" }
topics = "#"
classify = 2
retention = "7d"
max_payload = "1MiB"
store = true
"##,
    ));
    let i = &config.ingests["stands"];
    assert_eq!(
        i.mqtt,
        Some(MqttConfig {
            listen: Some("0.0.0.0:1883".parse().unwrap()),
            websocket: Some("127.0.0.1:8083".parse().unwrap()),
            anonymous: false,
            tls: None,
            max_connections_per_address: 512,
        })
    );
    assert_eq!(i.topics, ["+/inbound", "lab/#"]);
    assert_eq!(i.schema, Some(PathBuf::from("protocol.schema.json")));
    assert_eq!(i.classify, Some(Pick::Pointer("/type".into())));
    assert_eq!(i.device, Some(Pick::Segment(1)));
    assert!(i.store);
    assert_eq!(
        i.start,
        Some(IngestStart::Job {
            queue: "stands".into(),
            kind: None
        })
    );
    assert_eq!(i.retention, Duration::from_secs(30 * 86_400));
    assert_eq!(i.max_payload, 256 * 1024);
    assert_eq!(
        i.credentials["stand01"],
        Credential {
            password_env: "STAND01_PASSWORD".into(),
            roles: vec!["stands".into()],
        }
    );
    assert_eq!(i.credentials["lab"].password_env, "LAB_PASSWORD");
    assert!(i.credentials["lab"].roles.is_empty());
    assert_eq!(
        i.allow,
        [
            Allow {
                user: None,
                role: Some("stands".into()),
                publish: vec!["%u/inbound".into()],
                subscribe: vec!["%u/commands".into()],
            },
            Allow {
                user: Some("lab".into()),
                role: None,
                publish: vec!["lab/#".into()],
                subscribe: vec![],
            }
        ]
    );
    let d = &config.ingests["drops"];
    assert!(d.mqtt.as_ref().unwrap().anonymous);
    assert_eq!(d.topics, ["#"]);
    assert_eq!(d.classify, Some(Pick::Segment(2)));
    assert_eq!(d.device, None);
    assert_eq!(d.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(d.max_payload, 1024 * 1024);
    assert_eq!(d.start, None);
}

#[test]
fn ingest_mistakes_are_refused_with_what_would_be_right() {
    let found = diagnostics(&with_app(
        r#"
[ingest.a]
mqtt = { listen = "1883", auth = "open" }
topics = ["stands/#/x", "a+/b"]
classify = "type"
job = { queue = "nope" }

[ingest.b]
topics = ["x"]
store = false

[ingest.c]
mqtt = {}
workflow = "w"
credentials = { dev = "not a var" }

[[ingest.c.allow]]
publish = ["x"]
"#,
    ));
    exactly(
        &found,
        &[
            "invalid address \"1883\" for `listen` in [ingest.a.mqtt]: expected an address with a port",
            "invalid auth \"open\" for `auth` in [ingest.a.mqtt]: expected \"password\"",
            "`#` must stand alone as the last level",
            "`+` must stand alone in its level",
            "invalid JSON pointer \"type\" for `classify` in [ingest.a]: expected a JSON pointer such as \"/type\"",
            "unknown queue `nope` in `job` of [ingest.a]",
            "[ingest.b] has no source: expected `mqtt = { listen = \"0.0.0.0:1883\" }`",
            "[ingest.b] has `store = false` and nothing to start",
            "`mqtt` of [ingest.c] has no listener",
            "missing `topics` in [ingest.c]",
            "unknown workflow `w` in [ingest.c]",
            "expected the name of an environment variable that holds the password",
            "an [[ingest.c.allow]] entry names whom it allows",
        ],
    );
}

#[test]
fn logins_and_listeners_that_cannot_work_are_refused() {
    let found = diagnostics(&with_app(
        r#"
[ingest.a]
mqtt = { listen = "127.0.0.1:1883", websocket = "127.0.0.1:1883", auth = "anonymous" }
topics = []
credentials = { "+" = "PLUS_PASSWORD" }

[[ingest.a.allow]]
user = "x"
publish = ["%u/inbound"]

[ingest.b]
topics = ["x"]
mqtt = { listen = "127.0.0.1:1884" }
workflow = "none"
credentials = { "stand/01" = "S" }
"#,
    ));
    exactly(
        &found,
        &[
            "`listen` and `websocket` on the same address",
            "empty `topics` in [ingest.a]",
            "invalid device name `+` in `credentials` of [ingest.a]",
            "has `auth = \"anonymous\"` and `allow` entries",
            "invalid device name `stand/01`",
            "unknown workflow `none` in [ingest.b]",
        ],
    );

    // A device login that no allow entry grants anything could only be refused: the
    // entry names a role the device does not have.
    let found = diagnostics(&with_app(
        r#"
[ingest.a]
mqtt = { listen = "127.0.0.1:1883" }
topics = ["+/inbound"]
credentials = { stand01 = "STAND01_PASSWORD", stand02 = { password_env = "S2", roles = ["lab"] }, ok = { password_env = "OK", roles = ["stands"] } }

[[ingest.a.allow]]
role = "stands"
publish = ["%u/inbound"]
"#,
    ));
    exactly(
        &found,
        &[
            "device `stand01` in `credentials` of [ingest.a] is allowed no topic: no [[ingest.a.allow]] entry names it or one of its roles (it has no roles)",
            "device `stand02` in `credentials` of [ingest.a] is allowed no topic: no [[ingest.a.allow]] entry names it or one of its roles (its roles: lab)",
        ],
    );
    // The table form wants its password variable, and only its own keys.
    let found = diagnostics(&with_app(
        r#"
[ingest.a]
mqtt = { listen = "127.0.0.1:1883" }
topics = ["+/inbound"]
credentials = { s = { roles = ["stands"], password = "hunter2" }, t = 3 }
"#,
    ));
    exactly(
        &found,
        &[
            "unknown key `password` in [ingest.a.credentials.s]",
            "missing `password_env` for `s` in `credentials` of [ingest.a]",
            "wrong type for `t` in [ingest.a.credentials]: found an integer, expected the name of the variable",
        ],
    );

    // Without `mqtt`, device logins and permissions have nothing to apply to.
    let found = diagnostics(&with_app(
        "[queue.q]\n\n[ingest.c]\ntopics = [\"x\"]\njob = { queue = \"q\" }\ncredentials = { d = \"D\" }\n",
    ));
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`credentials` in [ingest.c] is for MQTT clients")),
        "{messages:?}"
    );
}

#[test]
fn files_webhooks_external_brokers_and_tls_read_with_their_defaults() {
    let config = valid(&with_app(
        r##"
[queue.imports]
handler = "pull"

# A gateway whose only route is a webhook.
[gateway]
listen = "127.0.0.1:8080"

[ingest.imports]
dir = { watch = "import", pattern = ["*.csv", "*.json"] }
job = { queue = "imports", kind = "import" }

[ingest.hooks]
webhook = { path = "/hooks/stands", roles = ["devices"] }
classify = "/type"

[ingest.remote]
broker = { url = "mqtt://broker.local", user = "berth", password_env = "BROKER_PASSWORD" }
topics = ["+/inbound"]

[ingest.secure]
mqtt = { listen = "0.0.0.0:8883", tls = { cert = "cert.pem", key = "key.pem" } }
topics = ["#"]
"##,
    ));
    let i = &config.ingests["imports"];
    assert_eq!(
        i.dir,
        Some(DirConfig {
            watch: "import".into(),
            processing: "import/processing".into(),
            done: "import/done".into(),
            error: "import/error".into(),
            patterns: vec!["*.csv".into(), "*.json".into()],
            settle: Duration::from_secs(2),
        })
    );
    assert!(i.topics.is_empty() && i.mqtt.is_none());
    assert_eq!(
        config.ingests["hooks"].webhook,
        Some(WebhookConfig {
            path: "/hooks/stands".into(),
            auth: Some(AuthKind::Token),
            roles: vec!["devices".into()],
        })
    );
    assert_eq!(
        config.ingests["remote"].broker,
        Some(BrokerConfig {
            host: "broker.local".into(),
            port: 1883,
            user: Some("berth".into()),
            password_env: Some("BROKER_PASSWORD".into()),
            client_id: "berth-remote".into(),
            qos: 1,
        })
    );
    assert_eq!(
        config.ingests["secure"].mqtt.as_ref().unwrap().tls,
        Some(TlsFiles {
            cert: "cert.pem".into(),
            key: "key.pem".into(),
        })
    );
}

#[test]
fn sources_that_cannot_work_are_refused() {
    let found = diagnostics(&with_app(
        r#"
[queue.q]
handler = "pull"

[workflow.w.step.a]
handler = { run = "true" }

[ingest.a]
dir = { watch = "in", done = "in", pattern = "sub/*.csv" }
topics = ["x"]
schema = "s.json"

[ingest.b]
webhook = { path = "hooks/b/", auth = "basic" }

[ingest.c]
broker = { url = "tcp://x:1883", qos = 3 }
mqtt = { listen = "127.0.0.1:1883", tls = { cert = "c.pem" } }
topics = ["x"]

[ingest.d]
broker = { url = "mqtt://user:pw@x" }
topics = ["x"]

[ingest.e]
webhook = { path = "/hooks/e", auth = "none", roles = ["x"] }
"#,
    ));
    exactly(
        &found,
        &[
            "`watch` and `done` in `dir` of [ingest.a] are the same directory",
            "a pattern matches file names, so it cannot contain `/`",
            "`topics` in [ingest.a] filters MQTT messages",
            "`schema` in [ingest.a] checks messages",
            "[ingest.a] has `dir` but neither `job` nor `workflow`",
            "invalid path \"hooks/b/\" for `path` in [ingest.b.webhook]",
            "invalid value \"basic\" for `auth` in [ingest.b.webhook]",
            "invalid URL \"tcp://x:1883\" for `url` in [ingest.c.broker]",
            "`qos`",
            "[ingest.c] has both `mqtt` (berth's own broker) and `broker`",
            "`tls` of [ingest.c.mqtt] needs both files",
            "invalid URL \"mqtt://user:pw@x\"",
            "has `roles` and `auth = \"none\"`",
            "[ingest.e] has a `webhook`, which the gateway answers, but there is no [gateway]",
        ],
    );
}
