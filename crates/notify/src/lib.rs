//! berth's notifications: what happened (a job discarded, a workflow failed, a service
//! crash-looping, a budget at 80%, a backup failed, dead letters) told to people by email
//! or to other systems by webhook.
//!
//! # How a notification travels
//! 1. Whoever sees it happen records an event in the store, in the transaction that made
//!    it happen where the store does (jobs, batches, workflows, dead letters).
//! 2. [`Notifier::tick`] (on the leader) routes unrouted events: one delivery per channel
//!    whose `on` filter takes the event, written with the events marked routed, in one
//!    transaction ([`berth_store::NotifyStore::notify_route`]).
//! 3. Each channel sends its due deliveries and records them sent; a failed try is
//!    recorded with the time of the next one (10 s, doubling, at most 30 min). A mail
//!    server that is down delays a notification; nothing is lost. A delivery may be sent
//!    twice if berth stops between sending it and recording it (at least once).
//! 4. A digest channel sends, at the end of each period (aligned to UTC: every 4h is
//!    00:00, 04:00, …), one summary of what was routed to it during the period.
//!
//! # Layout
//! - `lib.rs`: the channel specs and the [`Notifier`].
//! - `email.rs`: mail over SMTP (plain, STARTTLS, TLS; with a login).
//! - `webhook.rs`: JSON POSTs over HTTP or HTTPS, signed when a secret is set.
//! - `text.rs`: what a notification and a digest say.

mod email;
mod error;
mod text;
mod webhook;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_store::notices::ROUTE_BATCH;
use berth_store::{Delivery, NotifyRoute, NotifyStore, Timestamp};

pub use error::NotifyError;

/// One `[notify.NAME]`, resolved: secrets read, files loaded.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    /// Its name.
    pub name: String,
    /// Patterns over event kinds (`job.discarded`, `service.*`, `*`).
    pub on: Vec<String>,
    /// One summary per period instead of one notification per event.
    pub digest: Option<Duration>,
    /// Where it sends.
    pub target: TargetSpec,
}

/// Email or webhook.
#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// Mail over SMTP.
    Email(EmailSpec),
    /// A JSON POST.
    Webhook(WebhookSpec),
}

/// Mail over SMTP.
#[derive(Debug, Clone)]
pub struct EmailSpec {
    /// The recipients.
    pub to: Vec<String>,
    /// The sender.
    pub from: String,
    /// The server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: Security,
    /// User and password, if the server wants a login.
    pub login: Option<(String, String)>,
    /// PEM of a certificate authority to trust besides the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Not at all.
    Plain,
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte.
    Tls,
}

/// A webhook.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Signs each body (`X-Berth-Signature: sha256=HEX`) when set.
    pub secret: Option<Vec<u8>>,
    /// PEM of a certificate authority to trust besides the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// How long sent deliveries are kept, for `berth notify list`.
pub const KEEP_SENT: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often sent deliveries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The most deliveries one channel sends in one pass (a digest: summarises).
const PASS_LIMIT: u32 = 50;
const DIGEST_LIMIT: u32 = 10_000;

/// At most this many deliveries go out as separate mails in one pass; more become one
/// mail that lists them all.
const SEPARATE_MAILS: usize = 5;

/// Sends what the store's outbox holds. See the crate docs.
pub struct Notifier {
    store: Arc<dyn NotifyStore>,
    app: String,
    routes: Vec<NotifyRoute>,
    channels: Vec<Arc<Channel>>,
    last_prune: Mutex<Option<Timestamp>>,
}

struct Channel {
    name: String,
    digest: Option<Duration>,
    sender: Sender,
    /// A pass is under way (sending runs beside the leader's loop, never twice at once).
    /// Shared with the channel of the same name after a reload, whose first pass waits
    /// for this one.
    busy: Arc<AtomicBool>,
}

enum Sender {
    Email(email::Mailer),
    Webhook(webhook::Poster),
}

impl Sender {
    fn new(target: &TargetSpec) -> Result<Self, NotifyError> {
        Ok(match target {
            TargetSpec::Email(e) => Sender::Email(email::Mailer::new(e)?),
            TargetSpec::Webhook(w) => Sender::Webhook(webhook::Poster::new(w)?),
        })
    }
}

impl Notifier {
    /// Prepares every channel (addresses parsed, certificates loaded); an error names the
    /// channel and what is wrong.
    pub fn new(
        store: Arc<dyn NotifyStore>,
        app: &str,
        specs: Vec<ChannelSpec>,
    ) -> Result<Self, NotifyError> {
        Self::build(store, app, specs, &[])
    }

