//! `[ingest.NAME]` under `berth up`, driven by real MQTT clients: mosquitto_pub and
//! mosquitto_sub (MQTT 3.1.1 and 5 over TCP) and Python's paho-mqtt (TCP and WebSocket).
//! Logins against berth's users and per-ingest credentials, forbidden topics, QoS 0, 1
//! and 2, retained messages, and every kind of bad payload dead-lettered with its reasons
//! and replayed after the schema is fixed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_testkit::{free_port_run, wait_until};
use serde_json::Value;

use crate::{parts, run_in, run_with_input, stop, up_with_env};

/// The test stands' protocol: a status or result with a sequence number.
pub(crate) const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["type", "seq"],
  "properties": {"type": {"enum": ["status", "result"]}, "seq": {"type": "integer"}}
}"#;

fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.stdin(Stdio::null());
    c
}

fn pub_(port: u16, login: (&str, &str), topic: &str, payload: &str, extra: &[&str]) -> Output {
    tool("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            login.0,
            "-P",
            login.1,
        ])
        .args(["-t", topic, "-m", payload, "-d"])
        .args(extra)
        .output()
        .expect("run mosquitto_pub (apt-get install mosquitto-clients)")
}

/// `berth --json messages ARGS`, the messages it lists.
pub(crate) async fn messages(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json", "messages"];
    all.extend_from_slice(args);
    let out = run_in(dir, &all);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "berth messages {args:?}: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["messages"].as_array().unwrap().clone()
}

const PAHO: &str = r#"
import json, sys, threading
import paho.mqtt.client as mqtt

port, ws_port = int(sys.argv[1]), int(sys.argv[2])
out = {}

# MQTT 3.1.1 over TCP, QoS 2, and a subscription that gets the retained message.
got = threading.Event()
def on_message(c, userdata, msg):
    out["retained"] = [msg.topic, msg.payload.decode(), msg.retain]
    got.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-tcp", protocol=mqtt.MQTTv311)
c.username_pw_set("stand02", "device-secret")
c.on_message = on_message
c.connect("127.0.0.1", port)
c.loop_start()
info = c.publish("stand02/inbound", json.dumps({"type": "result", "seq": 7}), qos=2)
info.wait_for_publish(10)
out["qos2"] = info.is_published()
c.subscribe("lab/config", qos=1)
out["got_retained"] = got.wait(10)
c.disconnect(); c.loop_stop()

# MQTT 5 over WebSocket: a valid message, then one the schema refuses (reason code).
acks = {}
def on_publish(c, userdata, mid, reason_code, properties):
    acks[mid] = reason_code.value
w = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-ws", transport="websockets", protocol=mqtt.MQTTv5)
w.username_pw_set("alice", "alice-password")
w.on_publish = on_publish
w.connect("127.0.0.1", ws_port)
w.loop_start()
ok = w.publish("stand01/inbound", json.dumps({"type": "status", "seq": 8}), qos=1)
bad = w.publish("stand01/inbound", json.dumps({"type": "status", "seq": "eight"}), qos=1)
ok.wait_for_publish(10); bad.wait_for_publish(10)
out["ws_ok"] = acks.get(ok.mid)
out["ws_bad"] = acks.get(bad.mid)
w.disconnect(); w.loop_stop()
print(json.dumps(out))
"#;

#[tokio::test]
async fn mqtt_clients_are_checked_stored_and_dead_lettered() {
    let port = free_port_run(2);
    let ws_port = port + 1;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("protocol.schema.json"), SCHEMA).unwrap();
    std::fs::write(d.join("paho_check.py"), PAHO).unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "ingest"
shutdown_grace = "2s"

[queue.stands]
handler = "pull"

[ingest.stands]
mqtt = {{ listen = "127.0.0.1:{port}", websocket = "127.0.0.1:{ws_port}" }}
topics = ["+/inbound"]
schema = "protocol.schema.json"
classify = "/type"
device = 1
job = {{ queue = "stands" }}
max_payload = "1KiB"
credentials = {{ stand02 = "STAND02_PASSWORD", stand03 = {{ password_env = "STAND03_PASSWORD", roles = ["stands"] }} }}

[[ingest.stands.allow]]
role = "stands"
publish = ["%u/inbound", "stand01/inbound", "lab/#"]
subscribe = ["lab/#", "%u/#"]

