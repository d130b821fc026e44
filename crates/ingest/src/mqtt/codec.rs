//! MQTT 3.1.1 and 5 packets in one shape. The bytes are read and written by rumqttc's
//! codecs (`mqttbytes::v4` and `v5`); this module picks the version from the CONNECT
//! packet and maps both versions' packets to the few the broker acts on.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{self as m4, v4};
use rumqttc::v5::mqttbytes::{self as m5, v5};

pub(crate) use rumqttc::mqttbytes::QoS;

/// The protocol version a client spoke in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5 (protocol level 5).
    V5,
}

/// What can go wrong reading a packet.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// More bytes are needed.
    Incomplete,
    /// The packet is larger than the limit.
    TooLarge(usize),
    /// Not a well-formed packet of this version.
    Malformed(String),
}

/// A packet from a client.
#[derive(Debug)]
pub(crate) enum Incoming {
    Connect(Connect),
    Publish(Publish),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        pkid: u16,
        filters: Vec<(String, QoS)>,
    },
    Unsubscribe {
        pkid: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet the broker does not expect from a client (a CONNACK, an AUTH).
    Unexpected(&'static str),
}

/// A CONNECT.
#[derive(Debug)]
pub(crate) struct Connect {
    pub version: Version,
    pub client_id: String,
    /// Start afresh: forget the session the client id had.
    pub clean: bool,
    /// Keep the session after the connection ends (3.1.1: clean session off; 5: a
    /// session expiry interval above 0).
    pub persistent: bool,
    pub keep_alive: u16,
    pub login: Option<(String, String)>,
    pub will: Option<Publish>,
}

/// A PUBLISH, either way.
#[derive(Debug, Clone)]
pub(crate) struct Publish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub pkid: u16,
}

/// Why a publish was not taken, for an MQTT 5 acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotAuthorized,
    PayloadFormatInvalid,
    UnspecifiedError,
}

/// A packet to a client.
#[derive(Debug)]
pub(crate) enum Outgoing {
    ConnAck {
        code: ConnCode,
        session_present: bool,
        /// The client id the server gave a client that sent none (MQTT 5).
        assigned: Option<String>,
    },
    Publish(Publish),
    /// PUBACK (QoS 1) or PUBREC (QoS 2), refusing with a reason (MQTT 5 only).
    Ack {
        qos: QoS,
        pkid: u16,
        refused: Option<(Refusal, String)>,
    },
    PubRel(u16),
    PubComp(u16),
    /// One entry per filter.
    SubAck {
        pkid: u16,
        granted: Vec<Granted>,
    },
    UnsubAck {
        pkid: u16,
        count: usize,
    },
    PingResp,
    /// MQTT 5 only: why the server closes the connection.
    Disconnect(DisconnectCode),
}

/// What a SUBACK says of one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Granted {
    Qos(QoS),
    NotAuthorized,
    InvalidFilter,
}

/// A CONNACK's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnCode {
    Accepted,
    BadLogin,
    NotAuthorized,
    BadClientId,
    Unavailable,
}

/// Why the server disconnects (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DisconnectCode {
    ProtocolError,
    PacketTooLarge,
    ServerShuttingDown,
    KeepAliveTimeout,
    SessionTakenOver,
}

/// Reads the protocol level of a CONNECT at the front of `buf` without consuming it.
pub(crate) fn connect_version(buf: &[u8]) -> Result<Version, ReadError> {
    if buf.is_empty() {
        return Err(ReadError::Incomplete);
    }
    if buf[0] >> 4 != 1 {
        return Err(ReadError::Malformed(
            "the first packet must be CONNECT".into(),
        ));
    }
    // The remaining length: 1 to 4 bytes.
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Err(ReadError::Incomplete);
        };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(ReadError::Malformed("malformed remaining length".into()));
        }
    }
    // The protocol name (a 2-byte length and "MQTT" or "MQIsdp"), then the level.
    let Some(len) = buf.get(i..i + 2) else {
        return Err(ReadError::Incomplete);
    };
    let name_len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let Some(&level) = buf.get(i + 2 + name_len) else {
        return Err(ReadError::Incomplete);
    };
    match level {
        4 => Ok(Version::V4),
        5 => Ok(Version::V5),
        3 => Err(ReadError::Malformed(
            "MQTT 3.1 (protocol level 3) is not supported; use MQTT 3.1.1 or 5".into(),
        )),
        other => Err(ReadError::Malformed(format!(
            "unknown protocol level {other}; expected 4 (MQTT 3.1.1) or 5"
        ))),
    }
}

