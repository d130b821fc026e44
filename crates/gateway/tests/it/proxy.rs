//! Proxying: headers in and out, limits and timeouts, round robin, an instance dying
//! under load, and a WebSocket through the proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_gateway::Upstream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{FixedBackends, curl, proxy_route, spec, start};

/// An upstream test server: answers with JSON describing the request (and which
/// instance it is), sleeps on `/slow`, and echoes raw bytes after a 101 on `/ws`.
pub struct Upstream_ {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its accept loop; aborting it kills the instance.
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts an upstream test server that calls itself `instance`.
pub async fn upstream(instance: usize) -> Upstream_ {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            conns.spawn(async move {
                let service = service_fn(move |req| answer(instance, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
        // Dropping the task drops `conns`, which aborts every connection: a dead instance.
    });
    Upstream_ { addr, task }
}

async fn answer(
    instance: usize,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/ws" {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        return Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "test")
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    if req.uri().path().ends_with("/slow") {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
        .collect();
    let method = req.method().to_string();
    let path = req.uri().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = json!({
        "instance": instance,
        "method": method,
        "path": path,
        "headers": headers,
        "body_len": body.len(),
    });
    let cost = if path.ends_with("/costly") {
        "0.6"
    } else {
        "0"
    };
    Ok(Response::builder()
        .header("content-type", "application/json")
        .header("x-cost", cost)
        .header("connection", "keep-alive")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::from(reply.to_string())))
        .unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_set_and_forged_identity_is_stripped() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let routes = vec![
        proxy_route("/api", Upstream::Fixed(up.addr.to_string()), true),
        proxy_route("/keep", Upstream::Fixed(up.addr.to_string()), false),
    ];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;
    let (code, body) = curl(&[
        "-H",
        "X-Berth-User: admin",
        "-H",
        "X-Berth-Roles: admin",
        "-H",
        "x-berth-anything: forged",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "-H",
        "Forwarded: for=203.0.113.9",
        "-H",
        "X-Real-IP: 203.0.113.9",
        "-H",
        "Connection: keep-alive, X-Drop-Me",
        "-H",
        "X-Drop-Me: 1",
        &format!("{base}/api/items?page=2"),
    ])
    .await;
    assert_eq!(code, "200", "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/items?page=2");
    let h = &seen["headers"];
    for forged in [
        "x-berth-user",
        "x-berth-roles",
        "x-berth-anything",
        "x-drop-me",
        "forwarded",
        "x-real-ip",
    ] {
        assert!(
            h.get(forged).is_none(),
            "{forged} reached the upstream: {h}"
        );
    }
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], base.trim_start_matches("http://"));
    assert_eq!(h["host"], base.trim_start_matches("http://"));

    // Without strip_prefix the path is kept; hop-by-hop response headers are dropped.
    let head = crate::curl_head(&[&format!("{base}/keep/x")]).await;
    assert!(!head.contains("keep-alive: timeout"), "{head}");
    let (_, body) = curl(&[&format!("{base}/keep/x")]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["path"],
        "/keep/x"
    );
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

/// Sends `request` as it is and returns what the upstream said it got (the echo's JSON).
async fn raw_echo(addr: &str, request: &str) -> Value {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8_lossy(&got);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    // The echo's JSON, whatever the framing.
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    serde_json::from_str(json).unwrap()
}

/// Every rule of the gateway's `headers` module, on both paths that proxy: a bodiless
/// GET takes the fast path for plain HTTP/1.1, a POST with a body the general one
/// (hyper's). The upstream reports the headers it got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_header_rule_holds_on_both_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let routes = vec![proxy_route(
        "/api",
        Upstream::Fixed(up.addr.to_string()),
        true,
    )];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;
    let addr = base.trim_start_matches("http://").to_string();
    // The client's header lines; the header looked at; what the upstream must get (None:
    // not there).
    let table: Vec<(&str, &str, Option<String>)> = vec![
        ("X-Berth-User: admin", "x-berth-user", None),
        ("X_Berth_Roles: admin", "x_berth_roles", None),
        ("x-berth-anything: forged", "x-berth-anything", None),
        ("Forwarded: for=203.0.113.9", "forwarded", None),
        ("X-Real-IP: 203.0.113.9", "x-real-ip", None),
        ("X-Forwarded-Port: 8443", "x-forwarded-port", None),
        ("X-Forwarded-Prefix: /evil", "x-forwarded-prefix", None),
        (
            "X-Forwarded-Host: evil.example",
            "x-forwarded-host",
            Some(addr.clone()),
        ),
        (
            "X-Forwarded-Proto: https",
            "x-forwarded-proto",
            Some("http".into()),
        ),
        (
            "X-Forwarded-For: 203.0.113.9",
            "x-forwarded-for",
            Some("203.0.113.9, 127.0.0.1".into()),
        ),
        ("", "x-forwarded-for", Some("127.0.0.1".into())),
        (
            "Cookie: a=1; berth_session=secret; b=2",
            "cookie",
            Some("a=1; b=2".into()),
        ),
        ("Cookie: berth_session=secret", "cookie", None),
        ("Cookie: app=1", "cookie", Some("app=1".into())),
        (
            "Connection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1",
            "x-drop-me",
            None,
        ),
        ("Keep-Alive: timeout=5", "keep-alive", None),
        (
            "Proxy-Authorization: Basic eDp4",
            "proxy-authorization",
            None,
        ),
        ("TE: trailers", "te", None),
        ("Upgrade: h2c", "upgrade", None),
        ("X-App: kept", "x-app", Some("kept".into())),
        ("", "host", Some(addr.clone())),
    ];
    for (lines, header, want) in &table {
        let extra = if lines.is_empty() {
            String::new()
        } else {
            format!("{lines}\r\n")
        };
        let fast =
            format!("GET /api/echo HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
        let general = format!(
            "POST /api/echo HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: 2\r\n\
             Connection: close\r\n\r\n{{}}"
        );
        for (path, request) in [("fast", fast), ("general", general)] {
            let seen = raw_echo(&addr, &request).await;
            let got = seen["headers"].get(*header).and_then(Value::as_str);
            assert_eq!(
                got,
                want.as_deref(),
                "{path} path, sent {lines:?}: {header} reached the upstream as {got:?}"
            );
        }
    }
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_timeouts_and_missing_instances_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let backends = Arc::new(FixedBackends::default());
    let routes = vec![
        proxy_route("/fixed", Upstream::Fixed(up.addr.to_string()), false),
        proxy_route("/svc", Upstream::Service("api".into()), false),
        proxy_route("/down", Upstream::Fixed("127.0.0.1:1".into()), false),
    ];
    let (gateway, base) = start(spec(routes, tmp.path()), backends.clone()).await;

    // The limit is 1024 bytes: declared too large, and streamed too large (chunked).
    let big = "x".repeat(2000);
    let (code, body) = curl(&["--data-binary", &big, &format!("{base}/fixed/upload")]).await;
    assert_eq!(code, "413", "{body}");
    assert!(body.contains("1024 bytes"), "{body}");
    let (code, body) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &big,
        &format!("{base}/fixed/upload"),
    ])
    .await;
    assert_eq!(code, "413", "{body}");
    let (code, body) = curl(&["--data-binary", "small", &format!("{base}/fixed/upload")]).await;
    assert_eq!(code, "200", "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["body_len"], 5);

    // The route's timeout is 2 s; the upstream takes 5.
    let started = std::time::Instant::now();
    let (code, body) = curl(&[&format!("{base}/fixed/slow")]).await;
    assert_eq!(code, "504", "{body}");
    assert!(body.contains("did not answer within 2 seconds"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4));

    let (code, body) = curl(&[&format!("{base}/svc/x")]).await;
    assert_eq!(code, "503", "{body}");
    assert!(
        body.contains("service `api` has no ready instance"),
        "{body}"
    );
    let (code, body) = curl(&[&format!("{base}/down/x")]).await;
    assert_eq!(code, "502", "{body}");
    assert!(
        !body.contains("127.0.0.1:1"),
        "the upstream's address leaked: {body}"
    );
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_an_instance_dying_under_load_costs_no_request() {
    let tmp = tempfile::tempdir().unwrap();
    let ups = [upstream(0).await, upstream(1).await, upstream(2).await];
    let backends = Arc::new(FixedBackends::default());
    backends.set("api", ups.iter().map(|u| u.addr).collect());
    let (gateway, base) = start(
        spec(
            vec![proxy_route("/", Upstream::Service("api".into()), false)],
            tmp.path(),
        ),
        backends.clone(),
    )
    .await;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let get = |client: hyper_util::client::legacy::Client<_, _>, url: String| async move {
        let response = client
            .get(url.parse().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        Ok::<usize, String>(v["instance"].as_u64().unwrap() as usize)
    };
    let mut seen = [0usize; 3];
    for _ in 0..30 {
        seen[get(client.clone(), format!("{base}/rr")).await.unwrap()] += 1;
    }
    assert_eq!(seen, [10, 10, 10], "round robin over three instances");

    // Load from 8 clients; instance 1 dies a third of the way in. The supervisor has not
    // noticed (the backends still list it), so the gateway must skip it by itself.
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (client, base, done) = (client.clone(), base.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..150 {
                if let Err(e) = get(client.clone(), format!("{base}/load")).await {
                    failures.push(e);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    berth_testkit::wait_until("400 requests done", Duration::from_secs(30), || async {
        (done.load(Ordering::Relaxed) >= 400).then_some(())
    })
    .await;
    ups[1].task.abort();
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    assert_eq!(done.load(Ordering::Relaxed), 1200);
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // A request is counted once its answer is written, so the client can hold the last
    // answer a moment before its count lands.
    let stats = berth_testkit::wait_until("every request counted", Duration::from_secs(5), || {
        let stats = gateway.stats();
        std::future::ready((stats[0].requests >= 1230).then_some(stats))
    })
    .await;
    assert_eq!(stats[0].requests, 1230);
    assert_eq!(stats[0].status_2xx, 1230);
    gateway.stop(Duration::from_secs(1)).await;
}

/// A WebSocket handshake through the gateway at `addr` to the test upstream's `/ws`:
/// the stream and the answer's head, lowercase.
async fn open_websocket(addr: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (stream, String::from_utf8_lossy(&head).to_ascii_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_echoed_through_the_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let (gateway, base) = start(
        spec(
            vec![proxy_route(
                "/",
                Upstream::Fixed(up.addr.to_string()),
                false,
            )],
            tmp.path(),
        ),
        Arc::new(FixedBackends::default()),
    )
    .await;
    let addr = base.trim_start_matches("http://");
    let (mut stream, head) = open_websocket(addr).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // A masked text frame "hello", as a browser sends it, comes back byte for byte.
    let frame = [
        0x81,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    for _ in 0..3 {
        stream.write_all(&frame).await.unwrap();
        let mut back = [0u8; 11];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
            .await
            .expect("the echo arrives")
            .unwrap();
        assert_eq!(back, frame);
    }
    drop(stream);
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

/// A WebSocket that passes no byte either way for the route's `upgrade_idle` is closed
/// by the gateway; one with traffic stays open past that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_is_closed_and_a_busy_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upstream(0).await;
    let mut route = proxy_route("/", Upstream::Fixed(up.addr.to_string()), false);
    if let berth_gateway::Target::Proxy { upgrade_idle, .. } = &mut route.target {
        *upgrade_idle = Duration::from_millis(800);
    }
    let (gateway, base) = start(
        spec(vec![route], tmp.path()),
        Arc::new(FixedBackends::default()),
    )
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    let open = || async {
        let (stream, head) = open_websocket(&addr).await;
        assert!(head.starts_with("http/1.1 101"), "{head}");
        stream
    };
    // Busy: a byte each 200 ms for 2 s (2.5 times the idle time), echoed each time.
    let mut busy = open().await;
    for _ in 0..10 {
        busy.write_all(b"x").await.unwrap();
        let mut back = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(2), busy.read_exact(&mut back))
            .await
            .expect("a busy WebSocket stays open")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Idle: closed by the gateway soon after the idle time.
    let mut idle = open().await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("the gateway closes an idle WebSocket");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(700),
        "closed after {after:?}"
    );
    drop(busy);
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}

/// A request whose connection one instance refuses never left berth: it goes to the next
/// instance whatever its method, with its body whole (and its `Content-Length`), over
/// HTTP/1.1 and HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_sends_any_request_to_the_next_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let live = upstream(1).await;
    // An address nobody listens on: connections to it are refused.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let backends = Arc::new(FixedBackends::default());
    // The round robin starts at the dead instance on every even request.
    backends.set("api", vec![dead, live.addr]);
    let (gateway, base) = start(
        spec(
            vec![proxy_route("/", Upstream::Service("api".into()), false)],
            tmp.path(),
        ),
        backends.clone(),
    )
    .await;
    let body = "b".repeat(300);
    let url = format!("{base}/orders");
    let cases: [&[&str]; 3] = [
        &["--data-binary", &body, &url],
        &["--http2-prior-knowledge", "--data-binary", &body, &url],
        &["-X", "POST", &url],
    ];
    for (i, args) in cases.iter().enumerate() {
        if i > 0 {
            // Past the 2 s a refusing instance is skipped, then an odd request, so that
            // the next one starts at the dead instance again.
            tokio::time::sleep(Duration::from_millis(2_100)).await;
            let (code, _) = curl(&[&format!("{base}/odd")]).await;
            assert_eq!(code, "200");
        }
        let (code, answer) = curl(args).await;
        assert_eq!(code, "200", "{args:?}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["instance"], 1, "{v}");
        assert_eq!(v["method"], "POST", "{v}");
        let sent = if i < 2 { body.len() } else { 0 };
        assert_eq!(v["body_len"], sent, "{args:?}: {v}");
        if sent > 0 {
            assert_eq!(v["headers"]["content-length"], sent.to_string(), "{v}");
            assert!(v["headers"].get("transfer-encoding").is_none(), "{v}");
        }
    }
    gateway.stop(Duration::from_secs(1)).await;
    live.task.abort();
}

/// The response head of `request`, sent as it is: its lines after the status line, and
/// the status line.
async fn raw_head(addr: &str, request: &str) -> (String, Vec<String>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    let text = String::from_utf8_lossy(&got);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n").map(str::to_owned);
    let status = lines.next().unwrap_or_default();
    (status, lines.collect())
}

/// A route's `headers` are on every answer it gives, on both paths (a bodiless GET takes
/// the fast path, a POST with a body the general one): a proxied answer, whose own
/// header of the same name they replace, a static file, a refusal, and berth's answer
/// when the upstream is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_own_headers_are_on_every_answer_on_both_paths() {
    use hyper::header::{HeaderName, HeaderValue};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.txt"), "file").unwrap();
    let up = upstream(0).await;
    let own = vec![
        (
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ),
        // The upstream sends its own x-cost: the route's replaces it.
        (
            HeaderName::from_static("x-cost"),
            HeaderValue::from_static("none"),
        ),
    ];
    let mut api = proxy_route("/api", Upstream::Fixed(up.addr.to_string()), true);
    api.headers = own.clone();
    let mut files = crate::static_route("/files", tmp.path(), false);
    files.headers = own.clone();
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut down = proxy_route("/down", Upstream::Fixed(dead.to_string()), true);
    down.headers = own.clone();
    let routes = vec![api, files, down];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;
    let addr = base.trim_start_matches("http://").to_string();
    for (target, want) in [
        ("/api/echo", "200"),
        ("/files/a.txt", "200"),
        ("/down/x", "502"),
    ] {
        let fast = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let general = format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\n{{}}"
        );
        for (path, request) in [("fast", fast), ("general", general)] {
            let (status, lines) = raw_head(&addr, &request).await;
            // A POST to a file is refused (405): a refusal carries them too.
            let want = if path == "general" && target.starts_with("/files") {
                "405"
            } else {
                want
            };
            assert!(status.contains(want), "{path} {target}: {status}");
            let values = |name: &str| -> Vec<String> {
                lines
                    .iter()
                    .filter_map(|l| l.split_once(": "))
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_owned())
                    .collect()
            };
            assert_eq!(
                values("strict-transport-security"),
                ["max-age=31536000; includeSubDomains"],
                "{path} {target}: {lines:?}"
            );
            assert_eq!(values("x-cost"), ["none"], "{path} {target}: {lines:?}");
        }
    }
    gateway.stop(Duration::from_secs(1)).await;
    up.task.abort();
}
