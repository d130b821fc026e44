//! The byte pipes a connection runs over: a TCP stream, or a WebSocket whose binary
//! messages carry MQTT packets (any split: a packet may span messages and a message may
//! hold several).

use std::io;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::{Message, http};

/// A pipe for MQTT bytes.
pub(crate) trait Transport: Send {
    /// Appends what arrived to `buf`; 0 means the peer closed. Cancel-safe.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;
    /// Sends `bytes` whole.
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// Says this side is done sending (TCP: FIN; TLS: close_notify, then FIN; WebSocket:
    /// a Close frame), while the peer's bytes may still be read.
    fn finish(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

/// A byte stream carrying MQTT packets as they are: TCP, or TLS over TCP.
macro_rules! plain_transport {
    ($t:ty) => {
        impl Transport for $t {
            async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(16 * 1024);
                }
                self.read_buf(buf).await
            }

            async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
                self.write_all(bytes).await
            }

            async fn finish(&mut self) -> io::Result<()> {
                self.shutdown().await
            }
        }
    };
}

plain_transport!(TcpStream);
plain_transport!(TlsStream<TcpStream>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WebSocketStream<S> {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            match self.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(0),
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    buf.extend_from_slice(&data);
                    return Ok(data.len());
                }
                // Pings are answered by tungstenite; text frames are not MQTT.
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT over WebSocket uses binary messages, not text",
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send(Message::binary(bytes.to_vec()))
            .await
            .map_err(io::Error::other)
    }

    async fn finish(&mut self) -> io::Result<()> {
        self.close(None).await.map_err(io::Error::other)
    }
}

/// Completes the WebSocket handshake, agreeing on the `mqtt` subprotocol when asked.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> Result<WebSocketStream<S>, String> {
    // The error type is tungstenite's, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let pick = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered = req
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| p.eq_ignore_ascii_case("mqtt") || p.eq_ignore_ascii_case("mqttv3.1"));
        if let Some(value) = offered.and_then(|p| http::HeaderValue::from_str(p).ok()) {
            resp.headers_mut()
                .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        Ok(resp)
    };
    tokio_tungstenite::accept_hdr_async(stream, pick)
        .await
        .map_err(|e| e.to_string())
}
