//! One client connection: the CONNECT and login, then packets both ways until either
//! side ends it. Replies are gathered and written once per turn of the loop.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_store::Timestamp;
use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::auth::Identity;
use super::codec::{
    self, ConnCode, DisconnectCode, Incoming, Outgoing, Publish, QoS, ReadError, Refusal, Version,
};
use super::ws::Transport;
use super::{Broker, Link, QUEUE, Session, topic};
use crate::writer::{Done, Stored, Submit};

/// How long a client has to send its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection ended, for the log.
enum End {
    /// The client said DISCONNECT.
    Clean,
    /// The client went away, broke the protocol, or the server stopped.
    Other(String),
}

pub(crate) async fn serve<T: Transport>(
    broker: Arc<Broker>,
    mut io: T,
    peer: SocketAddr,
    stop: CancellationToken,
) {
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let connect = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut io, &mut rbuf, broker.max_packet)) => c,
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
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let link_id = broker.next_link.fetch_add(1, Ordering::Relaxed);
    let client_id = if connect.client_id.is_empty() {
        if !connect.clean {
            codec::write(
                version,
                Outgoing::ConnAck {
                    code: ConnCode::BadClientId,
                    session_present: false,
                },
                &mut wbuf,
            );
            let _ = io.write(&wbuf).await;
            return;
        }
        format!("berth-{link_id}")
    } else {
        connect.client_id.clone()
    };
    let who = match broker
        .auth
        .login(connect.login.clone(), Timestamp::now())
        .await
    {
        Ok(who) => who,
        Err(code) => {
            tracing::info!(%peer, client = %client_id, user = ?connect.login.as_ref().map(|l| &l.0), ?code, "MQTT login refused");
            codec::write(
                version,
                Outgoing::ConnAck {
                    code,
                    session_present: false,
                },
                &mut wbuf,
            );
            let _ = io.write(&wbuf).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Publish>(QUEUE);
    let kick = CancellationToken::new();
    let (session_present, queued) = {
        let mut sessions = broker.sessions.lock().expect("sessions poisoned");
        let session = sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session {
                subscriptions: Vec::new(),
                link: None,
                persistent: false,
                queued: Default::default(),
            });
        if let Some(old) = session.link.take() {
            old.kick.cancel();
        }
        let present = !connect.clean && session.persistent;
        if !present {
            session.subscriptions.clear();
            session.queued.clear();
        }
        session.persistent = !connect.clean;
        session.link = Some(Link {
            tx,
            kick: kick.clone(),
            id: link_id,
        });
        (present, std::mem::take(&mut session.queued))
    };
    tracing::debug!(%peer, client = %client_id, user = ?who.user, ?version, "MQTT client connected");
    codec::write(
        version,
        Outgoing::ConnAck {
            code: ConnCode::Accepted,
            session_present,
        },
        &mut wbuf,
    );
    let mut c = Conn {
        broker: broker.clone(),
        version,
        who,
        wbuf,
        next_pkid: 1,
        inflight: HashMap::new(),
        awaiting_comp: HashSet::new(),
        incoming_qos2: HashSet::new(),
        acks: mpsc::unbounded_channel(),
        client_id: client_id.clone(),
    };
    for p in queued {
        c.send(p);
    }
    let keep_alive = Duration::from_secs(u64::from(connect.keep_alive) * 3 / 2);
    let end = c
        .run(&mut io, &mut rbuf, &mut rx, keep_alive, &stop, &kick)
        .await;
    if let (End::Other(why), Some(will)) = (&end, &connect.will) {
        tracing::debug!(client = %client_id, why, "publishing the will of a lost MQTT client");
        if c.broker.auth.may_publish(&c.who, &will.topic) {
            if will.retain {
                broker.retain(will);
            }
            broker.route(will);
        }
    }
    if let End::Other(why) = &end {
        tracing::debug!(%peer, client = %client_id, why, "MQTT connection ended");
    }
    // The session stays (persistent) with what was not yet delivered, or goes.
    let mut sessions = broker.sessions.lock().expect("sessions poisoned");
    if let Some(session) = sessions.get_mut(&client_id)
        && session.link.as_ref().is_some_and(|l| l.id == link_id)
    {
        if session.persistent {
            session.link = None;
            let mut unacked: Vec<(u16, Publish)> = c.inflight.drain().collect();
            unacked.sort_by_key(|(pkid, _)| *pkid);
            for (_, mut p) in unacked {
                p.dup = true;
                session.queued.push_back(p);
            }
            while let Ok(p) = rx.try_recv() {
                session.queued.push_back(p);
            }
        } else {
            sessions.remove(&client_id);
        }
    }
}

