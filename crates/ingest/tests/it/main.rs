//! The ingest's checks on their own, with a real JSON Schema file: a valid message is
//! classified and attributed to its device, every kind of bad one becomes a dead letter
//! with the reasons, a fixed schema file is read again so that a replay passes, and a
//! message's own key is read for duplicates. berth's end-to-end tests
//! (`crates/berth/tests/it/ingest.rs`) drive the broker, webhooks and files through
//! `berth up`.

mod fuzz;

use std::time::Duration;

use berth_ingest::pipeline::{Checker, Pick};
use berth_store::Timestamp;

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["type", "seq", "state"],
  "properties": {
    "type": {"enum": ["status", "result"]},
    "seq": {"type": "integer"},
    "state": {"enum": ["idle", "running", "failed"]}
  }
}"#;

fn checker(dir: &std::path::Path, max_payload: usize) -> Checker {
    let schema = dir.join("protocol.schema.json");
    std::fs::write(&schema, SCHEMA).unwrap();
    Checker::new(
        "stands",
        Some(&schema),
        Some(Pick::Pointer("/type".into())),
        Some(Pick::Segment(1)),
        max_payload,
        None,
        true,
    )
    .unwrap()
}

#[test]
fn a_valid_message_is_classified_and_attributed_to_its_device() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(dir.path(), 1024);
    let m = c.message(
        "stand01/inbound",
        br#"{"type": "status", "seq": 7, "state": "running"}"#.to_vec(),
        Timestamp::now(),
    );
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    assert_eq!(m.kind.as_deref(), Some("status"));
    assert_eq!(m.device.as_deref(), Some("stand01"));
    assert_eq!(m.ingest, "stands");
}

#[test]
fn bad_messages_are_dead_letters_that_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(dir.path(), 64);
    let now = Timestamp::now();
    let schema = c.message(
        "stand01/inbound",
        br#"{"type": "status", "seq": 7, "state": "melting"}"#.to_vec(),
        now,
    );
    assert!(!schema.errors.is_empty());
    assert!(
        schema.errors.iter().any(|e| e.contains("/state")),
        "the reason names where: {:?}",
        schema.errors
    );
    // A dead letter keeps what could be read of it (`berth messages dead --kind`).
    assert_eq!(schema.kind.as_deref(), Some("status"));
    assert_eq!(schema.device.as_deref(), Some("stand01"));
    let not_json = c.message("stand01/inbound", b"state=running".to_vec(), now);
    assert!(!not_json.errors.is_empty());
    let big = format!(
        r#"{{"type": "status", "seq": 7, "state": "idle", "pad": "{}"}}"#,
        "x".repeat(100)
    );
    let too_big = c.message("stand01/inbound", big.into_bytes(), now);
    assert!(
        too_big.errors.iter().any(|e| e.contains("64")),
        "the limit is named: {:?}",
        too_big.errors
    );
}

#[test]
fn a_fixed_schema_file_is_read_again_and_a_replay_passes() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(dir.path(), 1024);
    let payload = br#"{"type": "status", "seq": 8, "state": "paused"}"#;
    assert!(!c.replay("stand01/inbound", payload).errors.is_empty());
    // The protocol gains a state; the file changes (its length does).
    std::fs::write(
        dir.path().join("protocol.schema.json"),
        SCHEMA.replace(r#""failed"]"#, r#""failed", "paused"]"#),
    )
    .unwrap();
    assert!(c.refresh(), "the changed file is compiled again");
    let again = c.replay("stand01/inbound", payload);
    assert!(again.errors.is_empty(), "{:?}", again.errors);
}

#[test]
fn a_messages_own_key_is_read_for_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let c = checker(dir.path(), 1024).with_key(Some("/seq".into()), Duration::from_secs(60));
    let now = Timestamp::now();
    let m = c.message(
        "stand01/inbound",
        br#"{"type": "result", "seq": 42, "state": "idle"}"#.to_vec(),
        now,
    );
    let key = m.key.expect("the key");
    assert_eq!(key.value, r#"["stand01","42"]"#, "the key with its device");
    assert_eq!(key.until, now.plus(Duration::from_secs(60)));
    // A sender's Idempotency-Key takes the place of the payload's.
    let given = c.message_keyed(
        "stand01/inbound",
        br#"{"type": "result", "seq": 42, "state": "idle"}"#.to_vec(),
        now,
        Some("abc"),
    );
    let given = given.key.unwrap().value;
    assert!(given.contains("idempotency:abc"), "{given}");
}
