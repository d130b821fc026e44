//! The ingest's other sources under `berth up`: dropped files (processing, done, error
//! with a log, and `kill -9` mid-way resumed on restart), an external Mosquitto broker
//! started by the test (messages published while berth is down arrive once it is back),
//! webhooks on the gateway (driven with curl), TLS on the embedded broker (mosquitto_pub
//! with the CA file) and the live stream of messages (server-sent events, read by curl).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_testkit::{free_port_run, wait_until};
use serde_json::Value;

use crate::ingest::{SCHEMA, messages};
use crate::{parts, run_in, stop, up, up_with_env};

/// The files of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn wait_for_files(dir: &Path, want: &[&str], limit: Duration) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    wait_until(
        &format!("{} to hold {want:?}", dir.display()),
        limit,
        || {
            let same = names(dir) == want;
            async move { same.then_some(()) }
        },
    )
    .await;
}

fn jobs(dir: &Path, queue: &str) -> Vec<Value> {
    let out = run_in(dir, &["--json", "job", "list", "--queue", queue]);
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "berth job list: {stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    v["jobs"].as_array().unwrap().clone()
}

/// The handler: waits for `gate` when the file's name says so, fails for names with
/// "bad", and records every file it finished.
const HANDLER: &str = r#"name=$(basename "$1")
echo "started $name" >> started.log
case "$name" in
  *slow*) while [ ! -e gate ]; do sleep 0.05; done ;;
esac
case "$name" in
  *bad*) echo "row 3: not a number" >&2; exit 1 ;;
esac
test -f "$1" || { echo "no file at $1" >&2; exit 1; }
echo "$name" >> finished.log
"#;