/// Reads until a whole CONNECT has arrived.
async fn read_connect<T: Transport>(
    io: &mut T,
    buf: &mut BytesMut,
    max: usize,
) -> Result<codec::Connect, String> {
    loop {
        match codec::connect_version(buf) {
            Ok(version) => match codec::read(version, buf, max) {
                Ok(Incoming::Connect(c)) => return Ok(c),
                Ok(_) => return Err("the first packet must be CONNECT".into()),
                Err(ReadError::Incomplete) => {}
                Err(ReadError::TooLarge(n)) => return Err(format!("a CONNECT of {n} bytes")),
                Err(ReadError::Malformed(m)) => return Err(m),
            },
            Err(ReadError::Incomplete) => {}
            Err(ReadError::TooLarge(n)) => return Err(format!("a CONNECT of {n} bytes")),
            Err(ReadError::Malformed(m)) => return Err(m),
        }
        match io.read(buf).await {
            Ok(0) => return Err("closed before CONNECT".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
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
    awaiting_comp: HashSet<u16>,
    /// Incoming QoS 2 publishes taken in, until their PUBREL.
    incoming_qos2: HashSet<u16>,
    /// Outcomes of this client's messages from the ingest's writer.
    acks: (
        mpsc::UnboundedSender<Stored>,
        mpsc::UnboundedReceiver<Stored>,
    ),
    client_id: String,
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
        loop {
            if !self.wbuf.is_empty() {
                if let Err(e) = io.write(&self.wbuf).await {
                    return End::Other(format!("write failed: {e}"));
                }
                self.wbuf.clear();
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    return self.close(io, DisconnectCode::ServerShuttingDown, "berth is stopping").await;
                }
                _ = kick.cancelled() => {
                    return self.close(io, DisconnectCode::SessionTakenOver, "another connection took the session over").await;
                }
                Some(stored) = self.acks.1.recv() => {
                    if let Some(end) = self.stored(stored) {
                        return end;
                    }
                    while let Ok(stored) = self.acks.1.try_recv() {
                        if let Some(end) = self.stored(stored) {
                            return end;
                        }
                    }
                }
                read = io.read(rbuf) => {
                    match read {
                        Ok(0) => return End::Other("the client closed the connection".into()),
                        Ok(_) => {}
                        Err(e) => return End::Other(format!("read failed: {e}")),
                    }
                    deadline = Instant::now() + keep_alive;
                    loop {
                        match codec::read(self.version, rbuf, self.broker.max_packet) {
                            Ok(packet) => {
                                if let Some(end) = self.incoming(packet).await {
                                    if let End::Other(why) = &end {
                                        let why = why.clone();
                                        return self.close(io, DisconnectCode::ProtocolError, &why).await;
                                    }
                                    return end;
                                }
                            }
                            Err(ReadError::Incomplete) => break,
                            Err(ReadError::TooLarge(n)) => {
                                let why = format!("a packet of {n} bytes, above the limit of {}", self.broker.max_packet);
                                return self.close(io, DisconnectCode::PacketTooLarge, &why).await;
                            }
                            Err(ReadError::Malformed(m)) => {
                                return self.close(io, DisconnectCode::ProtocolError, &format!("malformed packet: {m}")).await;
                            }
                        }
                    }
                }
                Some(p) = rx.recv() => {
                    self.send(p);
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(p) => self.send(p),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline), if !keep_alive.is_zero() => {
                    return self.close(io, DisconnectCode::KeepAliveTimeout, "no packet within 1.5 times the keep-alive").await;
                }
            }
        }
    }

    /// Says why (MQTT 5) and ends.
    async fn close<T: Transport>(&mut self, io: &mut T, code: DisconnectCode, why: &str) -> End {
        codec::write(self.version, Outgoing::Disconnect(code), &mut self.wbuf);
        let _ = tokio::time::timeout(Duration::from_secs(1), io.write(&self.wbuf)).await;
        self.wbuf.clear();
        End::Other(why.to_owned())
    }

    fn out(&mut self, packet: Outgoing) {
        codec::write(self.version, packet, &mut self.wbuf);
    }

    /// Sends a routed publish, giving QoS 1 and 2 a packet id.
    fn send(&mut self, mut p: Publish) {
        if p.qos != QoS::AtMostOnce {
            // Skip ids still in use; 0 is not an id.
            for _ in 0..u16::MAX {
                let id = self.next_pkid;
                self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
                if !self.inflight.contains_key(&id) && !self.awaiting_comp.contains(&id) {
                    p.pkid = id;
                    break;
                }
            }
            self.inflight.insert(p.pkid, p.clone());
        }
        self.out(Outgoing::Publish(p));
    }

    /// The writer's outcome for one of this client's messages: the acknowledgement.
    fn stored(&mut self, s: Stored) -> Option<End> {
        if !s.ok && self.version == Version::V4 {
            // 3.1.1 cannot say "not stored": the client will send it again on reconnect.
            return Some(End::Other(
                "the store failed; closing so the client resends".into(),
            ));
        }
        let refused = if !s.ok {
            Some((
                Refusal::UnspecifiedError,
                "the message could not be stored; publish it again".to_owned(),
            ))
        } else {
            s.refused.map(|why| (Refusal::PayloadFormatInvalid, why))
        };
        if s.qos == 2 {
            if refused.is_some() {
                // A refusal ends the QoS 2 flow; no PUBREL follows.
                self.incoming_qos2.remove(&s.tag);
            }
            self.out(Outgoing::PubRec {
                pkid: s.tag,
                refused,
            });
        } else {
            self.out(Outgoing::PubAck {
                pkid: s.tag,
                refused,
            });
        }
        None
    }

    async fn incoming(&mut self, packet: Incoming) -> Option<End> {
        match packet {
            Incoming::Publish(p) => return self.publish(p).await,
            Incoming::PubAck(pkid) => {
                self.inflight.remove(&pkid);
            }
            Incoming::PubRec(pkid) => {
                self.inflight.remove(&pkid);
                self.awaiting_comp.insert(pkid);
                self.out(Outgoing::PubRel(pkid));
            }
            Incoming::PubRel(pkid) => {
                self.incoming_qos2.remove(&pkid);
                self.out(Outgoing::PubComp(pkid));
            }
            Incoming::PubComp(pkid) => {
                self.awaiting_comp.remove(&pkid);
            }
            Incoming::Subscribe { pkid, filters } => self.subscribe(pkid, filters),
            Incoming::Unsubscribe { pkid, filters } => {
                let count = filters.len();
                let mut sessions = self.broker.sessions.lock().expect("sessions poisoned");
                if let Some(s) = sessions.get_mut(&self.client_id) {
                    s.subscriptions.retain(|(f, _)| !filters.contains(f));
                }
                drop(sessions);
                self.out(Outgoing::UnsubAck { pkid, count });
            }
            Incoming::PingReq => self.out(Outgoing::PingResp),
            Incoming::Disconnect => return Some(End::Clean),
            Incoming::Connect(_) => return Some(End::Other("a second CONNECT".into())),
            Incoming::Unexpected(what) => {
                return Some(End::Other(format!("a {what} packet from a client")));
            }
        }
        None
    }

    async fn publish(&mut self, p: Publish) -> Option<End> {
        if let Some(why) = topic::name_error(&p.topic) {
            return Some(End::Other(format!("PUBLISH to {:?}: {why}", p.topic)));
        }
        if p.qos == QoS::ExactlyOnce && self.incoming_qos2.contains(&p.pkid) {
            // A resend of one already taken in: acknowledge again, keep once.
            self.out(Outgoing::PubRec {
                pkid: p.pkid,
                refused: None,
            });
            return None;
        }
        if !self.broker.auth.may_publish(&self.who, &p.topic) {
            tracing::info!(client = %self.client_id, user = ?self.who.user, topic = %p.topic, "MQTT publish refused: not allowed on this topic");
            let refused = Some((
                Refusal::NotAuthorized,
                format!("not allowed to publish to {}", p.topic),
            ));
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.out(Outgoing::PubAck {
                    pkid: p.pkid,
                    refused,
                }),
                QoS::ExactlyOnce => self.out(Outgoing::PubRec {
                    pkid: p.pkid,
                    refused,
                }),
            }
            return None;
        }
        let core = &self.broker.core;
        if !core.takes(&p.topic) {
            // Not the ingest's: a plain broker's job.
            if p.retain {
                self.broker.retain(&p);
            }
            self.broker.route(&p);
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.out(Outgoing::PubAck {
                    pkid: p.pkid,
                    refused: None,
                }),
                QoS::ExactlyOnce => {
                    self.incoming_qos2.insert(p.pkid);
                    self.out(Outgoing::PubRec {
                        pkid: p.pkid,
                        refused: None,
                    });
                }
            }
            return None;
        }
        let message = core
            .checker
            .message(&p.topic, p.payload.to_vec(), Timestamp::now());
        if message.errors.is_empty() {
            if p.retain {
                self.broker.retain(&p);
            }
            self.broker.route(&p);
        } else {
            tracing::debug!(client = %self.client_id, topic = %p.topic, errors = ?message.errors, "dead letter");
        }
        let qos = p.qos as u8;
        if p.qos == QoS::ExactlyOnce {
            self.incoming_qos2.insert(p.pkid);
        }
        let done = (qos > 0).then(|| Done {
            tx: self.acks.0.clone(),
            tag: p.pkid,
            qos,
        });
        if core.submit.send(Submit { message, done }).await.is_err() {
            return Some(End::Other("the ingest is stopping".into()));
        }
        None
    }

    fn subscribe(&mut self, pkid: u16, filters: Vec<(String, QoS)>) {
        let mut granted = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        {
            let mut sessions = self.broker.sessions.lock().expect("sessions poisoned");
            let Some(session) = sessions.get_mut(&self.client_id) else {
                return;
            };
            for (filter, qos) in filters {
                let ok = topic::filter_error(&filter).is_none()
                    && self.broker.auth.may_subscribe(&self.who, &filter);
                if !ok {
                    tracing::info!(client = %self.client_id, user = ?self.who.user, %filter, "MQTT subscription refused");
                    granted.push(None);
                    continue;
                }
                session.subscriptions.retain(|(f, _)| *f != filter);
                session.subscriptions.push((filter.clone(), qos));
                granted.push(Some(qos));
                retained.push((filter, qos));
            }
        }
        self.out(Outgoing::SubAck { pkid, granted });
        for (filter, qos) in retained {
            for p in self.broker.retained_for(&filter, qos) {
                self.send(p);
            }
        }
    }
}
