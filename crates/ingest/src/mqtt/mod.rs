//! The embedded MQTT broker: MQTT 3.1.1 and 5 over TCP and WebSocket, logins against
//! berth's users or per-ingest credentials, topic permissions, retained messages, QoS 0,
//! 1 and 2, and sessions that outlive a connection and a restart. Messages on the ingest's
//! topics go through its checks and are acknowledged (QoS 1 and 2) only once stored;
//! every valid message is also routed to the broker's subscribers.
//!
//! Retained messages and persistent sessions (subscriptions, what is still owed) are
//! saved in the store every [`persist::SAVE_EVERY`] when they changed and when the
//! broker stops, and read back when it starts, as Mosquitto's persistence file keeps
//! them.
//!
//! Limits, by design: a connected subscriber that falls more than [`QUEUE`] messages
//! behind loses the newest, an offline session keeps the last [`QUEUE`]; after a
//! `kill -9`, what changed in the last [`persist::SAVE_EVERY`] is lost (as with
//! Mosquitto's autosave); no shared subscriptions, topic aliases or enhanced (AUTH)
//! authentication.

mod auth;
mod codec;
mod conn;
mod persist;
mod topic;
mod ws;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use auth::{AllowRule, AuthSpec, Device, LoginRefusal, UserLogin};
use codec::Publish;
pub(crate) use codec::QoS;
pub use topic::filter_error;
pub(crate) use topic::matches;

use crate::Core;
use crate::error::IngestError;

/// Messages queued for one subscriber, connected or not.
const QUEUE: usize = 10_000;

/// Connections one listener serves at once; more are closed at once.
const MAX_CONNECTIONS: usize = 10_000;

/// How long a new connection waits for the one it takes a session over from to hand
/// back what it had not delivered.
const TAKEOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The embedded broker's listeners.
#[derive(Debug, Clone, Default)]
pub struct MqttSpec {
    /// MQTT over TCP.
    pub listen: Option<SocketAddr>,
    /// MQTT over WebSocket (subprotocol `mqtt`, any path).
    pub websocket: Option<SocketAddr>,
    /// TLS on both listeners (MQTT over TLS, WebSocket over TLS).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Connections one client address (an IPv6 client by its /64) holds open on both
    /// listeners together; 0: no limit.
    pub max_per_address: usize,
}

/// What the broker keeps of a client id: its subscriptions, and, between connections of
/// a persistent session, what is still owed either way.
#[derive(Default)]
struct Session {
    subscriptions: Vec<(String, QoS)>,
    /// Set while a connection serves the session.
    link: Option<Link>,
    /// Kept after the connection ends.
    persistent: bool,
    /// Messages not yet delivered (unacknowledged ones marked `dup`, with their ids).
    queued: VecDeque<Publish>,
    /// Outgoing QoS 2 ids whose PUBREL was sent and whose PUBCOMP has not come.
    unreleased: Vec<u16>,
    /// Incoming QoS 2 ids taken in and not yet released by the client.
    received: Vec<u16>,
}

struct Link {
    tx: mpsc::Sender<Publish>,
    /// Ends the connection (a new one took the session over).
    kick: CancellationToken,
    /// Cancelled once the connection has handed its session back.
    ended: CancellationToken,
    id: u64,
}

pub(crate) struct Broker {
    core: Arc<Core>,
    auth: auth::Auth,
    sessions: Mutex<HashMap<String, Session>>,
    retained: Mutex<BTreeMap<String, Publish>>,
    next_link: std::sync::atomic::AtomicU64,
    /// Subscriptions of every session, so that a publish nobody wants takes no lock.
    subscriptions: std::sync::atomic::AtomicUsize,
    /// The largest packet read; larger ones close the connection.
    max_packet: usize,
}

/// The running listeners of one ingest's broker.
pub struct Listeners {
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    broker: Arc<Broker>,
    saver: JoinHandle<persist::Saved>,
}

