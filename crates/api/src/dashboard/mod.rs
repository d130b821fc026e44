//! The operator's dashboard: HTML pages rendered here, a little plain JavaScript and a
//! style sheet embedded in the binary, served on a gateway route with `dashboard = true`
//! (the gateway's login; the `admin` role unless the route names others).
//!
//! Each page is rendered from the answers of berth's own API, asked in process and read as
//! the types in [`crate::types`], and every button sends its action through that same API
//! (below the route's `/v1/`), with the session's CSRF token; a successful action is
//! recorded as a `dashboard` event naming the user. A page follows what changes over
//! server-sent events: `/live?view=PAGE` renders the page's main part again every two
//! seconds and sends it when it changed.
//!
//! # Layout
//! - this file: the entry point ([`Dashboard::serve`]), the page frame, the live stream
//!   and the pass-through to the API;
//! - `pages`: one function per page;
//! - `html`: escaping, cells, tables and field lists of typed records, buttons,
//!   sparklines;
//! - `assets/`: `dashboard.js` and `dashboard.css`.

mod html;
mod pages;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use berth_gateway::{DashboardViewer, HookBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::types::ErrorBody;

const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");
/// How often a live page is rendered again.
const LIVE_EVERY: Duration = Duration::from_secs(2);
/// The largest API answer a page reads.
const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The dashboard, over the API's router and state.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    state: AppState,
    api: Router,
    /// Cancelled when berth stops: live streams end, so that the gateway's graceful stop
    /// does not wait for open pages.
    closing: tokio_util::sync::CancellationToken,
    /// Completions counted by this process, per queue, and the services' CPU and memory,
    /// sampled each minute for the sparklines (counting completions in the store would
    /// read every job completed in the last hour at each render).
    samples: std::sync::Mutex<std::collections::VecDeque<Sample>>,
    /// The sampler starts with the first request: a berth whose gateway has no dashboard
    /// route never reads /proc for it.
    sampling: std::sync::Once,
}

/// What this process counted at one time.
pub(crate) struct Sample {
    at: std::time::Instant,
    /// Completions per queue since this process started.
    completed: std::collections::BTreeMap<String, u64>,
    /// Per service: CPU seconds and resident bytes of its running instances' process
    /// trees.
    services: std::collections::BTreeMap<String, (f64, u64)>,
}

/// How often completions are sampled, and how many samples are kept (an hour).
const SAMPLE_EVERY: Duration = Duration::from_secs(60);
const SAMPLES: usize = 61;

/// A page: its title, the part that stays (filters), and the part that follows changes.
pub(crate) struct Page {
    pub(crate) title: String,
    pub(crate) top: String,
    pub(crate) main: String,
}

