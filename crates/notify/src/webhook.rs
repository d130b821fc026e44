//! JSON POSTs to a webhook over HTTP/1.1, plain or TLS (rustls, Mozilla roots plus an
//! optional CA). A 2xx answer delivers; anything else, or no answer in time, is retried.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use ring::hmac;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{NotifyError, WebhookSpec};

/// How long one POST may take, connection included.
const POST_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Poster {
    host: String,
    port: u16,
    /// The path and query sent in the request line.
    target: String,
    /// The `Host` header.
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    key: Option<hmac::Key>,
}

impl Poster {
    pub(crate) fn new(spec: &WebhookSpec) -> Result<Self, NotifyError> {
        let bad = || {
            NotifyError::setup(format!(
                "the webhook URL {:?} cannot be used; expected http(s)://HOST[:PORT]/PATH",
                spec.url
            ))
        };
        let (https, rest) = match spec.url.strip_prefix("https://") {
            Some(r) => (true, r),
            None => (false, spec.url.strip_prefix("http://").ok_or_else(bad)?),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p.parse().map_err(|_| bad())?),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(bad());
        }
        let tls = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| bad())?;
            Some((connector(spec.ca_pem.as_deref())?, name))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            target,
            authority: authority.to_owned(),
            tls,
            key: spec
                .secret
                .as_ref()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)),
        })
    }

    /// POSTs `body` (JSON); `Ok` on a 2xx answer.
    pub(crate) async fn post(
        &self,
        body: &serde_json::Value,
        delivery: &str,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        match tokio::time::timeout(POST_TIMEOUT, self.exchange(body, delivery)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the webhook did not answer within {}s",
                POST_TIMEOUT.as_secs()
            )),
        }
    }

    async fn exchange(&self, body: Vec<u8>, delivery: &str) -> Result<(), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS with {} failed: {e}", self.host))?;
                self.request(stream, body, delivery).await
            }
            None => self.request(tcp, body, delivery).await,
        }
    }

    async fn request<S>(&self, stream: S, body: Vec<u8>, delivery: &str) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {} failed: {e}", self.host))?;
        tokio::spawn(conn);
        let mut req = Request::post(&self.target)
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .header("user-agent", concat!("berth/", env!("CARGO_PKG_VERSION")))
            .header("x-berth-delivery", delivery);
        if let Some(key) = &self.key {
            req = req.header("x-berth-signature", signature(key, &body));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP with {} failed: {e}", self.host))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = res
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(200)
                    .collect()
            })
            .unwrap_or_default();
        Err(format!("the webhook answered {status}: {text}"))
    }
}

/// `sha256=HEX`: the HMAC-SHA256 of the body under the secret.
pub(crate) fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A TLS client trusting the Mozilla roots and, if given, the CA in `ca_pem`.
fn connector(ca_pem: Option<&[u8]>) -> Result<TlsConnector, NotifyError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(pem) = ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert
                .map_err(|e| NotifyError::setup(format!("the `ca` file is not valid PEM: {e}")))?;
            roots.add(cert).map_err(|e| {
                NotifyError::setup(format!(
                    "the `ca` file holds a certificate rustls refuses: {e}"
                ))
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(NotifyError::setup(
                "the `ca` file holds no certificate; expected a PEM file with -----BEGIN CERTIFICATE-----",
            ));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| NotifyError::setup(format!("cannot set up TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poster(url: &str) -> Poster {
        Poster::new(&WebhookSpec {
            url: url.into(),
            secret: None,
            ca_pem: None,
        })
        .unwrap()
    }

    #[test]
    fn urls_are_split_into_host_port_and_target() {
        let p = poster("http://127.0.0.1:8080/hooks/berth?x=1");
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 8080));
        assert_eq!(p.target, "/hooks/berth?x=1");
        assert_eq!(p.authority, "127.0.0.1:8080");
        assert!(p.tls.is_none());
        let p = poster("https://hooks.example.org");
        assert_eq!(
            (p.host.as_str(), p.port, p.target.as_str()),
            ("hooks.example.org", 443, "/")
        );
        assert!(p.tls.is_some());
        assert!(
            Poster::new(&WebhookSpec {
                url: "ftp://x".into(),
                secret: None,
                ca_pem: None
            })
            .is_err()
        );
    }

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
