//! The notification outbox: recorded events routed to notification channels, and each
//! channel's deliveries until they are sent.
//!
//! Every event is recorded unrouted. The router (one node at a time) takes unrouted
//! events in id order and, in the same transaction, writes one delivery per channel whose
//! filter takes the event and marks the events routed. A delivery stays in the store until
//! the channel confirms it, so a mail server that is down delays a notification and never
//! loses it.

use serde::{Deserialize, Serialize};

use crate::messages::NewMessage;
use crate::model::{NewEvent, Outcome, Timestamp};

/// A channel and the event kinds it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRoute {
    /// The channel's name (`[notify.NAME]`).
    pub channel: String,
    /// Patterns over [`notice_kind`]s: `job.discarded`, `service.*` or `*`.
    pub on: Vec<String>,
}

impl NotifyRoute {
    /// Whether the channel takes events of this notice kind.
    pub fn takes(&self, kind: &str) -> bool {
        self.on.iter().any(|p| kind_matches(p, kind))
    }
}

/// The name an event is notified under: `SOURCE.KIND` (`job.discarded`,
/// `service.crashloop`, `batch.failed`), or the kind itself when it already names its
/// source (`budget.80`).
pub fn notice_kind(source: &str, kind: &str) -> String {
    match kind.strip_prefix(source) {
        Some(rest) if rest.starts_with('.') => kind.to_owned(),
        _ => format!("{source}.{kind}"),
    }
}

/// Whether a filter pattern takes a notice kind: `*` takes all, `SOURCE.*` every kind of
/// a source, anything else only itself.
pub fn kind_matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(source) => kind
            .strip_prefix(source)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == kind,
    }
}

/// A notification waiting for (or given to) its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Delivery {
    /// Increasing in the order deliveries were made.
    pub id: i64,
    /// The channel.
    pub channel: String,
    /// The event it tells of.
    pub event_id: i64,
    /// When the event happened.
    pub at: Timestamp,
    /// The event's [`notice_kind`].
    pub kind: String,
    /// What it happened to.
    pub subject: String,
    /// The event's sentence.
    pub message: String,
    /// The node the event happened on.
    pub node: String,
    /// When it was routed to the channel.
    pub created_at: Timestamp,
    /// Not before this time is it tried (again).
    pub next_at: Timestamp,
    /// Failed tries so far.
    pub attempts: u32,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// When the channel took it; `None` while it waits.
    pub sent_at: Option<Timestamp>,
}

/// Which deliveries to list: all filters must match; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only of this channel.
    pub channel: Option<String>,
    /// Only those still waiting (`Some(true)`) or only those sent (`Some(false)`).
    pub pending: Option<bool>,
    /// At most this many.
    pub limit: u32,
}

/// The channels that take an event, and the kind it is notified under.
pub(crate) fn channels_for<'a>(
    routes: &'a [NotifyRoute],
    source: &str,
    kind: &str,
) -> (String, Vec<&'a str>) {
    let kind = notice_kind(source, kind);
    let channels = routes
        .iter()
        .filter(|r| r.takes(&kind))
        .map(|r| r.channel.as_str())
        .collect();
    (kind, channels)
}

/// The event of a job that ran out of attempts (or whose handler gave up on it).
pub(crate) fn discarded_event(
    job: &DiscardedJob,
    error: &str,
    output: Option<&str>,
    now: Timestamp,
) -> NewEvent {
    NewEvent {
        at: now,
        node: job.attempted_by.clone().unwrap_or_else(|| "-".into()),
        source: "job".into(),
        subject: job.kind.clone(),
        instance: None,
        kind: "discarded".into(),
        message: {
            let mut m = format!(
                "job {} ({} on queue {}) was discarded after attempt {} of {}: {}",
                job.id,
                job.kind,
                job.queue,
                job.attempt,
                job.max_attempts,
                shorten(error, 500)
            );
            // What it was about and what it said, bounded: a mail names the file.
            if !job.args.is_null() && job.args != serde_json::json!({}) {
                m.push_str(&format!("\nargs: {}", args_summary(&job.args)));
            }
            if let Some(out) = output.filter(|o| !o.trim().is_empty()) {
                m.push_str("\noutput, the end:\n");
                m.push_str(&tail(out, 10, 1000));
            }
            m
        },
    }
}

/// A job's args in a few hundred bytes: each top-level value cut to 80, so that every
/// key (a file name among them) shows even beside a large one.
fn args_summary(args: &serde_json::Value) -> String {
    let Some(map) = args.as_object() else {
        return shorten(&args.to_string(), 300);
    };
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}: {}", shorten(&v.to_string(), 80)))
        .collect();
    shorten(&format!("{{{}}}", parts.join(", ")), 300)
}

