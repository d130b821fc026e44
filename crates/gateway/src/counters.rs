//! Per-route counts, kept with atomics so that counting costs the request path nothing
//! it would notice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The counts of one route.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    requests: AtomicU64,
    by_class: [AtomicU64; 5],
    micros: AtomicU64,
    /// Requests per latency bucket (not cumulative); those above the last bound are
    /// `requests` less their sum.
    by_latency: [AtomicU64; LATENCY_BUCKETS.len()],
}

impl Counter {
    /// Counts one answered request.
    pub(crate) fn record(&self, status: u16, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        if let Some(at) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.by_latency[at].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The sum of one route's counters (one per worker thread, so that counting never makes
/// two cores fight over a cache line).
pub(crate) fn snapshot(
    counters: &[Arc<Counter>],
    route: String,
    target: &'static str,
) -> RouteStats {
    let sum = |f: &dyn Fn(&Counter) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
    let requests = sum(&|c| c.requests.load(Ordering::Relaxed));
    let class = |i: usize| sum(&|c| c.by_class[i].load(Ordering::Relaxed));
    let micros = sum(&|c| c.micros.load(Ordering::Relaxed));
    let mut below = 0;
    let latency = LATENCY_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, le)| {
            below += sum(&|c| c.by_latency[i].load(Ordering::Relaxed));
            (*le, below)
        })
        .collect();
    RouteStats {
        route,
        target,
        requests,
        status_2xx: class(1),
        status_3xx: class(2),
        status_4xx: class(3),
        status_5xx: class(4),
        mean_ms: if requests == 0 {
            0.0
        } else {
            micros as f64 / requests as f64 / 1000.0
        },
        latency,
        seconds_sum: micros as f64 / 1_000_000.0,
    }
}

/// What the dashboard shows of a route since berth started.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteStats {
    /// The route: its host (if any) and path prefix.
    pub route: String,
    /// `static`, `proxy` or `redirect`.
    pub target: &'static str,
    /// Requests answered.
    pub requests: u64,
    /// … with a 2xx status.
    pub status_2xx: u64,
    /// … with a 3xx status.
    pub status_3xx: u64,
    /// … with a 4xx status.
    pub status_4xx: u64,
    /// … with a 5xx status.
    pub status_5xx: u64,
    /// The mean time to the response's head, in milliseconds.
    pub mean_ms: f64,
    /// Requests answered within each of [`LATENCY_BUCKETS`] (cumulative).
    pub latency: Vec<(f64, u64)>,
    /// The sum of the times to the response's head, in seconds.
    pub seconds_sum: f64,
}
