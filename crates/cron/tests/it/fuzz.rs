//! The cron parser against mutated expressions (berth-mutate): it never panics, an
//! error says what was wrong, and an expression it takes yields later and later run
//! times in every kind of zone, found quickly.

use std::time::{Duration, Instant};

use berth_cron::{Cron, time_zone};
use jiff::Timestamp;
use proptest::prelude::*;

fn seeds() -> Vec<String> {
    [
        "*/5 * * * *",
        "0 3 * * *",
        "30 2 * * SUN",
        "0 9-17/2 * * MON-FRI",
        "15,45 */3 1,15 * *",
        "0 0 29 2 *",
        "0 0 31 2 *",
        "*/10 * * * * *",
        "0 30 1 * * 1-5",
        "@daily",
        "@hourly",
        "@yearly",
        "59 23 31 DEC SAT",
        "0 0 1-7 * 1",
        "5-55/10 0-23/6 */2 JAN-JUN *",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn a_mutated_expression_parses_or_is_refused_clearly(expr in berth_mutate::mutated_text(seeds(), 4)) {
        match Cron::parse(&expr) {
            Err(e) => {
                let m = e.message();
                prop_assert!(!m.is_empty());
                prop_assert!(
                    m.contains("expected") || m.contains("never fires") || m.contains("invalid"),
                    "{m}"
                );
            }
            Ok(cron) => {
                // Berlin has DST, Kathmandu a 45-minute offset, Lord Howe a 30-minute DST.
                for zone in ["UTC", "Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe"] {
                    let tz = time_zone(zone).unwrap();
                    let mut after: Timestamp = "2026-03-28T23:59:30Z".parse().unwrap();
                    let started = Instant::now();
                    for _ in 0..5 {
                        let next = cron.next_after(after, &tz);
                        let Some(next) = next else { break };
                        prop_assert!(next > after, "{expr} in {zone}: {next} not after {after}");
                        after = next;
                    }
                    prop_assert!(
                        started.elapsed() < Duration::from_secs(2),
                        "{expr} in {zone}: five run times took {:?}",
                        started.elapsed()
                    );
                }
            }
        }
    }
}
