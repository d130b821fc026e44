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
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Message>>,
    closed: CancellationToken,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
            closed: CancellationToken::new(),
        }
    }
}

impl Feed {
    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.tx.subscribe()
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
        self.tx.receiver_count() > 0
    }

    /// Hands a stored message to the listeners.
    pub(crate) fn send(&self, m: Message) {
        let _ = self.tx.send(Arc::new(m));
    }
}