fn v4_error(e: m4::Error, max: usize) -> ReadError {
    match e {
        m4::Error::InsufficientBytes(_) => ReadError::Incomplete,
        m4::Error::PayloadSizeLimitExceeded(n) => ReadError::TooLarge(n.max(max + 1)),
        other => ReadError::Malformed(other.to_string()),
    }
}

fn v5_error(e: m5::Error, max: usize) -> ReadError {
    match e {
        m5::Error::InsufficientBytes(_) => ReadError::Incomplete,
        m5::Error::PayloadSizeLimitExceeded { pkt_size, .. } => {
            ReadError::TooLarge(pkt_size.max(max + 1))
        }
        other => ReadError::Malformed(other.to_string()),
    }
}

fn qos5(q: m5::QoS) -> QoS {
    match q {
        m5::QoS::AtMostOnce => QoS::AtMostOnce,
        m5::QoS::AtLeastOnce => QoS::AtLeastOnce,
        m5::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn to_qos5(q: QoS) -> m5::QoS {
    match q {
        QoS::AtMostOnce => m5::QoS::AtMostOnce,
        QoS::AtLeastOnce => m5::QoS::AtLeastOnce,
        QoS::ExactlyOnce => m5::QoS::ExactlyOnce,
    }
}

/// Reads one packet from the front of `buf`, consuming it.
pub(crate) fn read(
    version: Version,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Incoming, ReadError> {
    match version {
        Version::V4 => read4(buf, max),
        Version::V5 => read5(buf, max),
    }
}

fn read4(buf: &mut BytesMut, max: usize) -> Result<Incoming, ReadError> {
    let packet = v4::Packet::read(buf, max).map_err(|e| v4_error(e, max))?;
    Ok(match packet {
        v4::Packet::Connect(c) => Incoming::Connect(Connect {
            version: Version::V4,
            client_id: c.client_id,
            clean: c.clean_session,
            persistent: !c.clean_session,
            keep_alive: c.keep_alive,
            login: c.login.map(|l| (l.username, l.password)),
            will: c.last_will.map(|w| Publish {
                topic: w.topic,
                payload: w.message,
                qos: w.qos,
                retain: w.retain,
                dup: false,
                pkid: 0,
            }),
        }),
        v4::Packet::Publish(p) => Incoming::Publish(Publish {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            dup: p.dup,
            pkid: p.pkid,
        }),
        v4::Packet::PubAck(a) => Incoming::PubAck(a.pkid),
        v4::Packet::PubRec(a) => Incoming::PubRec(a.pkid),
        v4::Packet::PubRel(a) => Incoming::PubRel(a.pkid),
        v4::Packet::PubComp(a) => Incoming::PubComp(a.pkid),
        v4::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s.filters.into_iter().map(|f| (f.path, f.qos)).collect(),
        },
        v4::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.topics,
        },
        v4::Packet::PingReq => Incoming::PingReq,
        v4::Packet::Disconnect => Incoming::Disconnect,
        v4::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v4::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v4::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v4::Packet::PingResp => Incoming::Unexpected("PINGRESP"),
    })
}

fn read5(buf: &mut BytesMut, max: usize) -> Result<Incoming, ReadError> {
    let limit = u32::try_from(max).unwrap_or(u32::MAX);
    let packet = v5::Packet::read(buf, Some(limit)).map_err(|e| v5_error(e, max))?;
    Ok(match packet {
        v5::Packet::Connect(c, will, login) => {
            let will = match will {
                None => None,
                Some(w) => Some(Publish {
                    topic: String::from_utf8(w.topic.to_vec()).map_err(|_| {
                        ReadError::Malformed("the will's topic is not UTF-8".into())
                    })?,
                    payload: w.message,
                    qos: qos5(w.qos),
                    retain: w.retain,
                    dup: false,
                    pkid: 0,
                }),
            };
            let expiry = c
                .properties
                .as_ref()
                .and_then(|p| p.session_expiry_interval)
                .unwrap_or(0);
            Incoming::Connect(Connect {
                version: Version::V5,
                client_id: c.client_id,
                clean: c.clean_start,
                persistent: expiry > 0,
                keep_alive: c.keep_alive,
                login: login.map(|l| (l.username, l.password)),
                will,
            })
        }
        v5::Packet::Publish(p) => {
            let Ok(topic) = String::from_utf8(p.topic.to_vec()) else {
                return Err(ReadError::Malformed("the topic is not UTF-8".into()));
            };
            if topic.is_empty() {
                return Err(ReadError::Malformed(
                    "an empty topic (topic aliases are not supported)".into(),
                ));
            }
            Incoming::Publish(Publish {
                topic,
                payload: p.payload,
                qos: qos5(p.qos),
                retain: p.retain,
                dup: p.dup,
                pkid: p.pkid,
            })
        }
        v5::Packet::PubAck(a) => Incoming::PubAck(a.pkid),
        v5::Packet::PubRec(a) => Incoming::PubRec(a.pkid),
        v5::Packet::PubRel(a) => Incoming::PubRel(a.pkid),
        v5::Packet::PubComp(a) => Incoming::PubComp(a.pkid),
        v5::Packet::Subscribe(s) => Incoming::Subscribe {
            pkid: s.pkid,
            filters: s
                .filters
                .into_iter()
                .map(|f| (f.path, qos5(f.qos)))
                .collect(),
        },
        v5::Packet::Unsubscribe(u) => Incoming::Unsubscribe {
            pkid: u.pkid,
            filters: u.filters,
        },
        v5::Packet::PingReq(_) => Incoming::PingReq,
        v5::Packet::Disconnect(_) => Incoming::Disconnect,
        v5::Packet::Auth(_) => Incoming::Unexpected("AUTH"),
        v5::Packet::ConnAck(_) => Incoming::Unexpected("CONNACK"),
        v5::Packet::SubAck(_) => Incoming::Unexpected("SUBACK"),
        v5::Packet::UnsubAck(_) => Incoming::Unexpected("UNSUBACK"),
        v5::Packet::PingResp(_) => Incoming::Unexpected("PINGRESP"),
    })
}

/// Appends `packet` to `buf` in the client's version. A packet the version has no way to
/// say (a DISCONNECT from the server in 3.1.1) writes nothing.
pub(crate) fn write(version: Version, packet: Outgoing, buf: &mut BytesMut) {
    // Writing into a BytesMut fails only for sizes MQTT cannot express, which the broker
    // never builds (payloads are capped far below 256 MiB).
    let written = match version {
        Version::V4 => write4(packet, buf),
        Version::V5 => write5(packet, buf),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not encode an MQTT packet");
    }
}

fn write4(packet: Outgoing, buf: &mut BytesMut) -> Result<(), String> {
    let p = match packet {
        Outgoing::ConnAck {
            code,
            session_present,
            ..
        } => v4::Packet::ConnAck(v4::ConnAck {
            session_present,
            code: match code {
                ConnCode::Accepted => v4::ConnectReturnCode::Success,
                ConnCode::BadLogin => v4::ConnectReturnCode::BadUserNamePassword,
                ConnCode::NotAuthorized => v4::ConnectReturnCode::NotAuthorized,
                ConnCode::BadClientId => v4::ConnectReturnCode::BadClientId,
                ConnCode::Unavailable => v4::ConnectReturnCode::ServiceUnavailable,
            },
        }),
        Outgoing::Publish(p) => v4::Packet::Publish(v4::Publish {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload,
        }),
        // 3.1.1 has no way to refuse a publish: it is acknowledged and dropped.
        Outgoing::Ack {
            qos: QoS::ExactlyOnce,
            pkid,
            ..
        } => v4::Packet::PubRec(v4::PubRec { pkid }),
        Outgoing::Ack { pkid, .. } => v4::Packet::PubAck(v4::PubAck { pkid }),
        Outgoing::PubRel(pkid) => v4::Packet::PubRel(v4::PubRel { pkid }),
        Outgoing::PubComp(pkid) => v4::Packet::PubComp(v4::PubComp { pkid }),
        Outgoing::SubAck { pkid, granted } => v4::Packet::SubAck(v4::SubAck {
            pkid,
            return_codes: granted
                .into_iter()
                .map(|g| match g {
                    Granted::Qos(q) => v4::SubscribeReasonCode::Success(q),
                    Granted::NotAuthorized | Granted::InvalidFilter => {
                        v4::SubscribeReasonCode::Failure
                    }
                })
                .collect(),
        }),
        Outgoing::UnsubAck { pkid, .. } => v4::Packet::UnsubAck(v4::UnsubAck { pkid }),
        Outgoing::PingResp => v4::Packet::PingResp,
        Outgoing::Disconnect(_) => return Ok(()),
    };
    p.write(buf, usize::MAX)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A reason string, kept short: it travels in every refusal.
fn reason_string(mut text: String) -> String {
    if text.len() > 512 {
        let mut cut = 509;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

fn write5(packet: Outgoing, buf: &mut BytesMut) -> Result<(), String> {
    let p = match packet {
        Outgoing::ConnAck {
            code,
            session_present,
            assigned,
        } => v5::Packet::ConnAck(v5::ConnAck {
            session_present,
            code: match code {
                ConnCode::Accepted => v5::ConnectReturnCode::Success,
                ConnCode::BadLogin => v5::ConnectReturnCode::BadUserNamePassword,
                ConnCode::NotAuthorized => v5::ConnectReturnCode::NotAuthorized,
                ConnCode::BadClientId => v5::ConnectReturnCode::ClientIdentifierNotValid,
                ConnCode::Unavailable => v5::ConnectReturnCode::ServerUnavailable,
            },
            properties: Some(v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: None,
                max_qos: None,
                retain_available: None,
                max_packet_size: None,
                assigned_client_identifier: assigned,
                topic_alias_max: Some(0),
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        }),
        Outgoing::Publish(p) => v5::Packet::Publish(v5::Publish {
            dup: p.dup,
            qos: to_qos5(p.qos),
            retain: p.retain,
            topic: Bytes::from(p.topic.into_bytes()),
            pkid: p.pkid,
            payload: p.payload,
            properties: None,
        }),
        Outgoing::Ack { qos, pkid, refused } => {
            let (reason, text) = match refused {
                None => (None, None),
                Some((r, text)) => (Some(r), Some(reason_string(text))),
            };
            if qos == QoS::ExactlyOnce {
                v5::Packet::PubRec(v5::PubRec {
                    pkid,
                    reason: match reason {
                        None => v5::PubRecReason::Success,
                        Some(Refusal::NotAuthorized) => v5::PubRecReason::NotAuthorized,
                        Some(Refusal::PayloadFormatInvalid) => {
                            v5::PubRecReason::PayloadFormatInvalid
                        }
                        Some(Refusal::UnspecifiedError) => v5::PubRecReason::UnspecifiedError,
                    },
                    properties: text.map(|t| v5::PubRecProperties {
                        reason_string: Some(t),
                        user_properties: Vec::new(),
                    }),
                })
            } else {
                v5::Packet::PubAck(v5::PubAck {
                    pkid,
                    reason: match reason {
                        None => v5::PubAckReason::Success,
                        Some(Refusal::NotAuthorized) => v5::PubAckReason::NotAuthorized,
                        Some(Refusal::PayloadFormatInvalid) => {
                            v5::PubAckReason::PayloadFormatInvalid
                        }
                        Some(Refusal::UnspecifiedError) => v5::PubAckReason::UnspecifiedError,
                    },
                    properties: text.map(|t| v5::PubAckProperties {
                        reason_string: Some(t),
                        user_properties: Vec::new(),
                    }),
                })
            }
        }
        Outgoing::PubRel(pkid) => v5::Packet::PubRel(v5::PubRel {
            pkid,
            reason: v5::PubRelReason::Success,
            properties: None,
        }),
        Outgoing::PubComp(pkid) => v5::Packet::PubComp(v5::PubComp {
            pkid,
            reason: v5::PubCompReason::Success,
            properties: None,
        }),
        Outgoing::SubAck { pkid, granted } => v5::Packet::SubAck(v5::SubAck {
            pkid,
            return_codes: granted
                .into_iter()
                .map(|g| match g {
                    Granted::Qos(q) => v5::SubscribeReasonCode::Success(to_qos5(q)),
                    Granted::NotAuthorized => v5::SubscribeReasonCode::NotAuthorized,
                    Granted::InvalidFilter => v5::SubscribeReasonCode::TopicFilterInvalid,
                })
                .collect(),
            properties: None,
        }),
        Outgoing::UnsubAck { pkid, count } => v5::Packet::UnsubAck(v5::UnsubAck {
            pkid,
            reasons: vec![v5::UnsubAckReason::Success; count],
            properties: None,
        }),
        Outgoing::PingResp => v5::Packet::PingResp(v5::PingResp),
        Outgoing::Disconnect(code) => v5::Packet::Disconnect(v5::Disconnect {
            reason_code: match code {
                DisconnectCode::ProtocolError => v5::DisconnectReasonCode::ProtocolError,
                DisconnectCode::PacketTooLarge => v5::DisconnectReasonCode::PacketTooLarge,
                DisconnectCode::ServerShuttingDown => v5::DisconnectReasonCode::ServerShuttingDown,
                DisconnectCode::KeepAliveTimeout => v5::DisconnectReasonCode::KeepAliveTimeout,
                DisconnectCode::SessionTakenOver => v5::DisconnectReasonCode::SessionTakenOver,
            },
            properties: None,
        }),
    };
    p.write(buf, None).map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod fuzz {
    //! Both versions' readers against mutated packets (berth-mutate), seeded with the
    //! packets clients send: they never panic, each read that succeeds consumes bytes,
    //! and the limit is kept.

    use super::*;
    use proptest::prelude::*;

    /// `len` as MQTT's remaining length.
    fn remaining(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut x = len;
        loop {
            let mut b = (x % 128) as u8;
            x /= 128;
            if x > 0 {
                b |= 0x80;
            }
            out.push(b);
            if x == 0 {
                return out;
            }
        }
    }

    fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        out.extend(remaining(body.len()));
        out.extend_from_slice(body);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// What clients send, as they send it: a CONNECT with a login, then traffic.
    fn seeds() -> Vec<Vec<u8>> {
        let connect4 = packet(
            0x10,
            &[
                string("MQTT"),
                vec![4, 0xC2, 0, 60],
                string("stand01"),
                string("user"),
                string("secret"),
            ]
            .concat(),
        );
        let connect5 = packet(
            0x10,
            &[
                string("MQTT"),
                vec![5, 0x02, 0, 60, 3, 0x21, 0, 10],
                string("stand02"),
            ]
            .concat(),
        );
        let publish4 = packet(
            0x32,
            &[string("stand/1"), vec![0, 1], b"{\"seq\":1}".to_vec()].concat(),
        );
        let publish5 = packet(
            0x34,
            &[
                string("stand/2"),
                vec![0, 2, 5, 0x01, 1, 0x02, 0, 0, 0, 60],
                b"{\"seq\":2}".to_vec(),
            ]
            .concat(),
        );
        let subscribe4 = packet(0x82, &[vec![0, 3], string("a/#"), vec![1]].concat());
        let subscribe5 = packet(0x82, &[vec![0, 4, 0], string("a/+/b"), vec![2]].concat());
        let unsubscribe4 = packet(0xA2, &[vec![0, 5], string("a/#")].concat());
        let unsubscribe5 = packet(0xA2, &[vec![0, 5, 0], string("a/#")].concat());
        let acks = [
            packet(0x40, &[0, 1]),
            packet(0x50, &[0, 2]),
            packet(0x62, &[0, 2]),
            packet(0x70, &[0, 2]),
            packet(0xC0, &[]),
        ]
        .concat();
        vec![
            [
                connect4.clone(),
                publish4.clone(),
                subscribe4,
                unsubscribe4,
                acks.clone(),
                packet(0xE0, &[]),
            ]
            .concat(),
            [
                connect5.clone(),
                publish5.clone(),
                subscribe5,
                unsubscribe5,
                acks,
                packet(0xE0, &[4, 0]),
            ]
            .concat(),
            [connect4, publish4.clone(), publish4].concat(),
            [connect5, publish5.clone(), publish5].concat(),
        ]
    }

    /// Reads packets off `input` as a connection does, until it needs more bytes or
    /// gives up on the connection.
    fn drain(version: Version, input: &[u8], max: usize) -> Result<(), TestCaseError> {
        let mut buf = BytesMut::from(input);
        for _ in 0..10_000 {
            let before = buf.len();
            match read(version, &mut buf, max) {
                Ok(_) => prop_assert!(buf.len() < before, "a read took no bytes"),
                Err(ReadError::Incomplete) => return Ok(()),
                Err(ReadError::TooLarge(n)) => {
                    prop_assert!(n > max, "{n} refused as over {max}");
                    return Ok(());
                }
                Err(ReadError::Malformed(why)) => {
                    prop_assert!(!why.is_empty());
                    return Ok(());
                }
            }
        }
        prop_assert!(false, "10,000 packets from {} bytes", input.len());
        Ok(())
    }

    #[test]
    fn the_seeds_are_packets_as_clients_send_them() {
        for (seed, version, packets) in [(0, Version::V4, 10), (1, Version::V5, 10)] {
            let input = &seeds()[seed];
            assert_eq!(connect_version(input).unwrap(), version);
            let mut buf = BytesMut::from(&input[..]);
            for i in 0..packets {
                if let Err(e) = read(version, &mut buf, 256) {
                    panic!("seed {seed}, packet {i}: {e:?}");
                }
            }
            assert!(buf.is_empty(), "seed {seed}: {} bytes left", buf.len());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn mutated_packets_are_read_or_refused(input in berth_mutate::mixed(seeds(), 8)) {
            // The version a connection would read with, and both regardless.
            if let Ok(version) = connect_version(&input) {
                drain(version, &input, 256)?;
            }
            drain(Version::V4, &input, 256)?;
            drain(Version::V5, &input, 256)?;
            drain(Version::V5, &input, 16)?;
        }
    }
}