impl Listeners {
    /// Binds the listeners and starts accepting.
    pub(crate) async fn start(
        core: Arc<Core>,
        spec: &MqttSpec,
        auth: AuthSpec,
        stop: CancellationToken,
    ) -> Result<Self, IngestError> {
        let max_packet = (core.checker.max_payload() * 4).clamp(1 << 20, 256 << 20);
        let broker = Arc::new(Broker {
            auth: auth::Auth::new(auth),
            core,
            sessions: Mutex::new(HashMap::new()),
            retained: Mutex::new(BTreeMap::new()),
            next_link: Default::default(),
            subscriptions: Default::default(),
            max_packet,
        });
        let key = persist::key(&broker.core.name);
        match broker.core.store.setting(&key).await {
            Ok(Some(v)) => match serde_json::from_value::<persist::Saved>(v) {
                Ok(saved) => broker.restore(saved),
                Err(e) => {
                    tracing::warn!(ingest = %broker.core.name, error = %e, "the saved MQTT state is not readable; starting without it")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(ingest = %broker.core.name, error = %e, "cannot read the saved MQTT state; starting without it")
            }
        }
        let saver = tokio::spawn(persist::keep_saving(broker.clone(), stop.clone()));
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        let per_address = Arc::new(PerAddress::new(spec.max_per_address));
        for (addr, websocket) in [(spec.listen, false), (spec.websocket, true)] {
            let Some(addr) = addr else { continue };
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| IngestError::Bind {
                    ingest: broker.core.name.clone(),
                    addr,
                    detail: e.to_string(),
                })?;
            let local = listener.local_addr().map_err(|e| IngestError::Bind {
                ingest: broker.core.name.clone(),
                addr,
                detail: e.to_string(),
            })?;
            let tls = spec.tls.clone().map(tokio_rustls::TlsAcceptor::from);
            tracing::info!(ingest = %broker.core.name, addr = %local, websocket, tls = tls.is_some(), "MQTT listener up");
            addrs.push(local);
            tasks.push(tokio::spawn(accept(
                broker.clone(),
                (listener, per_address.clone()),
                websocket,
                tls,
                stop.clone(),
            )));
        }
        Ok(Self {
            addrs,
            tasks,
            stop,
            broker,
            saver,
        })
    }

    /// The bound addresses: TCP first, then WebSocket, as configured.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting and closes every connection, then saves what the sessions still
    /// owe and the retained messages.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let last = self.saver.await.unwrap_or_default();
        persist::save_if_changed(&self.broker, &last).await;
    }
}

async fn accept(
    broker: Arc<Broker>,
    (listener, per_address): (TcpListener, Arc<PerAddress>),
    websocket: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
) {
    let mut connections = tokio::task::JoinSet::new();
    let room = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "MQTT accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = room.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "MQTT connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let Some(mine) = per_address.admit(peer.ip()) else {
            tracing::debug!(%peer, "MQTT connection refused: the limit per client address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _permit = (permit, mine);
            let _open = Open::count(&broker.core);
            match tls {
                None => serve(broker, stream, websocket, peer, stop).await,
                Some(tls) => match tokio::time::timeout(HANDSHAKE, tls.accept(stream)).await {
                    Ok(Ok(stream)) => serve(broker, stream, websocket, peer, stop).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    // Connections see the same token and end; wait for their goodbyes.
    while connections.join_next().await.is_some() {}
}

/// The connections each client key holds open on one broker: an IPv4 address as it is,
/// an IPv6 address by its /64 network (what one site is given).
struct PerAddress {
    max: usize,
    open: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// One admitted connection: it counts until dropped.
struct Admitted(Arc<PerAddress>, std::net::IpAddr);

impl PerAddress {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX)).into(),
            },
            v4 => v4,
        }
    }

    /// Counts a connection from `ip`, or `None` when its key holds `max` already.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<Admitted> {
        let key = Self::key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Admitted(self.clone(), key))
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Counts one open connection on its ingest for as long as it lives.
struct Open(Arc<Core>);

