//! The Python pull worker module shipped in `clients/python`, run as a team runs it
//! against a real `berth up`: batches reported in one call, heartbeats for long jobs,
//! retries and discards from the handler, a graceful stop handing jobs back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_testkit::{Project, wait_until};
use serde_json::{Value, json};

use crate::{stop, up};

fn module() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/python/berth_worker.py")
}

fn project() -> Project {
    let p = Project::new(
        "[app]\nname = \"workers\"\n\n[queue.work]\nhandler = \"pull\"\nmax_attempts = 2\n",
    );
    std::fs::write(
        p.dir().join("tasks.py"),
        r#"import time
from berth_worker import Retry, Discard

def handle(job):
    if job.kind == "boom":
        raise ValueError(f"cannot read row {job.args['row']}")
    if job.kind == "drop":
        raise Discard("not for us")
    if job.kind == "later":
        raise Retry(after=3600, reason="the shop is closed")
    if job.kind == "slow":
        time.sleep(job.args["s"])
    return {"double": job.args["n"] * 2} if "n" in job.args else None
"#,
    )
    .unwrap();
    p
}

fn worker(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.current_dir(dir)
        .arg(module())
        .args(["work", "tasks:handle"])
        .args(args)
        .env_remove("BERTH_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

async fn push(p: &Project, jobs: Vec<Value>) -> Vec<i64> {
    let v = p
        .client()
        .post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
        .await
        .unwrap();
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect()
}

async fn job(p: &Project, id: i64) -> Value {
    p.client()
        .get_json(&format!("/v1/jobs/{id}"))
        .await
        .unwrap()
}

fn of(kind: &str, args: Value) -> Value {
    json!({"queue": "work", "kind": kind, "args": args})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_worker_runs_batches_heartbeats_and_handler_outcomes() {
    let p = project();
    let mut child = up(p.dir()).await;
    let mut jobs: Vec<Value> = (0..300).map(|n| of("ok", json!({ "n": n }))).collect();
    jobs.push(of("boom", json!({"row": 7})));
    jobs.push(of("drop", json!({})));
    jobs.push(of("later", json!({})));
    // Longer than the 3 s lease: only the heartbeats keep it.
    jobs.push(of("slow", json!({"s": 5})));
    let ids = push(&p, jobs).await;
    let out = worker(p.dir(), &["--until-empty", "--lease", "3", "--batch", "40"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("301 completed, 2 failed"), "{err}");
    let first = job(&p, ids[0]).await;
    assert_eq!(first["state"], "completed");
    assert_eq!(first["result"], json!({"double": 0}));
    assert!(
        first["attempted_by"]
            .as_str()
            .unwrap()
            .starts_with("worker:")
    );
    assert_eq!(job(&p, ids[299]).await["result"], json!({"double": 598}));
    let boom = job(&p, ids[300]).await;
    assert_eq!(boom["state"], "retryable");
    let error = boom["errors"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("ValueError: cannot read row 7"),
        "{error}"
    );
    assert!(error.contains("tasks.py"), "the traceback's tail: {error}");
    let drop = job(&p, ids[301]).await;
    assert_eq!(drop["state"], "discarded");
    assert_eq!(drop["errors"][0]["error"], "not for us");
    let later = job(&p, ids[302]).await;
    assert_eq!(later["state"], "scheduled");
    assert_eq!(
        later["max_attempts"], 3,
        "a Retry does not count the attempt"
    );
    let slow = job(&p, ids[303]).await;
    assert_eq!(slow["state"], "completed", "{slow}");
    assert_eq!(slow["attempt"], 1, "the lease never ran out");
    stop(&mut child);
}

/// SIGTERM: the running job ends and is reported; the jobs not started go back to the
/// queue at once, without counting an attempt; the worker exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_worker_stops_gracefully_and_hands_back_its_jobs() {
    let p = project();
    let mut child = up(p.dir()).await;
    let ids = push(&p, (0..10).map(|_| of("slow", json!({"s": 1}))).collect()).await;
    let mut w = worker(p.dir(), &["--batch", "10", "--wait", "1"])
        .spawn()
        .unwrap();
    let pp = &p;
    let first = ids[0];
    wait_until(
        "the worker to lease",
        Duration::from_secs(20),
        || async move { (job(pp, first).await["state"] == "running").then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(w.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let status = w.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let mut completed = 0;
    for id in &ids {
        let j = job(&p, *id).await;
        match j["state"].as_str().unwrap() {
            "completed" => completed += 1,
            "available" => assert_eq!(j["max_attempts"], 3, "handed back uncounted: {j}"),
            other => panic!("job {id} is {other}: {j}"),
        }
    }
    assert!((1..10).contains(&completed), "{completed} completed");
    stop(&mut child);
}
