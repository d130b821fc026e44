//! What the broker keeps across restarts, as Mosquitto keeps it in its persistence
//! file: retained messages and persistent sessions (their subscriptions, and what is
//! still owed either way). Saved in the store, under `mqtt.INGEST`, every few seconds
//! when it changed and when the broker stops; read back when it starts.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::codec::{Publish, QoS};
use super::{Broker, QUEUE, Session};

/// How often a changed state is saved (a `kill -9` loses at most this much).
pub(super) const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Saved {
    retained: Vec<SavedPublish>,
    sessions: Vec<SavedSession>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedPublish {
    topic: String,
    /// The payload, hex.
    payload: String,
    qos: u8,
    #[serde(default)]
    dup: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SavedSession {
    client_id: String,
    subscriptions: Vec<(String, u8)>,
    queued: Vec<SavedPublish>,
    unreleased: Vec<u16>,
    received: Vec<u16>,
}

fn qos_of(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

fn save(p: &Publish) -> SavedPublish {
    SavedPublish {
        topic: p.topic.clone(),
        payload: hex(&p.payload),
        qos: p.qos as u8,
        dup: p.dup,
    }
}

fn load(p: &SavedPublish, retain: bool) -> Option<Publish> {
    Some(Publish {
        topic: p.topic.clone(),
        payload: unhex(&p.payload)?.into(),
        qos: qos_of(p.qos),
        retain,
        dup: p.dup,
        pkid: 0,
    })
}

/// The store setting that holds an ingest's broker state.
pub(super) fn key(ingest: &str) -> String {
    format!("mqtt.{ingest}")
}

/// Saves the state every [`SAVE_EVERY`] when it changed, until `stop`; returns the last
/// state saved.
pub(super) async fn keep_saving(
    broker: std::sync::Arc<Broker>,
    stop: tokio_util::sync::CancellationToken,
) -> Saved {
    let mut last = broker.saved();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SAVE_EVERY) => {}
            _ = stop.cancelled() => return last,
        }
        last = save_if_changed(&broker, &last).await;
    }
}

/// Saves the state if it differs from `last`; returns the state now saved (`last` again
/// when saving failed, so that the next round tries again).
pub(super) async fn save_if_changed(broker: &Broker, last: &Saved) -> Saved {
    let now = broker.saved();
    if &now == last {
        return now;
    }
    let value = match serde_json::to_value(&now) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the MQTT state");
            return last.clone();
        }
    };
    match broker
        .core
        .store
        .set_setting(&key(&broker.core.name), Some(value), broker.core.now())
        .await
    {
        Ok(()) => now,
        Err(e) => {
            tracing::warn!(ingest = %broker.core.name, error = %e, "cannot save the MQTT state; trying again");
            last.clone()
        }
    }
}

impl Broker {
    /// The state worth keeping now: retained messages and persistent sessions.
    pub(super) fn saved(&self) -> Saved {
        let retained = self
            .retained
            .lock()
            .expect("retained poisoned")
            .values()
            .map(save)
            .collect();
        let sessions = self
            .sessions
            .lock()
            .expect("sessions poisoned")
            .iter()
            .filter(|(_, s)| s.persistent)
            .map(|(id, s)| SavedSession {
                client_id: id.clone(),
                subscriptions: s
                    .subscriptions
                    .iter()
                    .map(|(f, q)| (f.clone(), *q as u8))
                    .collect(),
                queued: s.queued.iter().map(save).collect(),
                unreleased: s.unreleased.clone(),
                received: s.received.clone(),
            })
            .collect();
        let mut saved = Saved { retained, sessions };
        saved.sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        saved
    }

    /// Takes back a saved state (at start, before any connection).
    pub(super) fn restore(&self, saved: Saved) {
        let mut retained = self.retained.lock().expect("retained poisoned");
        for p in &saved.retained {
            if let Some(p) = load(p, true) {
                retained.insert(p.topic.clone(), p);
            }
        }
        drop(retained);
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        let mut subscriptions = 0;
        for s in saved.sessions {
            let mut queued: VecDeque<Publish> =
                s.queued.iter().filter_map(|p| load(p, false)).collect();
            while queued.len() > QUEUE {
                queued.pop_front();
            }
            subscriptions += s.subscriptions.len();
            sessions.insert(
                s.client_id,
                Session {
                    subscriptions: s
                        .subscriptions
                        .into_iter()
                        .map(|(f, q)| (f, qos_of(q)))
                        .collect(),
                    link: None,
                    persistent: true,
                    queued,
                    unreleased: s.unreleased,
                    received: s.received,
                },
            );
        }
        drop(sessions);
        self.count_subscriptions(subscriptions, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_survive_hex() {
        let bytes = vec![0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert!(unhex("zz").is_none());
        assert!(unhex("abc").is_none());
    }
}
