//! The checks every message passes through, whatever brought it: size, JSON, the
//! schema, then its kind and device. The outcome names every reason a message was
//! refused, so that a dead letter explains itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use berth_store::{MessageKey, NewMessage, Replay, Start, Timestamp};
use serde_json::Value;

use crate::error::IngestError;

/// Where a value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// A JSON pointer into the payload, such as `/type`.
    Pointer(String),
    /// A topic segment, counted from 1.
    Segment(usize),
}

/// Builds what a valid message starts, from its kind and the job's args (or workflow's
/// input); an error makes the message a dead letter with that reason.
pub type Starter = Arc<dyn Fn(&str, Value) -> Result<Start, String> + Send + Sync>;

/// How one ingest checks its messages.
pub struct Checker {
    ingest: String,
    schema: Option<Schema>,
    classify: Option<Pick>,
    device: Option<Pick>,
    max_payload: usize,
    starter: Option<Starter>,
    keep: bool,
    /// `key`: the JSON pointer to a message's own key, and how long it is remembered.
    key: Option<(String, std::time::Duration)>,
}

/// The compiled schema and the file it came from, compiled again when the file changes.
struct Schema {
    path: PathBuf,
    current: RwLock<(Option<Stamp>, Arc<jsonschema::Validator>)>,
}

/// What tells a changed file: its modification time and length.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path)
        .and_then(|m| Ok((m.modified()?, m.len())))
        .ok()
}

/// What the checks found.
struct Checked {
    device: Option<String>,
    kind: Option<String>,
    /// Every reason to refuse the message; empty means valid.
    errors: Vec<String>,
}

impl Checker {
    /// A checker for ingest `ingest`. The schema file is read and compiled here, so a
    /// schema that is not JSON, or not a valid schema, stops the start. `keep` false:
    /// valid messages only start what they start (dead letters are always kept).
    pub fn new(
        ingest: &str,
        schema: Option<&Path>,
        classify: Option<Pick>,
        device: Option<Pick>,
        max_payload: usize,
        starter: Option<Starter>,
        keep: bool,
    ) -> Result<Self, IngestError> {
        let schema = match schema {
            None => None,
            Some(path) => Some(Schema {
                path: path.to_path_buf(),
                current: RwLock::new((stamp(path), Arc::new(compile(ingest, path)?))),
            }),
        };
        Ok(Self {
            ingest: ingest.to_owned(),
            schema,
            classify,
            device,
            max_payload,
            starter,
            keep,
            key: None,
        })
    }

    /// Payloads above this many bytes become dead letters.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Compiles the schema again if its file changed since. A file that no longer
    /// compiles is reported and the schema in use is kept. Returns whether it changed.
    pub fn refresh(&self) -> bool {
        let Some(schema) = &self.schema else {
            return false;
        };
        let now = stamp(&schema.path);
        if now == schema.current.read().expect("schema lock poisoned").0 {
            return false;
        }
        match compile(&self.ingest, &schema.path) {
            Ok(v) => {
                *schema.current.write().expect("schema lock poisoned") = (now, Arc::new(v));
                tracing::info!(ingest = %self.ingest, path = %schema.path.display(), "schema changed: compiled again");
                true
            }
            Err(e) => {
                // Remember the time so the same broken file is reported once.
                schema.current.write().expect("schema lock poisoned").0 = now;
                tracing::error!(error = %e, "the changed schema is not used; the previous one stays");
                false
            }
        }
    }