    /// The notifier of `specs` in place of this one (a reload): a channel of the same
    /// name takes over this one's busy flag, so that a pass still sending is not joined
    /// by a second one that would send the same deliveries again.
    pub fn reconfigured(&self, app: &str, specs: Vec<ChannelSpec>) -> Result<Self, NotifyError> {
        Self::build(self.store.clone(), app, specs, &self.channels)
    }

    fn build(
        store: Arc<dyn NotifyStore>,
        app: &str,
        specs: Vec<ChannelSpec>,
        before: &[Arc<Channel>],
    ) -> Result<Self, NotifyError> {
        let mut channels = Vec::new();
        let mut routes = Vec::new();
        for spec in specs {
            let sender = Sender::new(&spec.target).map_err(|e| e.in_channel(&spec.name))?;
            routes.push(NotifyRoute {
                channel: spec.name.clone(),
                on: spec.on.clone(),
            });
            let busy = before
                .iter()
                .find(|c| c.name == spec.name)
                .map_or_else(|| Arc::new(AtomicBool::new(false)), |c| c.busy.clone());
            channels.push(Arc::new(Channel {
                name: spec.name,
                digest: spec.digest,
                sender,
                busy,
            }));
        }
        Ok(Self {
            store,
            app: app.to_owned(),
            routes,
            channels,
            last_prune: Mutex::new(None),
        })
    }

