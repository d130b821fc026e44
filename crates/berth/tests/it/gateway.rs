//! The gateway under `berth up`: a service's instances behind TLS, static files beside
//! them, forged identity headers stripped, counts in `berth gateway`, lines in the
//! access log; and an instance killed under load without a failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_testkit::{Project, wait_until};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::Value;

use crate::{curl, parts, run_in, run_with_input, stop, up};

/// A tiny app server: answers every GET with JSON naming its port and the headers it got.
const APP: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"port": int(sys.argv[1]), "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

fn project(port: u16, instances: u32, gateway: &str) -> Project {
    let p = Project::new(&format!(
        "[app]\nname = \"gw\"\nshutdown_grace = \"2s\"\n\n\
         [service.api]\ncommand = \"exec python3 app.py {{port}}\"\nport = {port}\ninstances = {instances}\n\
         ready = {{ tcp = true, interval = \"100ms\" }}\nstop_grace = \"1s\"\n\n{gateway}\n"
    ));
    std::fs::write(p.dir().join("app.py"), APP).unwrap();
    std::fs::create_dir_all(p.dir().join("dist")).unwrap();
    std::fs::write(p.dir().join("dist/index.html"), "<h1>app</h1>").unwrap();
    p
}

async fn running(p: &Project, n: usize) -> Value {
    let c = p.client();
    wait_until("the api instances running", Duration::from_secs(20), || {
        let c = c.clone();
        async move {
            let v = c.get_json("/v1/services").await.ok()?;
            let up = v["services"]
                .as_array()?
                .iter()
                .filter(|s| s["service"] == "api" && s["state"] == "running")
                .count();
            (up == n).then_some(v)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_behind_tls_with_static_files_beside_it() {
    let port = berth_testkit::free_port_run(4);
    let (https, http) = (port + 2, port + 3);
    let p = project(
        port,
        2,
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:{https}\"\ntls = \"self-signed\"\nhttp = \"127.0.0.1:{http}\"\n\n\
             [[gateway.route]]\npath = \"/\"\nstatic = \"dist\"\nspa = true\n\n\
             [[gateway.route]]\npath = \"/api\"\nservice = \"api\"\nstrip_prefix = true\n"
        ),
    );
    let (code, out, err) = parts(&run_in(p.dir(), &["check"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("gateway on 127.0.0.1:{https} with 2 routes")),
        "{out}"
    );

    let mut child = up(p.dir()).await;
    running(&p, 2).await;
    let ca = p.data_dir().join("tls/self-signed.crt");
    let ca = ca.to_str().unwrap();
    let base = format!("https://localhost:{https}");
    assert_eq!(
        curl(&["--cacert", ca, &format!("{base}/deep/link")]),
        ("200".into(), "<h1>app</h1>".into())
    );
    let mut ports = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let (code, body) = curl(&[
            "--cacert",
            ca,
            "-H",
            "X-Berth-User: root",
            &format!("{base}/api/hello?x=1"),
        ]);
        assert_eq!(code, "200", "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["path"], "/hello?x=1");
        assert_eq!(v["headers"]["x-forwarded-proto"], "https");
        assert!(
            v["headers"].get("x-berth-user").is_none(),
            "forged identity reached the service: {v}"
        );
        ports.insert(v["port"].as_u64().unwrap());
    }
    assert_eq!(ports.len(), 2, "both instances served: {ports:?}");
    // Plain HTTP is redirected.
    let (code, _) = curl(&["-o", "/dev/null", &format!("http://localhost:{http}/x")]);
    assert_eq!(code, "308");

    let (code, out, err) = parts(&run_in(p.dir(), &["gateway"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("listening on https://127.0.0.1:{https}")),
        "{out}"
    );
    let api_row = out
        .lines()
        .find(|l| l.starts_with("/api"))
        .expect("an /api row");
    let cells: Vec<&str> = api_row.split_whitespace().collect();
    assert_eq!(&cells[..4], ["/api", "proxy", "4", "4"], "{out}");
    let log = wait_until("access log lines", Duration::from_secs(5), || async {
        std::fs::read_to_string(p.data_dir().join("logs/access.log"))
            .ok()
            .filter(|l| l.lines().count() >= 5)
    })
    .await;
    assert!(log.contains("\"GET /api/hello?x=1 HTTP/2.0\" 200"), "{log}");
    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_costs_no_request() {
    let port = berth_testkit::free_port_run(4);
    let listen = port + 3;
    let p = project(
        port,
        3,
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:{listen}\"\naccess_log = \"off\"\n\n\
             [[gateway.route]]\nservice = \"api\"\n"
        ),
    );
    let mut child = up(p.dir()).await;
    let services = running(&p, 3).await;
    let victim = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "api" && s["instance"] == 1)
        .and_then(|s| s["pid"].as_i64())
        .expect("instance 1's pid");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let done = Arc::new(AtomicUsize::new(0));
    let mut loads = Vec::new();
    for _ in 0..8 {
        let (client, done) = (client.clone(), done.clone());
        let url = format!("http://127.0.0.1:{listen}/load");
        loads.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..100 {
                match client.get(url.parse().unwrap()).await {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.into_body().collect().await;
                    }
                    Ok(r) => {
                        let status = r.status();
                        let body = r
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        failures.push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                    }
                    Err(e) => failures.push(e.to_string()),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    wait_until("200 requests done", Duration::from_secs(30), || async {
        (done.load(Ordering::Relaxed) >= 200).then_some(())
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut failures = Vec::new();
    for l in loads {
        failures.extend(l.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of 800 failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // The supervisor brings it back, and the gateway uses it again.
    running(&p, 3).await;
    stop(&mut child);
}

/// A rolling restart with a spare port: the new process is ready before the old one
/// stops, and the gateway sends every request to a ready one. The old process finishes
/// slowly (as gunicorn does on SIGTERM), which is when requests once got 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_costs_no_request() {
    let port = berth_testkit::free_port_run(3);
    let listen = port + 2;
    let p = Project::new(&format!(
        "[app]\nname = \"gw\"\nshutdown_grace = \"2s\"\n\n\
         [service.api]\ncommand = \"exec python3 app.py {{port}}\"\nports = \"{port}-{}\"\n\
         ready = {{ tcp = true, interval = \"100ms\" }}\nstop_grace = \"5s\"\n\n\
         [gateway]\nlisten = \"127.0.0.1:{listen}\"\naccess_log = \"off\"\n\n\
         [[gateway.route]]\nservice = \"api\"\n",
        port + 1
    ));
    // On SIGTERM the app goes on serving for a second, then exits.
    let graceful = APP.replace(
        "ThreadingHTTPServer(",
        "import os, signal, threading\n\
         signal.signal(signal.SIGTERM, lambda *a: threading.Timer(1.0, lambda: os._exit(0)).start())\n\
         ThreadingHTTPServer(",
    );
    std::fs::write(p.dir().join("app.py"), graceful).unwrap();
    let mut child = up(p.dir()).await;
    running(&p, 1).await;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let mut loads = Vec::new();
    for _ in 0..4 {
        let (client, stop_load, done) = (client.clone(), stop_load.clone(), done.clone());
        let url = format!("http://127.0.0.1:{listen}/load");
        loads.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut ports = std::collections::BTreeSet::new();
            while !stop_load.load(Ordering::Relaxed) {
                match client.get(url.parse().unwrap()).await {
                    Ok(r) => {
                        let status = r.status();
                        let body = r
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if status == 200 {
                            let v: Value = serde_json::from_slice(&body).unwrap();
                            ports.insert(v["port"].as_u64().unwrap());
                        } else {
                            failures.push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                        }
                    }
                    Err(e) => failures.push(e.to_string()),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failures, ports)
        }));
    }
    for _ in 0..3 {
        let dir = p.dir().to_path_buf();
        let (code, out, err) =
            tokio::task::spawn_blocking(move || parts(&run_in(&dir, &["restart", "api"])))
                .await
                .unwrap();
        assert_eq!(code, 0, "{out}{err}");
    }
    // Past the last old process's slow stop, too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_load.store(true, Ordering::Relaxed);
    let (mut failures, mut ports) = (Vec::new(), std::collections::BTreeSet::new());
    for l in loads {
        let (f, p) = l.await.unwrap();
        failures.extend(f);
        ports.extend(p);
    }
    let total = done.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(ports.len(), 2, "both ports served in turn: {ports:?}");
    stop(&mut child);
}

/// Runs `berth ARGS` in `dir` with `input` on stdin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_tokens_from_the_command_line_open_guarded_routes() {
    let port = berth_testkit::free_port_run(4);
    let listen = port + 3;
    let p = project(
        port,
        1,
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:{listen}\"\n\n\
             [[gateway.route]]\npath = \"/api\"\nservice = \"api\"\nauth = \"token\"\nroles = [\"robot\"]\n\n\
             [[gateway.route]]\npath = \"/app\"\nservice = \"api\"\nauth = \"login\"\n"
        ),
    );
    // Users and tokens can be set up before berth first runs.
    let (code, out, err) = parts(&run_with_input(
        p.dir(),
        &["user", "add", "ci", "--role", "robot", "--password-stdin"],
        "ci-password-1\n",
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("added user `ci` with the role `robot`"),
        "{out}"
    );
    let (code, _, err) = parts(&run_with_input(
        p.dir(),
        &["user", "add", "ci"],
        "another-password\n",
    ));
    assert_eq!(code, 5, "a second `ci` is a conflict: {err}");
    assert!(err.contains("exists already"), "{err}");
    let (code, _, err) = parts(&run_with_input(
        p.dir(),
        &["user", "add", "short"],
        "1234\n",
    ));
    assert_eq!(code, 6, "an invalid argument: {err}");
    assert!(err.contains("at least 8 characters"), "{err}");
    let (code, _, err) = parts(&run_with_input(
        p.dir(),
        &["user", "passwd", "nobody"],
        "whatever-1\n",
    ));
    assert_eq!(code, 4, "{err}");
    let (code, _, err) = parts(&run_with_input(
        p.dir(),
        &["user", "add", "alice"],
        "alice-password\n",
    ));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = parts(&run_in(p.dir(), &["user", "list"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ci") && out.contains("robot") && out.contains("alice"),
        "{out}"
    );

    let (code, secret, err) = parts(&run_in(
        p.dir(),
        &["token", "create", "ci", "--label", "deploys"],
    ));
    assert_eq!(code, 0, "{err}");
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("berth_"), "{secret}");
    let id = err
        .split_whitespace()
        .nth(1)
        .expect("the token's id")
        .to_owned();
    assert!(id.starts_with("tok_"), "{err}");
    let (_, alice_token, _) = parts(&run_in(p.dir(), &["token", "create", "alice"]));

    let mut child = up(p.dir()).await;
    running(&p, 1).await;
    let base = format!("http://127.0.0.1:{listen}");
    let bearer = format!("Authorization: Bearer {secret}");
    let (code, body) = curl(&["-H", &bearer, &format!("{base}/api/x")]);
    assert_eq!(code, "200", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-berth-user"], "ci");
    // alice's token is valid but she lacks the role.
    let alice = format!("Authorization: Bearer {}", alice_token.trim());
    assert_eq!(curl(&["-H", &alice, &format!("{base}/api/x")]).0, "403");
    // The login route takes a CLI-made user's password.
    let jar = p.dir().join("jar.txt");
    let jar = jar.to_str().unwrap();
    let (code, _) = curl(&[
        "-c",
        jar,
        "--data-urlencode",
        "user=alice",
        "--data-urlencode",
        "password=alice-password",
        &format!("{base}/_berth/login"),
    ]);
    assert_eq!(code, "303");
    assert_eq!(curl(&["-b", jar, &format!("{base}/app/y")]).0, "200");

    let (code, out, _) = parts(&run_in(p.dir(), &["token", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("deploys"), "{out}");
    let (code, _, err) = parts(&run_in(p.dir(), &["token", "revoke", &id]));
    assert_eq!(code, 0, "{err}");
    let c = bearer.clone();
    wait_until("the revoked token refused", Duration::from_secs(10), || {
        let c = c.clone();
        let url = format!("{base}/api/x");
        async move { (curl(&["-H", &c, &url]).0 == "401").then_some(()) }
    })
    .await;
    let (code, _, _) = parts(&run_in(p.dir(), &["user", "remove", "alice"]));
    assert_eq!(code, 0);
    let (code, _, err) = parts(&run_in(p.dir(), &["user", "remove", "alice"]));
    assert_eq!(code, 4, "{err}");
    stop(&mut child);
}

/// Waits until the store holds `spent` (millionths) as budget `nlu`'s spending.
async fn spent_stored(p: &Project, spent: i64) {
    let store = berth_store::SqliteStore::open(&p.db_path(), Default::default()).unwrap();
    wait_until("the spending stored", Duration::from_secs(10), || async {
        let stored = berth_store::BudgetStore::budgets(&store).await.ok()?;
        stored
            .iter()
            .any(|(n, s)| n == "nlu" && s.spent == spent)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_is_enforced_listed_and_reset_from_the_command_line() {
    let port = berth_testkit::free_port_run(4);
    let listen = port + 3;
    let p = project(
        port,
        1,
        &format!(
            "[budget.nlu]\nlimit = 0.004\nperiod = \"month\"\ncost_per_request = 0.002\n\n\
             [gateway]\nlisten = \"127.0.0.1:{listen}\"\naccess_log = \"off\"\n\n\
             [[gateway.route]]\npath = \"/api\"\nservice = \"api\"\nbudget = \"nlu\"\n"
        ),
    );
    let mut child = up(p.dir()).await;
    running(&p, 1).await;
    let url = format!("http://127.0.0.1:{listen}/api/ask");
    assert_eq!(curl(&[&url]).0, "200");
    assert_eq!(curl(&[&url]).0, "200");
    let (code, body) = curl(&[&url]);
    assert_eq!(code, "402", "{body}");
    assert!(
        body.contains("\"budget\":\"nlu\"") && body.contains("resets_at"),
        "{body}"
    );
    // `budget list` shows what the gateway counts at once; the spending reaches the
    // store within a second.
    let (_, listed, _) = parts(&run_in(p.dir(), &["budget", "list"]));
    assert!(
        listed.contains("nlu")
            && listed.contains("0.004")
            && listed.contains("month")
            && listed.contains("100.0%"),
        "{listed}"
    );
    spent_stored(&p, 4_000).await;
    let (code, out, err) = parts(&run_in(p.dir(), &["budget", "reset", "nlu"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("starts over"), "{out}");
    wait_until(
        "the reset seen by the gateway",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move { (curl(&[&url]).0 == "200").then_some(()) }
        },
    )
    .await;
    let (code, _, err) = parts(&run_in(p.dir(), &["budget", "reset", "nope"]));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("expected one of: nlu"), "{err}");
    // Spent again, then, once the spending is stored (charges still in flight when a
    // reset lands count after it), reset through the API as the dashboard's button does.
    assert_eq!(curl(&[&url]).0, "200");
    assert_eq!(curl(&[&url]).0, "402");
    spent_stored(&p, 4_000).await;
    let reset = p
        .client()
        .post_json("/v1/budgets/nlu/reset", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(reset["reset"], "nlu", "{reset}");
    wait_until(
        "the API's reset seen by the gateway",
        Duration::from_secs(10),
        || {
            let url = url.clone();
            async move { (curl(&[&url]).0 == "200").then_some(()) }
        },
    )
    .await;
    let unknown = p
        .client()
        .post_json("/v1/budgets/nope/reset", serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("the budgets are: nlu"), "{unknown}");
    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_mode_from_the_command_line() {
    let port = berth_testkit::free_port_run(4);
    let listen = port + 3;
    let p = project(
        port,
        1,
        &format!(
            "[gateway]\nlisten = \"127.0.0.1:{listen}\"\naccess_log = \"off\"\n\n\
             [[gateway.route]]\nservice = \"api\"\n"
        ),
    );
    let mut child = up(p.dir()).await;
    running(&p, 1).await;
    let url = format!("http://127.0.0.1:{listen}/x");
    assert_eq!(curl(&[&url]).0, "200");
    let (code, out, err) = parts(&run_in(
        p.dir(),
        &["maintenance", "on", "--message", "Upgrading the database."],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("maintenance mode is on"), "{out}");
    let page = wait_until("the maintenance page", Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let (code, body) = curl(&["-H", "Accept: text/html", &url]);
            (code == "503").then_some(body)
        }
    })
    .await;
    assert!(page.contains("Upgrading the database."), "{page}");
    let (_, out, _) = parts(&run_in(p.dir(), &["maintenance", "status"]));
    assert!(
        out.starts_with("on since") && out.contains("Upgrading"),
        "{out}"
    );
    let (code, _, _) = parts(&run_in(p.dir(), &["maintenance", "off"]));
    assert_eq!(code, 0);
    wait_until("service again", Duration::from_secs(10), || {
        let url = url.clone();
        async move { (curl(&[&url]).0 == "200").then_some(()) }
    })
    .await;
    let (_, out, _) = parts(&run_in(p.dir(), &["maintenance", "status"]));
    assert_eq!(out.trim(), "off");
    stop(&mut child);
}

/// The access log rotates by size under load, between two lines: 12,000 requests from
/// eight clients at once, each line found exactly once across `access.log` and its
/// rotated files, none larger than the limit, nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_rotates_under_load_without_losing_a_line() {
    let listen = berth_testkit::free_port_run(1);
    let p = Project::new(&format!(
        "[app]\nname = \"rot\"\nshutdown_grace = \"2s\"\n\n\
         [gateway]\nlisten = \"127.0.0.1:{listen}\"\n\
         access_log_max_size = \"64KiB\"\naccess_log_keep = 100\n\n\
         [[gateway.route]]\npath = \"/\"\nstatic = \"dist\"\n"
    ));
    std::fs::create_dir_all(p.dir().join("dist")).unwrap();
    std::fs::write(p.dir().join("dist/index.html"), "<h1>app</h1>").unwrap();
    let mut child = up(p.dir()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    const CLIENTS: usize = 8;
    const EACH: usize = 1500;
    let mut loads = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        loads.push(tokio::spawn(async move {
            for i in 0..EACH {
                let url = format!("http://127.0.0.1:{listen}/index.html?n={}", c * EACH + i);
                let r = client
                    .get(url.parse().unwrap())
                    .await
                    .expect("the gateway answers");
                assert_eq!(r.status(), 200);
                let _ = r.into_body().collect().await;
            }
        }));
    }
    for l in loads {
        l.await.unwrap();
    }
    // A graceful stop writes every line the log holds.
    stop(&mut child);
    let logs = p.data_dir().join("logs");
    let mut seen = vec![0u32; CLIENTS * EACH];
    let mut files = 0;
    for e in std::fs::read_dir(&logs).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("access.log") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= 64 * 1024, "{name} is {} bytes", text.len());
        assert!(!text.contains("dropped"), "{name}: lines were dropped");
        for line in text.lines() {
            let n: usize = line
                .split("?n=")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: a line without its request: {line:?}"));
            seen[n] += 1;
        }
    }
    assert!(files > 10, "the log rotated: {files} files");
    let wrong: Vec<usize> = (0..seen.len()).filter(|&n| seen[n] != 1).collect();
    assert!(
        wrong.is_empty(),
        "requests not logged exactly once: {:?}",
        &wrong[..wrong.len().min(20)]
    );
}