    fn check_value(&self, topic: &str, payload: &[u8]) -> (Checked, Option<Value>) {
        let mut out = Checked {
            device: None,
            kind: None,
            errors: Vec::new(),
        };
        // The topic segments need no payload.
        if let Some(Pick::Segment(n)) = &self.device {
            out.device = segment(topic, *n, "device", &mut out.errors);
        }
        if let Some(Pick::Segment(n)) = &self.classify {
            out.kind = segment(topic, *n, "kind", &mut out.errors);
        }
        if payload.len() > self.max_payload {
            out.errors.push(format!(
                "the payload is {} bytes, more than max_payload ({} bytes)",
                payload.len(),
                self.max_payload
            ));
            return (out, None);
        }
        let value: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(format!("the payload is not JSON: {e}"));
                return (out, None);
            }
        };
        if let Some(schema) = &self.schema {
            let validator = schema
                .current
                .read()
                .expect("schema lock poisoned")
                .1
                .clone();
            for e in validator.iter_errors(&value) {
                let at = e.instance_path().as_str();
                let at = if at.is_empty() { "/" } else { at };
                out.errors.push(format!(
                    "at {at}: {e} (schema {})",
                    e.schema_path().as_str()
                ));
            }
        }
        if let Some(Pick::Pointer(p)) = &self.device {
            out.device = pointer(&value, p, "device", &mut out.errors);
        }
        if let Some(Pick::Pointer(p)) = &self.classify {
            out.kind = pointer(&value, p, "kind", &mut out.errors);
        }
        (out, Some(value))
    }

    /// Names the JSON pointer to each message's own key (with the device, when the
    /// ingest names devices), remembered for `window`: a resend with the same key within
    /// it is a duplicate.
    pub fn with_key(mut self, pointer: Option<String>, window: std::time::Duration) -> Self {
        self.key = pointer.map(|p| (p, window));
        self
    }

    /// The message to store for `payload`, checked, with what it starts if valid.
    pub fn message(&self, topic: &str, payload: Vec<u8>, received_at: Timestamp) -> NewMessage {
        self.message_keyed(topic, payload, received_at, None)
    }

    /// [`Self::message`], with a key given by the sender (a webhook's `Idempotency-Key`),
    /// which takes the place of the one read from the payload.
    pub fn message_keyed(
        &self,
        topic: &str,
        payload: Vec<u8>,
        received_at: Timestamp,
        given: Option<&str>,
    ) -> NewMessage {
        let (checked, read) = self.evaluate(topic, &payload);
        let window = self
            .key
            .as_ref()
            .map_or(DEFAULT_KEY_WINDOW, |(_, window)| *window);
        let key = given
            .map(|k| format!("idempotency:{k}"))
            .or(read)
            .map(|value| MessageKey {
                value,
                until: received_at.plus(window),
            });
        NewMessage {
            ingest: self.ingest.clone(),
            device: checked.device,
            topic: topic.to_owned(),
            kind: checked.kind,
            payload,
            received_at,
            keep: self.keep,
            errors: checked.errors,
            start: checked.start,
            key,
        }
    }

    /// The outcome of checking `payload` (again, for a stored dead letter).
    pub fn replay(&self, topic: &str, payload: &[u8]) -> Replay {
        self.evaluate(topic, payload).0
    }

    /// The outcome of checking `payload`, and its own key if the ingest names one and
    /// the payload has it (a string or a number).
    fn evaluate(&self, topic: &str, payload: &[u8]) -> (Replay, Option<String>) {
        let (mut checked, value) = self.check_value(topic, payload);
        let key = match (&self.key, &value) {
            (Some((pointer, _)), Some(value)) => match value.pointer(pointer) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(v @ Value::Number(_)) => Some(v.to_string()),
                _ => None,
            }
            .map(|k| match &checked.device {
                Some(device) => serde_json::json!([device, k]).to_string(),
                None => serde_json::json!([k]).to_string(),
            }),
            _ => None,
        };
        let mut start = None;
        if let (true, Some(value), Some(starter)) =
            (checked.errors.is_empty(), value, &self.starter)
        {
            let kind = checked.kind.as_deref().unwrap_or(&self.ingest);
            let args = serde_json::json!({
                "ingest": self.ingest,
                "device": checked.device,
                "topic": topic,
                "kind": checked.kind,
                "payload": value,
            });
            match starter(kind, args) {
                Ok(s) => start = Some(s),
                Err(why) => checked.errors.push(why),
            }
        }
        let replay = Replay {
            device: checked.device,
            kind: checked.kind,
            errors: checked.errors,
            start,
        };
        (replay, key)
    }
}

/// How long a webhook's `Idempotency-Key` is remembered when the ingest sets no
/// `key_window`.
pub const DEFAULT_KEY_WINDOW: std::time::Duration = std::time::Duration::from_secs(86_400);

