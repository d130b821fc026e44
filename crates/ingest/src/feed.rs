//! The live stream: every message and dead letter, as stored, to whoever listens (the
//! admin API's `GET /v1/messages/stream`). Nothing is copied while nobody listens; a
//! listener that falls more than [`CAPACITY`] messages behind is told how many it missed.

use std::sync::Arc;

use berth_store::Message;
use tokio::sync::broadcast;

/// Messages held for the slowest listener.
pub const CAPACITY: usize = 4096;

/// The stream of stored messages of every ingest of this node.
#[derive(Clone)]
pub struct Feed(broadcast::Sender<Arc<Message>>);

impl Default for Feed {
    fn default() -> Self {
        Self(broadcast::channel(CAPACITY).0)
    }
}

impl Feed {
    /// Listens from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.0.subscribe()
    }

    /// Whether anyone listens.
    pub(crate) fn watched(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// Hands a stored message to the listeners.
    pub(crate) fn send(&self, m: Message) {
        let _ = self.0.send(Arc::new(m));
    }
}
