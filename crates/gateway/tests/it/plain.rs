//! The lean path for plain HTTP/1.1 connections, driven over raw sockets so that what
//! goes over the wire is exact: pipelined requests, every way an upstream frames a
//! response, pooled upstream connections the upstream closed, and a connection that
//! moves to the general path in the middle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_gateway::{Gateway, RateLimitSpec, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{FixedBackends, curl, proxy_route, spec, start};

/// A hand-written HTTP/1.1 upstream, so that each framing is exactly what the test says:
/// `/chunked` (chunked, with a trailer), `/close` (HTTP/1.0, body until close),
/// `/once` (closes after the response without saying so), `/big` (1,000,000 bytes in
/// pieces); anything else answers `METHOD PATH BODY-LENGTH` with a Content-Length.
struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn raw_upstream() -> RawUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve_raw(stream));
        }
    });
    RawUpstream { addr, connections }
}

async fn serve_raw(mut stream: TcpStream) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let (length, taken) = loop {
            let got = if chunked {
                dechunk(&buf[end..])
            } else {
                let n = content_length(&head);
                (buf.len() >= end + n).then_some((n, n))
            };
            if let Some(got) = got {
                break got;
            }
            let mut more = [0u8; 4096];
            match stream.read(&mut more).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&more[..n]),
            }
        };
        buf.drain(..end + taken);
        let mut words = head.split_whitespace();
        let method = words.next().unwrap_or_default().to_owned();
        let path = words.next().unwrap_or_default().to_owned();
        let wrote = match path.as_str() {
            "/chunked" => {
                stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n",
                    )
                    .await
            }
            "/close" => {
                let _ = stream
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
                    .await;
                return;
            }
            "/once" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
                    .await;
                return;
            }
            "/late" => {
                // A response, then (after the gateway pooled the connection) bytes that
                // look like another response.
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPOISON")
                    .await;
                Ok(())
            }
            "/big" => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                    .await;
                for _ in 0..100 {
                    if stream.write_all(&[b'x'; 10_000]).await.is_err() {
                        return;
                    }
                }
                Ok(())
            }
            _ => {
                let mut body = format!("{method} {path} {length}");
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nKeep-Alive: timeout=5\r\nX-Upstream: raw\r\n\r\n",
                    body.len()
                );
                if method == "HEAD" {
                    body.clear();
                }
                stream.write_all(format!("{head}{body}").as_bytes()).await
            }
        };
        if wrote.is_err() {
            return;
        }
    }
}

/// A whole chunked body at the start of `data` (no extensions or trailers): its
/// decoded length and how many bytes it took; `None` while it is incomplete.
fn dechunk(data: &[u8]) -> Option<(usize, usize)> {
    let (mut at, mut length) = (0, 0);
    loop {
        let line = data[at..].windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[at..at + line]).ok()?, 16).ok()?;
        at += line + 2;
        if size == 0 {
            return (data.len() >= at + 2).then_some((length, at + 2));
        }
        if data.len() < at + size + 2 {
            return None;
        }
        length += size;
        at += size + 2;
    }
}

/// A gateway with `/p` proxied to `upstream` (prefix stripped): it, its base URL, and
/// its directory (kept as long as the gateway runs).
async fn in_front(upstream: &RawUpstream) -> (Gateway, String, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let routes = vec![proxy_route(
        "/p",
        Upstream::Fixed(upstream.addr.to_string()),
        true,
    )];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;
    (gateway, base, tmp)
}

