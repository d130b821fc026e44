//! `berth reload` applies every section it can while berth runs, and says exactly what
//! needs a restart: a raised budget limit lets requests through at once (and `berth
//! budget list` shows the limit enforced), a new route, queue, workflow, schedule, ingest,
//! notification channel and backup schedule all work without a restart; `[app]` and the
//! gateway's listeners are reported, with exit code 1, while the rest still applies.

use std::time::Duration;

use berth_testkit::sink::Sink;
use berth_testkit::{Project, free_port_run, wait_until};
use serde_json::Value;

use crate::{parts, run_in, stop, up};

fn config(listen: u16, upstream: &str, limit: &str, more: &str) -> String {
    format!(
        r#"[app]
name = "reload"
shutdown_grace = "2s"

[gateway]
listen = "127.0.0.1:{listen}"

[[gateway.route]]
path = "/api"
proxy = "{upstream}"
budget = "nlu"

[budget.nlu]
limit = {limit}
period = "month"
cost_per_request = 0.002
{more}"#
    )
}

async fn get(url: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    client
        .get(url.parse().unwrap())
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_every_section_it_can_and_names_the_rest() {
    let sink = Sink::start().await;
    let upstream = format!("http://{}", sink.addr);
    let port = free_port_run(2);
    let (listen, mqtt) = (port, port + 1);
    let p = Project::new(&config(listen, &upstream, "0.01", ""));
    let mut berth = up(p.dir()).await;
    let api = format!("http://127.0.0.1:{listen}/api/ask");
    // 0.01 at 0.002 a request: five go through, then the budget refuses.
    for i in 0..5 {
        assert_eq!(get(&api).await, 200, "request {i}");
    }
    assert_eq!(get(&api).await, 402);

    // Raise the limit, and add one of everything else.
    std::fs::create_dir_all(p.dir().join("site")).unwrap();
    std::fs::write(p.dir().join("site/index.html"), "<h1>new</h1>").unwrap();
    let more = format!(
        r#"
[[gateway.route]]
path = "/site"
static = "site"

[queue.work]
handler = "pull"

[workflow.publish.step.fetch]
handler = {{ run = "true" }}

[schedule.tick]
cron = "* * * * * *"
command = "true"

[ingest.stands]
mqtt = {{ listen = "127.0.0.1:{mqtt}", auth = "anonymous" }}
topics = ["+/inbound"]

[notify.ops]
webhook = "{upstream}/hook"
on = ["backup.*"]

[backup]
dir = "backups"
schedule = "0 3 * * *"
"#
    );
    p.write_config(&config(listen, &upstream, "0.02", &more));
    let (code, out, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 0, "{out}{err}");
    for applied in [
        "[gateway] routes",
        "[budget.nlu] (changed)",
        "[queue.work] (new)",
        "[workflow.publish] (new)",
        "[schedule.tick] (new)",
        "[ingest.stands] (new)",
        "[notify.ops] (new)",
        "[backup]",
    ] {
        assert!(out.contains(applied), "{applied} applied: {out}");
    }
    // The new limit is enforced at once, and it is what `budget list` shows.
    for i in 0..5 {
        assert_eq!(get(&api).await, 200, "request {i} under the raised limit");
    }
    assert_eq!(get(&api).await, 402);
    let (code, out, _) = parts(&run_in(p.dir(), &["--json", "budget", "list"]));
    assert_eq!(code, 0);
    let budgets: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(budgets[0]["limit"], 0.02, "{budgets}");
    assert_eq!(budgets[0]["spent"], 0.02, "{budgets}");
    // The new route, queue, workflow, schedule and ingest work.
    assert_eq!(get(&format!("http://127.0.0.1:{listen}/site/")).await, 200);
    let (code, _, err) = parts(&run_in(p.dir(), &["job", "push", "work", "k"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = parts(&run_in(
        p.dir(),
        &["workflow", "start", "publish", "--wait"],
    ));
    assert_eq!(code, 0, "the workflow's step ran: {err}");
    let c = p.client();
    wait_until("the new schedule to fire", Duration::from_secs(20), || {
        let c = c.clone();
        async move {
            let v = c
                .get_json("/v1/jobs?queue=schedule.tick&state=completed")
                .await
                .ok()?;
            (!v["jobs"].as_array()?.is_empty()).then_some(())
        }
    })
    .await;
    let out = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.to_string()])
        .args(["-t", "s1/inbound", "-m", r#"{"seq":1}"#, "-q", "1"])
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(out.status.success(), "{out:?}");
    let (_, out, _) = parts(&run_in(p.dir(), &["--json", "messages", "list"]));
    assert!(out.contains("s1/inbound"), "{out}");

    // What only a restart changes is named, with exit 1; the rest of the file applies.
    let text = config(listen + 100, &upstream, "0.03", &more).replace(
        "shutdown_grace = \"2s\"",
        "shutdown_grace = \"2s\"\nlease_ttl = \"2m\"",
    );
    p.write_config(&text);
    let (code, out, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("needs a restart:    [app] lease_ttl: takes effect when berth restarts"),
        "{out}"
    );
    assert!(
        out.contains("needs a restart:    [gateway] listen: takes effect when berth restarts"),
        "{out}"
    );
    assert!(out.contains("[budget.nlu] (changed)"), "{out}");
    assert!(
        err.contains("take effect only when berth restarts"),
        "{err}"
    );
    assert_eq!(get(&api).await, 200, "the new limit of 0.03 applies");
    // The next reload still names them: they still differ from what runs.
    let (code, out, _) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 1);
    assert!(out.contains("[app] lease_ttl"), "{out}");
    assert!(out.contains("applied:            none"), "{out}");
    stop(&mut berth);
}

/// A reload that changes a queue's concurrency lets its running job finish as it would
/// have (not cut at `shutdown_grace`), then the new setting runs the next ones; a reload
/// that changes nothing of the gateway leaves its rate limits' buckets as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_hands_a_queue_over_without_cutting_its_jobs() {
    let port = free_port_run(1);
    let text = |concurrency: u32, extra: &str| {
        format!(
            r#"[app]
name = "handover"
shutdown_grace = "1s"

[queue.slow]
handler = {{ run = "sleep 3" }}
concurrency = {concurrency}

[gateway]
listen = "127.0.0.1:{port}"

[[gateway.route]]
path = "/"
static = "site"
rate_limit = {{ per_address = "1/h", burst = 2 }}
{extra}"#
        )
    };
    let p = Project::new(&text(1, ""));
    std::fs::create_dir_all(p.dir().join("site")).unwrap();
    std::fs::write(p.dir().join("site/index.html"), "hi").unwrap();
    let mut berth = up(p.dir()).await;
    let c = p.client();
    let site = format!("http://127.0.0.1:{port}/");
    assert_eq!(get(&site).await, 200);
    assert_eq!(get(&site).await, 200);
    assert_eq!(get(&site).await, 429, "the burst of 2 is spent");
    let (code, _, err) = parts(&run_in(p.dir(), &["job", "push", "slow", "a"]));
    assert_eq!(code, 0, "{err}");
    wait_until("the job to run", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let v = c.get_json("/v1/jobs/1").await.ok()?;
            (v["state"] == "running").then_some(())
        }
    })
    .await;
    // Concurrency 2, and a schedule added: the gateway's section is unchanged.
    p.write_config(&text(
        2,
        "\n[schedule.later]\ncron = \"0 3 * * *\"\ncommand = \"true\"\n",
    ));
    let (code, out, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[queue.slow] (changed)"), "{out}");
    assert!(!out.contains("[gateway] routes"), "{out}");
    assert_eq!(get(&site).await, 429, "the buckets were kept");
    let job = wait_until("the job to end", Duration::from_secs(15), || {
        let c = c.clone();
        async move {
            let v = c.get_json("/v1/jobs/1").await.ok()?;
            (v["state"] != "running").then_some(v)
        }
    })
    .await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempt"], 1, "ran once, to its end: {job}");
    stop(&mut berth);
}

/// The handler's `sleep` of the concurrency test, unique on the machine.
const NAP: &str = "2.013";

/// How many `sleep ARG` processes run on the machine now.
fn sleepers(arg: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
            args.len() == 2 && args[0].ends_with(b"sleep") && args[1] == arg.as_bytes()
        })
        .count()
}

