//! `kill -9` of berth during a burn-down, then a restart: every job ends completed, none is
//! lost, and the test reports how many ran twice.

use std::collections::HashSet;
use std::time::Duration;

use berth_testkit::sink::Sink;
use berth_testkit::{Project, wait_until};
use serde_json::json;

use crate::up;

const JOBS: usize = 10_000;
const CONCURRENCY: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burn_down_loses_nothing() {
    let sink = Sink::start().await;
    let p = Project::new(&format!(
        "[app]\nname = \"crash\"\n\n[queue.tasks]\nhandler = {{ post = \"{}\" }}\nconcurrency = {CONCURRENCY}\n",
        sink.url()
    ));
    let mut first = up(p.dir()).await;
    let c = p.client();
    // Pause while pushing so the burn-down starts with all jobs in the table.
    c.post("/v1/queues/tasks/pause", json!({})).await.unwrap();
    for chunk in 0..(JOBS / 2_000) {
        let jobs: Vec<_> = (0..2_000)
            .map(|i| json!({"queue": "tasks", "kind": "n", "args": {"i": chunk * 2_000 + i}}))
            .collect();
        c.post("/v1/jobs/bulk", json!({ "jobs": jobs }))
            .await
            .unwrap();
    }
    c.post("/v1/queues/tasks/resume", json!({})).await.unwrap();
    let at_kill = wait_until(
        "a quarter of the jobs to run",
        Duration::from_secs(60),
        || async {
            let n = sink.count();
            (n >= JOBS / 4).then_some(n)
        },
    )
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        at_kill < JOBS,
        "killed mid-way ({at_kill} of {JOBS} delivered)"
    );

    let mut second = up(p.dir()).await;
    let done = wait_until("every job to complete", Duration::from_secs(120), || {
        let c = c.clone();
        async move {
            let q = c.get("/v1/queues").await.ok()?;
            let work = q["queues"]
                .as_array()?
                .iter()
                .find(|q| q["name"] == "tasks")?
                .clone();
            (work["counts"]["completed"].as_u64()? == JOBS as u64).then_some(work)
        }
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    for state in [
        "available",
        "running",
        "retryable",
        "scheduled",
        "discarded",
        "cancelled",
    ] {
        assert_eq!(done["counts"][state], 0, "no job left {state}: {done}");
    }
    let per_job = sink.per_job();
    let seen: HashSet<i64> = per_job.keys().copied().collect();
    let expected: HashSet<i64> = (1..=JOBS as i64).collect();
    assert_eq!(seen, expected, "every job reached the handler");
    let twice: usize = per_job.values().map(|n| n - 1).sum();
    println!(
        "kill -9 after {at_kill} deliveries: {JOBS} jobs completed, none lost, {twice} ran twice (at-least-once)"
    );
    // Only attempts in flight or awaiting their commit at the kill can run twice.
    assert!(
        twice <= 4 * CONCURRENCY,
        "{twice} duplicates is more than the jobs in flight"
    );
}
