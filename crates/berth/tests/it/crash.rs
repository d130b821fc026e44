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
    c.post_json("/v1/queues/tasks/pause", json!({}))
        .await
        .unwrap();
    for chunk in 0..(JOBS / 2_000) {
        let jobs: Vec<_> = (0..2_000)
            .map(|i| json!({"queue": "tasks", "kind": "n", "args": {"i": chunk * 2_000 + i}}))
            .collect();
        c.post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
            .await
            .unwrap();
    }
    c.post_json("/v1/queues/tasks/resume", json!({}))
        .await
        .unwrap();
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
            let q = c.get_json("/v1/queues").await.ok()?;
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

/// `berth up`, `kill -9`, `berth up`: the new run leads at once (its data dir lock proves
/// its predecessor dead), so a per-second schedule fires its next planned time within a
/// second of berth being up, and every planned time after it, none collapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_9_leads_at_once() {
    use berth_store::Timestamp;
    let p = Project::new(
        "[app]\nname = \"tick\"\nshutdown_grace = \"2s\"\n\n[schedule.tick]\ncron = \"* * * * * *\"\ncommand = \"true\"\n",
    );
    let c = p.client();
    // Each fired planned time (the job's scheduled_at) with when it was fired (created_at).
    let fired = || {
        let c = c.clone();
        async move {
            let v = c
                .get_json("/v1/jobs?queue=schedule.tick&limit=100")
                .await
                .ok()?;
            let mut runs: Vec<(Timestamp, Timestamp)> = v["jobs"]
                .as_array()?
                .iter()
                .map(|j| {
                    let at = |k: &str| j[k].as_str().unwrap().parse::<Timestamp>().unwrap();
                    (at("scheduled_at"), at("created_at"))
                })
                .collect();
            runs.sort();
            Some(runs)
        }
    };
    let mut first = up(p.dir()).await;
    wait_until("the schedule to fire", Duration::from_secs(20), || async {
        fired().await.filter(|r| !r.is_empty())
    })
    .await;
    first.kill().unwrap(); // SIGKILL: the lease stays in the store, held by the dead run
    first.wait().unwrap();

    let mut second = up(p.dir()).await;
    let up_at = Timestamp::now();
    let runs = wait_until(
        "three planned times after the restart",
        Duration::from_secs(30),
        || async {
            let runs = fired().await?;
            let after: Vec<_> = runs.into_iter().filter(|(p, _)| *p >= up_at).collect();
            (after.len() >= 3).then_some(after)
        },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let (planned, created) = runs[0];
    let late = created.since(up_at);
    assert!(
        planned.since(up_at) <= Duration::from_secs(1) && late <= Duration::from_millis(1500),
        "the next planned time after the restart ({planned}) fired {late:?} after berth was up: {runs:?}"
    );
    for pair in runs.windows(2) {
        assert_eq!(
            pair[1].0.since(pair[0].0),
            Duration::from_secs(1),
            "each planned time fired on its own: {runs:?}"
        );
    }
}
