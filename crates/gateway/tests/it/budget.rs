//! Budgets: spent mid-stream and refused at once with a JSON error, reset at the period
//! boundary (an injected clock), kept across a restart, charged by what the service
//! reports, and alerted once at 80% and 100%.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_gateway::{BudgetSpec, Clock, Gateway, GatewaySpec, Period, Upstream};
use berth_store::{EventFilter, SqliteStore, Store, Timestamp};
use serde_json::Value;

use crate::proxy::upstream;
use crate::{FixedBackends, curl, curl_head_raw, proxy_route, spec};

fn ts(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_microsecond()
}

struct Setup {
    spec: GatewaySpec,
    store: Arc<dyn Store>,
    now: Arc<AtomicI64>,
    _tmp: tempfile::TempDir,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&tmp.path().join("berth.db"), Default::default()).unwrap());
    let up = upstream(0).await;
    let now = Arc::new(AtomicI64::new(ts("2026-11-22T23:59:00Z")));
    let clock = {
        let now = now.clone();
        Clock(Arc::new(move || Timestamp(now.load(Ordering::SeqCst))))
    };
    let mut nlu = proxy_route("/nlu", Upstream::Fixed(up.addr.to_string()), false);
    nlu.budget = Some("nlu".into());
    let mut metered = proxy_route("/metered", Upstream::Fixed(up.addr.to_string()), false);
    metered.budget = Some("metered".into());
    let mut spec = spec(vec![nlu, metered], &tmp.path().join("tls"));
    spec.budgets = vec![
        BudgetSpec {
            name: "nlu".into(),
            limit: 10_000,
            period: Period::Day,
            tz: jiff::tz::TimeZone::UTC,
            cost_per_request: 2_000,
            cost_header: None,
            status: hyper::StatusCode::PAYMENT_REQUIRED,
        },
        BudgetSpec {
            name: "metered".into(),
            limit: 1_000_000,
            period: Period::Month,
            tz: jiff::tz::TimeZone::UTC,
            cost_per_request: 0,
            cost_header: Some(hyper::header::HeaderName::from_static("x-cost")),
            status: hyper::StatusCode::TOO_MANY_REQUESTS,
        },
    ];
    spec.clock = clock;
    std::mem::forget(up);
    Setup {
        spec,
        store,
        now,
        _tmp: tmp,
    }
}

async fn start(s: &Setup) -> (Gateway, String) {
    let gateway = Gateway::start(
        s.spec.clone(),
        Arc::new(FixedBackends::default()),
        Some(s.store.clone()),
    )
    .await
    .expect("gateway starts");
    let base = format!("http://{}", gateway.local_addrs()[0]);
    (gateway, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_runs_out_mid_stream_and_resets_at_the_period_boundary() {
    let s = setup().await;
    let (gateway, base) = start(&s).await;
    let url = format!("{base}/nlu/ask");
    // 0.01 at 0.002 a request: five go through, the sixth is refused at once.
    for i in 0..5 {
        assert_eq!(curl(&[&url]).await.0, "200", "request {i}");
    }
    let started = std::time::Instant::now();
    let (code, body) = curl(&[&url]).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once"
    );
    assert_eq!(code, "402", "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "budget_exhausted");
    assert_eq!(v["budget"], "nlu");
    assert_eq!(v["limit"], 0.01);
    assert_eq!(v["spent"], 0.01);
    assert_eq!(v["period"], "day");
    assert_eq!(v["resets_at"], "2026-11-23T00:00:00.000Z");
    let head = curl_head_raw(&[&url]).await;
    assert!(head.contains("retry-after: 60"), "{head}");

    // Kept across a restart: the stop flushes, the next start reads it back.
    gateway.stop(Duration::from_secs(1)).await;
    let (gateway, base) = start(&s).await;
    let url = format!("{base}/nlu/ask");
    assert_eq!(curl(&[&url]).await.0, "402");
    let events = s
        .store
        .events(EventFilter {
            source: Some("budget".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["budget.100"],
        "80% and 100% were crossed in one flush: one event"
    );

    // Midnight: a new day, a fresh budget.
    s.now.store(ts("2026-11-23T00:00:01Z"), Ordering::SeqCst);
    assert_eq!(curl(&[&url]).await.0, "200");
    gateway.stop(Duration::from_secs(1)).await;
    let stored = s.store.budgets().await.unwrap();
    let nlu = stored.iter().find(|(n, _)| n == "nlu").unwrap().1;
    assert_eq!(
        (nlu.period_start.0, nlu.spent),
        (ts("2026-11-23T00:00:00Z"), 2_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_the_service_reports_is_charged_and_hidden() {
    let s = setup().await;
    let (gateway, base) = start(&s).await;
    let url = format!("{base}/metered/costly");
    let head = curl_head_raw(&[&url]).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("x-cost"),
        "the cost header reached the client: {head}"
    );
    // 0.6 + 0.6 passes the limit of 1.0; the next is refused with this budget's 429.
    assert_eq!(curl(&[&url]).await.0, "200");
    let (code, body) = curl(&[&url]).await;
    assert_eq!(code, "429", "{body}");
    assert!(
        body.contains("budget `metered` is spent: 1.2 of 1 this month"),
        "{body}"
    );
    // The flusher (not only the last flush at stop) stores the spending and the alerts.
    berth_testkit::wait_until(
        "the flusher stores the spending",
        Duration::from_secs(10),
        || async {
            let stored = s.store.budgets().await.ok()?;
            let metered = stored.iter().find(|(n, _)| n == "metered")?.1;
            (metered.spent == 1_200_000).then_some(())
        },
    )
    .await;
    gateway.stop(Duration::from_secs(1)).await;
    let stored = s.store.budgets().await.unwrap();
    let metered = stored.iter().find(|(n, _)| n == "metered").unwrap().1;
    assert_eq!((metered.spent, metered.alerted), (1_200_000, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_80_and_100_percent_records_one_event_each() {
    let s = setup().await;
    let kinds = |store: Arc<dyn Store>| async move {
        store
            .events(EventFilter {
                source: Some("budget".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event.kind)
            .collect::<Vec<_>>()
    };
    // 4 of 5 requests' worth: 80 %. The stop's flush records it.
    let (gateway, base) = start(&s).await;
    for _ in 0..4 {
        assert_eq!(curl(&[&format!("{base}/nlu/ask")]).await.0, "200");
    }
    gateway.stop(Duration::from_secs(1)).await;
    assert_eq!(kinds(s.store.clone()).await, ["budget.80"]);
    // The fifth spends it: 100 %, once; the 80 % is not sent again.
    let (gateway, base) = start(&s).await;
    assert_eq!(curl(&[&format!("{base}/nlu/ask")]).await.0, "200");
    assert_eq!(curl(&[&format!("{base}/nlu/ask")]).await.0, "402");
    gateway.stop(Duration::from_secs(1)).await;
    let (gateway, _) = start(&s).await;
    gateway.stop(Duration::from_secs(1)).await;
    assert_eq!(kinds(s.store.clone()).await, ["budget.100", "budget.80"]);
    let message = s
        .store
        .events(EventFilter {
            source: Some("budget".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .remove(0)
        .event
        .message;
    assert_eq!(message, "budget `nlu` is at 100%: 0.01 of 0.01");
}
