//! The notifier on its own, over a real SQLite store: an event recorded in the store is
//! routed to a channel and delivered, to a real HTTP server (a webhook, signed) and to a
//! real SMTP server (aiosmtpd, as berth's end-to-end tests use). berth's own tests
//! (`crates/berth/tests/it/notify.rs`) drive the same through `berth up`.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_notify::{ChannelSpec, EmailSpec, Notifier, Security, TargetSpec, WebhookSpec};
use berth_store::{NewEvent, SqliteStore, Store, Timestamp};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

fn store(dir: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.join("berth.db"), Default::default()).unwrap())
}

fn backup_failed() -> NewEvent {
    NewEvent {
        at: Timestamp::now(),
        node: "node-1".into(),
        source: "backup".into(),
        subject: "scheduled".into(),
        instance: None,
        kind: "failed".into(),
        message: "the backup failed: the disk is full".into(),
    }
}

/// A web server that hands each request's signature header and body to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(Option<String>, Bytes)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let sig = req
                            .headers()
                            .get("x-berth-signature")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let _ = tx.send((sig, body));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_event_reaches_a_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (url, mut got) = receiver().await;
    let notifier = Notifier::new(
        store.clone(),
        "shop",
        vec![ChannelSpec {
            name: "ops".into(),
            on: vec!["backup.*".into()],
            digest: None,
            target: TargetSpec::Webhook(WebhookSpec {
                url,
                secret: Some(b"s3cret".to_vec()),
                ca_pem: None,
            }),
        }],
    )
    .unwrap();
    store.record_events(vec![backup_failed()]).await.unwrap();
    notifier.tick(Timestamp::now()).await.unwrap();
    let (sig, body) = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .expect("the webhook is called within 10 s")
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kind"], "backup.failed", "{v}");
    assert_eq!(v["app"], "shop");
    assert_eq!(v["message"], "the backup failed: the disk is full");
    // The signature is the HMAC-SHA256 of the body under the secret.
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
    let want: String = ring::hmac::sign(&key, &body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig.as_deref(), Some(format!("sha256={want}").as_str()));
    // Sent once: another pass sends nothing more.
    notifier.tick(Timestamp::now()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), got.recv())
            .await
            .is_err(),
        "a delivery was sent twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_event_reaches_a_real_smtp_server() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir(&mail).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sink = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../berth/tests/it/smtp_sink.py"
    );
    let mut child = std::process::Command::new("python3")
        .arg(sink)
        .arg(port.to_string())
        .arg(&mail)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the SMTP sink (aiosmtpd)");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
    }
    let store = store(dir.path());
    let notifier = Notifier::new(
        store.clone(),
        "shop",
        vec![ChannelSpec {
            name: "admins".into(),
            on: vec!["backup.failed".into()],
            digest: None,
            target: TargetSpec::Email(EmailSpec {
                to: vec!["ops@example.org".into()],
                from: "berth@shop.example.org".into(),
                host: "127.0.0.1".into(),
                port,
                security: Security::Plain,
                login: None,
                ca_pem: None,
            }),
        }],
    )
    .unwrap();
    store.record_events(vec![backup_failed()]).await.unwrap();
    notifier.tick(Timestamp::now()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let mails: Vec<_> = std::fs::read_dir(&mail)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .collect();
        if let Some(m) = mails.first() {
            break std::fs::read_to_string(m.path()).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no mail within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("X-Envelope-To: ops@example.org"), "{text}");
    assert!(
        text.contains("the backup failed: the disk is full"),
        "{text}"
    );
}