/// The last `lines` lines of `text`, at most `max` bytes of them (cut at a character,
/// marked `…`): what an event, a mail or a deploy step shows of an output or a log.
pub fn tail(text: &str, lines: usize, max: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if out.len() > max {
        let mut start = out.len() - max;
        while !out.is_char_boundary(start) {
            start += 1;
        }
        out = format!("…{}", &out[start..]);
    }
    out
}

/// What a discarded job's event names.
pub(crate) struct DiscardedJob {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub attempted_by: Option<String>,
    pub args: serde_json::Value,
}

/// The output an outcome carries, for the events of discarded jobs.
pub(crate) fn outcome_output(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Failed { output, .. } | Outcome::Discard { output, .. } => output.as_deref(),
        _ => None,
    }
}

/// The error an outcome carries, for the events of discarded jobs.
pub(crate) fn outcome_error(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { error, .. }
        | Outcome::Discard { error, .. }
        | Outcome::LeaseExpired { error, .. } => error,
        _ => "",
    }
}

/// One event per ingest that dead-lettered messages of a write: how many, and the first
/// one's reasons.
pub(crate) fn dead_letter_events(messages: &[NewMessage]) -> Vec<NewEvent> {
    let mut out: Vec<(NewEvent, usize)> = Vec::new();
    for m in messages.iter().filter(|m| m.is_dead()) {
        match out.iter_mut().find(|(e, _)| e.subject == m.ingest) {
            Some((_, n)) => *n += 1,
            None => out.push((
                NewEvent {
                    at: m.received_at,
                    node: "-".into(),
                    source: "ingest".into(),
                    subject: m.ingest.clone(),
                    instance: None,
                    kind: "dead_letter".into(),
                    message: format!(
                        "on topic {}{}: {}",
                        m.topic,
                        m.device
                            .as_deref()
                            .map(|d| format!(" from device {d}"))
                            .unwrap_or_default(),
                        shorten(&m.errors.join("; "), 500)
                    ),
                },
                1,
            )),
        }
    }
    out.into_iter()
        .map(|(mut e, n)| {
            e.message = if n == 1 {
                format!("a dead letter in ingest {}: first {}", e.subject, e.message)
            } else {
                format!(
                    "{n} dead letters in ingest {}: first {}",
                    e.subject, e.message
                )
            };
            e
        })
        .collect()
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// How many events one routing transaction takes at most.
pub const ROUTE_BATCH: u32 = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_by_source() {
        assert_eq!(notice_kind("job", "discarded"), "job.discarded");
        assert_eq!(notice_kind("budget", "budget.80"), "budget.80");
        assert_eq!(notice_kind("budget", "budgetary"), "budget.budgetary");
    }

    #[test]
    fn patterns_match_exactly_by_source_or_all() {
        assert!(kind_matches("*", "job.discarded"));
        assert!(kind_matches("job.*", "job.discarded"));
        assert!(!kind_matches("job.*", "jobs.discarded"));
        assert!(kind_matches("budget.80", "budget.80"));
        assert!(!kind_matches("budget.80", "budget.100"));
    }

    #[test]
    fn a_discarded_jobs_event_says_what_failed_bounded() {
        let job = DiscardedJob {
            id: 9,
            queue: "imports".into(),
            kind: "import".into(),
            attempt: 3,
            max_attempts: 3,
            attempted_by: None,
            args: serde_json::json!({"file": "/srv/in/report.csv", "blob": "x".repeat(1000)}),
        };
        let output: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let e = discarded_event(
            &job,
            "the command exited with code 1",
            Some(&output),
            Timestamp(0),
        );
        let m = &e.message;
        assert!(m.starts_with("job 9 (import on queue imports) was discarded after attempt 3 of 3: the command exited with code 1\nargs: {blob: \"xxx"), "{m}");
        assert!(m.contains(r#"file: "/srv/in/report.csv"}"#), "{m}");
        assert!(m.contains("\noutput, the end:\nline 31\n"), "{m}");
        assert!(m.ends_with("line 40"), "{m}");
        assert!(m.len() < 1000, "{} bytes", m.len());
        // Nothing printed, no args: the sentence alone.
        let bare = DiscardedJob {
            args: serde_json::json!({}),
            ..job
        };
        assert_eq!(
            discarded_event(&bare, "gave up", None, Timestamp(0)).message,
            "job 9 (import on queue imports) was discarded after attempt 3 of 3: gave up"
        );
    }
}
