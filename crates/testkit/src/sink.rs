//! A real HTTP server that records every POST berth sends it, and answers as told.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// `berth-job-id`.
    pub job_id: i64,
    /// `berth-attempt`.
    pub attempt: u32,
    /// `berth-job-kind`.
    pub kind: String,
    /// The body, parsed.
    pub body: Value,
    /// The body as received.
    pub raw: Bytes,
    /// Every header, names in lowercase.
    pub headers: Vec<(String, String)>,
}

impl Hit {
    /// A header, if it was sent (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What to answer: status, extra headers, body.
pub type Answer = (u16, Vec<(&'static str, String)>, String);

type Responder = Arc<dyn Fn(&Hit) -> Answer + Send + Sync>;

/// The recording server.
#[derive(Clone)]
pub struct Sink {
    /// Its address.
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Notified on every hit.
    pub notify: Arc<Notify>,
}

impl Sink {
    /// Starts a sink answering 200 `{"ok":true}` to everything.
    pub async fn start() -> Sink {
        Self::with(|_| (200, vec![], r#"{"ok":true}"#.into())).await
    }

    /// Starts a sink that answers with `respond`.
    pub async fn with(respond: impl Fn(&Hit) -> Answer + Send + Sync + 'static) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let notify = Arc::new(Notify::new());
        let responder: Responder = Arc::new(respond);
        let (h, n) = (hits.clone(), notify.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (h, n, r) = (h.clone(), n.clone(), responder.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (h, n, r) = (h.clone(), n.clone(), r.clone());
                        async move {
                            let header = |name: &str| {
                                req.headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let hit = Hit {
                                job_id: header("berth-job-id").parse().unwrap_or(-1),
                                attempt: header("berth-attempt").parse().unwrap_or(0),
                                kind: header("berth-job-kind"),
                                body: Value::Null,
                                raw: Bytes::new(),
                                headers,
                            };
                            let raw = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let hit = Hit {
                                body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                                raw,
                                ..hit
                            };
                            let (status, headers, text) = r(&hit);
                            h.lock().expect("hits").push(hit);
                            n.notify_waiters();
                            let mut resp = Response::builder()
                                .status(StatusCode::from_u16(status).expect("status"));
                            for (k, v) in headers {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, std::convert::Infallible>(
                                resp.body(Full::new(Bytes::from(text))).expect("response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Sink { addr, hits, notify }
    }

    /// The URL to configure as a `post` handler.
    pub fn url(&self) -> String {
        format!("http://{}/jobs", self.addr)
    }

    /// Every hit so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// How many hits so far.
    pub fn count(&self) -> usize {
        self.hits.lock().expect("hits").len()
    }

    /// How many times each job id was received.
    pub fn per_job(&self) -> HashMap<i64, usize> {
        let mut m = HashMap::new();
        for h in self.hits.lock().expect("hits").iter() {
            *m.entry(h.job_id).or_insert(0) += 1;
        }
        m
    }
}
