//! The API through the real daemon and the real client, over the unix socket and TCP.

mod openapi;

use std::time::Duration;

use berth_api::client::{Client, ClientError, Endpoint};
use berth_testkit::{Options, Project, config_text, daemon};
use hyper::Method;
use serde_json::{Value, json};

fn project() -> Project {
    Project::new(&config_text(
        "[queue.tasks]\nhandler = \"pull\"\nmax_attempts = 2\n\n[queue.mail]\nhandler = \"pull\"\n",
    ))
}

async fn api_err(r: Result<Value, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status.as_u16(), code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn push_show_list_and_bulk() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let one = c
        .post_json("/v1/jobs", json!({"queue": "tasks", "kind": "resize", "args": {"w": 10}, "tags": ["img"], "priority": -1}))
        .await
        .unwrap();
    assert_eq!(one["state"], "available");
    let id = one["id"].as_i64().unwrap();
    let shown = c.get_json(&format!("/v1/jobs/{id}")).await.unwrap();
    assert_eq!(shown["args"], json!({"w": 10}));
    assert_eq!(shown["max_attempts"], 2, "the queue's default");
    assert_eq!(shown["priority"], -1);
    let later = c
        .post_json(
            "/v1/jobs",
            json!({"queue": "mail", "kind": "digest", "delay": "1h"}),
        )
        .await
        .unwrap();
    assert_eq!(later["state"], "scheduled");
    let jobs: Vec<Value> = (0..300)
        .map(|i| json!({"queue": "mail", "kind": "send", "args": {"i": i}}))
        .collect();
    let bulk = c
        .post_json("/v1/jobs/bulk", json!({"jobs": jobs}))
        .await
        .unwrap();
    assert_eq!(bulk["jobs"].as_array().unwrap().len(), 300);
    let page = c
        .get_json("/v1/jobs?queue=mail&state=available&limit=100")
        .await
        .unwrap();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 100);
    let next = page["next_before"].as_i64().unwrap();
    let page2 = c
        .get_json(&format!(
            "/v1/jobs?queue=mail&state=available&limit=1000&before={next}"
        ))
        .await
        .unwrap();
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 200);
    assert!(page2["next_before"].is_null());
    let tagged = c.get_json("/v1/jobs?tag=img").await.unwrap();
    assert_eq!(tagged["jobs"][0]["id"], id);
    let queues = c.get_json("/v1/queues").await.unwrap();
    let mail = &queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "mail")
        .unwrap()
        .clone();
    assert_eq!(mail["counts"]["available"], 300);
    assert_eq!(mail["counts"]["scheduled"], 1);
    assert!(mail["oldest_available_age_secs"].as_f64().unwrap() >= 0.0);
    d.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let (status, raw) = c
        .raw(
            Method::POST,
            "/v1/jobs",
            Some("{\"queue\": \"work\", ".into()),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(raw["error"]["code"], "bad_body");
    let (s, code, msg) = api_err(
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "x", "colour": 1}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (s, code.as_str()),
        (422, "bad_body"),
        "well-formed JSON of the wrong shape"
    );
    assert!(msg.contains("colour"), "{msg}");
    let (s, code, msg) = api_err(
        c.post_json("/v1/jobs", json!({"queue": "taks", "kind": "x"}))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (404, "unknown_queue"));
    assert!(msg.contains("did you mean `tasks`"), "{msg}");
    let (s, _, msg) = api_err(
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "x", "delay": "soon"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("delay"), "{msg}");
    let (s, _, msg) = api_err(
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "x", "run_at": "tomorrow"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("RFC 3339"), "{msg}");
    let bulk = json!({"jobs": [{"queue": "tasks", "kind": "ok"}, {"queue": "tasks", "kind": "x", "delay": "1s", "run_at": "2026-01-01T00:00:00Z"}]});
    let (s, _, msg) = api_err(c.post_json("/v1/jobs/bulk", bulk).await).await;
    assert_eq!(s, 400);
    assert!(msg.contains("job 1"), "{msg}");
    let (s, _, _) = api_err(c.get_json("/v1/jobs?state=done").await).await;
    assert_eq!(s, 400);
    let (s, _, _) = api_err(c.get_json("/v1/jobs/abc").await).await;
    assert_eq!(s, 400);
    let (s, code, _) = api_err(c.get_json("/v1/jobs/999").await).await;
    assert_eq!((s, code.as_str()), (404, "job_not_found"));
    let (s, code, _) = api_err(c.post_json("/v1/queues/nope/pause", json!({})).await).await;
    assert_eq!((s, code.as_str()), (404, "unknown_queue"));
    let (s, code, _) = api_err(c.get_json("/v1/nothing").await).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let all = c.get_json("/v1/jobs").await.unwrap();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 0, "nothing stored");
    d.stop().await;
}