/// Why a page could not be rendered: the API's status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Dashboard {
    /// The dashboard of the berth whose API is `api` over `state`; its live streams end
    /// when `closing` is cancelled.
    pub fn new(state: AppState, api: Router, closing: tokio_util::sync::CancellationToken) -> Self {
        let inner = Arc::new(Inner {
            state,
            api,
            closing,
            samples: Default::default(),
            sampling: std::sync::Once::new(),
        });
        Self { inner }
    }

    /// Completions of `queue` counted by this process in each of the `buckets` spans of
    /// `span` before now, oldest first (zero before this process's first sample).
    pub(crate) fn completed_per(&self, queue: &str, span: Duration, buckets: u32) -> Vec<u64> {
        let current = self.inner.completions().get(queue).copied().unwrap_or(0);
        let samples = self.inner.samples.lock().unwrap_or_else(|e| e.into_inner());
        per_span(
            &samples,
            queue,
            current,
            std::time::Instant::now(),
            span,
            buckets,
        )
    }

    /// A service's CPU (percent of one core over each minute) and resident memory (bytes,
    /// at the end of each minute) over the samples, oldest first; minutes in which it ran
    /// no instance are left out.
    pub(crate) fn service_history(&self, name: &str) -> (Vec<u64>, Vec<u64>) {
        let samples = self.inner.samples.lock().unwrap_or_else(|e| e.into_inner());
        history_of(&samples, name)
    }

    /// Takes a first sample now and one each minute, until the dashboard is dropped.
    fn start_sampling(&self) {
        self.inner.sample();
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.sample();
            }
        });
    }

    /// Answers one request, its path relative to the dashboard route.
    pub async fn serve(
        &self,
        request: Request<Bytes>,
        viewer: DashboardViewer,
    ) -> Response<HookBody> {
        self.inner.sampling.call_once(|| self.start_sampling());
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        if path.starts_with("/v1/") {
            return self.api_call(request, &viewer).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return failure_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "the dashboard's pages take GET; actions go to its /v1/ API",
            );
        }
        match path.as_str() {
            "/assets/dashboard.js" => asset(SCRIPT, "text/javascript; charset=utf-8"),
            "/assets/dashboard.css" => asset(STYLE, "text/css; charset=utf-8"),
            "/live" => self.live(&query),
            _ => match pages::render(self, &path, &query).await {
                Ok(page) => {
                    let view = if query.is_empty() {
                        path.clone()
                    } else {
                        format!("{path}?{query}")
                    };
                    html_response(StatusCode::OK, frame(self, &viewer, &view, &page))
                }
                Err(f) => {
                    let page = Page {
                        title: "error".into(),
                        top: String::new(),
                        main: format!("<p class=\"error\">{}</p>", html::esc(&f.message)),
                    };
                    html_response(f.status, frame(self, &viewer, "", &page))
                }
            },
        }
    }

    /// `GET path` on berth's API: its answer read as a `T`, or the API's refusal (a
    /// refusal's status and message, or a 502 for an answer that does not read as a `T`).
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let request = Request::get(path)
            .body(axum::body::Body::empty())
            .map_err(|_| Failure {
                status: StatusCode::BAD_REQUEST,
                message: format!("{path} is not a valid path"),
            })?;
        let response = match tower_call(&self.inner.api, request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|_| Failure {
                status: StatusCode::BAD_GATEWAY,
                message: format!("the answer to {path} is too large to show"),
            })?;
        read_answer(path, status, &bytes)
    }

    /// An action (or a read) through berth's API; a successful action is recorded as an
    /// event naming the user.
    async fn api_call(
        &self,
        request: Request<Bytes>,
        viewer: &DashboardViewer,
    ) -> Response<HookBody> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let request = request.map(axum::body::Body::from);
        let response = match tower_call(&self.inner.api, request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let acted = method != Method::GET && method != Method::HEAD;
        if acted && response.status().is_success() {
            let queues = &self.inner.state.queues;
            let event = berth_store::NewEvent {
                at: queues.now(),
                node: queues.node_name().to_owned(),
                source: "dashboard".into(),
                subject: viewer.user.clone(),
                instance: None,
                kind: "action".into(),
                message: format!("{} {method} {path}", viewer.user),
            };
            if let Err(e) = queues.store().record_events(vec![event]).await {
                tracing::warn!(error = %e, "cannot record a dashboard action as an event");
            }
        }
        boxed(response)
    }

    /// The live stream of one page: its main part, sent when it changed.
    fn live(&self, query: &str) -> Response<HookBody> {
        let view = pages::params(query)
            .into_iter()
            .find(|(k, _)| k == "view")
            .map(|(_, v)| v)
            .unwrap_or_else(|| "/".into());
        let (path, query) = match view.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (view.clone(), String::new()),
        };
        // A view that is not live (a jobs search) gets a stream that ends at once.
        let live = pages::is_live(&view);
        let start = (self.clone(), path, query, String::new(), true);
        let events = futures_util::stream::unfold(
            start,
            move |(dash, path, query, last, first)| async move {
                loop {
                    if !live || dash.inner.closing.is_cancelled() {
                        return None;
                    }
                    if !first || !last.is_empty() {
                        tokio::select! {
                            _ = tokio::time::sleep(LIVE_EVERY) => {}
                            _ = dash.inner.closing.cancelled() => return None,
                        }
                    }
                    let main = match pages::render(&dash, &path, &query).await {
                        Ok(page) => page.main,
                        Err(f) => format!("<p class=\"error\">{}</p>", html::esc(&f.message)),
                    };
                    if main != last {
                        let event = Event::default().event("page").data(main.clone());
                        return Some((
                            Ok::<_, std::convert::Infallible>(event),
                            (dash, path, query, main, false),
                        ));
                    }
                }
            },
        );
        boxed(
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response(),
        )
    }
}