impl Open {
    fn count(core: &Arc<Core>) -> Open {
        core.mqtt_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Open(core.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0
            .mqtt_connections
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How long a client may take over its TLS or WebSocket handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves one connection, as MQTT over the stream itself or over a WebSocket on it.
async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    websocket: bool,
    peer: SocketAddr,
    stop: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    S: ws::Transport,
{
    if websocket {
        match tokio::time::timeout(HANDSHAKE, ws::accept(stream)).await {
            Ok(Ok(ws)) => conn::serve(broker, ws, peer, stop).await,
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "WebSocket handshake failed"),
            Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
        }
    } else {
        conn::serve(broker, stream, peer, stop).await;
    }
}

impl Broker {
    /// Hands `p` to every session subscribed to its topic, at the lower of the two QoS.
    fn route(&self, p: &Publish) {
        if self
            .subscriptions
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            return;
        }
        let mut sessions = self.sessions.lock().expect("sessions poisoned");
        for (client, s) in sessions.iter_mut() {
            let Some(qos) = s
                .subscriptions
                .iter()
                .filter(|(f, _)| topic::matches(&p.topic, f))
                .map(|(_, q)| *q)
                .max_by_key(|q| *q as u8)
            else {
                continue;
            };
            let out = Publish {
                qos: min_qos(p.qos, qos),
                retain: false,
                dup: false,
                pkid: 0,
                ..p.clone()
            };
            match &s.link {
                Some(link) => {
                    let full = link.tx.try_send(out).is_err();
                    if full {
                        tracing::warn!(client = %client, topic = %p.topic, "subscriber too slow: message dropped");
                    }
                }
                None if s.persistent && out.qos != QoS::AtMostOnce => {
                    if s.queued.len() >= QUEUE {
                        s.queued.pop_front();
                    }
                    s.queued.push_back(out);
                }
                None => {}
            }
        }
    }

    /// Retains (if flagged) and routes a message that passed.
    fn pass_on(&self, p: &Publish) {
        if p.retain {
            self.retain(p);
        }
        self.route(p);
    }

    /// Counts subscriptions added (`+`) or removed (`-`).
    fn count_subscriptions(&self, added: usize, removed: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.subscriptions.fetch_add(added, Relaxed);
        self.subscriptions.fetch_sub(removed, Relaxed);
    }

    /// Keeps (or, with an empty payload, forgets) the retained message of a topic.
    fn retain(&self, p: &Publish) {
        let mut retained = self.retained.lock().expect("retained poisoned");
        if p.payload.is_empty() {
            retained.remove(&p.topic);
        } else {
            retained.insert(p.topic.clone(), p.clone());
        }
    }

    /// The retained messages that match `filter`.
    fn retained_for(&self, filter: &str, qos: QoS) -> Vec<Publish> {
        self.retained
            .lock()
            .expect("retained poisoned")
            .values()
            .filter(|p| topic::matches(&p.topic, filter))
            .map(|p| Publish {
                qos: min_qos(p.qos, qos),
                retain: true,
                dup: false,
                pkid: 0,
                ..p.clone()
            })
            .collect()
    }
}

fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_client_key_are_capped_and_freed() {
        let per = Arc::new(PerAddress::new(2));
        let a: std::net::IpAddr = "2001:db8:5:5::1".parse().unwrap();
        let a2: std::net::IpAddr = "2001:db8:5:5:ffff::9".parse().unwrap();
        let other: std::net::IpAddr = "192.0.2.1".parse().unwrap();
        let first = per.admit(a).unwrap();
        let _second = per.admit(a2).unwrap();
        assert!(per.admit(a).is_none(), "a third from the same /64");
        assert!(per.admit(other).is_some());
        drop(first);
        assert!(per.admit(a2).is_some(), "a closed one frees its place");
        let open = Arc::new(PerAddress::new(0));
        let held: Vec<_> = (0..1000).map(|_| open.admit(a).unwrap()).collect();
        drop(held);
        assert!(
            open.open.lock().unwrap().is_empty(),
            "nothing kept for closed ones"
        );
    }
}
