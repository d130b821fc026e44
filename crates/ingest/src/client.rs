//! A subscriber to an external MQTT broker (Mosquitto, say): `broker = { url, … }`.
//!
//! It keeps a persistent session under its client id (clean session off), so messages
//! published while berth is down wait on the broker. Acknowledgements are manual: a QoS 1
//! or 2 message is acknowledged only once it is stored (or kept as a dead letter); one
//! the store could not take stays unacknowledged, and the broker sends it again on the
//! next connection. Lost connections are retried with a growing pause (up to 30 s).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS as RQoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Core;
use crate::mqtt::QoS;
use crate::writer::{Done, Outcome, Stored, Submit};

/// The external broker, as configured.
#[derive(Debug, Clone)]
pub struct BrokerSpec {
    /// Its host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The login, if any: user name and password.
    pub login: Option<(String, String)>,
    /// The client id the session is kept under.
    pub client_id: String,
    /// The QoS of the subscriptions (0, 1 or 2).
    pub qos: u8,
}

fn qos(q: u8) -> RQoS {
    match q {
        0 => RQoS::AtMostOnce,
        1 => RQoS::AtLeastOnce,
        _ => RQoS::ExactlyOnce,
    }
}

/// Subscribes to `topics` on the broker and takes in what comes, until `stop`.
pub(crate) async fn run(
    core: Arc<Core>,
    topics: Vec<String>,
    spec: BrokerSpec,
    stop: CancellationToken,
) {
    let mut options = MqttOptions::new(&spec.client_id, &spec.host, spec.port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(false);
    options.set_manual_acks(true);
    // Room for payloads above max_payload, so that they become dead letters instead of
    // breaking the connection.
    let max_packet = (core.checker.max_payload() * 4).clamp(1 << 20, 256 << 20);
    options.set_max_packet_size(max_packet, 64 * 1024);
    if let Some((user, password)) = &spec.login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 1024);
    // The event loop runs on its own, so that waiting for the writer never holds up
    // keep-alives, and nothing is cancelled half-way through a read.
    let (event_tx, mut event_rx) = mpsc::channel(1024);
    let where_ = format!("{}:{}", spec.host, spec.port);
    let looping = {
        let ingest = core.name.clone();
        let where_ = where_.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(500);
            let mut said = false;
            loop {
                match events.poll().await {
                    Ok(event) => {
                        if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                            pause = Duration::from_millis(500);
                            said = false;
                        }
                        if event_tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        if !said {
                            if let rumqttc::ConnectionError::ConnectionRefused(code) = &e {
                                tracing::error!(ingest = %ingest, broker = %where_, ?code, "the MQTT broker refused berth's login: check `user` and `password_env` in `broker`; trying again");
                            } else {
                                tracing::warn!(ingest = %ingest, broker = %where_, error = %e, "cannot reach the MQTT broker; trying again");
                            }
                            said = true;
                        }
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    };
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Stored>();
    // Publishes awaiting the writer, by packet id.
    let mut pending: HashMap<u16, Publish> = HashMap::new();
    let filters: Vec<SubscribeFilter> = topics
        .iter()
        .map(|t| SubscribeFilter::new(t.clone(), qos(spec.qos)))
        .collect();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            Some(stored) = ack_rx.recv() => {
                match stored.outcome {
                    Outcome::Failed => {
                        let Some(p) = pending.get(&stored.pkid) else { continue };
                        tracing::error!(ingest = %core.name, topic = %p.topic, "a message could not be stored: trying again in a second (it stays unacknowledged until then)");
                        resubmit(&core, p.clone(), ack_tx.clone());
                    }
                    Outcome::Stored | Outcome::Duplicate | Outcome::Dead(_) => {
                        if let Some(p) = pending.remove(&stored.pkid) {
                            let _ = client.ack(&p).await;
                        }
                    }
                }
            }
            event = event_rx.recv() => {
                let Some(event) = event else { break };
                match event {
                    Event::Incoming(Packet::ConnAck(_)) => {
                        tracing::info!(ingest = %core.name, broker = %where_, "connected to the MQTT broker");
                        if client.subscribe_many(filters.clone()).await.is_err() {
                            break;
                        }
                    }
                    Event::Incoming(Packet::SubAck(ack)) => {
                        for (code, topic) in ack.return_codes.iter().zip(&topics) {
                            if matches!(code, rumqttc::SubscribeReasonCode::Failure) {
                                tracing::error!(ingest = %core.name, broker = %where_, topic = %topic, "the broker refused the subscription (check its ACL for this user)");
                            }
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let writing = take_in(&core, &mut pending, &ack_tx, &client, p).await;
                        if !writing {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    // What the writer still holds is acknowledged once stored, so a clean stop causes no
    // resends (the writer closes only after the sources have ended).
    let drain = async {
        while !pending.is_empty() {
            let Some(stored) = ack_rx.recv().await else {
                break;
            };
            if matches!(stored.outcome, Outcome::Failed) {
                continue;
            }
            if let Some(p) = pending.remove(&stored.pkid) {
                let _ = client.ack(&p).await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), client.disconnect()).await;
    // Give the event loop a moment to send the DISCONNECT.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while event_rx.recv().await.is_some() {}
    })
    .await;
    looping.abort();
}

/// Hands a message the store did not take to the writer again, after a pause.
fn resubmit(core: &Arc<Core>, p: Publish, acks: mpsc::UnboundedSender<Stored>) {
    let core = core.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = core.submit.send(submission(&core, &p, &acks)).await;
    });
}

/// The checked message of `p` for the writer, reporting to `acks` when it is QoS 1 or 2.
fn submission(core: &Core, p: &Publish, acks: &mpsc::UnboundedSender<Stored>) -> Submit {
    let message = core
        .checker
        .message(&p.topic, p.payload.to_vec(), core.now());
    let qos = match p.qos {
        RQoS::AtMostOnce => None,
        RQoS::AtLeastOnce => Some(QoS::AtLeastOnce),
        RQoS::ExactlyOnce => Some(QoS::ExactlyOnce),
    };
    let done = qos.map(|qos| Done::Mqtt {
        tx: acks.clone(),
        pkid: p.pkid,
        qos,
    });
    Submit { message, done }
}

/// Checks one publish and hands it to the writer. `false` once the writer has stopped.
async fn take_in(
    core: &Core,
    pending: &mut HashMap<u16, Publish>,
    acks: &mpsc::UnboundedSender<Stored>,
    client: &AsyncClient,
    p: Publish,
) -> bool {
    if !core.takes(&p.topic) {
        // A wider subscription on the broker's side: not the ingest's.
        let _ = client.ack(&p).await;
        return true;
    }
    if p.qos != RQoS::AtMostOnce {
        if pending.contains_key(&p.pkid) {
            // A resend of one still being stored (its id is not free until it is
            // acknowledged): the first copy's outcome acknowledges it.
            return true;
        }
        pending.insert(p.pkid, p.clone());
    }
    let submit = submission(core, &p, acks);
    core.submit.send(submit).await.is_ok()
}