#[tokio::test]
async fn dropped_files_are_processed_once_even_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("handle.sh"), HANDLER).unwrap();
    std::fs::write(
        d.join("berth.toml"),
        r#"[app]
name = "imports"
shutdown_grace = "1s"
lease_ttl = "2s"

[queue.imports]
handler = { run = "sh handle.sh {args.file}" }
max_attempts = 3
backoff = { initial = "100ms", max = "200ms" }

[ingest.imports]
dir = { watch = "import", pattern = "*.csv", settle = "200ms" }
job = { queue = "imports", kind = "import" }
"#,
    )
    .unwrap();
    let (watch, processing, done, error) = (
        d.join("import"),
        d.join("import/processing"),
        d.join("import/done"),
        d.join("import/error"),
    );
    // A file left in processing by a berth that died between the rename and the job.
    std::fs::create_dir_all(&processing).unwrap();
    std::fs::write(processing.join("orphan.csv"), "a,b\n").unwrap();

    let mut first = up(d).await;
    wait_for_files(&done, &["orphan.csv"], Duration::from_secs(20)).await;

    // A good file, a failing one, a file another pattern does not take, a hidden one
    // being uploaded, and one whose handler waits.
    std::fs::write(watch.join("day1.csv"), "1,2\n").unwrap();
    std::fs::write(watch.join("bad.csv"), "x,y\n").unwrap();
    std::fs::write(watch.join("notes.txt"), "not an export").unwrap();
    std::fs::write(watch.join(".upload.csv"), "partial").unwrap();
    std::fs::write(watch.join("slow.csv"), "3,4\n").unwrap();
    wait_for_files(&done, &["day1.csv", "orphan.csv"], Duration::from_secs(20)).await;
    wait_for_files(
        &error,
        &["bad.csv", "bad.csv.error.log"],
        Duration::from_secs(20),
    )
    .await;
    let log = std::fs::read_to_string(error.join("bad.csv.error.log")).unwrap();
    assert!(log.contains("discarded after 3 of 3 attempts"), "{log}");
    assert!(log.contains("row 3: not a number"), "{log}");
    // The slow file is in processing, its handler running: kill berth now.
    wait_until("the slow file's handler", Duration::from_secs(20), || {
        let started = std::fs::read_to_string(d.join("started.log")).unwrap_or_default();
        async move { started.contains("started slow.csv").then_some(()) }
    })
    .await;
    assert_eq!(names(&processing), ["slow.csv"]);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    // A file of a name already done arrives while berth is down.
    std::fs::write(watch.join("day1.csv"), "5,6\n").unwrap();
    let mut second = up(d).await;
    // The gate opens once the slow file's job runs again: the new berth killed what the
    // old one left running before it started any job (`sh` need not exec the handler, so
    // the handler itself may have outlived its parent until then).
    wait_until("the slow file's job again", Duration::from_secs(20), || {
        let started = std::fs::read_to_string(d.join("started.log")).unwrap_or_default();
        async move { (started.matches("started slow.csv").count() >= 2).then_some(()) }
    })
    .await;
    std::fs::write(d.join("gate"), "").unwrap();
    wait_for_files(
        &done,
        &["day1.2.csv", "day1.csv", "orphan.csv", "slow.csv"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(names(&processing), Vec::<String>::new());
    assert_eq!(
        names(&watch),
        [".upload.csv", "done", "error", "notes.txt", "processing"]
    );
    assert_eq!(
        std::fs::read_to_string(done.join("day1.2.csv")).unwrap(),
        "5,6\n"
    );
    // Every file started one job, the slow one resumed under its job after the kill.
    let all = jobs(d, "imports");
    let slow: Vec<&Value> = all
        .iter()
        .filter(|j| j["args"]["name"] == "slow.csv")
        .collect();
    assert_eq!(slow.len(), 1, "one job for slow.csv: {all:?}");
    assert_eq!(slow[0]["state"], "completed");
    assert_eq!(all.len(), 5, "orphan, day1 twice, bad and slow: {all:?}");
    let finished = std::fs::read_to_string(d.join("finished.log")).unwrap();
    let mut finished: Vec<&str> = finished.lines().collect();
    finished.sort();
    assert_eq!(finished, ["day1.csv", "day1.csv", "orphan.csv", "slow.csv"]);
    stop(&mut second);
}

/// A Mosquitto of the test's own on `port`, with one user.
fn mosquitto(dir: &Path, port: u16) -> Child {
    let passwords = dir.join("mosquitto.passwd");
    let out = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["berth", "broker-secret"])
        .output()
        .expect("run mosquitto_passwd (apt-get install mosquitto)");
    assert!(out.status.success(), "{out:?}");
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n",
            passwords.display()
        ),
    )
    .unwrap();
    // Debian puts the broker in /usr/sbin, which not every PATH has.
    let program = if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let mut child = Command::new(program)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mosquitto (apt-get install mosquitto)");
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mosquitto did not listen on {port}");
}

fn publish(port: u16, topic: &str, payload: &str) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", "berth", "-P", "broker-secret", "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "mosquitto_pub: {out:?}");
}

