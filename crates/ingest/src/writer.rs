//! The one task that writes an ingest's messages: it takes everything waiting (up to
//! [`MAX_BATCH`]) and stores it in one transaction, so that one commit carries many
//! messages, then tells each sender the outcome. A sender that needs to know (an MQTT
//! QoS 1 or 2 publish) acknowledges only after that.

use std::sync::Arc;

use berth_store::{NewMessage, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::mqtt::QoS;

/// The most messages one transaction carries.
const MAX_BATCH: usize = 2048;

/// How a message ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Valid, and committed (with what it starts).
    Stored,
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

/// Where to report a message's outcome: an MQTT publish awaiting its acknowledgement.
pub(crate) struct Done {
    pub tx: mpsc::UnboundedSender<Stored>,
    pub pkid: u16,
    pub qos: QoS,
}

/// A message for the writer.
pub(crate) struct Submit {
    pub message: NewMessage,
    pub done: Option<Done>,
}

/// Starts the writer of one ingest. Once `close` is cancelled it takes nothing new,
/// stores what is waiting, and ends.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
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
                        write(store.as_ref(), &mut batch).await;
                    }
                    return;
                }
            };
            if n == 0 {
                return;
            }
            write(store.as_ref(), &mut batch).await;
        }
    });
    (tx, task)
}

async fn write(store: &dyn Store, batch: &mut Vec<Submit>) {
    let mut messages = Vec::with_capacity(batch.len());
    let mut answers = Vec::with_capacity(batch.len());
    for s in batch.drain(..) {
        let dead = s.message.errors.first().cloned();
        messages.push(s.message);
        answers.push((s.done, dead));
    }
    let ok = match store.message_insert(messages).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot store ingested messages");
            false
        }
    };
    for (done, dead) in answers {
        if let Some(d) = done {
            let outcome = match (ok, dead) {
                (false, _) => Outcome::Failed,
                (true, Some(why)) => Outcome::Dead(why),
                (true, None) => Outcome::Stored,
            };
            let _ = d.tx.send(Stored {
                pkid: d.pkid,
                qos: d.qos,
                outcome,
            });
        }
    }
}
