//! What notifications say: mail subjects and bodies, webhook JSON, digests.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_store::{Delivery, Timestamp};
use serde_json::{Value, json};

/// `[APP] KIND: SUBJECT`.
pub(crate) fn subject(app: &str, d: &Delivery) -> String {
    format!("[{app}] {}: {}", d.kind, d.subject)
}

fn line(d: &Delivery) -> String {
    format!("{}  {}  {}: {}", d.at, d.kind, d.subject, d.message)
}

/// One notification's mail.
pub(crate) fn body(d: &Delivery) -> String {
    format!(
        "{}\n\nkind:    {}\nsubject: {}\nat:      {}\nnode:    {}\n",
        d.message, d.kind, d.subject, d.at, d.node
    )
}

/// Several notifications in one mail, oldest first.
pub(crate) fn list_body(due: &[Delivery]) -> String {
    let mut out = format!("{} notifications, oldest first:\n\n", due.len());
    for d in due {
        out.push_str(&line(d));
        out.push('\n');
    }
    out
}

fn event_json(d: &Delivery) -> Value {
    json!({
        "kind": d.kind,
        "subject": d.subject,
        "message": d.message,
        "at": d.at,
        "node": d.node,
        "event_id": d.event_id,
    })
}

/// One notification's webhook body.
pub(crate) fn webhook_body(app: &str, d: &Delivery) -> Value {
    let mut v = event_json(d);
    v["app"] = json!(app);
    v["delivery_id"] = json!(d.id);
    v
}

/// A summary of what a digest channel received in one period.
pub(crate) struct Digest<'a> {
    due: &'a [Delivery],
    until: Timestamp,
    period: Duration,
    /// Notifications per kind (dead letters: letters, not events).
    counts: BTreeMap<&'a str, u64>,
}

/// The headline counts, in the order they are shown, with their words.
const HEADLINES: &[(&str, &str)] = &[
    ("workflow.failed", "workflows failed"),
    ("batch.failed", "batches failed"),
    ("job.discarded", "jobs discarded"),
    ("service.crashloop", "services crash-looping"),
    ("service.restarting", "restarts"),
    ("ingest.dead_letter", "dead letters"),
    ("ingest.file_failed", "dropped files failed"),
    ("backup.failed", "backups failed"),
    ("deploy.failed", "deploys failed"),
    ("deploy.rolled_back", "deploys rolled back"),
    ("budget.100", "budgets spent"),
    ("budget.80", "budgets at 80%"),
    ("workflow.completed", "workflows completed"),
    ("batch.completed", "batches completed"),
    ("backup.completed", "backups made"),
    ("deploy.completed", "releases deployed"),
];

impl<'a> Digest<'a> {
    pub(crate) fn of(due: &'a [Delivery], until: Timestamp, period: Duration) -> Self {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for d in due {
            *counts.entry(d.kind.as_str()).or_default() += weight(d);
        }
        Self {
            due,
            until,
            period,
            counts,
        }
    }

    /// The counts as `N words`, headline kinds first, then the rest by kind.
    fn summary(&self) -> Vec<String> {
        let mut out: Vec<String> = HEADLINES
            .iter()
            .filter_map(|(kind, words)| self.counts.get(kind).map(|n| format!("{n} {words}")))
            .collect();
        for (kind, n) in &self.counts {
            if !HEADLINES.iter().any(|(k, _)| k == kind) {
                out.push(format!("{n} × {kind}"));
            }
        }
        out
    }

    pub(crate) fn subject(&self, app: &str) -> String {
        format!("[{app}] digest: {}", self.summary().join(", "))
    }

    pub(crate) fn body(&self) -> String {
        let hours = self.period.as_secs_f64() / 3600.0;
        let mut out = format!(
            "What happened in the {} up to {}:\n\n",
            if hours >= 1.0 {
                format!("{hours} h")
            } else {
                format!("{} s", self.period.as_secs())
            },
            self.until
        );
        for s in self.summary() {
            out.push_str(&format!("  {s}\n"));
        }
        out.push_str("\nEach, oldest first:\n\n");
        for d in self.due {
            out.push_str(&line(d));
            out.push('\n');
        }
        out
    }

    pub(crate) fn webhook_body(&self, app: &str) -> Value {
        json!({
            "app": app,
            "digest": true,
            "until": self.until,
            "period_seconds": self.period.as_secs(),
            "counts": self.counts,
            "events": self.due.iter().map(event_json).collect::<Vec<_>>(),
        })
    }
}

/// How many things a notification stands for: a dead-letter event says how many letters
/// ("3 dead letters in …"); everything else is one.
fn weight(d: &Delivery) -> u64 {
    if d.kind == "ingest.dead_letter" {
        d.message
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(kind: &str, message: &str) -> Delivery {
        Delivery {
            id: 1,
            channel: "c".into(),
            event_id: 1,
            at: Timestamp(0),
            kind: kind.into(),
            subject: "s".into(),
            message: message.into(),
            node: "n".into(),
            created_at: Timestamp(0),
            next_at: Timestamp(0),
            attempts: 0,
            last_error: None,
            sent_at: None,
        }
    }

    #[test]
    fn a_digest_counts_headlines_first_and_letters_not_events() {
        let due = [
            d("workflow.completed", "w1"),
            d("ingest.dead_letter", "3 dead letters in ingest x: first …"),
            d("ingest.dead_letter", "a dead letter in ingest x: first …"),
            d("job.discarded", "j"),
            d("workflow.failed", "w2"),
            d("service.started", "s"),
            d("workflow.completed", "w3"),
        ];
        let digest = Digest::of(&due, Timestamp(0), Duration::from_secs(4 * 3600));
        assert_eq!(
            digest.subject("shop"),
            "[shop] digest: 1 workflows failed, 1 jobs discarded, 4 dead letters, \
             2 workflows completed, 1 × service.started"
        );
        let body = digest.body();
        assert!(
            body.starts_with("What happened in the 4 h up to 1970-01-01T00:00:00.000Z"),
            "{body}"
        );
        assert_eq!(body.matches("\n1970-").count(), 7, "{body}");
    }
}
