//! The retry delay curve, and its jitter.

use std::time::Duration;

use berth_queue::Backoff;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn grows_by_factor_from_initial() {
    let backoff = Backoff::default();
    let delays: Vec<_> = (1..=6).map(|attempt| backoff.base_delay(attempt)).collect();
    assert_eq!(
        delays,
        [secs(1), secs(2), secs(4), secs(8), secs(16), secs(32)]
    );
    // Attempt 0 (no failure yet) is treated like the first failure.
    assert_eq!(backoff.base_delay(0), secs(1));
}

#[test]
fn is_capped_at_max() {
    let backoff = Backoff::default();
    // 2^11 s = 2048 s is still below an hour; 2^12 s is not.
    assert_eq!(backoff.base_delay(12), secs(2048));
    assert_eq!(backoff.base_delay(13), secs(3600));
    assert_eq!(backoff.base_delay(100), secs(3600));
}

#[test]
fn does_not_overflow_on_huge_attempts() {
    let backoff = Backoff::default();
    assert_eq!(backoff.base_delay(10_000), secs(3600));
    assert_eq!(backoff.base_delay(u32::MAX), secs(3600));
    let huge_max = Backoff {
        max: Duration::MAX,
        factor: 10.0,
        ..Backoff::default()
    };
    assert_eq!(huge_max.base_delay(10_000), Duration::MAX);
}

#[test]
fn fractional_factors_and_sub_second_delays_are_exact() {
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        factor: 1.5,
        jitter: 0.0,
    };
    let delays: Vec<_> = (1..=7).map(|attempt| backoff.base_delay(attempt)).collect();
    let millis = |ms| Duration::from_millis(ms);
    assert_eq!(
        delays,
        [
            millis(100),
            millis(150),
            millis(225),
            Duration::from_micros(337_500),
            Duration::from_micros(506_250),
            Duration::from_nanos(759_375_000),
            millis(1000),
        ]
    );
}

#[test]
fn factor_one_is_constant() {
    let backoff = Backoff {
        factor: 1.0,
        ..Backoff::default()
    };
    assert_eq!(backoff.base_delay(1), secs(1));
    assert_eq!(backoff.base_delay(10_000), secs(1));
}

#[test]
fn jitter_stays_within_its_fraction_and_under_max() {
    let backoff = Backoff {
        jitter: 0.2,
        ..Backoff::default()
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let delays: Vec<Duration> = (0..1000).map(|_| backoff.delay(4, &mut rng)).collect();
    assert!(
        delays
            .iter()
            .all(|d| *d >= secs(8).mul_f64(0.8) && *d <= secs(8).mul_f64(1.2))
    );
    assert!(
        delays.iter().any(|d| *d != delays[0]),
        "jitter varies the delay"
    );
    assert!((0..100).all(|_| backoff.delay(50, &mut rng) <= secs(3600)));
}
