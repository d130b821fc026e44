//! Rate limits per client address and per user, and maintenance mode with its admin pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_gateway::auth::{hash_password, new_token};
use berth_gateway::{AuthMethod, Gateway, RateLimitSpec, RouteAuth, Upstream};
use berth_store::{NewToken, SqliteStore, Store, Timestamp, TokenRecord};

use crate::proxy::upstream;
use crate::{FixedBackends, curl, curl_head, proxy_route, spec};

async fn token_for(store: &dyn Store, user: &str) -> String {
    let (id, secret, hash) = new_token().unwrap();
    store
        .token_create(NewToken {
            token: TokenRecord {
                id,
                user: user.into(),
                label: String::new(),
                created_at: Timestamp::now(),
                expires_at: None,
                scopes: Vec::new(),
            },
            hash,
        })
        .await
        .unwrap();
    format!("Authorization: Bearer {secret}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_address_and_per_user_and_maintenance_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&tmp.path().join("berth.db"), Default::default()).unwrap());
    let now = Timestamp::now();
    for (name, roles) in [
        ("ann", vec![]),
        ("ben", vec![]),
        ("root", vec!["admin".to_owned()]),
    ] {
        store
            .user_create(name, &hash_password("password-1").unwrap(), roles, now)
            .await
            .unwrap();
    }
    let up = upstream(0).await;
    let mut open = proxy_route("/open", Upstream::Fixed(up.addr.to_string()), false);
    open.rate_limit = Some(RateLimitSpec {
        per_address: Some(1.0),
        per_user: None,
        burst: Some(3),
    });
    let mut api = proxy_route("/api", Upstream::Fixed(up.addr.to_string()), false);
    api.auth = Some(RouteAuth {
        method: AuthMethod::Token,
        roles: vec![],
    });
    api.rate_limit = Some(RateLimitSpec {
        per_address: None,
        per_user: Some(0.5),
        burst: Some(2),
    });
    let gateway = Gateway::start(
        spec(
            vec![
                open,
                api,
                proxy_route("/", Upstream::Fixed(up.addr.to_string()), false),
            ],
            &tmp.path().join("tls"),
        ),
        Arc::new(FixedBackends::default()),
        Some(store.clone()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", gateway.local_addrs()[0]);

    // Three at once (the burst), then one a second.
    for i in 0..3 {
        assert_eq!(
            curl(&[&format!("{base}/open/x")]).await.0,
            "200",
            "request {i}"
        );
    }
    let head = curl_head(&[&format!("{base}/open/x")]).await;
    assert!(head.starts_with("http/1.1 429"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    let (_, body) = curl(&[&format!("{base}/open/x")]).await;
    assert!(
        body.contains("too many requests from this address"),
        "{body}"
    );
    // Other routes are not limited.
    assert_eq!(curl(&[&format!("{base}/other")]).await.0, "200");

    // Per user: ann's two, then 429, while ben still has his.
    let (ann, ben) = (
        token_for(store.as_ref(), "ann").await,
        token_for(store.as_ref(), "ben").await,
    );
    let api_url = format!("{base}/api/x");
    assert_eq!(curl(&["-H", &ann, &api_url]).await.0, "200");
    assert_eq!(curl(&["-H", &ann, &api_url]).await.0, "200");
    let (code, body) = curl(&["-H", &ann, &api_url]).await;
    assert_eq!(code, "429", "{body}");
    assert!(body.contains("from this user"), "{body}");
    assert_eq!(curl(&["-H", &ben, &api_url]).await.0, "200");

    // Maintenance: a page for browsers, JSON for the rest, and admins pass.
    store
        .set_setting(
            berth_gateway::MAINTENANCE_KEY,
            Some(serde_json::json!({"message": "Back at <5>."})),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&[&format!("{base}/other")]).await.0 != "503" {
        assert!(
            Instant::now() < deadline,
            "maintenance mode never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, page) = curl(&["-H", "Accept: text/html", &format!("{base}/other")]).await;
    assert_eq!(code, "503");
    assert!(page.contains("Back at &lt;5&gt;."), "{page}");
    let (_, json) = curl(&[&format!("{base}/other")]).await;
    assert!(json.contains("\"error\":\"maintenance\""), "{json}");
    let root = token_for(store.as_ref(), "root").await;
    assert_eq!(
        curl(&["-H", &root, &format!("{base}/other")]).await.0,
        "200"
    );
    // An admin can still log in.
    let (code, _) = curl(&[&format!("{base}/_berth/login")]).await;
    assert_eq!(code, "200");
    store
        .set_setting(berth_gateway::MAINTENANCE_KEY, None, Timestamp::now())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl(&[&format!("{base}/other")]).await.0 != "200" {
        assert!(Instant::now() < deadline, "maintenance mode never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

/// Whether the gateway closed `s` without answering: a read ends (0 bytes or a reset)
/// within a second.
async fn closed_at_once(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// One client address holds at most `per_address` connections at once (idle ones
/// count); the next is closed as soon as it is accepted, and a closed one frees its
/// place. The limit in all holds the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_client_address_and_in_all() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let route = proxy_route("/", Upstream::Fixed(up.addr.to_string()), false);
    let mut s = spec(vec![route], &tmp.path().join("tls"));
    s.connections = berth_gateway::ConnectionLimits {
        total: 1000,
        per_address: 5,
    };
    let (gateway, base) = crate::start(s, Arc::new(FixedBackends::default())).await;
    let addr = gateway.local_addrs()[0];
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Let the gateway accept them all before the sixth.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sixth = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_at_once(&mut sixth).await,
        "the sixth connection from one address"
    );
    let (code, _) = curl(&[&format!("{base}/")]).await;
    assert!(
        code.starts_with("curl failed"),
        "curl is a sixth connection too: {code}"
    );
    drop(idle.pop());
    let started = Instant::now();
    loop {
        let (code, _) = curl(&[&format!("{base}/")]).await;
        if code == "200" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a place freed: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(idle);
    gateway.stop(Duration::from_secs(1)).await;

    let mut s = spec(
        vec![proxy_route(
            "/",
            Upstream::Fixed(up.addr.to_string()),
            false,
        )],
        &tmp.path().join("tls"),
    );
    s.connections = berth_gateway::ConnectionLimits {
        total: 3,
        per_address: 0,
    };
    let (gateway, _) = crate::start(s, Arc::new(FixedBackends::default())).await;
    let addr = gateway.local_addrs()[0];
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_at_once(&mut fourth).await,
        "the fourth connection in all"
    );
    assert!(
        !closed_at_once(&mut held[0]).await,
        "the first three stay open"
    );
    gateway.stop(Duration::from_secs(1)).await;
}
