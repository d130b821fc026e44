//! `berth deploy`, `berth rollback` and `berth releases` as a team runs them: a real git
//! repository made here, a Python app (the standard library's HTTP server) behind the
//! gateway, `run` jobs and a workflow, and a throwaway PostgreSQL cluster as the app's
//! own database, migrated by `psql`.
//!
//! - The first deploy while berth is down; `berth up` starts the app on it.
//! - A deploy under load: requests through the gateway all the while, `run` jobs, a
//!   workflow and a pull worker (a supervised service, stopped gracefully by the roll)
//!   in flight: no request fails, every job runs exactly once.
//! - A second deploy while one builds is refused.
//! - A release whose app comes up on one instance and not the next is rolled back by
//!   itself (both instances back on the old release), and the database is put back as
//!   it was before its migration; so is one whose migration fails half-way.
//! - `berth rollback` to an older release.
//! - `kill -9` of berth during the health gate, then `berth up`: one whole release runs
//!   (the previous one), and `berth releases` says what happened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_testkit::{Project, free_port_run, wait_until};
use serde_json::{Value, json};

use crate::{berth, parts, run_in, stop, up_with_env};

const APP_PY: &str = r#"import http.server, os, signal, sys, threading
port = int(sys.argv[1])
version = open("VERSION").read().strip()
if os.path.exists("BROKEN"):
    # Half broken: the first process of this release runs, the next ones do not.
    try:
        os.open("started-once", os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        sys.exit("this release is broken")

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection ends after a second: a graceful stop waits for the
    # requests in flight, not for the gateway's pooled connections.
    timeout = 1
    def do_GET(self):
        body = (version + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class S(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

s = S(("127.0.0.1", port), H)
# A graceful stop: no new connections, the requests in flight answered.
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=s.shutdown).start())
s.serve_forever()
s.server_close()
"#;

/// A pull worker of the standard library: leases from berth's API over its unix socket,
/// and on SIGTERM finishes the job in hand, then stops.
const WORKER_PY: &str = r#"import http.client, json, os, signal, socket, sys, time
sock, log = os.environ["BERTH_SOCK"], sys.argv[1]
version = open("VERSION").read().strip()

class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sock)

def call(path, body):
    c = C("localhost", timeout=30)
    c.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return json.loads(data or b"null")

stopping = False
def stop(*a):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, stop)
while not stopping:
    for j in call("/v1/queues/pulled/lease", {"worker": "w%d" % os.getpid(), "wait": "1s"})["jobs"]:
        time.sleep(0.1)
        with open(log, "a") as f:
            f.write("%d %s\n" % (j["id"], version))
        call("/v1/jobs/%d/complete" % j["id"], {"attempt": j["attempt"]})
"#;

const JOB_SH: &str = r#"sleep 0.2
echo "$BERTH_JOB_ID $(cat VERSION)" >> "$1"
"#;

const MIGRATE_SH: &str = r#"psql "$SHOP_DB" -v ON_ERROR_STOP=1 -q -f migration.sql
"#;

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(repo)
        .args(args)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.org")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.org")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `files` (an empty text removes the file) and commits them.