/// The answer `bytes` to `GET path`, with `status`: read as a `T` when it is a success,
/// else the API's refusal (its [`ErrorBody`]'s message).
fn read_answer<T: DeserializeOwned>(
    path: &str,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, Failure> {
    if status.is_success() {
        serde_json::from_slice(bytes).map_err(|e| Failure {
            status: StatusCode::BAD_GATEWAY,
            message: format!("the answer to {path} cannot be read: {e}"),
        })
    } else {
        let message = serde_json::from_slice::<ErrorBody>(bytes)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| "the API refused".to_owned());
        Err(Failure { status, message })
    }
}

/// The growth of `queue`'s counter in each of `buckets` spans of `span` before `now`,
/// oldest first, from `samples` (oldest first) and the `current` value: the counter at a
/// time is that of the newest sample taken by then (the oldest sample's before it).
fn per_span(
    samples: &std::collections::VecDeque<Sample>,
    queue: &str,
    current: u64,
    now: std::time::Instant,
    span: Duration,
    buckets: u32,
) -> Vec<u64> {
    let value = |s: &Sample| s.completed.get(queue).copied().unwrap_or(0);
    let at = |t: Option<std::time::Instant>| -> u64 {
        let newest_by = t.and_then(|t| samples.iter().rev().find(|s| s.at <= t));
        newest_by.or(samples.front()).map_or(current, value)
    };
    let marks: Vec<u64> = (0..=buckets)
        .map(|j| {
            if j == 0 {
                current
            } else {
                at(now.checked_sub(span * j))
            }
        })
        .collect();
    marks
        .windows(2)
        .rev()
        .map(|w| w[0].saturating_sub(w[1]))
        .collect()
}

/// See [`Dashboard::service_history`].
fn history_of(samples: &std::collections::VecDeque<Sample>, name: &str) -> (Vec<u64>, Vec<u64>) {
    let (mut cpu, mut memory) = (Vec::new(), Vec::new());
    for (a, b) in samples.iter().zip(samples.iter().skip(1)) {
        let (Some(was), Some(is)) = (a.services.get(name), b.services.get(name)) else {
            continue;
        };
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1.0);
        // A restarted instance starts its count again: no negative minutes.
        cpu.push(((is.0 - was.0).max(0.0) / secs * 100.0).round() as u64);
        memory.push(is.1);
    }
    (cpu, memory)
}

impl Inner {
    fn completions(&self) -> std::collections::BTreeMap<String, u64> {
        self.state
            .queues
            .metrics()
            .snapshot()
            .into_iter()
            .map(|(queue, c)| (queue, c.completed))
            .collect()
    }

    fn sample(&self) {
        let status = self.state.services.status();
        let mut services = std::collections::BTreeMap::new();
        if !status.is_empty() {
            let procs = berth_supervise::usage::ProcessTable::read();
            for s in &status {
                if let Some(used) = s.pid.and_then(|pid| procs.tree(pid)) {
                    let e = services.entry(s.service.clone()).or_insert((0.0, 0));
                    e.0 += used.cpu.as_secs_f64();
                    e.1 += used.rss_bytes;
                }
            }
        }
        let sample = Sample {
            at: std::time::Instant::now(),
            completed: self.completions(),
            services,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back(sample);
        while samples.len() > SAMPLES {
            samples.pop_front();
        }
    }
}

/// What a dashboard route answers while berth is still starting.
pub fn starting() -> Response<HookBody> {
    failure_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "berth is starting; reload in a moment",
    )
}

async fn tower_call(
    api: &Router,
    request: Request<axum::body::Body>,
) -> Result<Response<axum::body::Body>, std::convert::Infallible> {
    let mut service = api.clone();
    tower_service::Service::call(&mut service, request).await
}

fn boxed(response: Response<axum::body::Body>) -> Response<HookBody> {
    response.map(|b| {
        b.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            .boxed_unsync()
    })
}

fn full(bytes: impl Into<Bytes>) -> HookBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn asset(text: &'static str, kind: &'static str) -> Response<HookBody> {
    let mut r = Response::new(full(text));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn html_response(status: StatusCode, body: String) -> Response<HookBody> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    // The pages load only their own script and style, and are never framed.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    r
}

