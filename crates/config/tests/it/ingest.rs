//! `[ingest.NAME]`: what is accepted with its defaults, and each mistake refused with
//! what would be right.

use std::path::PathBuf;
use std::time::Duration;

use berth_config::{Allow, IngestStart, MqttConfig, Pick};

use crate::{diagnostics, valid, with_app};

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
credentials = { stand01 = "STAND01_PASSWORD" }

[[ingest.stands.allow]]
role = "stands"
publish = ["%u/inbound"]
subscribe = ["%u/commands"]

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
    assert_eq!(i.credentials["stand01"], "STAND01_PASSWORD");
    assert_eq!(
        i.allow,
        [Allow {
            user: None,
            role: Some("stands".into()),
            publish: vec!["%u/inbound".into()],
            subscribe: vec!["%u/commands".into()],
        }]
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
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    let expect = [
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
    ];
    for e in expect {
        assert!(
            messages.iter().any(|m| m.contains(e)),
            "no message contains {e:?}; got:\n{}",
            messages.join("\n")
        );
    }
    assert_eq!(messages.len(), expect.len(), "{}", messages.join("\n"));
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
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    let expect = [
        "`listen` and `websocket` on the same address",
        "empty `topics` in [ingest.a]",
        "invalid device name `+` in `credentials` of [ingest.a]",
        "has `auth = \"anonymous\"` and `allow` entries",
        "invalid device name `stand/01`",
        "unknown workflow `none` in [ingest.b]",
    ];
    for e in expect {
        assert!(
            messages.iter().any(|m| m.contains(e)),
            "no message contains {e:?}; got:\n{}",
            messages.join("\n")
        );
    }
    assert_eq!(messages.len(), expect.len(), "{}", messages.join("\n"));

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