fn commit(repo: &Path, files: &[(&str, &str)], message: &str) {
    for (name, text) in files {
        let path = repo.join(name);
        if text.is_empty() {
            let _ = std::fs::remove_file(&path);
        } else {
            std::fs::write(&path, text).unwrap();
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

fn migration(statements: &[&str]) -> String {
    let mut s =
        String::from("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, total int);\n");
    for st in statements {
        s.push_str(st);
        s.push('\n');
    }
    s
}

fn config(gw: u16, web: u16, db: &str, log: &Path, health: &str, build: &str) -> String {
    format!(
        r#"[app]
name = "shop"
shutdown_grace = "5s"

[gateway]
listen = "127.0.0.1:{gw}"

[[gateway.route]]
service = "web"

[service.web]
command = "python3 app.py {{port}}"
instances = 2
ports = "{web}-{last}"
ready = {{ http = "/" }}
stop_grace = "5s"

[queue.work]
handler = {{ run = "sh job.sh {log}" }}
concurrency = 2

[service.worker]
command = "python3 worker.py {log}"
env = {{ BERTH_SOCK = "{sock}" }}
stop_grace = "5s"

[queue.pulled]
handler = "pull"

[workflow.pipe.step.first]
handler = {{ run = "sh job.sh {log}" }}

[workflow.pipe.step.second]
parents = ["first"]
handler = {{ run = "sh job.sh {log}" }}

[backup.database.shop]
postgres = "{db}"

[deploy]
repo = "app"
ref = "main"
build = [{build}]
migrate = "sh migrate.sh"
restore_on_rollback = true
health = "{health}"
smoke = "curl -fsS http://127.0.0.1:{gw}/"
"#,
        last = web + 3,
        log = log.display(),
        sock = log.with_file_name(".berth/berth.sock").display(),
    )
}

/// Requests made, those that failed, and the versions seen in order.
type Tally = (u32, Vec<String>, Vec<String>);

/// Requests through the gateway until told to stop: how many, which failed, and the
/// versions seen in order.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Tally>>,
}

impl Load {
    fn start(url: String, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http::<http_body_util::Empty<bytes::Bytes>>();
                    let (mut n, mut failed, mut seen) = (0u32, Vec::new(), Vec::<String>::new());
                    while !stop.load(Ordering::Acquire) {
                        n += 1;
                        match client.get(url.parse().unwrap()).await {
                            Ok(r) => {
                                let status = r.status();
                                let body = http_body_util::BodyExt::collect(r.into_body())
                                    .await
                                    .map(|b| {
                                        String::from_utf8_lossy(&b.to_bytes()).trim().to_owned()
                                    })
                                    .unwrap_or_else(|e| format!("body cut: {e}"));
                                if status != 200 {
                                    failed.push(format!("{status}: {body}"));
                                } else if seen.last() != Some(&body) {
                                    seen.push(body);
                                }
                            }
                            Err(e) => failed.push(format!("{e:?}")),
                        }
                    }
                    (n, failed, seen)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Ends the load and checks that no request failed (saying what happened if one did).
    async fn none_failed(self, dir: &Path) -> (u32, Vec<String>) {
        let (n, seen, _) = self.none_failed_but(dir, None).await;
        (n, seen)
    }

    /// As [`Load::none_failed`], but answers containing `allowed` do not count as
    /// failures: how many there were.
    async fn none_failed_but(self, dir: &Path, allowed: Option<&str>) -> (u32, Vec<String>, usize) {
        let (n, mut failed, seen) = self.end().await;
        let before = failed.len();
        if let Some(a) = allowed {
            failed.retain(|f| !f.contains(a));
        }
        let excused = before - failed.len();
        if !failed.is_empty() {
            let ps = parts(&run_in(dir, &["ps"])).1;
            let log = std::fs::read_to_string(dir.join("berth-up.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{} of {n} requests failed, the first: {:?}\nversions seen: {seen:?}\n{ps}\nberth's log, newest first:\n{}",
                failed.len(),
                &failed[..failed.len().min(3)],
                tail.join("\n")
            );
        }
        (n, seen, excused)
    }

    async fn end(self) -> (u32, Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Release);
        let (mut n, mut failed, mut seen) = (0, Vec::new(), Vec::new());
        for t in self.tasks {
            let (a, b, c) = t.await.unwrap();
            n += a;
            failed.extend(b);
            for v in c {
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        (n, failed, seen)
    }
}

async fn versions(url: &str, times: usize) -> Vec<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut out = Vec::new();
    for _ in 0..times {
        let r = client.get(url.parse().unwrap()).await.unwrap();
        let b = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap();
        let v = String::from_utf8_lossy(&b.to_bytes()).trim().to_owned();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn releases(dir: &Path, env: &[(&str, &str)]) -> Value {
    let out = berth()
        .current_dir(dir)
        .args(["--json", "releases"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let (code, out, err) = parts(&out);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn states(v: &Value) -> Vec<String> {
    v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shown_state"].as_str().unwrap().to_owned())
        .collect()
}

fn deploy(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = berth()
        .current_dir(dir)
        .arg("deploy")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    parts(&out)
}

fn columns(cluster: &berth_testkit::pg::PgCluster, db: &str) -> String {
    cluster
        .psql(
            db,
            "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'orders'",
        )
        .trim()
        .to_owned()
}

struct Shop {
    p: Project,
    repo: PathBuf,
    db: String,
    gw: u16,
    log: PathBuf,
}

fn shop(health: &str, build: &str) -> Shop {
    let cluster = berth_testkit::pg::shared();
    let db = cluster.fresh_database();
    let ports = free_port_run(5);
    let (gw, web) = (ports, ports + 1);
    let p = Project::new("[app]\nname = \"shop\"\n");
    let log = p.dir().join("jobs.log");
    p.write_config(&config(gw, web, &db, &log, health, build));
    let repo = p.dir().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(
        &repo,
        &[
            ("app.py", APP_PY),
            ("job.sh", JOB_SH),
            ("worker.py", WORKER_PY),
            ("migrate.sh", MIGRATE_SH),
            ("migration.sql", &migration(&[])),
            ("VERSION", "v1\n"),
        ],
        "v1",
    );
    Shop {
        p,
        repo,
        db,
        gw,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_under_load_roll_back_by_themselves_and_by_hand() {
    let s = shop("1s", "\"python3 -m py_compile app.py\"");
    let cluster = berth_testkit::pg::shared();
    let d = s.p.dir();
    let env = [("SHOP_DB", s.db.as_str())];
    let url = format!("http://127.0.0.1:{}/", s.gw);

    // The first release, while berth is down: built and made current; `berth up`
    // starts the app on it.
    let (code, out, err) = deploy(d, &env, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("berth is not running"), "{out}");
    assert!(out.contains("is live"), "{out}");
    let first = releases(d, &env)["current"].as_str().unwrap().to_owned();
    assert_eq!(columns(cluster, &s.db), "id,total");
    let mut berth = up_with_env(d, &env).await;
    let c = s.p.client();
    wait_until(
        "the app answers through the gateway",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move { (versions(&url, 1).await == ["v1"]).then_some(()) }
        },
    )
    .await;
    cluster.psql(&s.db, "INSERT INTO orders (total) VALUES (10), (20)");

    // v2 under load: requests all the while, jobs and a workflow in flight.
    commit(
        &s.repo,
        &[
            ("VERSION", "v2\n"),
            (
                "migration.sql",
                &migration(&["ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;"]),
            ),
        ],
        "v2: orders get a note",
    );
    let load = Load::start(url.clone(), 4);
    // Run by berth (`run`) and by a pull worker that is a supervised service.
    let jobs: Vec<Value> = (0..40)
        .map(|n| {
            let queue = if n % 4 == 0 { "pulled" } else { "work" };
            json!({"queue": queue, "kind": "deployed", "args": {"n": n}})
        })
        .collect();
    let pushed = c
        .post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
        .await
        .unwrap();
    let mut ids: Vec<i64> = pushed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    let wf = c
        .post_json("/v1/workflows", json!({"name": "pipe"}))
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, out, err) = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        let db = s.db.clone();
        move || deploy(&d, &[("SHOP_DB", db.as_str())], &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    for step in [
        "fetch",
        "build 1/1",
        "backup",
        "migrate",
        "switch",
        "health",
    ] {
        assert!(out.contains(step), "{step} in:\n{out}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (n, seen) = load.none_failed(d).await;
    assert!(n > 50, "only {n} requests");
    assert_eq!(seen.last().map(String::as_str), Some("v2"), "{seen:?}");
    assert_eq!(columns(cluster, &s.db), "id,total,note");
    // Every job ran exactly once, those begun before the switch on v1.
    let wf_ids = wait_until(
        "the jobs and the workflow end",
        Duration::from_secs(30),
        || {
            let c = c.clone();
            async move {
                let w = c.get_json(&format!("/v1/workflows/{wf}")).await.ok()?;
                (w["state"] == "completed").then_some(w)
            }
        },
    )
    .await;
    let steps: Vec<i64> = wf_ids["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["job_id"].as_i64())
        .collect();
    assert_eq!(steps.len(), 2, "{wf_ids}");
    ids.extend(steps);
    let all_done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let text = std::fs::read_to_string(&s.log).unwrap_or_default();
            if text.lines().count() >= ids.len() {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "not every job ran within 30s: {} of {} in the log\n{}\n{}\n{}",
            std::fs::read_to_string(&s.log)
                .unwrap_or_default()
                .lines()
                .count(),
            ids.len(),
            parts(&run_in(d, &["ps"])).1,
            parts(&run_in(d, &["logs", "worker", "-n", "30"])).1,
            parts(&run_in(d, &["status"])).1,
        )
    });
    let mut ran: Vec<i64> = all_done
        .lines()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    ran.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(ran, want, "each job exactly once");
    // `queue show`: what ran, in the last minutes.
    let (code, shown, err) = parts(&run_in(d, &["queue", "show", "work"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        shown.contains("handler:        run: sh job.sh")
            && shown.contains("completed 30")
            && shown.contains("completed:      30 in the last minute"),
        "{shown}"
    );
    assert!(all_done.contains(" v1") || all_done.contains(" v2"));

    // v3: the app does not come up. While it builds, a second deploy is refused; then
    // it is rolled back by itself, and its migration is undone.
    cluster.psql(
        &s.db,
        "INSERT INTO orders (total, note) VALUES (30, 'kept')",
    );
    commit(
        &s.repo,
        &[
            ("VERSION", "v3\n"),
            ("BROKEN", "yes\n"),
            (
                "migration.sql",
                &migration(&[
                    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;",
                    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS extra int;",
                ]),
            ),
        ],
        "v3: broken",
    );
    s.p.write_config(&config(s.gw, s.gw + 1, &s.db, &s.log, "1s", "\"sleep 2\""));
    let (code, _, err) = parts(&run_in(d, &["reload"]));
    assert_eq!(code, 1, "[deploy] changes need a restart: {err}");
    stop(&mut berth);
    let mut berth = up_with_env(d, &env).await;
    wait_until("v2 answers again", Duration::from_secs(20), || {
        let url = url.clone();
        async move { (versions(&url, 1).await == ["v2"]).then_some(()) }
    })
    .await;
    let load = Load::start(url.clone(), 2);
    let bad = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        let db = s.db.clone();
        move || deploy(&d, &[("SHOP_DB", db.as_str())], &[])
    });
    wait_until("the v3 build runs", Duration::from_secs(10), || {
        let d = d.to_path_buf();
        async move {
            states(&releases(&d, &[]))
                .contains(&"building".to_owned())
                .then_some(())
        }
    })
    .await;
    let (code, _, err) = deploy(d, &env, &[]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("a deploy is running: release"), "{err}");
    let (code, out, err) = bad.await.unwrap();
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains("the databases shop were restored"), "{err}");
    // Only the restore's maintenance window answers 503, by design: no request writes
    // into data about to be replaced.
    let (n, seen, maintenance) = load
        .none_failed_but(d, Some("restoring the databases of release"))
        .await;
    assert!(maintenance < n as usize, "{maintenance} of {n}");
    assert!(seen.contains(&"v2".to_owned()), "{seen:?}");
    // The instance that took v3 before the other failed was rolled back too.
    assert_eq!(
        versions(&url, 8).await,
        ["v2"],
        "one release after the rollback"
    );
    assert_eq!(
        columns(cluster, &s.db),
        "id,total,note",
        "v3's migration undone"
    );
    assert_eq!(
        cluster.psql(&s.db, "SELECT count(*) FROM orders").trim(),
        "3",
        "the rows written before v3 are kept"
    );
    let r = releases(d, &env);
    assert_eq!(states(&r), ["previous", "live", "rolled back"], "{r:#}");

    // v4: the migration fails half-way (one column added, then an error).
    commit(
        &s.repo,
        &[
            ("VERSION", "v4\n"),
            ("BROKEN", ""),
            (
                "migration.sql",
                &migration(&[
                    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text;",
                    "ALTER TABLE orders ADD COLUMN half int;",
                    "SELECT no_such_function();",
                ]),
            ),
        ],
        "v4: a bad migration",
    );
    let (code, out, err) = deploy(d, &env, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("migrate") && out.contains("no_such_function"),
        "{out}"
    );
    assert_eq!(
        columns(cluster, &s.db),
        "id,total,note",
        "the half migration undone"
    );
    assert_eq!(versions(&url, 6).await, ["v2"]);

    // By hand, back to the first release, without a build.
    let (code, out, err) = parts(&run_in(d, &["rollback", &first]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(versions(&url, 6).await, ["v1"]);
    let r = releases(d, &env);
    assert_eq!(r["current"], first.as_str());
    assert_eq!(
        states(&r),
        ["live", "rolled back", "rolled back", "rolled back"],
        "{r:#}"
    );
    // The events for notifications.
    let ev = c
        .get_json("/v1/events?source=deploy&limit=100")
        .await
        .unwrap();
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["started", "completed", "failed", "rolled_back"] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    stop(&mut berth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_the_health_gate_leaves_one_whole_release() {
    let s = shop("30s", "\"true\"");
    let d = s.p.dir();
    let env = [("SHOP_DB", s.db.as_str())];
    let url = format!("http://127.0.0.1:{}/", s.gw);
    let (code, out, err) = deploy(d, &env, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let mut berth = up_with_env(d, &env).await;
    wait_until("v1 answers", Duration::from_secs(20), || {
        let url = url.clone();
        async move { (versions(&url, 1).await == ["v1"]).then_some(()) }
    })
    .await;
    commit(&s.repo, &[("VERSION", "v2\n")], "v2");
    let deploying = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        let db = s.db.clone();
        move || deploy(&d, &[("SHOP_DB", db.as_str())], &[])
    });
    // Once v2 serves and its health gate runs, berth dies. (The build and switch before
    // the gate took over 30 s once in CI, beside the browser test on two cores; the gate
    // itself lasts 30 s, so a longer wait still meets it running.) On a timeout, what
    // the release and berth said is in the failure.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let r = releases(d, &[]);
        let last = r["releases"].as_array().and_then(|a| a.last()).cloned();
        let gate = last.as_ref().is_some_and(|l| {
            l["steps"].as_array().is_some_and(|steps| {
                steps
                    .iter()
                    .any(|s| s["name"] == "health" && s["state"] == "running")
            })
        });
        if gate {
            break;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(d.join("berth-up.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "the health gate did not start within 90 s; the last release: {last:#?}\nberth's log, newest first:\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(versions(&url, 4).await, ["v2"]);
    berth.kill().unwrap();
    berth.wait().unwrap();
    let (code, _, _) = deploying.await.unwrap();
    assert_ne!(code, 0, "the deploy's CLI loses its berth");

    // (A shorter gate for the last deploy below.)
    s.p.write_config(&config(s.gw, s.gw + 1, &s.db, &s.log, "1s", "\"true\""));
    let mut berth = up_with_env(d, &env).await;
    wait_until("the app answers again", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            versions(&url, 1)
                .await
                .into_iter()
                .find(|v| v.starts_with('v'))
        }
    })
    .await;
    assert_eq!(
        versions(&url, 8).await,
        ["v1"],
        "one whole release: the previous"
    );
    let r = releases(d, &env);
    assert_eq!(states(&r), ["live", "rolled back"], "{r:#}");
    let last = &r["releases"][1];
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("berth stopped during the deploy, at health"),
        "{last:#}"
    );
    // A new deploy is not refused by a lock the killed berth held.
    let (code, out, err) = deploy(d, &env, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(versions(&url, 4).await, ["v2"]);
    stop(&mut berth);
}

/// Two nodes of one app share a PostgreSQL store, each with its own releases: one deploy
/// at a time across both, and a commit's migration runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_store_deploy_one_at_a_time_and_migrate_once() {
    let store = berth_testkit::pg::shared().fresh_database();
    let shared = tempfile::tempdir().unwrap();
    let repo = shared.path().join("app");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit(&repo, &[("VERSION", "v1\n")], "v1");
    let migrations = shared.path().join("migrations.log");
    let node = |name: &str, build: &str| {
        let p = Project::new(&format!(
            r#"[app]
name = "shop"
store = "{store}"

[deploy]
repo = "{repo}"
ref = "main"
backup = false
build = [{build}]
migrate = "echo $(cat VERSION) {name} >> {log}"
"#,
            repo = repo.display(),
            log = migrations.display(),
        ));
        std::fs::create_dir_all(p.data_dir()).unwrap();
        std::fs::write(p.data_dir().join("node"), format!("{name}\n")).unwrap();
        p
    };
    let (n1, n2) = (node("n1", "\"true\""), node("n2", "\"true\""));
    let (code, out, err) = deploy(n1.dir(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = deploy(n2.dir(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("migrate") && out.contains("skipped") && out.contains("on node n1"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&migrations).unwrap(), "v1 n1\n");

    // While n1 builds v2, n2 is refused; then n2 deploys v2 without migrating again.
    commit(&repo, &[("VERSION", "v2\n")], "v2");
    n1.write_config(
        &std::fs::read_to_string(n1.config_path())
            .unwrap()
            .replace("build = [\"true\"]", "build = [\"sleep 3\"]"),
    );
    let first = tokio::task::spawn_blocking({
        let d = n1.dir().to_path_buf();
        move || deploy(&d, &[], &[])
    });
    wait_until("n1 builds", Duration::from_secs(10), || {
        let d = n1.dir().to_path_buf();
        async move {
            states(&releases(&d, &[]))
                .contains(&"building".to_owned())
                .then_some(())
        }
    })
    .await;
    let (code, _, err) = deploy(n2.dir(), &[], &[]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("a deploy is running: release") && err.contains("on node n1"),
        "{err}"
    );
    let (code, out, err) = first.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = deploy(n2.dir(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("skipped"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&migrations).unwrap(),
        "v1 n1\nv2 n1\n",
        "each commit's migration once"
    );
}

/// Without a git repository: a directory and an archive, `{release}` in a service, a
/// failed build that changes nothing, and a ref with nowhere to take it from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_and_archives_deploy_and_a_failed_build_changes_nothing() {
    let p = Project::new("[app]\nname = \"x\"\n");
    let d = p.dir();
    let out = d.join("seen.txt");
    p.write_config(&format!(
        r#"[app]
name = "files"
shutdown_grace = "2s"

[service.show]
command = "cat {{release}}/VERSION > {out}; exec sleep 1000"

[deploy]
build = ["test -f VERSION"]
backup = false
health = "0s"
"#,
        out = out.display()
    ));
    let build = d.join("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("VERSION"), "dir-1\n").unwrap();

    // A git ref with no repo to take it from.
    let (code, _, err) = deploy(d, &[], &["main"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("neither a directory nor a file, and [deploy] names no `repo`"),
        "{err}"
    );
    assert!(releases(d, &[])["releases"].as_array().unwrap().is_empty());

    let (code, out_text, err) = deploy(d, &[], &["build"]);
    assert_eq!(code, 0, "{out_text}{err}");
    let mut berth = up_with_env(d, &[]).await;
    wait_until(
        "the service ran in the release",
        Duration::from_secs(10),
        || {
            let out = out.clone();
            async move { (std::fs::read_to_string(&out).ok()? == "dir-1\n").then_some(()) }
        },
    )
    .await;

    // An archive, while berth runs: the service rolls onto it.
    std::fs::write(build.join("VERSION"), "tgz-2\n").unwrap();
    let tar = Command::new("tar")
        .current_dir(&build)
        .args(["czf", "../build.tgz", "."])
        .status()
        .unwrap();
    assert!(tar.success());
    let (code, out_text, err) = deploy(d, &[], &["build.tgz"]);
    assert_eq!(code, 0, "{out_text}{err}");
    wait_until(
        "the service runs the archive",
        Duration::from_secs(10),
        || {
            let out = out.clone();
            async move { (std::fs::read_to_string(&out).ok()? == "tgz-2\n").then_some(()) }
        },
    )
    .await;

    // A build that fails: nothing that runs changes.
    std::fs::remove_file(build.join("VERSION")).unwrap();
    let (code, out_text, err) = deploy(d, &[], &["build"]);
    assert_eq!(code, 1, "{out_text}{err}");
    assert!(err.contains("nothing that runs was changed"), "{err}");
    assert!(
        out_text.contains("build 1/1") && out_text.contains("failed"),
        "{out_text}"
    );
    let r = releases(d, &[]);
    assert_eq!(states(&r), ["previous", "live", "failed"], "{r:#}");
    let sources: Vec<&str> = r["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["source"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["dir", "archive", "dir"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "tgz-2\n");
    stop(&mut berth);
}
