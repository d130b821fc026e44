//! One client connection: the CONNECT and login, then packets both ways until either
//! side ends it. Replies are gathered and written once per turn of the loop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::Identity;
use super::codec::{
    self, ConnCode, DisconnectCode, Granted, Incoming, Outgoing, Publish, QoS, ReadError, Refusal,
    Version,
};
use super::ws::Transport;
use super::{Broker, Link, QUEUE, Session, TAKEOVER_WAIT, topic};
use crate::writer::{Done, Outcome, Stored, Submit};

/// How long a client has to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stop waits for the outcomes of a connection's messages that the writer
/// holds, so that each stored one is acknowledged before the connection closes.
const STOP_ACK_WAIT: Duration = Duration::from_secs(5);

/// How long a connection berth ends waits for the client to close its side.
const LINGER: Duration = Duration::from_secs(1);

/// Room for a CONNECT beyond its will's payload (ids, names, properties).
const CONNECT_OVERHEAD: usize = 64 * 1024;

/// Why a connection ends.
enum End {
    /// The client said DISCONNECT.
    Clean,
    /// The client is gone (closed, unreachable, not reading).
    Lost(String),
    /// The server closes it, saying why to an MQTT 5 client.
    Close(DisconnectCode, String),
}

pub(crate) async fn serve<T: Transport>(
    broker: Arc<Broker>,
    mut io: T,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let connect_limit = broker
        .max_packet
        .min(broker.core.checker.max_payload() + CONNECT_OVERHEAD);
    let connect = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut io, &mut rbuf, connect_limit)) => c,
        _ = stop.cancelled() => return,
    };
    let connect = match connect {
        Ok(Ok(c)) => c,
        Ok(Err(why)) => {
            tracing::debug!(%peer, why, "MQTT connection refused before CONNECT");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no MQTT CONNECT in time");
            return;
        }
    };
    let version = connect.version;
    let link_id = broker.next_link.fetch_add(1, Ordering::Relaxed);
    let refuse = |code| {
        let mut buf = BytesMut::new();
        codec::write(
            version,
            Outgoing::ConnAck {
                code,
                session_present: false,
                assigned: None,
            },
            &mut buf,
        );
        buf
    };
    // 3.1.1 lets a client without an id have only a clean session; 5 gives it one.
    let (client_id, assigned) = match (connect.client_id.is_empty(), version) {
        (false, _) => (connect.client_id.clone(), None),
        (true, Version::V4) if !connect.clean => {
            let _ = io.write(&refuse(ConnCode::BadClientId)).await;
            return;
        }
        (true, _) => {
            let id = format!("berth-{link_id}");
            (id.clone(), (version == Version::V5).then_some(id))
        }
    };
    let who = match broker.auth.login(connect.login.clone()).await {
        Ok(who) => who,
        Err(code) => {
            tracing::info!(%peer, client = %client_id, user = ?connect.login.as_ref().map(|l| &l.0), ?code, "MQTT login refused");
            let _ = io.write(&refuse(code)).await;
            return;
        }
    };
    if let Some(will) = &connect.will
        && (topic::name_error(&will.topic).is_some() || !who.may_publish(&will.topic))
    {
        tracing::info!(%peer, client = %client_id, topic = %will.topic, "MQTT will refused: not a topic this client may publish to");
        let _ = io.write(&refuse(ConnCode::NotAuthorized)).await;
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Publish>(QUEUE);
    let kick = CancellationToken::new();
    let ended = CancellationToken::new();
    let link = Link {
        tx,
        kick: kick.clone(),
        ended: ended.clone(),
        id: link_id,
    };
    let (session_present, resumed) = take_session(&broker, &client_id, &connect, link).await;
    tracing::debug!(%peer, client = %client_id, user = ?who.user, ?version, "MQTT client connected");
    let mut c = Conn {
        broker: broker.clone(),
        version,
        who,
        wbuf: BytesMut::with_capacity(16 * 1024),
        next_pkid: 1,
        inflight: HashMap::new(),
        unreleased: resumed.unreleased.iter().copied().collect(),
        received: resumed.received.iter().map(|&id| (id, true)).collect(),
        acks: mpsc::unbounded_channel(),
        awaiting: 0,
        client_id: client_id.clone(),
        link_id,
    };
    c.out(Outgoing::ConnAck {
        code: ConnCode::Accepted,
        session_present,
        assigned,
    });
    for &pkid in &resumed.unreleased {
        c.out(Outgoing::PubRel(pkid));
    }
    for p in resumed.queued {
        c.send(p);
    }
    let keep_alive = Duration::from_millis(u64::from(connect.keep_alive) * 1500);
    let end = c
        .run(&mut io, &mut rbuf, &mut rx, keep_alive, &stop, &kick)
        .await;
    match &end {
        End::Clean => {}
        End::Lost(why) | End::Close(_, why) => {
            tracing::debug!(%peer, client = %client_id, why, "MQTT connection ended");
            if let Some(will) = &connect.will {
                c.take_in(will, None).await;
            }
        }
    }
    c.hand_back(&mut rx);
    ended.cancel();
}

