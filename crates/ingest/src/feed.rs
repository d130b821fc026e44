//! The live stream: every message and dead letter, as stored, to whoever listens (the
//! admin API's `GET /v1/messages/stream`). Nothing is copied while nobody listens.
//!
//! The stream holds the messages its slowest listener has not read yet, up to
//! [`CAPACITY`] messages and [`CAPACITY_BYTES`] bytes of them, whichever comes first:
//! past either the oldest go, and a listener that had not read them is told how many it
//! missed. So a listener that stops reading costs at most that much memory, whatever
//! the size of the messages (up to `max_payload`, 64 MiB each).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use berth_store::Message;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Messages held for the slowest listener, at most.
pub const CAPACITY: usize = 4096;
/// Bytes of messages held for the slowest listener, at most.
pub const CAPACITY_BYTES: usize = 64 << 20;

/// The stream of stored messages of every ingest of this node.
#[derive(Clone)]
pub struct Feed {
    shared: Arc<Shared>,
    closed: CancellationToken,
}

struct Shared {
    ring: Mutex<Ring>,
    /// Woken when a message is added.
    more: Notify,
    max_count: usize,
    max_bytes: usize,
}

/// The messages held, the first one's number in the stream, their size, and where each
/// listener is: a message every listener has read is let go at once.
#[derive(Default)]
struct Ring {
    held: VecDeque<Arc<Message>>,
    first: u64,
    bytes: usize,
    /// Each listener's next message, by the listener's own number.
    readers: std::collections::HashMap<u64, u64>,
    next_reader: u64,
}

impl Ring {
    /// Lets go of the messages every listener has read.
    fn trim_read(&mut self) {
        let slowest = self.readers.values().copied().min();
        let end = self.first + self.held.len() as u64;
        let keep_from = slowest.unwrap_or(end);
        while self.first < keep_from {
            match self.held.pop_front() {
                Some(gone) => {
                    self.bytes -= size(&gone);
                    self.first += 1;
                }
                None => break,
            }
        }
    }
}

/// What a message costs the stream while held: its bytes and a fixed overhead.
fn size(m: &Message) -> usize {
    m.payload.len() + m.topic.len() + m.errors.iter().map(String::len).sum::<usize>() + 256
}

impl Default for Feed {
    fn default() -> Self {
        Self::with_limits(CAPACITY, CAPACITY_BYTES)
    }
}

/// A listener fell behind: this many messages went before it read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed(pub u64);

impl Feed {
    fn with_limits(max_count: usize, max_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring::default()),
                more: Notify::new(),
                max_count,
                max_bytes,
            }),
            closed: CancellationToken::new(),
        }
    }

    /// Listens from now on.
    pub fn subscribe(&self) -> Listener {
        let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
        let next = ring.first + ring.held.len() as u64;
        let id = ring.next_reader;
        ring.next_reader += 1;
        ring.readers.insert(id, next);
        Listener {
            shared: self.shared.clone(),
            id,
            next,
        }
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
        let ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
        !ring.readers.is_empty()
    }

    /// Hands a stored message to the listeners.
    pub(crate) fn send(&self, m: Message) {
        {
            let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
            if ring.readers.is_empty() {
                return;
            }
            ring.bytes += size(&m);
            ring.held.push_back(Arc::new(m));
            while ring.held.len() > self.shared.max_count
                || (ring.bytes > self.shared.max_bytes && ring.held.len() > 1)
            {
                if let Some(gone) = ring.held.pop_front() {
                    ring.bytes -= size(&gone);
                    ring.first += 1;
                }
            }
        }
        self.shared.more.notify_waiters();
    }

    /// Bytes held now, for tests.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.shared.ring.lock().unwrap().bytes
    }
}

/// One listener's place in the stream.
pub struct Listener {
    shared: Arc<Shared>,
    /// Its number among the ring's readers.
    id: u64,
    /// The number of the next message it reads.
    next: u64,
}

impl Listener {
    /// The next message, waiting for it; [`Missed`] when messages went before this
    /// listener read them (the next call goes on from the oldest still held).
    pub async fn recv(&mut self) -> Result<Arc<Message>, Missed> {
        loop {
            let more = self.shared.more.notified();
            tokio::pin!(more);
            more.as_mut().enable();
            {
                let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
                if self.next < ring.first {
                    let missed = ring.first - self.next;
                    self.next = ring.first;
                    ring.readers.insert(self.id, self.next);
                    return Err(Missed(missed));
                }
                if let Some(m) = ring.held.get((self.next - ring.first) as usize).cloned() {
                    self.next += 1;
                    ring.readers.insert(self.id, self.next);
                    ring.trim_read();
                    return Ok(m);
                }
            }
            more.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.readers.remove(&self.id);
        // What only this listener had not read goes (all of it, if it was the last).
        ring.trim_read();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::Timestamp;

    fn message(id: i64, payload: usize) -> Message {
        Message {
            id,
            ingest: "stands".into(),
            device: None,
            topic: "stand/1".into(),
            kind: None,
            payload: vec![b'x'; payload],
            received_at: Timestamp::now(),
            dead: false,
            errors: Vec::new(),
            job_id: None,
            workflow_id: None,
            replayed_at: None,
            duplicates: 0,
        }
    }

    #[tokio::test]
    async fn a_listener_that_stops_reading_holds_at_most_the_byte_limit() {
        let feed = Feed::with_limits(1000, 1 << 20);
        let mut slow = feed.subscribe();
        // 40 messages of 100 kB: 4 MB sent, at most 1 MiB held.
        for id in 1..=40 {
            feed.send(message(id, 100_000));
            assert!(feed.held_bytes() <= 1 << 20, "{} held", feed.held_bytes());
        }
        let held = (1 << 20) / (100_000 + 256 + 7);
        assert_eq!(slow.recv().await, Err(Missed(40 - held as u64)));
        for id in (40 - held as i64 + 1)..=40 {
            assert_eq!(slow.recv().await.unwrap().id, id);
        }
        // Small messages are held up to the count.
        let feed = Feed::with_limits(3, 1 << 20);
        let mut slow = feed.subscribe();
        for id in 1..=5 {
            feed.send(message(id, 10));
        }
        assert_eq!(slow.recv().await, Err(Missed(2)));
        assert_eq!(slow.recv().await.unwrap().id, 3);
    }

    #[tokio::test]
    async fn nothing_is_held_while_nobody_listens() {
        let feed = Feed::with_limits(10, 1 << 20);
        feed.send(message(1, 10));
        assert_eq!(feed.held_bytes(), 0);
        let mut a = feed.subscribe();
        feed.send(message(2, 10));
        assert_eq!(a.recv().await.unwrap().id, 2);
        assert_eq!(feed.held_bytes(), 0, "read by every listener: let go");
        // With a second, slower listener, what it has not read is held.
        let mut b = feed.subscribe();
        feed.send(message(3, 10));
        assert_eq!(a.recv().await.unwrap().id, 3);
        assert!(feed.held_bytes() > 0);
        assert_eq!(b.recv().await.unwrap().id, 3);
        assert_eq!(feed.held_bytes(), 0);
        drop(b);
        // A listener waiting is woken by the next message.
        let waiting = tokio::spawn(async move { a.recv().await.map(|m| m.id) });
        tokio::task::yield_now().await;
        feed.send(message(4, 10));
        assert_eq!(waiting.await.unwrap(), Ok(4));
        // The last listener gone (the task ended with it), nothing is held.
        assert_eq!(feed.held_bytes(), 0);
    }
}
