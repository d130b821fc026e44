//! What the queue needs to know about each queue: the settings the server derives from
//! `berth.toml`.

use std::time::Duration;

/// How jobs of a queue reach the user's code.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerSpec {
    /// A process per job (`sh -c` with `{args.NAME}` filled in).
    Run {
        /// The command line.
        command: String,
    },
    /// An HTTP POST of the args per job.
    Post {
        /// The `http://` URL.
        url: String,
    },
    /// Long-lived workers lease jobs over the API.
    Pull,
}

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// Growth per failed attempt.
    pub factor: f64,
    /// Fraction of the delay added or removed at random, so that jobs that failed
    /// together do not retry together.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            factor: 2.0,
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay after `attempt` failures (`attempt >= 1`; 0 is treated as 1), without
    /// jitter: `min(max, initial * factor^(attempt - 1))`. Never overflows: a huge attempt
    /// number simply yields `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exponent = f64::from(attempt.saturating_sub(1));
        // In nanoseconds, integral products (1s * 2^n) stay exact in an f64 far beyond
        // any sensible `max`, so no rounding creeps in.
        let nanos = self.initial.as_nanos() as f64 * self.factor.powf(exponent);
        if nanos.is_nan() || nanos >= self.max.as_nanos() as f64 {
            return self.max;
        }
        // `as` saturates, so a negative product (only from hand-built values) is zero.
        let nanos = nanos.round() as u128;
        Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        )
        .min(self.max)
    }

    /// The delay after `attempt` failed: the base delay varied by up to ±`jitter` of
    /// itself, drawn from `rng`, never above `max`.
    pub fn delay(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let spread = base * self.jitter * (rng.f64() * 2.0 - 1.0);
        Duration::from_secs_f64((base + spread).clamp(0.0, self.max.as_secs_f64()))
    }
}

/// How long finished jobs are kept before pruning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retention {
    /// Completed jobs.
    pub completed: Duration,
    /// Discarded jobs.
    pub discarded: Duration,
    /// Cancelled jobs.
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: Duration::from_secs(24 * 3600),
            discarded: Duration::from_secs(7 * 24 * 3600),
            cancelled: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One queue's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSpec {
    /// The queue's name.
    pub name: String,
    /// Jobs run at once by this berth.
    pub concurrency: u32,
    /// How jobs run.
    pub handler: HandlerSpec,
    /// Attempts allowed unless a job says otherwise.
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// How long one attempt may run.
    pub timeout: Duration,
    /// How long finished jobs are kept.
    pub retention: Retention,
    /// How long an attempt's lease lasts without a heartbeat, if not the node's: a
    /// workflow step's heartbeat timeout. A step whose worker dies (or, pulled, stops
    /// heartbeating) runs again after at most this long.
    pub lease_ttl: Option<Duration>,
}

impl QueueSpec {
    /// A queue with defaults and the given handler.
    pub fn new(name: impl Into<String>, handler: HandlerSpec) -> Self {
        Self {
            name: name.into(),
            concurrency: 10,
            handler,
            max_attempts: 25,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(1800),
            retention: Retention::default(),
            lease_ttl: None,
        }
    }
}
