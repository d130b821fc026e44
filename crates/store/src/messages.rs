//! Messages taken in by an ingest (MQTT, dropped files, webhooks), as stored: the ones
//! that passed validation, and the dead letters that did not, kept with their original
//! bytes and every reason so that they can be replayed after a fix.

use serde::{Deserialize, Serialize};

use crate::flows::Start;
use crate::model::Timestamp;

/// A message to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewMessage {
    /// The ingest that took it in (`[ingest.NAME]`).
    pub ingest: String,
    /// The device it came from, if the ingest names devices.
    pub device: Option<String>,
    /// Where it came from: the MQTT topic, the file's name, the webhook's path.
    pub topic: String,
    /// Its kind, from the classifier (`None` when not classified, or when a dead letter's
    /// payload did not get that far).
    pub kind: Option<String>,
    /// The bytes exactly as received.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// Keep it once valid; `false` only starts what it starts (a dead letter is always
    /// kept).
    pub keep: bool,
    /// Why it was refused; non-empty makes it a dead letter.
    pub errors: Vec<String>,
    /// A job or workflow to start with it, in the same transaction (never for a dead
    /// letter). The store adds `"message_id"` to the job's args or the workflow's input
    /// when they are JSON objects and the message is kept.
    pub start: Option<Start>,
    /// The message's own key: a second valid message of the same ingest with the same key
    /// before the first one's key expires is a duplicate (counted on the first, neither
    /// stored nor starting anything). Ignored on a dead letter.
    #[serde(default)]
    pub key: Option<MessageKey>,
}

/// A message's own key (a JSON pointer's value with the device, a webhook's
/// `Idempotency-Key`), and until when a resend with it is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageKey {
    /// The key, unique within its ingest.
    pub value: String,
    /// Messages with this key received before this time are duplicates.
    pub until: Timestamp,
}

/// What [`Store::message_insert`](crate::Store::message_insert) did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageStored {
    /// The message's id if it was kept; for a duplicate, the first message's (if kept).
    pub id: Option<i64>,
    /// A duplicate of an earlier message by its key: nothing was stored or started.
    pub duplicate: bool,
}

/// How the keyed messages of a batch group: per message, the index of the first one in
/// the batch with the same ingest and key (itself for the first), `None` when it has no
/// key or is a dead letter.
pub(crate) fn key_heads(messages: &[NewMessage]) -> Vec<Option<usize>> {
    let mut first: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| match (&m.key, m.is_dead()) {
            (Some(k), false) => Some(*first.entry((&m.ingest, &k.value)).or_insert(i)),
            _ => None,
        })
        .collect()
}

