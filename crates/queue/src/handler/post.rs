//! The `post` handler: one HTTP POST per job.
//!
//! The body is the job's args as JSON; `Berth-Job-Id`, `Berth-Job-Kind`, `Berth-Attempt`
//! and `Berth-Queue` headers name the attempt. A 2xx response completes the job (a JSON
//! body becomes its result); 429 or 503 with `Retry-After` retries after that delay
//! without counting a failure; every other status, and a connection error, fails the
//! attempt. Connections are kept alive and reused across jobs.

use std::time::{Duration, SystemTime};

use berth_store::LeasedJob;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::{Handler, HandlerFuture, HandlerOutcome, MAX_OUTPUT};

/// POSTs each job to a URL.
#[derive(Clone)]
pub struct PostHandler {
    uri: Uri,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl PostHandler {
    /// A handler for `url` (must be `http://`).
    pub fn new(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(format!(
                "invalid URL {url:?}: expected http://HOST[:PORT]/PATH"
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Ok(Self { uri, client })
    }
}

impl Handler for PostHandler {
    fn handle(&self, job: LeasedJob) -> HandlerFuture {
        let this = self.clone();
        Box::pin(async move { this.post(job).await })
    }
}

impl PostHandler {
    async fn post(&self, job: LeasedJob) -> HandlerOutcome {
        let body = serde_json::to_vec(&job.args).unwrap_or_default();
        let mut req = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header("berth-job-id", job.id)
            .header("berth-job-kind", &job.kind)
            .header("berth-attempt", job.attempt)
            .header("berth-queue", &job.queue);
        if let Some((id, step)) = job.workflow_step() {
            req = req
                .header("berth-workflow-id", id)
                .header("berth-workflow-step", step);
        }
        let req = req.body(Full::new(Bytes::from(body)));
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                return HandlerOutcome::Failed {
                    error: format!("cannot build the request: {e}"),
                    output: None,
                };
            }
        };
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                return HandlerOutcome::Failed {
                    error: format!("POST {} failed: {}", self.uri, error_chain(&e)),
                    output: None,
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        // Read at most the bound; a larger body is cut, not an error.
        let body = match Limited::new(resp.into_body(), MAX_OUTPUT).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::from_static(b"[response body too large or interrupted]"),
        };
        let text = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        if status.is_success() {
            let result = text.as_deref().map(|t| {
                serde_json::from_str::<Value>(t).unwrap_or_else(|_| Value::String(t.to_string()))
            });
            return HandlerOutcome::Completed {
                result,
                output: None,
            };
        }
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) && let Some(after) = retry_after
        {
            return HandlerOutcome::Retry {
                reason: format!("{} answered {status} with Retry-After", self.uri),
                output: text,
                after: Some(after),
            };
        }
        HandlerOutcome::Failed {
            error: format!("{} answered {status}", self.uri),
            output: text,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