/// What a resumed session brings along.
#[derive(Default)]
struct Resumed {
    queued: std::collections::VecDeque<Publish>,
    unreleased: Vec<u16>,
    received: Vec<u16>,
}

/// Installs `link` as the session of `client_id`, first ending the connection that
/// served it (and waiting a moment for it to hand back what it owed). Returns whether a
/// session was resumed, and what it brings.
async fn take_session(
    broker: &Broker,
    client_id: &str,
    connect: &codec::Connect,
    link: Link,
) -> (bool, Resumed) {
    let previous = {
        let mut sessions = broker.sessions.lock().expect("sessions poisoned");
        sessions
            .get_mut(client_id)
            .and_then(|s| s.link.take())
            .map(|old| {
                old.kick.cancel();
                old.ended
            })
    };
    if let Some(ended) = previous {
        let _ = tokio::time::timeout(TAKEOVER_WAIT, ended.cancelled()).await;
    }
    let mut sessions = broker.sessions.lock().expect("sessions poisoned");
    let session = sessions.entry(client_id.to_owned()).or_default();
    if let Some(other) = session.link.take() {
        // Another connection came in meanwhile; the newest one wins.
        other.kick.cancel();
    }
    let present = !connect.clean && session.persistent;
    let resumed = if present {
        Resumed {
            queued: std::mem::take(&mut session.queued),
            unreleased: std::mem::take(&mut session.unreleased),
            received: std::mem::take(&mut session.received),
        }
    } else {
        broker.count_subscriptions(0, session.subscriptions.len());
        *session = Session::default();
        Resumed::default()
    };
    session.persistent = connect.persistent;
    session.link = Some(link);
    (present, resumed)
}