/// A queue's concurrency set at run time (the dashboard's button, `berth queue
/// concurrency`) is what its executors run: more jobs at once once the running ones are
/// done, kept over a reload, and back to the config's when set back. A pull queue and a
/// number out of range are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_concurrency_set_at_run_time_is_enforced_and_kept() {
    let p = Project::new(
        "[app]\nname = \"conc\"\nshutdown_grace = \"1s\"\n\n\
         [queue.slow]\nhandler = { run = \"sleep 2.013\" }\nconcurrency = 1\n\n\
         [queue.pulled]\nhandler = \"pull\"\n",
    );
    let mut berth = up(p.dir()).await;
    let c = p.client();
    for _ in 0..8 {
        c.post_json(
            "/v1/jobs",
            serde_json::json!({"queue": "slow", "kind": "nap"}),
        )
        .await
        .unwrap();
    }
    let running = || async {
        let q = c.get_json("/v1/queues/slow").await.ok()?;
        Some((q["counts"]["running"].as_u64()?, q["concurrency"].as_u64()?))
    };
    let (n, conc) = wait_until("one job runs", Duration::from_secs(10), || async {
        running().await.filter(|(n, _)| *n == 1)
    })
    .await;
    assert_eq!((n, conc), (1, 1));
    let (code, out, err) = parts(&run_in(p.dir(), &["queue", "concurrency", "slow", "3"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("runs 3 jobs at once on each node"), "{out}");
    // Enforced: three at once once the running job is done (never more).
    wait_until(
        "three jobs run at once",
        Duration::from_secs(15),
        || async { running().await.filter(|(n, c)| *n == 3 && *c == 3) },
    )
    .await;
    let (_, shown, _) = parts(&run_in(p.dir(), &["queue", "show", "slow"]));
    assert!(shown.contains("concurrency 3 (set at run time)"), "{shown}");
    // A reload re-reads the config (which says 1): the run-time setting stays.
    let (code, _, err) = parts(&run_in(p.dir(), &["reload"]));
    assert_eq!(code, 0, "{err}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(running().await.map(|r| r.1), Some(3));
    // Refusals: a pull queue, zero.
    let (code, _, err) = parts(&run_in(p.dir(), &["queue", "concurrency", "pulled", "2"]));
    assert_ne!(code, 0);
    assert!(err.contains("is a pull queue"), "{err}");
    let (code, _, err) = parts(&run_in(p.dir(), &["queue", "concurrency", "slow", "0"]));
    assert_ne!(code, 0);
    assert!(err.contains("expected 1 to 10000"), "{err}");
    // Back to the config's.
    let (code, out, err) = parts(&run_in(
        p.dir(),
        &["queue", "concurrency", "slow", "--reset"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config's concurrency again"), "{out}");
    wait_until(
        "the config's concurrency again",
        Duration::from_secs(5),
        || async { running().await.filter(|(_, c)| *c == 1) },
    )
    .await;
    let v = c.get_json("/v1/queues/slow").await.unwrap();
    assert!(v.get("concurrency_override").is_none(), "{v}");
    // Set to 2, then a restart: never more than 2 at once, from the first moment.
    let (code, _, err) = parts(&run_in(p.dir(), &["queue", "concurrency", "slow", "2"]));
    assert_eq!(code, 0, "{err}");
    stop(&mut berth);
    let mut berth = up(p.dir()).await;
    for _ in 0..6 {
        c.post_json(
            "/v1/jobs",
            serde_json::json!({"queue": "slow", "kind": "nap"}),
        )
        .await
        .unwrap();
    }
    // What runs at once is counted in the processes: the store's `running` count may
    // hold an attempt that just ended until its outcome is written (cli.md).
    let mut most = 0;
    for _ in 0..30 {
        if let Some((_, conc)) = running().await {
            assert_eq!(conc, 2, "the run-time concurrency from the start");
        }
        most = most.max(sleepers(NAP));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(most, 2, "two at once, never more");
    stop(&mut berth);
}
