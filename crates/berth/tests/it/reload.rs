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
