//! Requests refused before their body was read (a spent budget, no route, a rate limit, a
//! body over the limit) reach ordinary clients reliably: curl over HTTP/1.1 and HTTP/2
//! gets the answer every time, not a reset.

use std::sync::Arc;
use std::time::Duration;

use berth_gateway::{BudgetSpec, Gateway, RateLimitSpec, Upstream};
use berth_store::{SqliteStore, Store};

use crate::proxy::upstream;
use crate::{FixedBackends, proxy_route, spec};

/// curl's status code for `args`, or what curl said when it failed.
async fn status(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(&args)
            .output()
            .expect("curl runs");
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!(
                "curl failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_body_was_read_reach_curl_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&tmp.path().join("berth.db"), Default::default()).unwrap());
    let up = upstream(0).await;
    let mut spent = proxy_route("/spent", Upstream::Fixed(up.addr.to_string()), false);
    spent.budget = Some("spent".into());
    let mut limited = proxy_route("/limited", Upstream::Fixed(up.addr.to_string()), false);
    limited.rate_limit = Some(RateLimitSpec {
        per_address: Some(0.0001),
        per_user: None,
        burst: Some(1),
    });
    let small = proxy_route("/small", Upstream::Fixed(up.addr.to_string()), false);
    let mut s = spec(vec![spent, limited, small], &tmp.path().join("tls"));
    s.budgets = vec![BudgetSpec {
        name: "spent".into(),
        limit: 1,
        period: berth_gateway::Period::Month,
        tz: jiff::tz::TimeZone::UTC,
        cost_per_request: 1,
        cost_header: None,
        status: hyper::StatusCode::PAYMENT_REQUIRED,
    }];
    let gateway = Gateway::start(s, Arc::new(FixedBackends::default()), Some(store))
        .await
        .expect("gateway starts");
    let base = format!("http://{}", gateway.local_addrs()[0]);
    // Spend the budget and the rate limit's one request.
    for path in ["spent", "limited"] {
        assert_eq!(status(vec![format!("{base}/{path}/x")]).await, "200");
    }
    let body = tmp.path().join("body");
    std::fs::write(&body, vec![b'x'; 100_000]).unwrap();
    let data = format!("@{}", body.display());
    let mut failures = Vec::new();
    for round in 0..15 {
        for (path, expected) in [
            ("spent", "402"),
            ("limited", "429"),
            ("nowhere", "404"),
            ("small", "413"),
        ] {
            for http in ["--http1.1", "--http2-prior-knowledge"] {
                let args = vec![
                    http.to_owned(),
                    "--data-binary".to_owned(),
                    data.clone(),
                    format!("{base}/{path}/x"),
                ];
                let got = status(args).await;
                if got != expected {
                    failures.push(format!("round {round}, {path} over {http}: {got}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 120 refusals did not reach curl: {failures:#?}",
        failures.len()
    );
    gateway.stop(Duration::from_secs(1)).await;
}
