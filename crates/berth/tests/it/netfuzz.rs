//! Network-level fuzzing of a running `berth up`: for a bounded time (10 s,
//! `BERTH_TEST_FUZZ_SECS` for longer), sixteen connections at a time send mutated MQTT
//! packets to the broker and mutated HTTP requests to the gateway (berth-mutate, from
//! real clients' bytes), reading what comes back. Meanwhile well-formed clients must be
//! served every time: mosquitto_pub's QoS 1 publish acknowledged and stored, curl
//! answered. At the end berth runs, its memory is bounded and its descriptors are back
//! near where they started.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_testkit::Project;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::{fds, parts, run_in, status_kb, stop, up};

fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first, body.len() as u8];
    out.extend_from_slice(body);
    out
}

/// Sessions as MQTT clients open them: CONNECT (3.1.1 and 5), then publishes and a
/// subscription.
fn mqtt_seeds() -> Vec<Vec<u8>> {
    let connect4 = packet(
        0x10,
        &[string("MQTT"), vec![4, 0x02, 0, 30], string("fz4")].concat(),
    );
    let connect5 = packet(
        0x10,
        &[string("MQTT"), vec![5, 0x02, 0, 30, 0], string("fz5")].concat(),
    );
    let publish4 = packet(
        0x32,
        &[string("fz/1"), vec![0, 1], b"{\"seq\":1}".to_vec()].concat(),
    );
    let publish5 = packet(
        0x32,
        &[string("fz/2"), vec![0, 1, 0], b"{\"seq\":2}".to_vec()].concat(),
    );
    let subscribe4 = packet(0x82, &[vec![0, 2], string("fz/#"), vec![1]].concat());
    vec![
        [
            connect4.clone(),
            publish4.clone(),
            subscribe4,
            packet(0xC0, &[]),
        ]
        .concat(),
        [connect5, publish5.clone(), publish5, packet(0xE0, &[])].concat(),
        [connect4, publish4.clone(), publish4].concat(),
    ]
}

/// Requests as HTTP clients send them, to a static route, the webhook and berth's own
/// paths.
fn http_seeds() -> Vec<Vec<u8>> {
    [
        "GET /index.html HTTP/1.1\r\nHost: fz\r\nUser-Agent: curl/8\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: fz\r\nConnection: keep-alive\r\n\r\nGET /a HTTP/1.1\r\nHost: fz\r\n\r\n",
        "POST /hooks/in HTTP/1.1\r\nHost: fz\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"seq\": 10}",
        "POST /hooks/in HTTP/1.1\r\nHost: fz\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        "GET /_berth/login HTTP/1.1\r\nHost: fz\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: fz\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// Sends `bytes` on a fresh connection to `to` and reads what comes back, for at most
/// a quarter of a second.
fn poke(to: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(500)) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    let _ = s.write_all(bytes);
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_millis(250) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_mqtt_and_http_traffic_leaves_berth_serving() {
    let secs: u64 = std::env::var("BERTH_TEST_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let first = berth_testkit::free_port_run(2);
    let (mqtt, http) = (first, first + 1);
    let p = Project::new(&format!(
        "[app]\nname = \"fz\"\nshutdown_grace = \"2s\"\n\n\
         [ingest.devices]\nmqtt = {{ listen = \"127.0.0.1:{mqtt}\", auth = \"anonymous\" }}\n\
         topics = [\"#\"]\nmax_payload = \"4KiB\"\ndevice = 1\n\n\
         [ingest.hooks]\nwebhook = {{ path = \"/hooks/in\", auth = \"none\" }}\n\n\
         [gateway]\nlisten = \"127.0.0.1:{http}\"\n\n[[gateway.route]]\nstatic = \"site\"\n"
    ));
    std::fs::create_dir_all(p.dir().join("site")).unwrap();
    std::fs::write(p.dir().join("site/index.html"), "hello").unwrap();
    let mut child = up(p.dir()).await;
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, fds_before) = (status_kb(pid, "VmRSS:"), fds(pid));

    let seed: [u8; 32] = std::array::from_fn(|i| (std::process::id() as u8).wrapping_add(i as u8));
    println!("fuzz seed byte: {}", seed[0]);
    let done = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut fuzzers = Vec::new();
    for n in 0..16u8 {
        let (done, sent) = (done.clone(), sent.clone());
        let mut seed = seed;
        seed[31] = n;
        fuzzers.push(std::thread::spawn(move || {
            let mut runner = TestRunner::new_with_rng(
                Config::default(),
                TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
            );
            let (to, strategy) = if n % 2 == 0 {
                (mqtt, berth_mutate::mixed(mqtt_seeds(), 8).boxed())
            } else {
                (http, berth_mutate::mixed(http_seeds(), 8).boxed())
            };
            let to = SocketAddr::from(([127, 0, 0, 1], to));
            while !done.load(Ordering::Relaxed) {
                let bytes = strategy.new_tree(&mut runner).unwrap().current();
                poke(to, &bytes);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Well-formed clients, all the while.
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        checks += 1;
        let published =
            crate::mosquitto_pub5(mqtt, "good/1", &format!("{{\"check\":{checks}}}"), &[]);
        assert!(
            published.status.success(),
            "check {checks}: {}",
            String::from_utf8_lossy(&published.stderr)
        );
        let got = Command::new("curl")
            .args(["-s", "-m", "5", &format!("http://127.0.0.1:{http}/")])
            .output()
            .expect("run curl");
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            "hello",
            "check {checks}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    done.store(true, Ordering::Relaxed);
    for f in fuzzers {
        f.join().unwrap();
    }
    let rss_peak = status_kb(pid, "VmHWM:");
    assert!(child.try_wait().unwrap().is_none(), "berth kept running");

    // Every well-formed message was stored.
    let (code, out, err) = parts(&run_in(
        p.dir(),
        &[
            "--json", "messages", "list", "--ingest", "devices", "--device", "good", "--limit",
            "1000",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    let stored = serde_json::from_str::<serde_json::Value>(&out).unwrap()["messages"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(stored, checks, "well-formed publishes stored");

    // The fuzzers' connections are gone: descriptors come back down.
    let mut fds_after = fds(pid);
    for _ in 0..50 {
        if fds_after <= fds_before + 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        fds_after = fds(pid);
    }
    let rss_after = status_kb(pid, "VmRSS:");
    println!(
        "{secs} s, {} mutated connections, {checks} good checks served: RSS {} → {} kB (peak {} kB), descriptors {fds_before} → {fds_after}",
        sent.load(Ordering::Relaxed),
        rss_before,
        rss_after,
        rss_peak
    );
    assert!(
        fds_after <= fds_before + 8,
        "descriptors {fds_before} → {fds_after}"
    );
    assert!(
        rss_peak < rss_before + 96 * 1024,
        "peak {rss_peak} kB from {rss_before} kB"
    );
    stop(&mut child);
}
