//! The live stream: every message and dead letter, as stored, to whoever listens (the
//! admin API's `GET /v1/messages/stream`). Nothing is copied while nobody listens; a
//! listener that falls more than [`CAPACITY`] messages behind is told how many it missed.

use std::sync::Arc;

use berth_store::Message;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Messages held for the slowest listener.
pub const CAPACITY: usize = 4096;

/// The stream of stored messages of every ingest of this node.
#[derive(Clone, Default)]
pub struct Feed {
    /// Made when the first listener comes: its ring of [`CAPACITY`] slots is memory an
    /// ingest nobody watches need not hold.
    tx: Arc<std::sync::OnceLock<broadcast::Sender<Arc<Message>>>>,
    closed: CancellationToken,
}

impl Feed {
    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.tx
            .get_or_init(|| broadcast::channel(CAPACITY).0)
            .subscribe()
    }

    /// Cancelled when the ingests stop: listeners should end their streams then.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Ends every listener's stream.
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Whether anyone listens.
    pub(crate) fn watched(&self) -> bool {
        self.tx.get().is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Hands a stored message to the listeners.
    pub(crate) fn send(&self, m: Message) {
        if let Some(tx) = self.tx.get() {
            let _ = tx.send(Arc::new(m));
        }
    }
}