#[tokio::test]
async fn admin_actions_follow_the_state_rules() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let id = c
        .post_json("/v1/jobs", json!({"queue": "tasks", "kind": "x"}))
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (s, code, _) = api_err(
        c.post_json(&format!("/v1/jobs/{id}/retry"), json!({}))
            .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "invalid_state"));
    let ch = c
        .post_json(&format!("/v1/jobs/{id}/cancel"), json!({}))
        .await
        .unwrap();
    assert_eq!(
        (ch["from"].as_str(), ch["to"].as_str()),
        (Some("available"), Some("cancelled"))
    );
    let ch = c
        .post_json(&format!("/v1/jobs/{id}/retry"), json!({}))
        .await
        .unwrap();
    assert_eq!(ch["to"], "available");
    c.post_json(&format!("/v1/jobs/{id}/discard"), json!({}))
        .await
        .unwrap();
    let ch = c.delete_json(&format!("/v1/jobs/{id}")).await.unwrap();
    assert!(ch["to"].is_null());
    c.post_json("/v1/jobs", json!({"queue": "mail", "kind": "x"}))
        .await
        .unwrap();
    let purged = c
        .post_json("/v1/queues/mail/purge", json!({}))
        .await
        .unwrap();
    assert_eq!(purged["deleted"], 1);
    c.post_json("/v1/queues/mail/pause", json!({}))
        .await
        .unwrap();
    let q = c.get_json("/v1/queues").await.unwrap();
    assert!(
        q["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "mail" && q["paused"] == true)
    );
    d.stop().await;
}

#[tokio::test]
async fn actions_apply_to_every_job_a_filter_takes() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let jobs: Vec<Value> = (0..7)
        .map(|i| json!({"queue": "tasks", "kind": if i < 5 { "sync" } else { "mail" }}))
        .collect();
    let pushed = c
        .post_json("/v1/jobs/bulk", json!({"jobs": jobs}))
        .await
        .unwrap();
    let ids: Vec<i64> = pushed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    // Discard the five `sync` jobs at once; the two others are left alone.
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "discard", "queue": "tasks", "kind": "sync"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r["matched"].as_u64(),
            r["done"].as_u64(),
            r["skipped"].as_u64(),
            r["more"].as_bool()
        ),
        (Some(5), Some(5), Some(0), Some(false)),
        "{r}"
    );
    let state = |v: &Value| v["state"].as_str().unwrap().to_owned();
    for (i, id) in ids.iter().enumerate() {
        let j = c.get_json(&format!("/v1/jobs/{id}")).await.unwrap();
        assert_eq!(
            state(&j),
            if i < 5 { "discarded" } else { "available" },
            "job {id}"
        );
    }
    // `max` stops early and says more remain; a second call finishes.
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "retry", "state": "discarded", "max": 3}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["done"].as_u64(), r["more"].as_bool()),
        (Some(3), Some(true)),
        "{r}"
    );
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "retry", "state": "discarded"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["done"].as_u64(), r["more"].as_bool()),
        (Some(2), Some(false)),
        "{r}"
    );
    // What the action does not apply to is skipped, not an error: cancel every job, then
    // cancel again.
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "cancel", "queue": "tasks"}),
        )
        .await
        .unwrap();
    assert_eq!(r["done"], 7, "{r}");
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "cancel", "queue": "tasks"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r["done"].as_u64(), r["skipped"].as_u64()),
        (Some(0), Some(7)),
        "{r}"
    );
    // Refused, changing nothing: no filter, an unknown action, a bad state, a bad max.
    for (body, part) in [
        (json!({"action": "delete"}), "at least one of"),
        (
            json!({"action": "explode", "queue": "tasks"}),
            "unknown action",
        ),
        (json!({"action": "delete", "state": "gone"}), "gone"),
        (
            json!({"action": "delete", "queue": "tasks", "max": 0}),
            "`max` must be",
        ),
        (
            json!({"action": "delete", "queue": "tasks", "whatever": 1}),
            "whatever",
        ),
    ] {
        let (status, _, message) =
            api_err(c.post_json("/v1/jobs/actions", body.clone()).await).await;
        assert!(
            (400..500).contains(&status) && message.contains(part),
            "{body}: {status} {message}"
        );
    }
    let left = c.get_json("/v1/jobs?queue=tasks&limit=100").await.unwrap();
    assert_eq!(left["jobs"].as_array().unwrap().len(), 7);
    d.stop().await;
}

