//! Several `berth up` nodes sharing one PostgreSQL database (a throwaway cluster of the
//! test's own): the work is shared, a killed node's jobs run elsewhere, a killed leader is
//! replaced within the lease's TTL, a server restart is survived, and an embedded install
//! moves over with `berth store migrate`.

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

use berth_testkit::pg::{PgCluster, shared};
use berth_testkit::sink::Sink;
use berth_testkit::{Project, wait_until};
use serde_json::{Value, json};

use crate::{parts, run_expecting_exit, run_in, up};

/// A node's project: its own data dir, the shared store.
fn node(url: &str, sink: &Sink) -> Project {
    Project::new(&format!(
        "[app]\nname = \"cluster\"\nstore = \"{url}\"\nleader_ttl = \"3s\"\nlease_ttl = \"4s\"\nshutdown_grace = \"2s\"\n\n[queue.tasks]\nhandler = {{ post = \"{}\" }}\nconcurrency = 40\n",
        sink.url()
    ))
}

async fn push_paused(p: &Project, n: usize) {
    let c = p.client();
    c.post_json("/v1/queues/tasks/pause", json!({}))
        .await
        .unwrap();
    for chunk in 0..n.div_ceil(5_000) {
        let jobs: Vec<Value> = (0..5_000.min(n - chunk * 5_000))
            .map(|i| json!({"queue": "tasks", "kind": "n", "args": {"i": chunk * 5_000 + i}}))
            .collect();
        c.post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
            .await
            .unwrap();
    }
}

async fn completed(p: &Project) -> Option<u64> {
    let q = p.client().get_json("/v1/queues").await.ok()?;
    let work = q["queues"]
        .as_array()?
        .iter()
        .find(|q| q["name"] == "tasks")?
        .clone();
    work["counts"]["completed"].as_u64()
}

/// `Some(())` once every job of the burn-down completed.
async fn all_completed(p: &Project, want: usize) -> Option<()> {
    (completed(p).await? == want as u64).then_some(())
}