[[ingest.stands.allow]]
user = "stand02"
publish = ["stand02/inbound"]
subscribe = ["lab/#"]
"#
        ),
    )
    .unwrap();
    // A berth user with the role that the permissions name.
    let added = run_with_input(
        d,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "stands",
            "--password-stdin",
        ],
        "alice-password\n",
    );
    assert_eq!(parts(&added).0, 0, "{:?}", parts(&added));
    // The device password reaches the daemon through its environment.
    let mut daemon = up_with_env(
        d,
        &[
            ("STAND02_PASSWORD", "device-secret"),
            ("STAND03_PASSWORD", "stand03-secret"),
        ],
    )
    .await;
    let alice = ("alice", "alice-password");

    // Wrong passwords are refused, for berth users and device credentials alike.
    for login in [("alice", "nope"), ("stand02", "nope"), ("nobody", "x")] {
        let out = pub_(port, login, "alice/inbound", "{}", &["-q", "1"]);
        let (code, stdout, stderr) = parts(&out);
        assert_ne!(code, 0, "{login:?} got in: {stdout}{stderr}");
        assert!(
            format!("{stdout}{stderr}").contains("bad user name or password"),
            "{login:?}: {stdout}{stderr}"
        );
    }

    // A subscriber that sees what is routed. It is ready once it has the retained
    // message of `lab/ready` (a plain topic, outside the ingest's).
    let out = pub_(port, alice, "lab/ready", "yes", &["-q", "1", "-r"]);
    assert_eq!(parts(&out).0, 0, "{:?}", parts(&out));
    let mut sub = tool("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", "alice", "-P", "alice-password"])
        .args([
            "-t",
            "alice/#",
            "-t",
            "lab/ready",
            "-v",
            "-C",
            "2",
            "-W",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(sub.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut lines, &mut first).unwrap();
    assert_eq!(first.trim(), "lab/ready yes");

    // Valid at QoS 1 (3.1.1) and QoS 0.
    let out = pub_(
        port,
        alice,
        "alice/inbound",
        r#"{"type":"status","seq":1}"#,
        &["-q", "1"],
    );
    assert_eq!(parts(&out).0, 0, "{:?}", parts(&out));
    let out = pub_(
        port,
        alice,
        "alice/inbound",
        r#"{"type":"result","seq":2}"#,
        &["-q", "0"],
    );
    assert_eq!(parts(&out).0, 0);
    // MQTT 5: schema violation → PUBACK 0x99 (153); forbidden topic → 0x87 (135).
    let v5 = ["-q", "1", "-V", "mqttv5"];
    let out = pub_(
        port,
        alice,
        "alice/inbound",
        r#"{"type":"other","seq":"x"}"#,
        &v5,
    );
    assert!(parts(&out).1.contains("RC:153"), "{:?}", parts(&out));
    let out = pub_(
        port,
        alice,
        "bob/inbound",
        r#"{"type":"status","seq":3}"#,
        &v5,
    );
    assert!(parts(&out).1.contains("RC:135"), "{:?}", parts(&out));
    // A device login with a role gets the role's topics (a plain topic here, not stored),
    // and only those.
    let stand03 = ("stand03", "stand03-secret");
    let out = pub_(port, stand03, "lab/stand03", "up", &v5);
    assert!(parts(&out).1.contains("RC:0"), "{:?}", parts(&out));
    let out = pub_(port, stand03, "bob/inbound", "{}", &v5);
    assert!(parts(&out).1.contains("RC:135"), "{:?}", parts(&out));
    // Malformed JSON and an oversized payload (3.1.1: acknowledged, dead-lettered).
    let out = pub_(port, alice, "alice/inbound", "{not json", &["-q", "1"]);
    assert_eq!(parts(&out).0, 0);
    let big = format!(
        r#"{{"type":"status","seq":4,"pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let out = pub_(port, alice, "alice/inbound", &big, &["-q", "1"]);
    assert_eq!(parts(&out).0, 0);
    // A retained message on a plain (non-ingest) topic, for paho's subscription.
    let out = pub_(port, alice, "lab/config", "interval=5", &["-q", "1", "-r"]);
    assert_eq!(parts(&out).0, 0);

    let mut routed = String::new();
    std::io::Read::read_to_string(&mut lines, &mut routed).unwrap();
    assert!(sub.wait().unwrap().success());
    assert_eq!(routed.trim(), r#"alice/inbound {"type":"status","seq":1}"#);

    // paho-mqtt: 3.1.1 over TCP at QoS 2 with device credentials, then MQTT 5 over
    // WebSocket with a refusal's reason code.
    let out = tool("python3")
        .current_dir(d)
        .args(["paho_check.py", &port.to_string(), &ws_port.to_string()])
        .output()
        .unwrap();
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "paho: {stdout}{stderr} (pip install paho-mqtt)");
    let paho: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(paho["qos2"], true);
    assert_eq!(paho["got_retained"], true);
    assert_eq!(
        paho["retained"],
        serde_json::json!(["lab/config", "interval=5", true])
    );
    assert_eq!(paho["ws_ok"], 0);
    assert_eq!(paho["ws_bad"], 153);

    // Stored: alice's two, stand02's QoS 2 one, the WebSocket one; each started a job.
    let stored = wait_until("4 stored messages", Duration::from_secs(10), || async {
        let m = messages(d, &["list"]).await;
        (m.len() == 4).then_some(m)
    })
    .await;
    let devices: Vec<&str> = stored
        .iter()
        .map(|m| m["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["stand01", "stand02", "alice", "alice"]);
    assert!(stored.iter().all(|m| m["job_id"].is_i64()), "{stored:?}");
    // Counted per device and kind without fetching them.
    let (code, out, err) = parts(&run_in(d, &["--json", "messages", "count"]));
    assert_eq!(code, 0, "{err}");
    let counts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts["total"], 4, "{counts}");
    let alice: u64 = counts["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["device"] == "alice")
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(alice, 2, "{counts}");
    let (_, table, _) = parts(&run_in(d, &["messages", "count", "--device", "stand02"]));
    assert!(
        table.contains("stand02") && table.contains("result") && table.contains("1 in all"),
        "{table}"
    );
    // Paged backwards as `job list` is: two, then the two before them.
    let (_, page, _) = parts(&run_in(d, &["messages", "list", "--limit", "2"]));
    let next = stored[1]["id"].as_i64().unwrap();
    assert!(page.contains(&format!("(more: --before {next})")), "{page}");
    let older = messages(d, &["list", "--limit", "2", "--before", &next.to_string()]).await;
    assert_eq!(older, stored[2..].to_vec());
    assert_eq!(stored[1]["kind"], "result");
    assert_eq!(
        stored[1]["payload"],
        serde_json::json!({"type": "result", "seq": 7})
    );
    let jobs = run_in(d, &["--json", "job", "list", "--queue", "stands"]);
    let jobs: Value = serde_json::from_str(&parts(&jobs).1).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 4);
    assert_eq!(jobs["jobs"][0]["args"]["payload"]["seq"], 8);

    // Dead: schema violation (every reason), malformed JSON, oversized, and the
    // WebSocket one; newest first, with their exact bytes.
    let dead = messages(d, &["dead"]).await;
    assert_eq!(dead.len(), 4, "{dead:#?}");
    let errors = |m: &Value| m["errors"].as_array().unwrap().len();
    assert!(
        dead[0]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("at /seq:")
    );
    assert!(
        dead[1]["errors"][0]
            .as_str()
            .unwrap()
            .contains("more than max_payload (1024 bytes)")
    );
    assert_eq!(dead[1]["size"], big.len());
    assert!(
        dead[2]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("the payload is not JSON")
    );
    assert_eq!(dead[2]["payload_text"], "{not json");
    assert_eq!(errors(&dead[3]), 2, "type and seq: {:?}", dead[3]["errors"]);
    let stdout = parts(&run_in(d, &["messages", "dead"])).1;
    assert!(
        stdout.contains("FIRST ERROR") && stdout.contains("not JSON"),
        "{stdout}"
    );

    // Replay after a schema fix: seq may now be a string.
    let replay = |id: i64| run_in(d, &["--json", "messages", "replay", &id.to_string()]);
    let ws_dead = dead[0]["id"].as_i64().unwrap();
    assert_eq!(parts(&replay(ws_dead)).0, 1, "still invalid before the fix");
    std::fs::write(
        d.join("protocol.schema.json"),
        SCHEMA.replace(
            r#""seq": {"type": "integer"}"#,
            r#""seq": {"type": ["integer", "string"]}"#,
        ),
    )
    .unwrap();
    let out = replay(ws_dead);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let fixed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(fixed["dead"], false);
    assert!(fixed["job_id"].is_i64());
    assert_eq!(messages(d, &["list", "--device", "stand01"]).await.len(), 2);
    let again = parts(&replay(ws_dead));
    assert_eq!(again.0, 5, "a conflict");
    assert!(again.2.contains("not a dead letter"), "{again:?}");

    stop(&mut daemon);
}

/// A paho-mqtt publisher that sends QoS 1 messages numbered from 0 as fast as it may
/// (50 in flight), reconnecting whenever berth goes away, until its standard input
/// closes; then it waits until every message was acknowledged and prints their count.
const STEADY: &str = r#"
import json, sys, threading, time
import paho.mqtt.client as mqtt

port = int(sys.argv[1])
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="steady", clean_session=False, protocol=mqtt.MQTTv311)
c.username_pw_set("stand01", "stand-secret")
c.max_inflight_messages_set(50)
c.max_queued_messages_set(0)
c.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
c.connect("127.0.0.1", port)
c.loop_start()
closed = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
sent = []       # (seq, info) of the messages paho took while connected
uncertain = []  # taken while the connection dropped: queued by paho, maybe sent later
seq = 0
while not closed.is_set():
    if not c.is_connected() or len([m for _, m in sent[-200:] if not m.is_published()]) > 150:
        time.sleep(0.005)
        continue
    info = c.publish("stand01/inbound", json.dumps({"type": "status", "seq": seq}), qos=1)
    (sent.append((seq, info)) if info.rc == 0 else uncertain.append(seq))
    seq += 1
for _, m in sent:
    m.wait_for_publish(60)
print(json.dumps({"sent": seq, "acked": sum(m.is_published() for _, m in sent),
                  "tracked": len(sent), "uncertain": uncertain}), flush=True)
c.disconnect(); c.loop_stop()
"#;

/// Graceful stops in the middle of a QoS 1 stream: what berth stored before a stop is
/// acknowledged before the connection closes, so the publisher's resends after the
/// restart are only of what was not stored. Every message is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stops_mid_stream_store_every_message_once() {
    let port = free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("protocol.schema.json"), SCHEMA).unwrap();
    std::fs::write(d.join("steady.py"), STEADY).unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "steady"
shutdown_grace = "2s"

[ingest.stands]
mqtt = {{ listen = "127.0.0.1:{port}" }}
topics = ["+/inbound"]
schema = "protocol.schema.json"
device = 1
credentials = {{ stand01 = "STAND_PASSWORD" }}
"#
        ),
    )
    .unwrap();
    let env = [("STAND_PASSWORD", "stand-secret")];
    let mut berth = up_with_env(d, &env).await;
    let mut publisher = tool("python3")
        .current_dir(d)
        .args(["steady.py", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let count = || async {
        let v = berth_testkit::Project::client_for(d)
            .get_json("/v1/messages?limit=1")
            .await
            .ok()?;
        v["messages"][0]["id"].as_i64()
    };
    for round in 0..6 {
        let before = count().await.unwrap_or(0);
        wait_until(
            &format!("300 more messages stored (round {round})"),
            Duration::from_secs(30),
            || async { count().await.filter(|n| *n >= before + 300) },
        )
        .await;
        stop(&mut berth); // SIGTERM mid-stream, and a clean exit
        berth = up_with_env(d, &env).await;
    }
    drop(publisher.stdin.take());
    let out = tokio::task::spawn_blocking(move || publisher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "publisher: {stdout}{stderr}");
    let said: Value = serde_json::from_str(stdout.trim()).unwrap();
    let sent = said["sent"].as_u64().unwrap();
    assert_eq!(said["acked"], said["tracked"], "{said}");
    // A message paho took at the very moment a connection dropped has no outcome it can
    // report; it is queued and may or may not be sent: stored once or not at all.
    let uncertain: Vec<u64> = said["uncertain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    // Every stored message, page by page, newest first.
    let client = berth_testkit::Project::client_for(d);
    let mut seen = std::collections::BTreeMap::<u64, u32>::new();
    let mut before = i64::MAX;
    loop {
        let v = client
            .get_json(&format!("/v1/messages?limit=1000&before={before}"))
            .await
            .unwrap();
        let page = v["messages"].as_array().unwrap().clone();
        let Some(last) = page.last() else { break };
        before = last["id"].as_i64().unwrap();
        for m in &page {
            *seen
                .entry(m["payload"]["seq"].as_u64().unwrap())
                .or_default() += 1;
        }
    }
    stop(&mut berth);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<u64> = (0..sent)
        .filter(|s| !seen.contains_key(s) && !uncertain.contains(s))
        .collect();
    assert!(
        twice.is_empty() && missing.is_empty(),
        "{sent} sent across 6 stops: stored twice {twice:?}, missing {missing:?}"
    );
    println!("{sent} QoS 1 messages across 6 graceful stops: each stored once");
}

/// What Mosquitto's volume kept, kept in the store: a retained message and a persistent
/// session (its subscription, and a QoS 1 message published while it was away) are there
/// after berth restarts; paho reconnects without subscribing again and gets what it
/// missed, mosquitto_sub gets the retained message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_and_persistent_sessions_survive_a_restart() {
    let port = free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            "[app]\nname = \"persist\"\nshutdown_grace = \"2s\"\n\n[ingest.stands]\n\
             mqtt = {{ listen = \"127.0.0.1:{port}\", auth = \"anonymous\" }}\n\
             topics = [\"+/inbound\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("session.py"),
        r#"import json, sys, threading
import paho.mqtt.client as mqtt
port, step = int(sys.argv[1]), sys.argv[2]
got, out = threading.Event(), {}
def on_connect(c, userdata, flags, reason_code, properties):
    out["session_present"] = flags.session_present
def on_message(c, userdata, msg):
    out.setdefault("messages", []).append([msg.topic, msg.payload.decode(), msg.qos])
    got.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stand-page", clean_session=False, protocol=mqtt.MQTTv311)
c.on_connect, c.on_message = on_connect, on_message
c.connect("127.0.0.1", port)
c.loop_start()
if step == "subscribe":
    r, _ = c.subscribe("lab/alerts", qos=1)
    assert r == 0
    threading.Event().wait(0.5)
else:
    out["got"] = got.wait(10)
c.disconnect(); c.loop_stop()
print(json.dumps(out))
"#,
    )
    .unwrap();
    let paho = |step: &str| {
        let out = Command::new("python3")
            .current_dir(d)
            .args(["session.py", &port.to_string(), step])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let mut berth = up_with_env(d, &[]).await;
    let subscribed = paho("subscribe");
    assert_eq!(subscribed["session_present"], false, "{subscribed}");
    // While the page is away: a retained config and an alert for its session.
    let publish = |topic: &str, payload: &str, extra: &[&str]| {
        let p = tool("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", payload])
            .args(extra)
            .output()
            .unwrap();
        assert!(p.status.success(), "{p:?}");
    };
    publish("lab/config", r#"{"rate": 5}"#, &["-r"]);
    publish("lab/alerts", r#"{"stand": 3, "temp": 91}"#, &[]);
    stop(&mut berth);
    let mut berth = up_with_env(d, &[]).await;
    // mosquitto_sub gets the retained message of before the restart.
    let sub = tool("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "lab/config",
            "-C",
            "1",
            "-W",
            "5",
            "-v",
        ])
        .output()
        .unwrap();
    let (code, stdout, stderr) = parts(&sub);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), r#"lab/config {"rate": 5}"#);
    // paho's persistent session: present, and the alert it missed arrives.
    let back = paho("receive");
    assert_eq!(back["session_present"], true, "{back}");
    assert_eq!(back["got"], true, "{back}");
    assert_eq!(
        back["messages"][0],
        serde_json::json!(["lab/alerts", r#"{"stand": 3, "temp": 91}"#, 1])
    );
    stop(&mut berth);
}

/// One client address holds at most `max_connections_per_address` connections on the
/// embedded broker; the next is closed as soon as it is accepted.
#[tokio::test]
async fn the_broker_caps_connections_per_client_address() {
    let port = free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            "[app]\nname = \"capped\"\nshutdown_grace = \"2s\"\n\n\
             [ingest.stands]\nmqtt = {{ listen = \"127.0.0.1:{port}\", auth = \"anonymous\", \
             max_connections_per_address = 2 }}\ntopics = [\"+/in\"]\n"
        ),
    )
    .unwrap();
    let mut daemon = up_with_env(d, &[]).await;
    let closed_at_once = |s: &mut std::net::TcpStream| {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        matches!(s.read(&mut [0u8; 8]), Ok(0))
    };
    let mut held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        closed_at_once(&mut third),
        "the third connection from one address"
    );
    assert!(!closed_at_once(&mut held[0]), "the first two stay open");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "s1/in", "-m", "{}", "-q", "1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "places freed: {out:?}");
    stop(&mut daemon);
}