/// Reads until `buf` holds a whole head; returns where it ends.
async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(at + 4);
        }
        let mut more = [0u8; 4096];
        match stream.read(&mut more).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&more[..n]),
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Everything the gateway sends on `stream` until it closes it, which must be within 5 s.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
        .await
        .expect("the gateway closes the connection within 5 s")
        .expect("the connection reads");
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads one response with a Content-Length body from `stream`; returns head and body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    let end = tokio::time::timeout(Duration::from_secs(5), read_until_head(stream, buf))
        .await
        .expect("a response within 5 s")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let length = content_length(&head);
    while buf.len() < end + length {
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&more[..n]);
    }
    let body = String::from_utf8_lossy(&buf[end..end + length]).to_string();
    buf.drain(..end + length);
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_get_every_framing_relayed_in_order() {
    let upstream = raw_upstream().await;
    let (gateway, base, _tmp) = in_front(&upstream).await;
    let addr = base.trim_start_matches("http://");

    let mut client = TcpStream::connect(addr).await.unwrap();
    // Four requests in one write; the last one's response ends when the upstream closes,
    // so the gateway closes the client's connection after it.
    client
        .write_all(
            b"GET /p/a HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /p/chunked HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /p/b HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /p/close HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let all = read_to_close(&mut client).await;
    let responses: Vec<&str> = all.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(responses.len(), 4, "four responses in order: {all}");
    assert!(
        responses[0].ends_with("\r\n\r\nGET /a 0"),
        "{}",
        responses[0]
    );
    // The plain path relays header names as the upstream wrote them (hyper would
    // lowercase them): these came the lean way.
    assert!(
        responses[0].contains("X-Upstream: raw\r\n"),
        "{}",
        responses[0]
    );
    assert!(
        responses[1].contains("transfer-encoding: chunked\r\n")
            && responses[1]
                .ends_with("\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"),
        "the chunked body passes through whole: {:?}",
        responses[1]
    );
    // HEAD: the length of what GET would send, and no body.
    assert!(
        responses[2].contains("content-length: 9\r\n") && responses[2].ends_with("\r\n\r\n"),
        "{:?}",
        responses[2]
    );
    assert!(
        responses[3].contains("connection: close\r\n")
            && responses[3].ends_with("\r\n\r\nuntil close"),
        "{:?}",
        responses[3]
    );
    // The upstream answered the first three on one pooled connection.
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_a_closed_one_is_replaced_without_an_error() {
    let upstream = raw_upstream().await;
    let (gateway, base, _tmp) = in_front(&upstream).await;
    let addr = base.trim_start_matches("http://");

    // Keep-alive both ways: twenty requests, one upstream connection per worker at most.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..20 {
        client
            .write_all(format!("GET /p/n{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("keep-alive"),
            "hop-by-hop dropped: {head}"
        );
        assert_eq!(body, format!("GET /n{i} 0"));
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);

    // The upstream closes each connection after answering, without saying so: the
    // pooled connection is dead when the next request comes, and a fresh one is used.
    for _ in 0..10 {
        client
            .write_all(b"GET /p/once HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, "once");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first went on the connection of the twenty; each later one found its pooled
    // connection closed and opened one more.
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 10);

    // A body larger than any buffer arrives whole.
    let (code, body) = curl(&[&format!("{base}/p/big")]).await;
    assert_eq!(code, "200");
    assert_eq!(body.len(), 1_000_000);
    assert!(body.bytes().all(|b| b == b'x'));
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_moves_to_the_general_path_for_a_request_with_a_body() {
    let upstream = raw_upstream().await;
    let (gateway, base, _tmp) = in_front(&upstream).await;
    let addr = base.trim_start_matches("http://");

    // An idempotent method with a body, by length and chunked, each after a request the
    // plain path served: the body reaches the upstream and the next request is read
    // where the body ends.
    for with_body in [
        &b"PUT /p/second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"PUT /p/second HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        client
            .write_all(b"GET /p/first HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert_eq!(body, "GET /first 0");
        assert!(head.contains("X-Upstream: raw"), "the plain path: {head}");
        let mut next = with_body.to_vec();
        next.extend_from_slice(b"GET /p/third HTTP/1.1\r\nHost: x\r\n\r\n");
        client.write_all(&next).await.unwrap();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert_eq!(body, "PUT /second 5");
        assert!(head.contains("x-upstream: raw"), "the general path: {head}");
        let (_, body) = read_response(&mut client, &mut buf).await;
        assert_eq!(body, "GET /third 0");
    }

    // A client that asks to close gets its answer, then the close (plain path).
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /p/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = read_to_close(&mut client).await;
    assert!(
        rest.contains("X-Upstream: raw") && rest.ends_with("GET /last 0"),
        "{rest}"
    );

    // Malformed requests are hyper's to refuse, on a fresh connection too.
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /p/x HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        .await
        .unwrap();
    let refused = read_to_close(&mut client).await;
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    gateway.stop(Duration::from_secs(1)).await;
}

/// The lean path takes a head as whole once its blank line is there; heads whose end
/// reads otherwise are answered all the same: lines ended by bare line feeds, empty lines
/// before the request line (alone in a first packet, too), and a blank line split
/// between two packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_are_answered_however_their_end_arrives() {
    let upstream = raw_upstream().await;
    let (gateway, base, _tmp) = in_front(&upstream).await;
    let addr = base.trim_start_matches("http://");
    let cases: [(&[&[u8]], &str); 4] = [
        (&[b"GET /p/lf HTTP/1.1\nHost: x\n\n"], "GET /lf 0"),
        (
            &[b"\r\n\r\nGET /p/lead HTTP/1.1\r\nHost: x\r\n\r\n"],
            "GET /lead 0",
        ),
        (
            &[b"\r\n\r\n", b"GET /p/later HTTP/1.1\r\nHost: x\r\n\r\n"],
            "GET /later 0",
        ),
        (
            &[b"GET /p/split HTTP/1.1\r\nHost: x\r\n", b"\r\n"],
            "GET /split 0",
        ),
    ];
    for (packets, answer) in cases {
        let mut client = TcpStream::connect(addr).await.unwrap();
        for packet in packets {
            client.write_all(packet).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut buf = Vec::new();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{answer}: {head}");
        assert_eq!(body, answer);
        // The connection goes on with the next request.
        client
            .write_all(b"GET /p/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (_, body) = read_response(&mut client, &mut buf).await;
        assert_eq!(body, "GET /next 0", "after {answer}");
    }
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_in_the_target_cannot_slip_past_a_guarded_route() {
    let upstream = raw_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let fixed = Upstream::Fixed(upstream.addr.to_string());
    let mut guarded = proxy_route("/admin", fixed.clone(), false);
    guarded.rate_limit = Some(RateLimitSpec {
        per_address: Some(0.001),
        per_user: None,
        burst: Some(1),
    });
    let routes = vec![proxy_route("/", fixed, false), guarded];
    let (gateway, base) = start(spec(routes, tmp.path()), Arc::new(FixedBackends::default())).await;
    let addr = base.trim_start_matches("http://");

    let mut statuses = Vec::new();
    for target in ["/admin", "/admin#x", "/admin?#x", "/adm%69n"] {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let all = read_to_close(&mut client).await;
        statuses.push(all.get(9..12).unwrap_or_default().to_owned());
    }
    // The first spends the one token; every spelling after it meets the same limit.
    assert_eq!(statuses, ["200", "429", "429", "429"]);
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_an_idle_upstream_connection_sends_are_never_read_as_a_response() {
    let upstream = raw_upstream().await;
    let (gateway, base, _tmp) = in_front(&upstream).await;
    let addr = base.trim_start_matches("http://");

    let mut client = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    client
        .write_all(b"GET /p/late HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut client, &mut buf).await.1, "late");
    // The pooled connection has sent a second "response" by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        client
            .write_all(b"GET /p/next HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_response(&mut client, &mut buf).await.1, "GET /next 0");
    }
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_sends_the_request_to_the_next_instance_at_once() {
    // One instance answers with a length that is not digits; the other is well-behaved.
    let bad = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad_addr = bad.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = bad.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_until_head(&mut stream, &mut buf).await.is_some() {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello")
                        .await;
                }
            });
        }
    });
    let good = raw_upstream().await;
    let backends = Arc::new(FixedBackends::default());
    backends.set("web", vec![bad_addr, good.addr]);
    let tmp = tempfile::tempdir().unwrap();
    let routes = vec![proxy_route("/p", Upstream::Service("web".into()), true)];
    let (gateway, base) = start(spec(routes, tmp.path()), backends).await;
    let addr = base.trim_start_matches("http://");

    // Round robin: one of the two requests tries the malformed instance first. Both are
    // answered by the other one, at once (not at the route's 2 s timeout, which is what
    // an empty request sent on would wait for).
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let began = std::time::Instant::now();
        client
            .write_all(b"GET /p/again HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = read_response(&mut client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, "GET /again 0");
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "{:?}",
            began.elapsed()
        );
    }
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_path_logs_each_request_with_its_own_fields() {
    // The fields are copied out of the read buffer before the upstream is waited on:
    // two pipelined requests, each logged with its own method, target, referer and agent.
    let upstream = raw_upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("access.log");
    let mut gateway_spec = spec(
        vec![proxy_route(
            "/p",
            Upstream::Fixed(upstream.addr.to_string()),
            true,
        )],
        tmp.path(),
    );
    gateway_spec.access_log = Some(berth_gateway::AccessLog {
        path: log.clone(),
        format: berth_gateway::AccessLogFormat::Json,
        max_bytes: 1 << 20,
        keep: 1,
    });
    let (gateway, base) = start(gateway_spec, Arc::new(FixedBackends::default())).await;
    let addr = base.trim_start_matches("http://");
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(
            b"GET /p/one?x=1 HTTP/1.1\r\nHost: x\r\nReferer: https://a.example/\r\nUser-Agent: first/1\r\n\r\n\
              HEAD /p/two HTTP/1.1\r\nHost: x\r\nUser-Agent: second/2\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        read_response(&mut client, &mut buf).await.1,
        "GET /one?x=1 0"
    );
    let end = read_until_head(&mut client, &mut buf).await.unwrap();
    assert!(buf[..end].starts_with(b"HTTP/1.1 200"));
    let lines = {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.lines().count() >= 2 || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let lines: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["target"], "/p/one?x=1");
    assert_eq!(lines[0]["referer"], "https://a.example/");
    assert_eq!(lines[0]["agent"], "first/1");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[1]["method"], "HEAD");
    assert_eq!(lines[1]["target"], "/p/two");
    assert_eq!(lines[1]["referer"], serde_json::Value::Null);
    assert_eq!(lines[1]["agent"], "second/2");
    gateway.stop(Duration::from_secs(1)).await;
}