#[tokio::test]
async fn an_external_broker_delivers_and_keeps_messages_while_berth_is_down() {
    let port = free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut broker = mosquitto(d, port);
    std::fs::write(d.join("protocol.schema.json"), SCHEMA).unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "remote"
shutdown_grace = "1s"

[ingest.stands]
broker = {{ url = "mqtt://127.0.0.1:{port}", user = "berth", password_env = "BROKER_PASSWORD" }}
topics = ["+/inbound"]
schema = "protocol.schema.json"
classify = "/type"
device = 1
"#
        ),
    )
    .unwrap();
    let env = [("BROKER_PASSWORD", "broker-secret")];
    let mut berth = up_with_env(d, &env).await;
    // The subscription is in place once a message published now arrives; publish until
    // one does (the first may go out before berth has subscribed).
    wait_until("berth to subscribe", Duration::from_secs(20), || {
        publish(port, "probe/inbound", r#"{"type":"status","seq":0}"#);
        let d = d.to_path_buf();
        async move {
            (!messages(&d, &["list", "--device", "probe"])
                .await
                .is_empty())
            .then_some(())
        }
    })
    .await;
    publish(port, "s1/inbound", r#"{"type":"result","seq":1}"#);
    publish(port, "s1/inbound", r#"{"type":"result","seq":"one"}"#);
    let d2 = d.to_path_buf();
    wait_until(
        "the message and the dead letter",
        Duration::from_secs(20),
        || {
            let d = d2.clone();
            async move {
                let ok = messages(&d, &["list", "--device", "s1"]).await;
                let dead = messages(&d, &["dead"]).await;
                (ok.len() == 1 && dead.len() == 1).then_some(())
            }
        },
    )
    .await;
    let ok = messages(d, &["list", "--device", "s1"]).await;
    assert_eq!(ok[0]["kind"], "result");
    assert_eq!(ok[0]["payload"]["seq"], 1);
    let dead = messages(d, &["dead"]).await;
    assert!(
        dead[0]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("at /seq:"),
        "{dead:?}"
    );

    // berth stops; a stand publishes meanwhile; the broker keeps it for berth's session.
    stop(&mut berth);
    publish(port, "s2/inbound", r#"{"type":"status","seq":2}"#);
    let mut berth = up_with_env(d, &env).await;
    let d2 = d.to_path_buf();
    wait_until("the message sent while berth was down", Duration::from_secs(20), || {
        let d = d2.clone();
        async move { (messages(&d, &["list", "--device", "s2"]).await.len() == 1).then_some(()) }
    })
    .await;
    stop(&mut berth);
    let _ = broker.kill();
    let _ = broker.wait();
}

/// Reads server-sent events from berth's socket with curl, one data line at a time.
struct Events {
    child: Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Events {
    fn open(dir: &Path, query: &str) -> Self {
        let mut child = Command::new("curl")
            .args(["-sN", "--max-time", "60", "--unix-socket"])
            .arg(dir.join(".berth/berth.sock"))
            .arg(format!("http://berth/v1/messages/stream{query}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run curl");
        let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut events = Self { child, lines };
        // Listening from the `open` event on.
        events.next("open");
        events
    }

    /// The data of the next event of `kind`.
    fn next(&mut self, kind: &str) -> Value {
        let mut event = String::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ")
                && event == kind
            {
                return serde_json::from_str(data).unwrap();
            }
        }
        panic!("the stream ended before an `{kind}` event");
    }

    /// The next `message` event's data.
    fn next_message(&mut self) -> Value {
        self.next("message")
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn webhooks_tls_mqtt_and_the_live_stream() {
    let port = free_port_run(2);
    let (http, mqtts) = (port, port + 1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A certificate for localhost, made by openssl.
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(d)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "{out:?}");
    std::fs::create_dir(d.join("site")).unwrap();
    std::fs::write(d.join("site/index.html"), "hi").unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "hooks"
shutdown_grace = "1s"

[gateway]
listen = "127.0.0.1:{http}"

[[gateway.route]]
path = "/"
static = "site"

# The stands' page reads stored messages, and nothing else.
[[gateway.route]]
path = "/stand-api"
api = ["messages:read"]
auth = "token"

[ingest.hooks]
webhook = {{ path = "/hooks/stands" }}
classify = "/type"
device = 1
max_payload = 200
key = "/seq"

[ingest.secure]
mqtt = {{ listen = "127.0.0.1:{mqtts}", auth = "anonymous", tls = {{ cert = "cert.pem", key = "key.pem" }} }}
topics = ["+/inbound"]
"#
        ),
    )
    .unwrap();
    // A device's token, from a user of its own.
    let added = crate::run_with_input(
        d,
        &["user", "add", "robot", "--password-stdin"],
        "robot-password\n",
    );
    assert_eq!(parts(&added).0, 0, "{:?}", parts(&added));
    let (code, token, err) = parts(&run_in(d, &["token", "create", "robot"]));
    assert_eq!(code, 0, "{err}");
    let mut berth = up(d).await;
    let bearer = format!("Authorization: Bearer {}", token.trim());
    let mut stream = Events::open(d, "?ingest=hooks");

    let url = format!("http://127.0.0.1:{http}/hooks/stands/s7/inbound");
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let (status, body) = curl(&["-X", "POST", "-d", r#"{"type":"status"}"#, &url]);
    assert_eq!(status, "401", "no token: {body}");
    let (status, body) = curl(&["-H", &bearer, &url]);
    assert_eq!(status, "405", "GET: {body}");
    let (status, body) = curl(&["-H", &bearer, "-d", r#"{"type":"status","t":21.5}"#, &url]);
    assert_eq!(status, "202", "{body}");
    let stored: Value = serde_json::from_str(&body).unwrap();
    let (status, body) = curl(&["-H", &bearer, "-d", "{not json", &url]);
    assert_eq!(status, "422", "{body}");
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert!(
        refused["errors"][0].as_str().unwrap().contains("not JSON"),
        "{refused}"
    );
    let big = format!(r#"{{"type":"status","pad":"{}"}}"#, "x".repeat(400));
    let (status, body) = curl(&["-H", &bearer, "-d", &big, &url]);
    assert_eq!(status, "413", "{body}");

    // The stream showed both, in order, as stored.
    let first = stream.next_message();
    assert_eq!(first["id"], stored["id"]);
    assert_eq!(
        (&first["device"], &first["kind"], &first["topic"]),
        (
            &Value::from("s7"),
            &Value::from("status"),
            &Value::from("s7/inbound")
        )
    );
    let second = stream.next_message();
    assert_eq!(
        (second["id"].clone(), second["dead"].clone()),
        (refused["id"].clone(), Value::Bool(true))
    );

    // MQTT over TLS: refused without the CA, taken with it.
    let mqtt = |extra: &[&str]| {
        Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-p", &mqtts.to_string(), "-q", "1"])
            .args(["-t", "s8/inbound", "-m", r#"{"seq":8}"#])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let refused = mqtt(&["--capath", "/nonexistent"]);
    assert!(!refused.status.success(), "{refused:?}");
    let ca = d.join("cert.pem");
    let ok = mqtt(&["--cafile", ca.to_str().unwrap()]);
    assert!(ok.status.success(), "{ok:?}");
    let over_tls = messages(d, &["list", "--ingest", "secure"]).await;
    assert_eq!(over_tls.len(), 1, "{over_tls:?}");
    assert_eq!(over_tls[0]["topic"], "s8/inbound");

    // A resend: the same `/seq` from the same device is taken once (answered 200,
    // naming the first); an Idempotency-Key takes the place of the payload's key.
    let body5 = r#"{"type":"result","seq":5}"#;
    let (status, body) = curl(&["-H", &bearer, "-d", body5, &url]);
    assert_eq!(status, "202", "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let (status, body) = curl(&["-H", &bearer, "-d", body5, &url]);
    assert_eq!(status, "200", "{body}");
    let again: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["id"], first["id"]);
    let other_device = url.replace("/s7/", "/s9/");
    let (status, body) = curl(&["-H", &bearer, "-d", body5, &other_device]);
    assert_eq!(status, "202", "another device's seq 5: {body}");
    let keyed = |seq: u32| {
        curl(&[
            "-H",
            &bearer,
            "-H",
            "Idempotency-Key: order-77",
            "-d",
            &format!(r#"{{"type":"result","seq":{seq}}}"#),
            &url,
        ])
    };
    let (status, body) = keyed(6);
    assert_eq!(status, "202", "{body}");
    let (status, body) = keyed(7);
    assert_eq!(status, "200", "the same Idempotency-Key: {body}");
    let id = first["id"].to_string();
    let (code, shown, err) = parts(&run_in(d, &["--json", "messages", "show", &id]));
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["duplicates"], 1, "{shown}");
    let (_, text, _) = parts(&run_in(d, &["messages", "show", &id]));
    assert!(text.contains("duplicates: 1 resent"), "{text}");
    let results = messages(d, &["list", "--ingest", "hooks", "--kind", "result"]).await;
    assert_eq!(results.len(), 3, "{results:?}");

    // A read-only slice of the API for the app's page: reads what its scope names,
    // changes nothing.
    let api = |path: &str| format!("http://127.0.0.1:{http}/stand-api{path}");
    let (status, body) = curl(&["-H", &bearer, &api("/v1/messages?kind=result&limit=10")]);
    assert_eq!(status, "200", "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["messages"].as_array().unwrap().len(), 3, "{listed}");
    let (status, body) = curl(&["-H", &bearer, &api("/v1/messages/counts")]);
    assert_eq!(status, "200", "{body}");
    let (status, body) = curl(&[
        "-H",
        &bearer,
        "-X",
        "POST",
        &api(&format!("/v1/messages/{id}/replay")),
    ]);
    assert_eq!(status, "405", "{body}");
    for path in [
        "/v1/jobs",
        "/v1/status",
        "/v1/messages/stream",
        "/v1/reload",
    ] {
        let (status, body) = curl(&["-H", &bearer, &api(path)]);
        assert_eq!(status, "403", "{path}: {body}");
    }
    let (status, _) = curl(&[&api("/v1/messages")]);
    assert_eq!(status, "401", "the route's auth holds");
    // A token with API scopes is for the API only: no login on gateway routes.
    let (code, scoped, err) = parts(&run_in(
        d,
        &["token", "create", "robot", "--scope", "jobs:work:thumbs"],
    ));
    assert_eq!(code, 0, "{err}");
    let scoped_bearer = format!("Authorization: Bearer {}", scoped.trim());
    let (status, body) = curl(&["-H", &scoped_bearer, &api("/v1/messages")]);
    assert_eq!(status, "401", "{body}");
    let (status, body) = curl(&["-H", &bearer, &api("/metrics")]);
    assert_eq!(status, "403", "{body}");
    drop(stream);
    stop(&mut berth);
}

/// A workflow step of the import below: reads the file named in the workflow's input,
/// waits for `gate` when the name says "slow", fails for names with "bad".
const STEP: &str = r#"import json, os, sys, time
args = json.load(sys.stdin)
path = args["input"]["file"]
name = os.path.basename(path)
with open("started.log", "a") as f:
    f.write("%s %s\n" % (os.environ["BERTH_WORKFLOW_STEP"], name))
if "slow" in name:
    while not os.path.exists("gate"):
        time.sleep(0.05)
if "bad" in name:
    sys.exit("row 3 of %s: not a number" % name)
open(path).read()
"#;

/// A dropped file starts a workflow: done when it completes, in `error` with each
/// failed step's error when it fails, and one workflow per file across a `kill -9`.
#[tokio::test]
async fn dropped_files_start_workflows_once_even_across_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("step.py"), STEP).unwrap();
    std::fs::write(
        d.join("berth.toml"),
        r#"[app]
name = "imports"
shutdown_grace = "1s"
lease_ttl = "2s"

[workflow.import.step.check]
handler = { run = "python3 step.py" }
# The attempt a kill -9 cut short counts as failed and runs again.
max_attempts = 2

[workflow.import.step.load]
parents = ["check"]
handler = { run = "python3 step.py" }

[ingest.imports]
dir = { watch = "import", pattern = "*.csv", settle = "200ms" }
workflow = "import"
"#,
    )
    .unwrap();
    let (watch, processing, done, error) = (
        d.join("import"),
        d.join("import/processing"),
        d.join("import/done"),
        d.join("import/error"),
    );
    let mut first = up(d).await;
    std::fs::write(watch.join("day1.csv"), "1,2\n").unwrap();
    std::fs::write(watch.join("bad.csv"), "x,y\n").unwrap();
    std::fs::write(watch.join("slow.csv"), "3,4\n").unwrap();
    wait_for_files(&done, &["day1.csv"], Duration::from_secs(20)).await;
    wait_for_files(
        &error,
        &["bad.csv", "bad.csv.error.log"],
        Duration::from_secs(20),
    )
    .await;
    let log = std::fs::read_to_string(error.join("bad.csv.error.log")).unwrap();
    assert!(
        log.contains("workflow: ") && log.contains("(import), failed"),
        "{log}"
    );
    assert!(log.contains("step check: job"), "{log}");
    assert!(log.contains("row 3 of bad.csv: not a number"), "{log}");
    // The notification channels get the file, where it went and its log's end.
    let ev = wait_until("the file_failed event", Duration::from_secs(10), || {
        let d = d.to_path_buf();
        async move {
            let (_, out, _) = parts(&run_in(&d, &["--json", "events", "--source", "ingest"]));
            let v: Value = serde_json::from_str(&out).ok()?;
            v["events"]
                .as_array()?
                .iter()
                .find(|e| e["kind"] == "file_failed")
                .cloned()
        }
    })
    .await;
    let message = ev["message"].as_str().unwrap();
    assert!(
        message.starts_with("bad.csv of ingest imports failed (workflow ")
            && message.contains("bad.csv.error.log")
            && message.contains("row 3 of bad.csv: not a number"),
        "{message}"
    );
    wait_until("the slow file's step", Duration::from_secs(20), || {
        let started = std::fs::read_to_string(d.join("started.log")).unwrap_or_default();
        async move { started.contains("check slow.csv").then_some(()) }
    })
    .await;
    assert_eq!(names(&processing), ["slow.csv"]);
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let mut second = up(d).await;
    std::fs::write(d.join("gate"), "").unwrap();
    wait_for_files(&done, &["day1.csv", "slow.csv"], Duration::from_secs(30)).await;
    assert_eq!(names(&processing), Vec::<String>::new());
    // One workflow per file: the slow one resumed, not started again.
    let (code, out, err) = parts(&run_in(
        d,
        &["--json", "workflow", "list", "--name", "import"],
    ));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let all = v["workflows"].as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        all.iter().all(|w| w["unique_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("file:imports:"))),
        "{all:?}"
    );
    let started = std::fs::read_to_string(d.join("started.log")).unwrap();
    assert_eq!(started.matches("load slow.csv").count(), 1, "{started}");
    stop(&mut second);
}

/// A stand resends a QoS 1 result after a reconnect: with `key = "/seq"` the resend is
/// acknowledged and counted, not stored again, also after berth restarted.
#[tokio::test]
async fn mqtt_resends_with_the_same_key_are_stored_once() {
    let port = free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            r#"[app]
name = "resends"
shutdown_grace = "1s"

[queue.results]
handler = "pull"

[ingest.stands]
mqtt = {{ listen = "127.0.0.1:{port}", auth = "anonymous" }}
topics = ["+/result"]
device = 1
key = "/seq"
key_window = "1h"
job = {{ queue = "results" }}
"#
        ),
    )
    .unwrap();
    let publish = |topic: &str, payload: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", topic, "-m", payload])
            .stdin(Stdio::null())
            .output()
            .expect("run mosquitto_pub");
        assert!(out.status.success(), "{out:?}");
    };
    let mut berth = up(d).await;
    publish("stand01/result", r#"{"seq": 41, "ok": true}"#);
    publish("stand01/result", r#"{"seq": 41, "ok": true}"#);
    publish("stand02/result", r#"{"seq": 41, "ok": false}"#);
    publish("stand01/result", r#"{"seq": 42, "ok": true}"#);
    stop(&mut berth);
    let mut berth = up(d).await;
    publish("stand01/result", r#"{"seq": 41, "ok": true}"#);
    let stored = messages(d, &["list", "--ingest", "stands"]).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    let first = stored
        .iter()
        .find(|m| m["device"] == "stand01" && m["payload"]["seq"] == 41)
        .unwrap();
    assert_eq!(first["duplicates"], 2, "{first}");
    // One job per stored message, none for the resends.
    let (code, out, err) = parts(&run_in(d, &["--json", "job", "list", "--queue", "results"]));
    assert_eq!(code, 0, "{err}");
    let jobs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 3, "{jobs}");
    stop(&mut berth);
}