async fn leader_of(p: &Project) -> Option<String> {
    let st = p.client().get_json("/v1/status").await.ok()?;
    st["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["leader"] == true)
        .and_then(|n| n["id"].as_str().map(str::to_string))
}

/// Starts `n` nodes sharing the store at `url`, each running `berth up`.
async fn start_nodes(url: &str, sink: &Sink, n: usize) -> (Vec<Project>, Vec<Child>) {
    let nodes: Vec<Project> = (0..n).map(|_| node(url, sink)).collect();
    let mut children = Vec::new();
    for p in &nodes {
        children.push(up(p.dir()).await);
    }
    (nodes, children)
}

async fn resume(p: &Project) {
    p.client()
        .post_json("/v1/queues/tasks/resume", json!({}))
        .await
        .unwrap();
}

fn stop(mut children: Vec<Child>) {
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_burn_down_and_survive_a_kill_9() {
    const JOBS: usize = 20_000;
    let url = shared().fresh_database();
    let sink = Sink::start().await;
    let (nodes, mut children) = start_nodes(&url, &sink, 3).await;
    push_paused(&nodes[0], JOBS).await;
    resume(&nodes[0]).await;
    let at_kill = wait_until(
        "a quarter of the jobs",
        Duration::from_secs(120),
        || async {
            let n = sink.count();
            (n >= JOBS / 4).then_some(n)
        },
    )
    .await;
    children[1].kill().unwrap(); // SIGKILL
    children[1].wait().unwrap();
    wait_until("every job to complete", Duration::from_secs(180), || {
        all_completed(&nodes[0], JOBS)
    })
    .await;
    let st = nodes[0].client().get_json("/v1/status").await.unwrap();
    let per_job = sink.per_job();
    let seen: HashSet<i64> = per_job.keys().copied().collect();
    assert_eq!(seen.len(), JOBS, "every job reached the handler");
    let twice: usize = per_job.values().map(|n| n - 1).sum();
    let by_node: Vec<Value> = st["nodes"].as_array().unwrap().clone();
    println!(
        "3 nodes, node 2 killed after {at_kill} deliveries: {JOBS} completed, none lost, {twice} ran twice"
    );
    assert_eq!(by_node.len(), 3, "{st}");
    assert!(
        twice <= 4 * 40,
        "{twice} duplicates is more than one node's jobs in flight"
    );
    stop(children);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_within_its_ttl() {
    let url = shared().fresh_database();
    let sink = Sink::start().await;
    let (nodes, mut children) = start_nodes(&url, &sink, 3).await;
    let first = wait_until("a leader", Duration::from_secs(10), || leader_of(&nodes[0])).await;
    let names: Vec<String> = nodes
        .iter()
        .map(|p| {
            std::fs::read_to_string(p.data_dir().join("node"))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    let i = names
        .iter()
        .position(|n| *n == first)
        .expect("the leader is one of ours");
    let other = (i + 1) % 3;
    children[i].kill().unwrap();
    children[i].wait().unwrap();
    let killed = Instant::now();
    let next = wait_until("another leader", Duration::from_secs(15), || async {
        leader_of(&nodes[other]).await.filter(|l| *l != first)
    })
    .await;
    let took = killed.elapsed();
    println!("leader {first} killed; {next} took over after {took:?} (TTL 3s)");
    // The lease runs out at most one TTL after its last renewal; the others look every
    // third of it.
    assert!(
        took <= Duration::from_millis(3_000 + 1_000 + 1_500),
        "took {took:?}"
    );
    stop(children);
}

/// A cluster of the test's own with two nodes on it, `jobs` pushed and `ran` of them
/// done: a store fault can strike mid-run.
async fn two_nodes_under_way(
    jobs: usize,
    ran: usize,
) -> (PgCluster, Sink, Vec<Project>, Vec<Child>) {
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    let sink = Sink::start().await;
    let (nodes, children) = start_nodes(&url, &sink, 2).await;
    push_paused(&nodes[0], jobs).await;
    resume(&nodes[0]).await;
    wait_until("some jobs to run", Duration::from_secs(60), || async {
        (sink.count() >= ran).then_some(())
    })
    .await;
    (cluster, sink, nodes, children)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_nothing() {
    const JOBS: usize = 5_000;
    let (cluster, sink, nodes, mut children) = two_nodes_under_way(JOBS, JOBS / 5).await;
    cluster.restart();
    wait_until(
        "every job to complete after the restart",
        Duration::from_secs(120),
        || all_completed(&nodes[1], JOBS),
    )
    .await;
    let seen: HashSet<i64> = sink.per_job().keys().copied().collect();
    assert_eq!(seen.len(), JOBS);
    for (child, p) in children.iter_mut().zip(&nodes) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "node {} kept running",
            p.dir().display()
        );
    }
    stop(children);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_store_url_is_a_clear_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = Project::new(&format!(
        "[app]\nname = \"x\"\nstore = \"postgres://app:t0p-s3cret@127.0.0.1:{port}/shop?connect_timeout=2\"\n"
    ));
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        Duration::from_secs(30),
    ));
    assert_eq!(code, 1);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("t0p-s3cret"), "{err}");
    // The same from the environment, which overrides the file.
    let out = crate::berth()
        .current_dir(p.dir())
        .env("BERTH_STORE", "mysql://root:t0p-s3cret@db/x")
        .arg("up")
        .output()
        .unwrap();
    let (code, _, err) = parts(&out);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("BERTH_STORE"), "{err}");
    assert!(!err.contains("t0p-s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_moves_an_embedded_install_to_postgres() {
    let sink = Sink::start().await;
    let p = Project::new(&format!(
        "[app]\nname = \"m\"\n\n[queue.tasks]\nhandler = {{ post = \"{}\" }}\n\n\
         [service.side]\ncommand = \"exec sleep 60\"\n",
        sink.url()
    ));
    let mut child = up(p.dir()).await;
    // The service's start and readiness are recorded events, to be copied too.
    let c = p.client();
    wait_until("the service's events", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let v = c.get_json("/v1/events?subject=side").await.ok()?;
            (v["events"].as_array()?.len() == 2).then_some(())
        }
    })
    .await;
    push_paused(&p, 1_200).await;
    let done = p
        .client()
        .post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "late", "delay": "1h"}),
        )
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let url = shared().fresh_database();
    let (code, out, err) = parts(&run_in(p.dir(), &["store", "migrate", "--to", &url]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("copied 1201 jobs, 1 paused queue(s), 0 schedule(s), batch(es) and workflow(s), 0 user(s) with their tokens, 2 event(s) and 0 ingested message(s)"),
        "{out}"
    );
    assert!(err.contains("copying jobs: 1201 of 1201"), "{err}");
    // A second run refuses the non-empty target and changes nothing.
    let (code, _, err) = parts(&run_in(p.dir(), &["store", "migrate", "--to", &url]));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("already holds 1201 jobs"), "{err}");
    // Pointed at PostgreSQL, the same config finds every job where it was.
    let pg = Project::new(&format!(
        "[app]\nname = \"m\"\nstore = \"{url}\"\n\n[queue.tasks]\nhandler = {{ post = \"{}\" }}\n",
        sink.url()
    ));
    let mut child = up(pg.dir()).await;
    let c = pg.client();
    let later = c
        .get_json(&format!("/v1/jobs/{}", done["id"]))
        .await
        .unwrap();
    assert_eq!(later["state"], "scheduled");
    let events = c.get_json("/v1/events?subject=side").await.unwrap();
    let kinds: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["ready", "started"], "newest first, as recorded");
    c.post_json("/v1/queues/tasks/resume", json!({}))
        .await
        .unwrap();
    wait_until("the migrated jobs to run", Duration::from_secs(60), || {
        all_completed(&pg, 1_200)
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_data_dir_does_not_start_a_second_node_of_the_same_name() {
    let url = shared().fresh_database();
    let sink = Sink::start().await;
    let first = node(&url, &sink);
    let mut child = up(first.dir()).await;
    let twin = node(&url, &sink);
    std::fs::create_dir_all(twin.data_dir()).unwrap();
    std::fs::copy(first.data_dir().join("node"), twin.data_dir().join("node")).unwrap();
    let (code, _, err) = parts(&run_expecting_exit(
        twin.dir(),
        &["up"],
        Duration::from_secs(20),
    ));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("was this data dir copied?"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// PostgreSQL stopped for a minute (`BERTH_TEST_OUTAGE_SECS` to change it) under two
/// running nodes: a push is refused within the connect timeout with 503
/// `store_unavailable` (the CLI exits 75, saying to try again), the nodes keep running,
/// and once the server is back they take pushes again without a restart. Every job
/// acknowledged before the outage and after it completes: none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_for_a_minute_refuses_writes_and_recovers_without_a_restart() {
    const JOBS: usize = 2_000;
    let outage = Duration::from_secs(
        std::env::var("BERTH_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let (cluster, sink, nodes, mut children) = two_nodes_under_way(JOBS, JOBS / 10).await;
    cluster.stop();
    let stopped = Instant::now();
    let push = |dir: &std::path::Path| {
        run_expecting_exit(
            dir,
            &["job", "push", "tasks", "n", "{\"during\":true}"],
            Duration::from_secs(30),
        )
    };
    let asked = Instant::now();
    let (code, _, err) = parts(&push(nodes[0].dir()));
    let took = asked.elapsed();
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("the store is unavailable"), "{err}");
    assert!(
        err.contains("cannot reach PostgreSQL at 127.0.0.1"),
        "{err}"
    );
    assert!(
        err.contains("nothing was written, try again later"),
        "{err}"
    );
    assert!(took < Duration::from_secs(15), "a refusal took {took:?}");
    let left = outage.saturating_sub(stopped.elapsed());
    tokio::time::sleep(left).await;
    for (child, p) in children.iter_mut().zip(&nodes) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "node {} kept running through the outage",
            p.dir().display()
        );
    }
    cluster.start_again();
    let back = Instant::now();
    // Without a restart, each node takes pushes again.
    for p in &nodes {
        wait_until(
            "a push to be taken again",
            Duration::from_secs(60),
            || async {
                let (code, _, _) = parts(&push(p.dir()));
                (code == 0).then_some(())
            },
        )
        .await;
    }
    let recovered = back.elapsed();
    wait_until(
        "every job to complete after the outage",
        Duration::from_secs(120),
        || all_completed(&nodes[1], JOBS + 2),
    )
    .await;
    let done = back.elapsed();
    let seen: HashSet<i64> = sink.per_job().keys().copied().collect();
    assert_eq!(seen.len(), JOBS + 2);
    println!(
        "PostgreSQL stopped {:?}: a push refused in {took:?}; pushes taken again {recovered:?} \
         after it was back; all {} jobs done {done:?} after it was back",
        outage,
        JOBS + 2
    );
    stop(children);
}
