//! The one task that writes an ingest's messages: it takes everything waiting (up to
//! [`MAX_BATCH`]) and stores it in one transaction, so that one commit carries many
//! messages, then tells each sender the outcome. A sender that needs to know (an MQTT
//! QoS 1 or 2 publish) acknowledges only after that.

use std::sync::Arc;

use berth_store::{Message, MessageStore, NewMessage};

use crate::feed::Feed;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::mqtt::QoS;

/// The most messages one transaction carries.
const MAX_BATCH: usize = 2048;

/// How a message ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Valid, and committed (with what it starts).
    Stored,
    /// A resend of a message already taken (the same key within its window): counted on
    /// that message, nothing stored.
    Duplicate,
    /// Kept as a dead letter, for this first reason.
    Dead(String),
    /// The store failed; nothing of it was kept.
    Failed,
}

/// What the writer reports back for one message.
#[derive(Debug)]
pub(crate) struct Stored {
    pub pkid: u16,
    pub qos: QoS,
    pub outcome: Outcome,
}

/// Where to report a message's outcome.
pub(crate) enum Done {
    /// An MQTT publish awaiting its acknowledgement.
    Mqtt {
        tx: mpsc::UnboundedSender<Stored>,
        pkid: u16,
        qos: QoS,
    },
    /// A webhook request awaiting its answer: the outcome and the message's id.
    Reply(oneshot::Sender<(Outcome, Option<i64>)>),
}

/// A message for the writer.
pub(crate) struct Submit {
    pub message: NewMessage,
    pub done: Option<Done>,
}

/// Starts the writer of one ingest. Once `close` is cancelled it takes nothing new,
/// stores what is waiting, and ends.
pub(crate) fn spawn(
    store: Arc<dyn MessageStore>,
    feed: Feed,
    capacity: usize,
    close: CancellationToken,
) -> (mpsc::Sender<Submit>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Submit>(capacity);
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => n,
                _ = close.cancelled() => {
                    rx.close();
                    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                        write(store.as_ref(), &feed, &mut batch).await;
                    }
                    return;
                }
            };
            if n == 0 {
                return;
            }
            write(store.as_ref(), &feed, &mut batch).await;
        }
    });
    (tx, task)
}

async fn write(store: &dyn MessageStore, feed: &Feed, batch: &mut Vec<Submit>) {
    let mut messages = Vec::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    for s in batch.drain(..) {
        let dead = s.message.errors.first().cloned();
        messages.push(s.message);
        answers.push((s.done, dead));
    }
    // Only a listener makes the stream copy the messages.
    let watched = feed.watched().then(|| messages.clone());
    let ids = match store.message_insert(messages).await {
        Ok(ids) => Some(ids),
        Err(e) => {
            tracing::error!(error = %e, "cannot store ingested messages");
            None
        }
    };
    if let (Some(ids), Some(messages)) = (&ids, watched) {
        for (m, got) in messages.into_iter().zip(ids) {
            if let (Some(id), false) = (got.id, got.duplicate) {
                feed.send(stored(m, id));
            }
        }
    }
    for (i, (done, dead)) in answers.into_iter().enumerate() {
        let Some(d) = done else { continue };
        let got = ids.as_ref().map(|ids| ids[i]);
        let outcome = match (got, dead) {
            (None, _) => Outcome::Failed,
            (Some(got), _) if got.duplicate => Outcome::Duplicate,
            (Some(_), Some(why)) => Outcome::Dead(why),
            (Some(_), None) => Outcome::Stored,
        };
        match d {
            Done::Mqtt { tx, pkid, qos } => {
                let _ = tx.send(Stored { pkid, qos, outcome });
            }
            Done::Reply(tx) => {
                let _ = tx.send((outcome, got.and_then(|g| g.id)));
            }
        }
    }
}

/// A message as stored under `id`, for the live stream.
fn stored(m: NewMessage, id: i64) -> Message {
    let dead = m.is_dead();
    Message {
        id,
        ingest: m.ingest,
        device: m.device,
        topic: m.topic,
        kind: m.kind,
        payload: m.payload,
        received_at: m.received_at,
        dead,
        errors: m.errors,
        job_id: None,
        workflow_id: None,
        replayed_at: None,
        duplicates: 0,
    }
}