fn compile(ingest: &str, path: &Path) -> Result<jsonschema::Validator, IngestError> {
    let bad = |detail: String| IngestError::Schema {
        ingest: ingest.to_owned(),
        path: path.to_path_buf(),
        detail,
    };
    let text = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let schema: Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("it is not JSON: {e}")))?;
    jsonschema::validator_for(&schema).map_err(|e| {
        let at = e.instance_path().as_str().to_owned();
        bad(format!(
            "it is not a valid JSON Schema: {e} (at {})",
            if at.is_empty() { "/" } else { &at }
        ))
    })
}

fn segment(topic: &str, n: usize, what: &str, errors: &mut Vec<String>) -> Option<String> {
    match n.checked_sub(1).and_then(|i| topic.split('/').nth(i)) {
        Some(s) if !s.is_empty() => Some(s.to_owned()),
        _ => {
            errors.push(format!(
                "the topic {topic:?} has no segment {n} to read the {what} from"
            ));
            None
        }
    }
}

fn pointer(value: &Value, p: &str, what: &str, errors: &mut Vec<String>) -> Option<String> {
    match value.pointer(p) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Some(other) => {
            errors.push(format!(
                "the {what} at {p} must be a non-empty string or a number, not {other}"
            ));
            None
        }
        None => {
            errors.push(format!(
                "the payload has nothing at {p} to read the {what} from"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(schema: &str) -> (Checker, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, schema).unwrap();
        let c = Checker::new(
            "stands",
            Some(&path),
            Some(Pick::Pointer("/type".into())),
            Some(Pick::Segment(1)),
            64,
            None,
            true,
        )
        .unwrap();
        (c, dir)
    }

    const SCHEMA: &str = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "required": ["type", "seq"],
        "properties": {"type": {"enum": ["status", "result"]}, "seq": {"type": "integer"}}}"#;

    #[test]
    fn valid_messages_are_classified_and_attributed() {
        let (c, _dir) = checker(SCHEMA);
        let got = c.replay("s1/inbound", br#"{"type":"status","seq":1}"#);
        assert_eq!(
            (got.device.as_deref(), got.kind.as_deref(), got.errors.len()),
            (Some("s1"), Some("status"), 0)
        );
    }

    #[test]
    fn every_reason_is_kept() {
        let (c, _dir) = checker(SCHEMA);
        let got = c.replay("s1/inbound", br#"{"type":"other","seq":"x"}"#);
        assert_eq!(got.errors.len(), 2, "{:?}", got.errors);
        assert!(got.errors.iter().any(|e| e.starts_with("at /type:")));
        assert!(got.errors.iter().any(|e| e.starts_with("at /seq:")));
        let got = c.replay("s1/inbound", b"{not json");
        assert!(
            got.errors[0].starts_with("the payload is not JSON"),
            "{got:?}"
        );
        let got = c.replay("s1/inbound", &[b' '; 65]);
        assert_eq!(
            got.errors,
            ["the payload is 65 bytes, more than max_payload (64 bytes)"]
        );
        let got = c.replay("/x", br#"{"seq":1}"#);
        assert!(
            got.errors.iter().any(|e| e.contains("no segment 1")),
            "{got:?}"
        );
        assert!(
            got.errors.iter().any(|e| e.contains("nothing at /type")),
            "{got:?}"
        );
    }

    #[test]
    fn draft_7_schemas_and_bad_schemas() {
        let (c, _dir) = checker(
            r#"{"$schema": "http://json-schema.org/draft-07/schema#",
                "properties": {"seq": {"type": "integer", "exclusiveMinimum": 0}}}"#,
        );
        assert!(
            c.replay("s/x", br#"{"type":"a","seq":1}"#)
                .errors
                .is_empty()
        );
        assert_eq!(c.replay("s/x", br#"{"type":"a","seq":0}"#).errors.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"type": 12}"#).unwrap();
        let err = Checker::new("stands", Some(&path), None, None, 64, None, true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
        std::fs::write(&path, "{").unwrap();
        let err = Checker::new("stands", Some(&path), None, None, 64, None, true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not JSON"), "{err}");
    }
}
