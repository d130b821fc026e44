//! What this process counts of its queues, for `/metrics`: jobs pushed, attempts that
//! completed or failed, jobs discarded, how long first attempts waited and how long
//! attempts ran, and the executor slots in use. Counted since this berth started, per
//! queue (a bounded label set); the store's counts per state are read at each scrape.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The upper bounds of the time histograms, in seconds.
pub const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A histogram of durations: counts per bucket (not cumulative), their sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at or below each of [`BUCKETS`] and above the one before; the last
    /// slot holds those above every bucket.
    pub buckets: [u64; BUCKETS.len() + 1],
    /// The sum of every observation, in seconds.
    pub sum: f64,
    /// How many.
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let at = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[at] += 1;
        self.sum += secs;
        self.count += 1;
    }

    /// The cumulative count at or below each bucket bound, as Prometheus exposes it.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                total += n;
                (*b, total)
            })
            .collect()
    }
}

/// One queue's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueCounts {
    /// Jobs pushed through this process (duplicates by unique key not counted).
    pub enqueued: u64,
    /// Attempts that completed.
    pub completed: u64,
    /// Attempts that failed (to be retried, or discarded).
    pub failed: u64,
    /// Jobs discarded after their last attempt.
    pub discarded: u64,
    /// Attempts running in this process's executors now.
    pub busy: i64,
    /// How long first attempts waited between their push and their start.
    pub wait: Histogram,
    /// How long attempts in this process's executors ran.
    pub run: Histogram,
}

/// The counts of every queue.
#[derive(Debug, Default)]
pub struct JobMetrics {
    queues: Mutex<BTreeMap<String, QueueCounts>>,
}

impl JobMetrics {
    fn with(&self, queue: &str, f: impl FnOnce(&mut QueueCounts)) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get_mut(queue) {
            Some(c) => f(c),
            None => f(queues.entry(queue.to_owned()).or_default()),
        }
    }

    pub(crate) fn enqueued(&self, queue: &str) {
        self.with(queue, |c| c.enqueued += 1);
    }

    pub(crate) fn started(&self, queue: &str, attempt: u32, waited: Duration) {
        self.with(queue, |c| {
            if attempt == 1 {
                c.wait.observe(waited);
            }
        });
    }

    pub(crate) fn busy(&self, queue: &str, by: i64) {
        self.with(queue, |c| c.busy += by);
    }

    pub(crate) fn ran(&self, queue: &str, took: Duration) {
        self.with(queue, |c| c.run.observe(took));
    }

    /// Counts how an attempt ended: `completed`, else a failure, `discarded` when it was
    /// the job's last.
    pub(crate) fn ended(&self, queue: &str, completed: bool, discarded: bool) {
        self.with(queue, |c| {
            if completed {
                c.completed += 1;
            } else {
                c.failed += 1;
                c.discarded += u64::from(discarded);
            }
        });
    }

    /// Every queue's counts now.
    pub fn snapshot(&self) -> BTreeMap<String, QueueCounts> {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_bucket_and_accumulate() {
        let mut h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(7200));
        let c = h.cumulative();
        assert_eq!(c[0], (0.005, 1));
        assert_eq!(c[3], (0.05, 2));
        assert_eq!(c.last().unwrap().1, 2, "above every bucket: only in +Inf");
        assert_eq!(h.count, 3);
        assert!((h.sum - 7200.033).abs() < 1e-9);
    }
}
