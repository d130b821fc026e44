//! The one task that writes an ingest's messages: it takes everything waiting (up to
//! [`MAX_BATCH`]) and stores it in one transaction, so that one commit carries many
//! messages, then tells each sender the outcome. A sender that needs to know (an MQTT
//! QoS 1 or 2 publish, a webhook) acknowledges only after that.

use std::sync::Arc;

use berth_store::{NewJob, NewMessage, Start, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The most messages one transaction carries.
const MAX_BATCH: usize = 2048;

/// What the writer reports back for one message.
#[derive(Debug)]
pub(crate) struct Stored {
    /// The sender's tag (an MQTT packet id).
    pub tag: u16,
    /// The QoS it arrived with.
    pub qos: u8,
    /// The first reason it was refused, for a dead letter.
    pub refused: Option<String>,
    /// Whether the store took it.
    pub ok: bool,
}

/// Where to report a message's outcome.
pub(crate) struct Done {
    pub tx: mpsc::UnboundedSender<Stored>,
    pub tag: u16,
    pub qos: u8,
}

/// A message for the writer.
pub(crate) struct Submit {
    pub message: NewMessage,
    pub done: Option<Done>,
}

/// Starts the writer of one ingest. `keep` false: valid messages only start their job or
/// workflow (dead letters are always kept). Once `close` is cancelled it takes nothing
/// new, stores what is waiting, and ends.
pub(crate) fn spawn(
    store: Arc<dyn Store>,
    keep: bool,
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
                        write(store.as_ref(), keep, &mut batch).await;
                    }
                    return;
                }
            };
            if n == 0 {
                return;
            }
            write(store.as_ref(), keep, &mut batch).await;
        }
    });
    (tx, task)
}

async fn write(store: &dyn Store, keep: bool, batch: &mut Vec<Submit>) {
    let mut stored = Vec::with_capacity(batch.len());
    let mut jobs: Vec<NewJob> = Vec::new();
    let mut workflows = Vec::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for s in batch.drain(..) {
        let refused = s.message.errors.first().cloned();
        if keep || refused.is_some() {
            stored.push(s.message);
        } else {
            match s.message.start {
                Some(Start::Job(job)) => jobs.push(job),
                Some(Start::Workflow(w)) => workflows.push(w),
                None => {}
            }
        }
        outcomes.push((s.done, refused));
    }
    let now = berth_store::Timestamp::now();
    let mut ok = match store.message_insert(stored).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "cannot store ingested messages");
            false
        }
    };
    if ok && !jobs.is_empty() {
        ok = store
            .insert(jobs, now)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot enqueue the jobs of ingested messages");
            })
            .is_ok();
    }
    for w in workflows {
        if let Err(e) = store.workflow_start(w, now).await {
            tracing::error!(error = %e, "cannot start the workflow of an ingested message");
            ok = false;
        }
    }
    for (done, refused) in outcomes {
        if let Some(d) = done {
            let _ = d.tx.send(Stored {
                tag: d.tag,
                qos: d.qos,
                refused,
                ok,
            });
        }
    }
}