impl NewMessage {
    /// A dead letter: refused, kept with its reasons, starting nothing.
    pub fn is_dead(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Whether it gets a row of its own.
    pub fn is_kept(&self) -> bool {
        self.keep || self.is_dead()
    }

    /// What it starts: nothing for a dead letter; with `id`, the message's id added.
    pub(crate) fn start_for(&self, id: Option<i64>) -> Option<Start> {
        match (&self.start, self.is_dead(), id) {
            (Some(s), false, Some(id)) => Some(with_message_id(s, id)),
            (Some(s), false, None) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A stored message or dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Message {
    /// Its id, increasing in arrival order.
    pub id: i64,
    /// The ingest that took it in.
    pub ingest: String,
    /// The device it came from.
    pub device: Option<String>,
    /// The topic, file name or path it came from.
    pub topic: String,
    /// Its kind.
    pub kind: Option<String>,
    /// The bytes exactly as received.
    pub payload: Vec<u8>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// A dead letter: refused, with `errors` saying why.
    pub dead: bool,
    /// Why it was refused (the last validation's reasons, for a dead letter).
    pub errors: Vec<String>,
    /// The job started with it.
    pub job_id: Option<i64>,
    /// The workflow started with it.
    pub workflow_id: Option<i64>,
    /// When it was last replayed.
    pub replayed_at: Option<Timestamp>,
    /// How many resends with its key were dropped as duplicates.
    #[serde(default)]
    pub duplicates: u64,
}

/// How many messages one device sent of one kind (either unknown: `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageCount {
    /// The device, if the ingest names one.
    pub device: Option<String>,
    /// The kind, if the ingest classifies.
    pub kind: Option<String>,
    /// How many.
    pub count: u64,
}

/// How many messages and dead letters one ingest has in the store, read from counts the
/// store keeps as it writes (a few rows, whatever the number of messages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageTotals {
    /// The ingest.
    pub ingest: String,
    /// Valid messages kept.
    pub messages: u64,
    /// Dead letters kept.
    pub dead: u64,
}

/// Folds (ingest, dead, count) rows, ordered by ingest, into one total per ingest.
pub(crate) fn fold_totals(
    rows: impl IntoIterator<Item = (String, bool, i64)>,
) -> Vec<MessageTotals> {
    let mut out: Vec<MessageTotals> = Vec::new();
    for (ingest, dead, n) in rows {
        if out.last().is_none_or(|t| t.ingest != ingest) {
            out.push(MessageTotals {
                ingest,
                ..Default::default()
            });
        }
        let t = out.last_mut().expect("pushed above");
        if dead {
            t.dead = n.max(0) as u64;
        } else {
            t.messages = n.max(0) as u64;
        }
    }
    out
}

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageFilter {
    /// Only this ingest's.
    pub ingest: Option<String>,
    /// Only this device's.
    pub device: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Dead letters instead of stored messages.
    pub dead: bool,
    /// Received at or after this time.
    pub since: Option<Timestamp>,
    /// Received before this time.
    pub until: Option<Timestamp>,
    /// Only ids below this one (the next page of a newest-first list).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// The outcome of validating a dead letter again, to be written by
/// [`Store::message_replay`](crate::Store::message_replay).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Replay {
    /// The device, as the ingest now reads it.
    pub device: Option<String>,
    /// The kind, as the ingest now classifies it.
    pub kind: Option<String>,
    /// Why it is still refused; empty makes it a stored message.
    pub errors: Vec<String>,
    /// What to start now that it passed (ignored while `errors` is non-empty).
    pub start: Option<Start>,
}

impl MessageFilter {
    /// The limit, within 1 to 10,000.
    pub fn limit(&self) -> u32 {
        self.limit.clamp(1, 10_000)
    }
}

impl Replay {
    /// What to start now: nothing while it is still refused; with the message's id.
    pub(crate) fn start_for(&self, id: i64) -> Option<Start> {
        match (&self.start, self.errors.is_empty()) {
            (Some(s), true) => Some(with_message_id(s, id)),
            _ => None,
        }
    }
}

/// `args` with `"message_id": id` added when it is a JSON object (jobs and workflows
/// started by a message learn which one).
fn with_message_id(start: &Start, id: i64) -> Start {
    let mut start = start.clone();
    let value = match &mut start {
        Start::Job(job) => &mut job.args,
        Start::Workflow(workflow) => &mut workflow.input,
    };
    if let Some(object) = value.as_object_mut() {
        object.insert("message_id".into(), id.into());
    }
    start
}

/// The errors as stored: a JSON array of strings.
pub(crate) fn errors_json(errors: &[String]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

/// The errors read back; a damaged value reads as one error saying so.
pub(crate) fn errors_from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|_| vec![format!("unreadable errors: {text}")])
}

/// Refuses a replay of a message that is not a dead letter.
pub(crate) fn may_replay(message: &Message) -> crate::Result<()> {
    if message.dead {
        Ok(())
    } else {
        Err(crate::StoreError::Conflict(format!(
            "message {} is not a dead letter: it was stored{}; only dead letters can be replayed",
            message.id,
            if message.replayed_at.is_some() {
                " (by an earlier replay)"
            } else {
                ""
            }
        )))
    }
}