#[tokio::test]
async fn a_pull_worker_leases_heartbeats_and_reports() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    // A long poll that a push wakes up.
    let c2 = c.clone();
    let poll = tokio::spawn(async move {
        c2.post_json(
            "/v1/queues/tasks/lease",
            json!({"worker": "py-1", "max": 5, "wait": "10s"}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = c
            .post_json("/v1/jobs", json!({"queue": "tasks", "kind": "x"}))
            .await
            .unwrap();
        ids.push(v["id"].as_i64().unwrap());
    }
    let leased = poll.await.unwrap().unwrap();
    let jobs = leased["jobs"].as_array().unwrap();
    assert!(!jobs.is_empty());
    let j = &jobs[0];
    let (id, attempt) = (j["id"].as_i64().unwrap(), j["attempt"].as_u64().unwrap());
    assert!(ids.contains(&id));
    let hb = c
        .post_json(
            &format!("/v1/jobs/{id}/heartbeat"),
            json!({"attempt": attempt, "lease": "2m"}),
        )
        .await
        .unwrap();
    assert!(hb["lease_expires_at"].is_string());
    let (s, code, _) = api_err(
        c.post_json(
            &format!("/v1/jobs/{id}/complete"),
            json!({"attempt": attempt + 1}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (409, "stale_attempt"));
    let done = c
        .post_json(
            &format!("/v1/jobs/{id}/complete"),
            json!({"attempt": attempt, "result": {"rows": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(done["state"], "completed");
    assert_eq!(
        c.get_json(&format!("/v1/jobs/{id}")).await.unwrap()["result"],
        json!({"rows": 3})
    );
    // The other job: leased now if the long poll took only the first.
    let oid = *ids.iter().find(|i| **i != id).unwrap();
    if jobs.len() < 2 {
        let rest = c
            .post_json("/v1/queues/tasks/lease", json!({"worker": "py-1"}))
            .await
            .unwrap();
        assert_eq!(rest["jobs"][0]["id"], oid);
    }
    let r = c
        .post_json(
            &format!("/v1/jobs/{oid}/fail"),
            json!({"attempt": 1, "error": "no such user", "retry": false}),
        )
        .await
        .unwrap();
    assert_eq!(r["state"], "discarded");
    let shown = c.get_json(&format!("/v1/jobs/{oid}")).await.unwrap();
    assert_eq!(shown["errors"][0]["error"], "no such user");
    d.stop().await;
}

/// Many outcomes in one call, the next jobs leased in the same call, leases extended in
/// bulk; each outcome guarded by its attempt, and nothing recorded for a job of another
/// queue.
#[tokio::test]
async fn a_pull_worker_reports_many_and_leases_the_next_in_one_call() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let jobs: Vec<Value> = (0..6)
        .map(|i| json!({"queue": "tasks", "kind": "x", "args": {"i": i}}))
        .collect();
    c.post_json("/v1/jobs/bulk", json!({"jobs": jobs}))
        .await
        .unwrap();
    let mail = c
        .post_json("/v1/jobs", json!({"queue": "mail", "kind": "m"}))
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let first = c
        .post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "lease": {"max": 4}}),
        )
        .await
        .unwrap();
    assert_eq!(first["done"], json!([]));
    let held: Vec<(i64, u64)> = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_i64().unwrap(), j["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(held.len(), 4);
    let beat = c
        .post_json(
            "/v1/queues/tasks/heartbeat",
            json!({"jobs": [{"id": held[0].0, "attempt": 1}, {"id": held[1].0, "attempt": 9}], "lease": "5m"}),
        )
        .await
        .unwrap();
    assert!(beat["jobs"][0]["lease_expires_at"].is_string(), "{beat}");
    assert_eq!(beat["jobs"][1]["error"], "stale_attempt");
    // A job of another queue in the report: refused whole, nothing recorded.
    let (s, code, msg) = api_err(
        c.post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "done": [{"id": held[0].0, "attempt": 1}, {"id": mail, "attempt": 1}]}),
        )
        .await,
    )
    .await;
    assert_eq!((s, code.as_str()), (400, "invalid"));
    assert!(
        msg.contains(&format!("job {mail} is on queue `mail`")),
        "{msg}"
    );
    let still = c
        .get_json(&format!("/v1/jobs/{}", held[0].0))
        .await
        .unwrap();
    assert_eq!(still["state"], "running");
    // `result` with `error`: refused, with what would be right.
    let (s, _, msg) = api_err(
        c.post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "done": [{"id": held[0].0, "attempt": 1, "result": 1, "error": "x"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("a completion has no `error`"), "{msg}");
    let next = c
        .post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "done": [
                {"id": held[0].0, "attempt": 1, "result": {"ok": true}},
                {"id": held[1].0, "attempt": 1, "error": "flaky"},
                {"id": held[2].0, "attempt": 1, "error": "bad input", "retry": false},
                {"id": held[3].0, "attempt": 1, "error": "busy", "retry_after": "0s"},
                {"id": 999_999, "attempt": 1},
            ], "lease": {"max": 10}}),
        )
        .await
        .unwrap();
    let states: Vec<&str> = next["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().or(d["error"].as_str()).unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "completed",
            "retryable",
            "discarded",
            "available",
            "stale_attempt"
        ]
    );
    // The leased batch: the two never leased, and the snoozed one again (attempt 1
    // not counted, so this is its second attempt number but the same count of failures).
    let again: Vec<i64> = next["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(again.len(), 3, "{next}");
    assert!(again.contains(&held[3].0));
    let done = c
        .get_json(&format!("/v1/jobs/{}", held[0].0))
        .await
        .unwrap();
    assert_eq!(done["result"], json!({"ok": true}));
    // Reporting the same completion twice: the second is stale, nothing changes.
    let twice = c
        .post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "done": [{"id": held[0].0, "attempt": 1}]}),
        )
        .await
        .unwrap();
    assert_eq!(twice["done"][0]["error"], "stale_attempt");
    // A queue berth does not know, and a job named twice.
    let (s, _, _) = api_err(
        c.post_json(
            "/v1/queues/nope/report",
            json!({"worker": "w", "done": [{"id": 1, "attempt": 1}]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, msg) = api_err(
        c.post_json(
            "/v1/queues/tasks/report",
            json!({"worker": "w", "done": [{"id": again[0], "attempt": 1}, {"id": again[0], "attempt": 1}]}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("named twice"), "{msg}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_requires_the_bearer_token() {
    let p = project();
    let token = "s3cret-token-of-enough-length".to_string();
    let d = daemon(
        &p,
        Options {
            tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
            tcp_token: Some(token.clone()),
            ..Default::default()
        },
    )
    .await;
    let addr = d.tcp_addr().unwrap().to_string();
    let anon = Client::new(Endpoint::Tcp {
        addr: addr.clone(),
        token: None,
    });
    let (s, code, _) = api_err(anon.get_json("/v1/status").await).await;
    assert_eq!((s, code.as_str()), (401, "unauthorized"));
    let wrong = Client::new(Endpoint::Tcp {
        addr: addr.clone(),
        token: Some("nope".into()),
    });
    assert_eq!(api_err(wrong.get_json("/v1/status").await).await.0, 401);
    let ok = Client::new(Endpoint::Tcp {
        addr,
        token: Some(token),
    });
    let st = ok.get_json("/v1/status").await.unwrap();
    assert_eq!(st["app"], "test");
    d.stop().await;
}

#[tokio::test]
async fn stopping_answers_waiting_workers_at_once() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let poll = tokio::spawn(async move {
        c.post_json(
            "/v1/queues/tasks/lease",
            json!({"worker": "w", "wait": "60s"}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    d.stop().await;
    let answer = poll.await.unwrap().unwrap();
    assert_eq!(answer["jobs"], json!([]));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped in {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn limits_on_delays_bulk_size_and_who_may_report() {
    let p = Project::new(&config_text(
        "[queue.tasks]\nhandler = \"pull\"\n\n[queue.cmd]\nhandler = { run = \"sleep 30\" }\n",
    ));
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    let (s, _, msg) = api_err(
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": "x", "delay": "10000years"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("100 years"), "{msg}");
    // A bulk push of 40,000 jobs (about 3 MB of JSON) is taken whole.
    let jobs: Vec<Value> = (0..40_000)
        .map(|i| json!({"queue": "tasks", "kind": "import", "args": {"row": i}}))
        .collect();
    let bulk = c
        .post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
        .await
        .unwrap();
    assert_eq!(bulk["jobs"].as_array().unwrap().len(), 40_000);
    // A job berth runs itself cannot be completed by an outside worker.
    let id = c
        .post_json("/v1/jobs", json!({"queue": "cmd", "kind": "x"}))
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    berth_testkit::wait_until("the command to start", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let j = c.get_json(&format!("/v1/jobs/{id}")).await.ok()?;
            (j["state"] == "running").then_some(())
        }
    })
    .await;
    let (s, _, msg) = api_err(
        c.post_json(&format!("/v1/jobs/{id}/complete"), json!({"attempt": 1}))
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(msg.contains("berth runs itself"), "{msg}");
    c.post_json(&format!("/v1/jobs/{id}/cancel"), json!({}))
        .await
        .unwrap();
    d.stop().await;
}

/// The job list searches the arguments' text and filters by when jobs were pushed; a
/// bulk action takes the same filters; a bad time is a 400 that says what is right.
#[tokio::test]
async fn jobs_are_found_by_their_arguments_and_push_time() {
    let p = project();
    let d = daemon(&p, Options::default()).await;
    let c = p.client();
    for (kind, customer) in [
        ("invoice", "alice@example.com"),
        ("invoice", "bob@example.com"),
    ] {
        c.post_json(
            "/v1/jobs",
            json!({"queue": "tasks", "kind": kind, "args": {"customer": customer, "total": 12}}),
        )
        .await
        .unwrap();
    }
    let found = c
        .get_json("/v1/jobs?args=alice%40example.com")
        .await
        .unwrap();
    let jobs = found["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{found}");
    assert_eq!(jobs[0]["args"]["customer"], "alice@example.com");
    let typed: berth_api::types::JobPage =
        c.get("/v1/jobs?args=example.com&since=1h").await.unwrap();
    assert_eq!(typed.jobs.len(), 2);
    let none: berth_api::types::JobPage = c.get("/v1/jobs?until=1h").await.unwrap();
    assert!(none.jobs.is_empty(), "nothing was pushed over an hour ago");
    let (status, code, message) = api_err(c.get_json("/v1/jobs?since=yesterday").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid"));
    assert!(message.contains("neither a duration"), "{message}");
    // The same filter acts in bulk: only Bob's job is cancelled.
    let r = c
        .post_json(
            "/v1/jobs/actions",
            json!({"action": "cancel", "args": "bob@", "since": "10m"}),
        )
        .await
        .unwrap();
    assert_eq!(r["done"], 1, "{r}");
    let cancelled = c.get_json("/v1/jobs?state=cancelled").await.unwrap();
    assert_eq!(cancelled["jobs"][0]["args"]["customer"], "bob@example.com");
    // An empty text narrows nothing: an action with only it is refused.
    let (status, _, message) = api_err(
        c.post_json(
            "/v1/jobs/actions",
            json!({"action": "delete", "args": "", "state": ""}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("an action on every job is refused"),
        "{message}"
    );
    let left = c.get_json("/v1/jobs").await.unwrap();
    assert_eq!(
        left["jobs"].as_array().unwrap().len(),
        2,
        "nothing was deleted"
    );
    // A path that does not read is the API's JSON error too.
    let (status, code, _) = api_err(c.get_json("/v1/queues/%FF").await).await;
    assert_eq!((status, code.as_str()), (400, "bad_path"));
    d.stop().await;
}