    /// One pass, on the leader: routes new events, starts each idle channel's sending
    /// (which runs on beside the caller), and now and then forgets old deliveries.
    pub async fn tick(&self, now: Timestamp) -> Result<(), NotifyError> {
        // Routing runs even without channels, so that events are not kept unrouted (and
        // all sent at once to a channel added later).
        while self.store.notify_route(self.routes.clone(), now).await? >= ROUTE_BATCH {}
        for ch in &self.channels {
            if ch.busy.swap(true, Ordering::AcqRel) {
                continue;
            }
            let ch = ch.clone();
            let store = self.store.clone();
            let app = self.app.clone();
            tokio::spawn(async move {
                // Cleared however the pass ends, a panic included.
                let _idle = Idle(&ch.busy);
                if let Err(e) = ch.pass(&*store, &app, now).await {
                    tracing::warn!(channel = %ch.name, error = %e, "cannot send notifications");
                }
            });
        }
        let prune = {
            let mut last = self.last_prune.lock().expect("not poisoned");
            let due = last.is_none_or(|t| now.since(t) >= PRUNE_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if prune {
            let names = self.channels.iter().map(|c| c.name.clone()).collect();
            let n = self.store.notify_prune(now.minus(KEEP_SENT), names).await?;
            if n > 0 {
                tracing::info!(deliveries = n, "forgot old notifications");
            }
        }
        Ok(())
    }

    /// The channels' names.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|c| c.name.as_str())
    }
}

impl Channel {
    /// Sends what is due now.
    async fn pass(
        &self,
        store: &dyn NotifyStore,
        app: &str,
        now: Timestamp,
    ) -> Result<(), NotifyError> {
        match self.digest {
            Some(period) => {
                let start = period_start(now, period);
                let due: Vec<Delivery> = store
                    .notify_due(&self.name, now, DIGEST_LIMIT)
                    .await?
                    .into_iter()
                    .filter(|d| d.created_at < start)
                    .collect();
                if due.is_empty() {
                    return Ok(());
                }
                let result = self.send_digest(app, &due, start, period).await;
                self.record(store, &due, result, now).await
            }
            None => {
                let due = store.notify_due(&self.name, now, PASS_LIMIT).await?;
                if due.is_empty() {
                    return Ok(());
                }
                match &self.sender {
                    Sender::Email(_) if due.len() > SEPARATE_MAILS => {
                        let result = self.send_all_in_one(app, &due).await;
                        self.record(store, &due, result, now).await
                    }
                    _ => {
                        for d in &due {
                            let result = self.send_each(app, std::slice::from_ref(d)).await;
                            self.record(store, std::slice::from_ref(d), result, now)
                                .await?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    async fn send_each(&self, app: &str, due: &[Delivery]) -> Result<(), String> {
        for d in due {
            match &self.sender {
                Sender::Email(m) => m.send(&text::subject(app, d), text::body(d)).await?,
                Sender::Webhook(p) => {
                    p.post(&text::webhook_body(app, d), &d.id.to_string())
                        .await?
                }
            }
        }
        Ok(())
    }

    async fn send_all_in_one(&self, app: &str, due: &[Delivery]) -> Result<(), String> {
        match &self.sender {
            Sender::Email(m) => {
                m.send(
                    &format!("[{app}] {} notifications", due.len()),
                    text::list_body(due),
                )
                .await
            }
            Sender::Webhook(_) => self.send_each(app, due).await,
        }
    }

    async fn send_digest(
        &self,
        app: &str,
        due: &[Delivery],
        until: Timestamp,
        period: Duration,
    ) -> Result<(), String> {
        let digest = text::Digest::of(due, until, period);
        match &self.sender {
            Sender::Email(m) => m.send(&digest.subject(app), digest.body()).await,
            Sender::Webhook(p) => {
                // A digest's own id: the same on a retry of the same summary.
                let id = format!("digest-{}-{}", due[0].id, due[due.len() - 1].id);
                p.post(&digest.webhook_body(app), &id).await
            }
        }
    }

    async fn record(
        &self,
        store: &dyn NotifyStore,
        due: &[Delivery],
        result: Result<(), String>,
        now: Timestamp,
    ) -> Result<(), NotifyError> {
        let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
        match result {
            Ok(()) => {
                tracing::info!(channel = %self.name, notifications = ids.len(), "sent notifications");
                store.notify_done(ids, Timestamp::now().max(now)).await?;
            }
            Err(error) => {
                let attempts = due.iter().map(|d| d.attempts).max().unwrap_or(0);
                let wait = retry_after(attempts);
                tracing::warn!(
                    channel = %self.name,
                    notifications = ids.len(),
                    attempt = attempts + 1,
                    retry_in = ?wait,
                    %error,
                    "cannot send notifications; will try again"
                );
                store.notify_retry(ids, error, now.plus(wait)).await?;
            }
        }
        Ok(())
    }
}

/// Sends a test notification through a channel at once (not through the outbox), so
/// that its settings can be checked without a running berth.
/// `node` names the machine it is sent from.
pub async fn send_test(app: &str, node: &str, spec: &ChannelSpec) -> Result<(), NotifyError> {
    let channel = Channel {
        name: spec.name.clone(),
        digest: None,
        sender: Sender::new(&spec.target).map_err(|e| e.in_channel(&spec.name))?,
        busy: Arc::new(AtomicBool::new(false)),
    };
    let now = Timestamp::now();
    let d = Delivery {
        id: 0,
        channel: spec.name.clone(),
        event_id: 0,
        at: now,
        kind: "notify.test".into(),
        subject: spec.name.clone(),
        message: format!(
            "a test of the notification channel {}: if you read this, it works",
            spec.name
        ),
        node: node.to_owned(),
        created_at: now,
        next_at: now,
        attempts: 0,
        last_error: None,
        sent_at: None,
    };
    channel
        .send_each(app, std::slice::from_ref(&d))
        .await
        .map_err(|error| NotifyError::Send {
            channel: spec.name.clone(),
            error,
        })
}

/// Clears a busy flag when dropped.
pub struct Idle<'a>(pub &'a AtomicBool);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How long to wait after the `attempts`-th failed try: 10 s, doubling, at most 30 min.
pub fn retry_after(attempts: u32) -> Duration {
    let secs = 10u64.saturating_mul(1 << attempts.min(16));
    Duration::from_secs(secs.min(30 * 60))
}

/// The start of the digest period `now` is in, periods aligned to the Unix epoch (UTC).
pub fn period_start(now: Timestamp, period: Duration) -> Timestamp {
    let p = period.as_micros().max(1) as i64;
    Timestamp(now.0 - now.0.rem_euclid(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_half_an_hour() {
        assert_eq!(retry_after(0), Duration::from_secs(10));
        assert_eq!(retry_after(1), Duration::from_secs(20));
        assert_eq!(retry_after(4), Duration::from_secs(160));
        assert_eq!(retry_after(8), Duration::from_secs(1800));
        assert_eq!(retry_after(100), Duration::from_secs(1800));
    }

    #[test]
    fn periods_are_aligned_to_the_epoch() {
        let four_h = Duration::from_secs(4 * 3600);
        // 2026-12-05T09:30:00Z is in the period that began at 08:00.
        let now: Timestamp = "2026-12-05T09:30:00Z".parse().unwrap();
        assert_eq!(
            period_start(now, four_h),
            "2026-12-05T08:00:00Z".parse().unwrap()
        );
        let edge: Timestamp = "2026-12-05T08:00:00Z".parse().unwrap();
        assert_eq!(period_start(edge, four_h), edge);
    }
}
