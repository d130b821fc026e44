//! Message bodies (MQTT payloads, webhook bodies) against the checks, mutated
//! (berth-mutate) from what the test stand example sends, with its real schema: the
//! checks never panic, and each message is either valid (its kind and device read) or
//! a dead letter that says why; the payload is kept byte for byte either way.

use berth_ingest::pipeline::{Checker, Pick};
use berth_store::Timestamp;
use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    [
        r#"{"type": "status", "seq": 7, "time": "2026-12-06T10:00:00Z", "state": "running", "test": "T-1", "temperature_c": 41.5}"#,
        r#"{"type": "result", "seq": 8, "time": "2026-12-06T10:05:00+01:00", "test": "T-1", "measurements": [{"name": "torque", "value": 12.5, "min": 10, "max": 15, "unit": "Nm"}]}"#,
        r#"{"type": "status", "seq": 9, "time": "2026-12-06T10:06:00Z", "state": "error", "message": "door open"}"#,
        "[1, 2, {\"deep\": [[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}]",
        "\u{feff}{\"type\": \"status\", \"seq\": 1e400}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn a_mutated_body_is_valid_or_a_dead_letter_that_says_why(
        payload in berth_mutate::mixed(seeds(), 6),
        topic in prop::sample::select(vec!["stand01/inbound", "", "/", "a//b/", "stand01"]),
    ) {
        let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/teststand/protocol.schema.json");
        let checker = Checker::new(
            "stands",
            Some(std::path::Path::new(schema)),
            Some(Pick::Pointer("/type".into())),
            Some(Pick::Segment(1)),
            1024,
            None,
            true,
        )
        .unwrap()
        .with_key(Some("/seq".into()), std::time::Duration::from_secs(60));
        let m = checker.message(topic, payload.clone(), Timestamp::now());
        prop_assert_eq!(&m.payload, &payload);
        if m.errors.is_empty() {
            prop_assert!(m.kind.is_some(), "a valid message has a kind");
        } else {
            for e in &m.errors {
                prop_assert!(e.len() > 5, "{}", e);
            }
        }
        if payload.len() > 1024 {
            prop_assert!(!m.errors.is_empty(), "an oversized payload is refused");
        }
        // A replay of the stored payload comes to the same verdict.
        prop_assert_eq!(checker.replay(topic, &payload).errors, m.errors);
    }
}
