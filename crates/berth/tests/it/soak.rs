//! The soak test: a mixed load on one `berth up` over a PostgreSQL store of the test's
//! own (jobs pushed, workflows started, MQTT publishes, proxied HTTP with a budget, a
//! schedule firing every second) while berth, its service and PostgreSQL are killed at
//! random moments. It runs 60 s by default (`BERTH_SOAK_SECS` for hours) and then checks
//! what must hold:
//!
//! - every acknowledged job and workflow completed, every acknowledged message stored;
//! - the budget charged for every answered request, less at most what a `kill -9` may
//!   lose by design (the charges of its last second), and never more;
//! - every planned second of the schedule fired exactly once, none skipped, none twice;
//! - no process left behind after the last stop;
//! - memory and file descriptors back near the first start's.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_testkit::pg::PgCluster;
use berth_testkit::sink::Sink;
use berth_testkit::{Project, wait_until};
use serde_json::json;

use crate::{every_page, fds, mosquitto_pub5, status_kb, stop, up, wait_for_answer};

/// What the load got acknowledged, and when each answered request was answered.
#[derive(Default)]
struct Acked {
    jobs: Vec<i64>,
    workflows: Vec<i64>,
    messages: Vec<u64>,
    /// When each request through the budget's route was answered 200.
    answered: Vec<Instant>,
    /// Every request made there, answered or not (a request is charged once let through,
    /// whatever the service then answers).
    requests: usize,
}