/// Reads until a whole CONNECT has arrived.
async fn read_connect<T: Transport>(
    io: &mut T,
    buf: &mut BytesMut,
    max: usize,
) -> Result<codec::Connect, String> {
    loop {
        let read = codec::connect_version(buf).and_then(|v| codec::read(v, buf, max));
        match read {
            Ok(Incoming::Connect(c)) => return Ok(c),
            Ok(_) => return Err("the first packet must be CONNECT".into()),
            Err(ReadError::Incomplete) => {}
            Err(ReadError::TooLarge(n)) => {
                return Err(format!("a CONNECT of {n} bytes, above {max}"));
            }
            Err(ReadError::Malformed(m)) => return Err(m),
        }
        match io.read(buf).await {
            Ok(0) => return Err("closed before CONNECT".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Closes a connection that berth ends so that what it wrote last (the acknowledgements
/// of a stop, the DISCONNECT) reaches the client: it says it is done sending, then reads
/// and drops what the client still sends, until the client closes too, for at most
/// [`LINGER`]. Closing a socket with unread bytes makes the kernel reset it, and a reset
/// can discard, on the client's side, acknowledgements it had not read yet: the client
/// then sends those messages again after the restart, and they are stored twice.
async fn linger<T: Transport>(io: &mut T, rbuf: &mut BytesMut) {
    let _ = tokio::time::timeout(LINGER, async {
        if io.finish().await.is_err() {
            return;
        }
        loop {
            rbuf.clear();
            match io.read(rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

struct Conn {
    broker: Arc<Broker>,
    version: Version,
    who: Identity,
    wbuf: BytesMut,
    next_pkid: u16,
    /// Outgoing QoS 1 and 2 publishes not yet acknowledged (PUBACK, PUBREC).
    inflight: HashMap<u16, Publish>,
    /// Outgoing QoS 2 publishes whose PUBREL was sent.
    unreleased: HashSet<u16>,
    /// Incoming QoS 2 publishes taken in, until their PUBREL: `true` once acknowledged
    /// (stored), `false` while the store has not answered.
    received: HashMap<u16, bool>,
    /// Outcomes of this client's messages from the ingest's writer.
    acks: (
        mpsc::UnboundedSender<Stored>,
        mpsc::UnboundedReceiver<Stored>,
    ),
    /// Messages handed to the writer whose outcome has not come back yet.
    awaiting: usize,
    client_id: String,
    link_id: u64,
}

impl Conn {
    async fn run<T: Transport>(
        &mut self,
        io: &mut T,
        rbuf: &mut BytesMut,
        rx: &mut mpsc::Receiver<Publish>,
        keep_alive: Duration,
        stop: &CancellationToken,
        kick: &CancellationToken,
    ) -> End {
        let mut deadline = Instant::now() + keep_alive;
        // Packets a client sent right behind its CONNECT, before the CONNACK (paho-mqtt 2.2
        // does), arrived with it: act on them before waiting for more.
        let mut pending = if rbuf.is_empty() {
            None
        } else {
            self.packets(rbuf).await
        };
        let end = loop {
            if let Some(end) = pending.take() {
                break end;
            }
            if !self.wbuf.is_empty() {
                // A client that stops reading must not hold up a stop or a takeover.
                let written = tokio::select! {
                    w = io.write(&self.wbuf) => w,
                    _ = stop.cancelled() => break End::Lost("berth is stopping and the client is not reading".into()),
                    _ = kick.cancelled() => break End::Lost("taken over while the client was not reading".into()),
                };
                if let Err(e) = written {
                    break End::Lost(format!("write failed: {e}"));
                }
                self.wbuf.clear();
            }
            let turn = tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    // Nothing more is read; what was stored is acknowledged before the
                    // connection closes.
                    self.await_outcomes().await;
                    Some(End::Close(DisconnectCode::ServerShuttingDown, "berth is stopping".into()))
                }
                _ = kick.cancelled() => Some(End::Close(DisconnectCode::SessionTakenOver, "another connection took the session over".into())),
                Some(stored) = self.acks.1.recv() => {
                    self.stored(stored);
                    while let Ok(stored) = self.acks.1.try_recv() {
                        self.stored(stored);
                    }
                    None
                }
                read = io.read(rbuf) => match read {
                    Ok(0) => Some(End::Lost("the client closed the connection".into())),
                    Ok(_) => {
                        deadline = Instant::now() + keep_alive;
                        self.packets(rbuf).await
                    }
                    Err(e) => Some(End::Lost(format!("read failed: {e}"))),
                },
                Some(p) = rx.recv() => {
                    self.send(p);
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(p) => self.send(p),
                            Err(_) => break,
                        }
                    }
                    None
                }
                _ = tokio::time::sleep_until(deadline), if !keep_alive.is_zero() => {
                    Some(End::Close(DisconnectCode::KeepAliveTimeout, "no packet within 1.5 times the keep-alive".into()))
                }
            };
            if let Some(end) = turn {
                break end;
            }
        };
        if let End::Close(code, _) = &end {
            codec::write(self.version, Outgoing::Disconnect(*code), &mut self.wbuf);
            let written = tokio::time::timeout(Duration::from_secs(1), io.write(&self.wbuf)).await;
            // At a stop the acknowledgements just written must reach the client. (A
            // takeover's old connection is not waited for: its client is already back.)
            if matches!(written, Ok(Ok(()))) && *code == DisconnectCode::ServerShuttingDown {
                linger(io, rbuf).await;
            }
        }
        end
    }

    /// At a stop: waits, a bounded time, for the writer's outcome of every message this
    /// client handed it, so that the acknowledgement of each one stored goes out before
    /// the connection closes. Without it, a message committed just before the stop was
    /// sent again by the client after the restart, and stored twice. (The writer stores
    /// what it holds only once every connection has ended.)
    async fn await_outcomes(&mut self) {
        let until = Instant::now() + STOP_ACK_WAIT;
        while self.awaiting > 0 {
            match tokio::time::timeout_at(until, self.acks.1.recv()).await {
                Ok(Some(stored)) => self.stored(stored),
                _ => break,
            }
        }
    }

    /// Acts on every whole packet in `rbuf`.
    async fn packets(&mut self, rbuf: &mut BytesMut) -> Option<End> {
        loop {
            match codec::read(self.version, rbuf, self.broker.max_packet) {
                Ok(packet) => {
                    if let Some(end) = self.incoming(packet).await {
                        return Some(end);
                    }
                }
                Err(ReadError::Incomplete) => return None,
                Err(ReadError::TooLarge(n)) => {
                    let why = format!(
                        "a packet of {n} bytes, above the limit of {}",
                        self.broker.max_packet
                    );
                    return Some(End::Close(DisconnectCode::PacketTooLarge, why));
                }
                Err(ReadError::Malformed(m)) => {
                    let why = format!("malformed packet: {m}");
                    return Some(End::Close(DisconnectCode::ProtocolError, why));
                }
            }
        }
    }

    fn out(&mut self, packet: Outgoing) {
        codec::write(self.version, packet, &mut self.wbuf);
    }

    /// Acknowledges an incoming publish (nothing for QoS 0).
    fn ack(&mut self, qos: QoS, pkid: u16, refused: Option<(Refusal, String)>) {
        if qos != QoS::AtMostOnce {
            self.out(Outgoing::Ack { qos, pkid, refused });
        }
    }

    /// Sends a routed publish. QoS 1 and 2 get a packet id; a resend (`dup`) keeps its
    /// own.
    fn send(&mut self, mut p: Publish) {
        if p.qos != QoS::AtMostOnce {
            let keep = p.dup && p.pkid != 0 && !self.in_use(p.pkid);
            if !keep {
                for _ in 0..u16::MAX {
                    let id = self.next_pkid;
                    self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
                    if !self.in_use(id) {
                        p.pkid = id;
                        break;
                    }
                }
            }
            self.inflight.insert(p.pkid, p.clone());
        }
        self.out(Outgoing::Publish(p));
    }

    fn in_use(&self, id: u16) -> bool {
        self.inflight.contains_key(&id) || self.unreleased.contains(&id)
    }

    /// The writer's outcome for one of this client's messages: the acknowledgement.
    fn stored(&mut self, s: Stored) {
        self.awaiting = self.awaiting.saturating_sub(1);
        let refused = match s.outcome {
            Outcome::Stored | Outcome::Duplicate => None,
            Outcome::Dead(why) => Some((Refusal::PayloadFormatInvalid, why)),
            // 3.1.1 cannot say "not stored": no acknowledgement, so the client sends it
            // again (on reconnect).
            Outcome::Failed if self.version == Version::V4 => {
                self.received.remove(&s.pkid);
                return;
            }
            Outcome::Failed => Some((
                Refusal::UnspecifiedError,
                "the message could not be stored; publish it again".to_owned(),
            )),
        };
        if s.qos == QoS::ExactlyOnce {
            // An MQTT 5 refusal ends the QoS 2 flow: no PUBREL follows.
            if refused.is_some() && self.version == Version::V5 {
                self.received.remove(&s.pkid);
            } else {
                self.received.insert(s.pkid, true);
            }
        }
        self.ack(s.qos, s.pkid, refused);
    }

    async fn incoming(&mut self, packet: Incoming) -> Option<End> {
        match packet {
            Incoming::Publish(p) => return self.publish(p).await,
            Incoming::PubAck(pkid) => {
                self.inflight.remove(&pkid);
            }
            Incoming::PubRec(pkid) => {
                self.inflight.remove(&pkid);
                self.unreleased.insert(pkid);
                self.out(Outgoing::PubRel(pkid));
            }
            Incoming::PubRel(pkid) => {
                self.received.remove(&pkid);
                self.out(Outgoing::PubComp(pkid));
            }
            Incoming::PubComp(pkid) => {
                self.unreleased.remove(&pkid);
            }
            Incoming::Subscribe { pkid, filters } => self.subscribe(pkid, filters),
            Incoming::Unsubscribe { pkid, filters } => {
                let count = filters.len();
                self.with_session(|broker, s| {
                    let before = s.subscriptions.len();
                    s.subscriptions.retain(|(f, _)| !filters.contains(f));
                    broker.count_subscriptions(0, before - s.subscriptions.len());
                });
                self.out(Outgoing::UnsubAck { pkid, count });
            }
            Incoming::PingReq => self.out(Outgoing::PingResp),
            Incoming::Disconnect => return Some(End::Clean),
            Incoming::Connect(_) => {
                return Some(End::Close(
                    DisconnectCode::ProtocolError,
                    "a second CONNECT".into(),
                ));
            }
            Incoming::Unexpected(what) => {
                return Some(End::Close(
                    DisconnectCode::ProtocolError,
                    format!("a {what} packet from a client"),
                ));
            }
        }
        None
    }

    async fn publish(&mut self, p: Publish) -> Option<End> {
        if let Some(why) = topic::name_error(&p.topic) {
            return Some(End::Close(
                DisconnectCode::ProtocolError,
                format!("PUBLISH to {:?}: {why}", p.topic),
            ));
        }
        if p.qos == QoS::ExactlyOnce
            && let Some(&acked) = self.received.get(&p.pkid)
        {
            // A resend of one already taken in: acknowledged again once stored, kept once.
            if acked {
                self.ack(p.qos, p.pkid, None);
            }
            return None;
        }
        if !self.who.may_publish(&p.topic) {
            tracing::info!(client = %self.client_id, user = ?self.who.user, topic = %p.topic, "MQTT publish refused: not allowed on this topic");
            let why = format!("not allowed to publish to {}", p.topic);
            self.ack(p.qos, p.pkid, Some((Refusal::NotAuthorized, why)));
            return None;
        }
        if !self.broker.core.takes(&p.topic) {
            // Not the ingest's: a plain broker's job.
            self.broker.pass_on(&p);
            if p.qos == QoS::ExactlyOnce {
                self.received.insert(p.pkid, true);
            }
            self.ack(p.qos, p.pkid, None);
            return None;
        }
        let done = (p.qos != QoS::AtMostOnce).then(|| Done::Mqtt {
            tx: self.acks.0.clone(),
            pkid: p.pkid,
            qos: p.qos,
        });
        if p.qos == QoS::ExactlyOnce {
            self.received.insert(p.pkid, false);
        }
        let awaited = done.is_some();
        if !self.take_in(&p, done).await {
            return Some(End::Close(
                DisconnectCode::ServerShuttingDown,
                "the ingest is stopping".into(),
            ));
        }
        if awaited {
            self.awaiting += 1;
        }
        None
    }

    /// Checks a message on one of the ingest's topics, passes it on if valid, and hands
    /// it to the writer. `false` when the writer has stopped.
    async fn take_in(&self, p: &Publish, done: Option<Done>) -> bool {
        let core = &self.broker.core;
        let message = core
            .checker
            .message(&p.topic, p.payload.to_vec(), core.now());
        if message.errors.is_empty() {
            self.broker.pass_on(p);
        } else {
            tracing::debug!(client = %self.client_id, topic = %p.topic, errors = ?message.errors, "dead letter");
        }
        core.submit.send(Submit { message, done }).await.is_ok()
    }

    /// Runs `f` on this connection's session, if it still holds it.
    fn with_session<R>(&self, f: impl FnOnce(&Broker, &mut Session) -> R) -> Option<R> {
        let mut sessions = self.broker.sessions.lock().expect("sessions poisoned");
        let session = sessions
            .get_mut(&self.client_id)
            .filter(|s| s.link.as_ref().is_some_and(|l| l.id == self.link_id))?;
        Some(f(&self.broker, session))
    }

    fn subscribe(&mut self, pkid: u16, filters: Vec<(String, QoS)>) {
        let mut granted = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        for (filter, qos) in filters {
            let g = if topic::filter_error(&filter).is_some() {
                Granted::InvalidFilter
            } else if !self.who.may_subscribe(&filter) {
                Granted::NotAuthorized
            } else {
                let added = self.with_session(|broker, s| {
                    let before = s.subscriptions.len();
                    s.subscriptions.retain(|(f, _)| *f != filter);
                    s.subscriptions.push((filter.clone(), qos));
                    broker.count_subscriptions(s.subscriptions.len(), before);
                });
                match added {
                    Some(()) => Granted::Qos(qos),
                    // Taken over meanwhile: this connection is ending.
                    None => Granted::NotAuthorized,
                }
            };
            match g {
                Granted::Qos(_) => retained.push((filter, qos)),
                _ => {
                    tracing::info!(client = %self.client_id, user = ?self.who.user, %filter, ?g, "MQTT subscription refused")
                }
            }
            granted.push(g);
        }
        self.out(Outgoing::SubAck { pkid, granted });
        for (filter, qos) in retained {
            for p in self.broker.retained_for(&filter, qos) {
                self.send(p);
            }
        }
    }

    /// Leaves the session with what is still owed (persistent), or forgets it.
    fn hand_back(&mut self, rx: &mut mpsc::Receiver<Publish>) {
        let mut sessions = self.broker.sessions.lock().expect("sessions poisoned");
        let Some(session) = sessions.get_mut(&self.client_id) else {
            return;
        };
        // Ours, or taken from us by a connection that waits for this hand-back.
        if session.link.as_ref().is_some_and(|l| l.id != self.link_id) {
            return;
        }
        if !session.persistent {
            let subs = session.subscriptions.len();
            if session.link.is_some() {
                sessions.remove(&self.client_id);
                self.broker.count_subscriptions(0, subs);
            }
            return;
        }
        session.link = None;
        let mut unacked: Vec<(u16, Publish)> = self.inflight.drain().collect();
        unacked.sort_by_key(|(pkid, _)| *pkid);
        let mut owed: std::collections::VecDeque<Publish> = unacked
            .into_iter()
            .map(|(_, mut p)| {
                p.dup = true;
                p
            })
            .collect();
        owed.append(&mut session.queued);
        while let Ok(p) = rx.try_recv() {
            owed.push_back(p);
        }
        while owed.len() > QUEUE {
            owed.pop_front();
        }
        session.queued = owed;
        session.unreleased = self.unreleased.drain().collect();
        session.received = self.received.drain().map(|(id, _)| id).collect();
    }
}