fn failure_page(status: StatusCode, message: &str) -> Response<HookBody> {
    html_response(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>berth</title></head>\
             <body><p>{}</p></body></html>",
            html::esc(message)
        ),
    )
}

/// The frame around a page: head, navigation, the user, the flash line, the page.
fn frame(dash: &Dashboard, viewer: &DashboardViewer, view: &str, page: &Page) -> String {
    let base = html::esc(&viewer.base);
    let current = view.split('?').next().unwrap_or("/");
    let mut nav = String::new();
    for (href, label) in pages::NAV {
        let here = if *href == "/" {
            current == "/"
        } else {
            current == *href || current.starts_with(&format!("{href}/"))
        };
        nav.push_str(&format!(
            "<a href=\"{base}{href}\"{}>{label}</a>",
            if here { " aria-current=\"page\"" } else { "" }
        ));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · {app} · berth</title>\
         <base href=\"{base}/\"><link rel=\"icon\" href=\"data:,\">\
         <meta name=\"berth-base\" content=\"{base}\">\
         <meta name=\"berth-csrf\" content=\"{csrf}\">\
         <link rel=\"stylesheet\" href=\"{base}/assets/dashboard.css\">\
         <script src=\"{base}/assets/dashboard.js\" defer></script></head>\
         <body><header><a class=\"brand\" href=\"{base}/\">berth</a> <span class=\"app\">{app}</span>\
         <nav>{nav}</nav><form class=\"user\" method=\"post\" action=\"/_berth/logout\">{user} <button type=\"submit\">log out</button></form></header>\
         <div id=\"flash\" role=\"status\" aria-live=\"polite\"></div>\
         <h1>{title}</h1>{top}<main id=\"main\"{live}>{main}</main></body></html>",
        title = html::esc(&page.title),
        live = if pages::is_live(view) {
            format!(" data-view=\"{}\"", html::esc(view))
        } else {
            String::new()
        },
        app = html::esc(&dash.inner.state.app),
        csrf = html::esc(viewer.csrf.as_deref().unwrap_or_default()),
        user = html::esc(&viewer.user),
        top = page.top,
        main = page.main,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn completions_per_span_come_from_the_samples() {
        let start = Instant::now();
        let sample = |secs: u64, n: u64| Sample {
            at: start + Duration::from_secs(secs),
            completed: [("q".to_owned(), n)].into_iter().collect(),
            services: Default::default(),
        };
        let samples: std::collections::VecDeque<Sample> =
            [sample(0, 0), sample(60, 10), sample(120, 25)].into();
        let now = start + Duration::from_secs(150);
        // Spans of a minute, newest last: (90, 150] grew 25 → 40, (30, 90] 0 → 25 is
        // read at 90 as 10, (−30, 30] as the first sample.
        assert_eq!(
            per_span(&samples, "q", 40, now, Duration::from_secs(60), 3),
            vec![0, 10, 30]
        );
        // Another queue, never counted, and no samples at all: zeros.
        assert_eq!(
            per_span(&samples, "other", 0, now, Duration::from_secs(60), 2),
            vec![0, 0]
        );
        assert_eq!(
            per_span(&Default::default(), "q", 7, now, Duration::from_secs(60), 2),
            vec![0, 0]
        );
    }

    #[test]
    fn a_services_history_is_per_minute_and_never_negative() {
        let start = Instant::now();
        let sample = |secs: u64, cpu: f64, rss: u64| Sample {
            at: start + Duration::from_secs(secs),
            completed: Default::default(),
            services: [("web".to_owned(), (cpu, rss))].into_iter().collect(),
        };
        let mut samples: std::collections::VecDeque<Sample> = [
            sample(0, 0.0, 10),
            sample(60, 30.0, 20),
            sample(120, 12.0, 30),
        ]
        .into();
        // Half a core in the first minute; a restart (the count started again) is 0.
        assert_eq!(history_of(&samples, "web"), (vec![50, 0], vec![20, 30]));
        assert_eq!(history_of(&samples, "other"), (vec![], vec![]));
        // A minute without the service running is left out.
        samples.push_back(Sample {
            at: start + Duration::from_secs(180),
            completed: Default::default(),
            services: Default::default(),
        });
        assert_eq!(history_of(&samples, "web").0.len(), 2);
    }
}