/// The pids of processes whose command line holds `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let out = Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until each of `ids` under `/v1/KIND/` is `completed`.
async fn all_completed(c: &berth_api::client::Client, kind: &str, ids: &[i64]) {
    wait_until(
        &format!("every acknowledged one of the {kind} to complete"),
        Duration::from_secs(120),
        || async {
            for id in ids.iter().rev() {
                let v = c.get_json(&format!("/v1/{kind}/{id}")).await.ok()?;
                if v["state"] != "completed" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// How many TCP connections the process `pid` has established to 127.0.0.1:`port`.
fn established(pid: u32, port: u16) -> usize {
    let ss = Command::new("ss").args(["-tanp"]).output().unwrap();
    String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter(|l| l.starts_with("ESTAB") && l.contains(&format!("pid={pid},")))
        .filter(|l| l.contains(&format!("127.0.0.1:{port} ")))
        .count()
}

fn kill9(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// A small pseudo-random sequence (xorshift), seeded and printed for a rerun.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_load_survives_random_kills_of_berth_its_service_and_postgres() {
    let secs: u64 = std::env::var("BERTH_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed = std::env::var("BERTH_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) * 2_654_435_761 + 1);
    println!("soak: {secs} s, BERTH_SOAK_SEED={seed}");
    let mut dice = Dice(seed);

    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    let sink = Sink::start().await;
    let first = berth_testkit::free_port_run(3);
    let (mqtt, http, web) = (first, first + 1, first + 2);
    // The service is found by this marker, unique to the test: the directory it serves.
    let marker = format!("soak-web-{web}");
    let p = Project::new(&format!(
        "[app]\nname = \"soak\"\nstore = \"{url}\"\nstore_connections = 4\nshutdown_grace = \"2s\"\nlease_ttl = \"4s\"\nleader_ttl = \"3s\"\n\n\
         [queue.tasks]\nhandler = {{ post = \"{sink}\" }}\nconcurrency = 20\n\n\
         [queue.ticks]\nhandler = {{ post = \"{sink}\" }}\n\n\
         [workflow.flow.step.a]\nhandler = {{ post = \"{sink}\" }}\n\
         [workflow.flow.step.b]\nhandler = {{ post = \"{sink}\" }}\nparents = [\"a\"]\n\n\
         [schedule.tick]\ncron = \"* * * * * *\"\njob = {{ queue = \"ticks\", kind = \"tick\" }}\n\
         overlap = \"allow\"\ncatch_up = \"all\"\ncatch_up_limit = 1000\n\n\
         [service.web]\ncommand = \"exec python3 -m http.server {web} --bind 127.0.0.1 --directory {marker}\"\n\
         port = {web}\nready = {{ http = \"/\" }}\n\n\
         [budget.api]\nlimit = 1000000000.0\ncost_per_request = 1.0\n\n\
         [gateway]\nlisten = \"127.0.0.1:{http}\"\n\n\
         [[gateway.route]]\nservice = \"web\"\nbudget = \"api\"\n\n\
         [ingest.dev]\nmqtt = {{ listen = \"127.0.0.1:{mqtt}\", auth = \"anonymous\" }}\n\
         topics = [\"#\"]\nkey = \"/seq\"\n",
        sink = sink.url()
    ));
    std::fs::create_dir_all(p.dir().join(&marker)).unwrap();
    std::fs::write(p.dir().join(&marker).join("index.html"), "hello").unwrap();

    let mut child: Child = up(p.dir()).await;
    wait_for_answer("the service to answer through the gateway", http, "hello").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_base, fds_base) = (status_kb(child.id(), "VmRSS:"), fds(child.id()));
    let others_base = fds_base
        - established(child.id(), sink.addr.port())
        - established(child.id(), cluster.port());
    // The requests made while waiting for the service were charged: the load's count
    // starts from nothing.
    p.client()
        .post_json("/v1/budgets/api/reset", json!({}))
        .await
        .unwrap();

    // The load: each loop counts only what was acknowledged.
    let acked = Arc::new(Mutex::new(Acked::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    {
        let (acked, done, dir) = (acked.clone(), done.clone(), p.dir().to_path_buf());
        load.push(tokio::spawn(async move {
            let c = Project::client_for(&dir);
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"queue": "tasks", "kind": "n", "args": {"i": i}});
                if let Ok(v) = c.post_json("/v1/jobs", body).await
                    && let Some(id) = v["id"].as_i64()
                {
                    acked.lock().unwrap().jobs.push(id);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        let (acked, done, dir) = (acked.clone(), done.clone(), p.dir().to_path_buf());
        load.push(tokio::spawn(async move {
            let c = Project::client_for(&dir);
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                i += 1;
                let body = json!({"name": "flow", "args": {"i": i}});
                if let Ok(v) = c.post_json("/v1/workflows", body).await
                    && let Some(id) = v["id"].as_i64()
                {
                    acked.lock().unwrap().workflows.push(id);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }));
    }
    {
        let (acked, done) = (acked.clone(), done.clone());
        load.push(tokio::task::spawn_blocking(move || {
            let mut seq = 0u64;
            while !done.load(Ordering::Relaxed) {
                seq += 1;
                let out = mosquitto_pub5(mqtt, "stand/1", &format!("{{\"seq\":{seq}}}"), &["-d"]);
                // Acknowledged: a PUBACK with reason code 0 (mosquitto_pub exits 0 on a
                // refusal too, and only warns).
                let said = String::from_utf8_lossy(&out.stdout);
                if out.status.success() && said.contains("received PUBACK (Mid: 1, RC:0)") {
                    acked.lock().unwrap().messages.push(seq);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    {
        let (acked, done) = (acked.clone(), done.clone());
        load.push(tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::Relaxed) {
                let out = Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3"])
                    .arg(format!("http://127.0.0.1:{http}/"))
                    .stdin(Stdio::null())
                    .output()
                    .expect("run curl");
                let mut acked = acked.lock().unwrap();
                acked.requests += 1;
                if out.stdout == b"200" {
                    acked.answered.push(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }));
    }

    // The faults, one at a time, at random moments.
    let started = Instant::now();
    let mut berth_kills: Vec<Instant> = Vec::new();
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(3_000 + dice.below(5_000))).await;
        match dice.below(3) {
            0 => {
                kill9(child.id());
                let _ = child.wait();
                berth_kills.push(Instant::now());
                child = up(p.dir()).await;
                *faults
                    .entry("berth killed (-9) and started again")
                    .or_default() += 1;
            }
            1 => {
                for pid in pids_with(&marker) {
                    kill9(pid);
                }
                *faults.entry("service killed (-9)").or_default() += 1;
            }
            _ => {
                cluster.stop();
                tokio::time::sleep(Duration::from_millis(1_000 + dice.below(6_000))).await;
                cluster.start_again();
                *faults.entry("PostgreSQL stopped 1-7 s").or_default() += 1;
            }
        }
    }
    // A quiet end: the load stops, and everything acknowledged must finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    done.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    println!(
        "soak: faults {faults:?}; acknowledged {} jobs, {} workflows, {} messages, {} requests",
        acked.jobs.len(),
        acked.workflows.len(),
        acked.messages.len(),
        acked.answered.len()
    );
    assert!(!acked.jobs.is_empty() && !acked.workflows.is_empty());
    assert!(!acked.messages.is_empty() && !acked.answered.is_empty());
    let c = p.client();

    // Jobs: each acknowledged one completed, and reached its handler.
    all_completed(&c, "jobs", &acked.jobs).await;
    let reached: HashSet<i64> = sink.per_job().keys().copied().collect();
    for id in &acked.jobs {
        assert!(reached.contains(id), "job {id} never reached its handler");
    }
    // Workflows.
    all_completed(&c, "workflows", &acked.workflows).await;
    // Messages: every acknowledged sequence number is stored.
    let stored: HashSet<u64> = every_page(&c, "/v1/messages?ingest=dev", "messages")
        .await
        .iter()
        .filter_map(|m| m["payload"]["seq"].as_u64())
        .collect();
    for s in &acked.messages {
        assert!(
            stored.contains(s),
            "acknowledged message {s} was not stored"
        );
    }
    // The budget: charged for every answered request, less at most what a kill -9 may
    // lose (the charges of its last second), and never more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let budgets = c.get_json("/v1/budgets").await.unwrap();
    let spent = budgets["budgets"][0]["spent"].as_f64().unwrap();
    let answered = acked.answered.len() as f64;
    let may_lose = acked
        .answered
        .iter()
        .filter(|at| {
            berth_kills
                .iter()
                .any(|k| *k >= **at && k.duration_since(**at) <= Duration::from_millis(1_500))
        })
        .count() as f64;
    println!(
        "soak: budget spent {spent} for {answered} answered requests (at most {may_lose} in a killed berth's last second)"
    );
    let requests = acked.requests as f64;
    assert!(
        spent <= requests + 0.5,
        "charged {spent} for {requests} requests made"
    );
    assert!(
        spent >= answered - may_lose - 0.5,
        "charged {spent} for {answered} requests, {may_lose} of them in a killed berth's last second"
    );

    // The schedule: every planned second exactly once.
    let mut planned: BTreeMap<String, usize> = BTreeMap::new();
    for j in every_page(&c, "/v1/jobs?queue=ticks", "jobs").await {
        let key = j["unique_key"].as_str().unwrap_or_default().to_owned();
        *planned.entry(key).or_default() += 1;
    }
    let twice: Vec<&String> = planned
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(twice.is_empty(), "fired twice: {twice:?}");
    let times: Vec<berth_store::Timestamp> = planned
        .keys()
        .filter_map(|k| k.strip_prefix("schedule:tick:"))
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(
        times.len() as u64 >= secs / 2,
        "{} ticks in {secs} s",
        times.len()
    );
    for pair in times.windows(2) {
        assert_eq!(
            pair[1].since(pair[0]),
            Duration::from_secs(1),
            "a planned second was skipped between {} and {}",
            pair[0],
            pair[1]
        );
    }

    // Memory and descriptors near the first start's, once quiet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_end, fds_end) = (status_kb(child.id(), "VmRSS:"), fds(child.id()));
    // Kept-alive connections are pools, bounded by the config: to the handlers' HTTP
    // server at most the queues' and steps' concurrency (20 + 10 + 10 + 10), to
    // PostgreSQL `store_connections` (4) and the listener. Every other descriptor is back
    // to where it was.
    let (to_handlers, to_store) = (
        established(child.id(), sink.addr.port()),
        established(child.id(), cluster.port()),
    );
    let others = fds_end - to_handlers - to_store;
    println!(
        "soak: RSS {rss_base} → {rss_end} kB; descriptors {fds_base} → {fds_end}: \
         {to_handlers} kept-alive to the handlers, {to_store} to PostgreSQL, others \
         {others_base} → {others}; \
         {} ticks",
        times.len()
    );
    assert!(
        to_handlers <= 50 && to_store <= 5,
        "{to_handlers} and {to_store} pooled"
    );
    assert!(
        others <= fds_base + 4,
        "descriptors besides the pools: {fds_base} → {others}"
    );
    assert!(
        rss_end <= rss_base + 32 * 1024,
        "RSS {rss_base} → {rss_end} kB"
    );

    // No process left behind.
    stop(&mut child);
    std::thread::sleep(Duration::from_millis(500));
    assert!(pids_with(&marker).is_empty(), "the service outlived berth");
}
