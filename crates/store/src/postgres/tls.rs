//! TLS to PostgreSQL, with rustls: berth's own reading of a store URL's `sslmode` and
//! `sslrootcert`, with libpq's meanings, and the connector tokio-postgres hands its
//! socket to.
//!
//! | `sslmode` | encrypted | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` (the default) | if the server offers it | not checked |
//! | `require` | always | not checked; checked as `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | always | signed by the CA in `sslrootcert` (a file: required) |
//! | `verify-full` | always | as `verify-ca`, and issued for the URL's host |
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, and no
//! `sslrootcert`: the two are taken off the URL before it reads it. `pg_dump` and
//! `pg_restore` get them in their environment (`PGSSLMODE`, `PGSSLROOTCERT`).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use crate::error::{Result, StoreError};

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            // `allow` (plain first, TLS if refused) is libpq's too; berth does not try
            // plain text before TLS.
            other => {
                return Err(StoreError::Invalid(format!(
                    "the store URL has sslmode={other}; expected disable, prefer, require, \
                     verify-ca or verify-full"
                )));
            }
        })
    }

    /// libpq's name, for `PGSSLMODE`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// The TLS settings of one store URL, and the connector they make.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) mode: Mode,
    pub(crate) root_cert: Option<PathBuf>,
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// The `SslMode` tokio-postgres is told: it only needs to know whether TLS is
    /// refused, tried or required.
    pub(crate) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        }
    }
}

/// Splits `url` into the URL tokio-postgres reads (without `sslmode` and `sslrootcert`)
/// and berth's TLS settings. Errors never repeat the URL.
pub(crate) fn split(url: &str) -> Result<(String, Tls)> {
    // The query starts at the first `?` after the login: a password may hold one.
    let after_login = url.rfind('@').map_or(0, |at| at + 1);
    let (base, query) = match url[after_login..].find('?') {
        Some(q) => (&url[..after_login + q], &url[after_login + q + 1..]),
        None => (url, ""),
    };
    let mut mode = Mode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => mode = Mode::parse(&decode(value))?,
            "sslrootcert" => root_cert = Some(PathBuf::from(decode(value))),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(StoreError::Invalid(format!(
                    "the store URL has {key}, which berth does not support: it checks the \
                     server's certificate (sslmode, sslrootcert) but logs in with a password, \
                     not a client certificate"
                )));
            }
            _ => kept.push(pair),
        }
    }
    // libpq: `require` with a root certificate checks the chain, as `verify-ca`.
    if mode == Mode::Require && root_cert.is_some() {
        mode = Mode::VerifyCa;
    }
    // Checking the chain but not the name is only worth something against a CA of one's
    // own: any public CA signs a certificate for anyone's own domain. libpq refuses the
    // same.
    let public_roots = root_cert
        .as_deref()
        .is_none_or(|p| p == Path::new("system"));
    if mode == Mode::VerifyCa && public_roots {
        return Err(StoreError::Invalid(
            "the store URL asks to check the server's certificate against the public CAs \
             (no sslrootcert, or sslrootcert=system) without checking its name, which any \
             certificate a public CA issued would pass; expected sslmode=verify-full, or \
             sslrootcert=FILE naming your own CA"
                .into(),
        ));
    }
    let config = client_config(mode, root_cert.as_deref())?;
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((
        url,
        Tls {
            mode,
            root_cert,
            config,
        },
    ))
}

/// `%2F` → `/`, for paths in a URL's query.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn client_config(mode: Mode, root_cert: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Invalid(format!("cannot set up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        Mode::Disable | Mode::Prefer | Mode::Require => Arc::new(Lenient {
            chain: None,
            algorithms: provider.signature_verification_algorithms,
        }),
        Mode::VerifyCa | Mode::VerifyFull => {
            let roots = roots(root_cert)?;
            let algorithms = provider.signature_verification_algorithms;
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| StoreError::Invalid(format!("cannot set up TLS: {e}")))?;
            if mode == Mode::VerifyFull {
                webpki
            } else {
                Arc::new(Lenient {
                    chain: Some(webpki),
                    algorithms,
                })
            }
        }
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// The CAs in `sslrootcert`, or the Mozilla roots (as libpq's `sslrootcert=system`)
/// when it is not given.
fn roots(root_cert: Option<&Path>) -> Result<RootCertStore> {
    let Some(path) = root_cert.filter(|p| *p != Path::new("system")) else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Invalid(format!(
            "the store URL's sslrootcert {} cannot be read: {e}",
            path.display()
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            StoreError::Invalid(format!(
                "the store URL's sslrootcert {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            StoreError::Invalid(format!(
                "the store URL's sslrootcert {} holds a certificate rustls refuses: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the store URL's sslrootcert {} holds no certificate; expected a PEM file with \
             -----BEGIN CERTIFICATE-----",
            path.display()
        )));
    }
    Ok(roots)
}

/// A verifier that checks less than `verify-full`, as libpq does: for `prefer` and
/// `require` without a root certificate (`chain: None`) the certificate is not checked
/// at all; for `verify-ca` the chain must lead to a trusted CA, but the name in it is not
/// compared with the URL's host. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<Connect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{domain}` is not a host name TLS can check a certificate against"),
            )
        })?;
        Ok(Connect {
            config: self.config.clone(),
            name,
        })
    }
}

/// One handshake, for the host the connection is made to.
pub(crate) struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS session to the server.
pub(crate) struct Stream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM's channel binding (SCRAM-SHA-256-PLUS) is not offered; the password
        // exchange is SCRAM-SHA-256 inside the checked TLS session.
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn berths_tls_settings_leave_the_url() {
        let (url, tls) =
            split("postgres://u:p@db.example.org/app?sslmode=verify-full&application_name=x")
                .unwrap();
        assert_eq!(url, "postgres://u:p@db.example.org/app?application_name=x");
        assert_eq!(tls.mode, Mode::VerifyFull);
        assert_eq!(tls.ssl_mode(), SslMode::Require);
        let (url, tls) = split("postgres://u@h/app").unwrap();
        assert_eq!(url, "postgres://u@h/app");
        assert_eq!(tls.mode, Mode::Prefer);
        let (_, tls) = split("postgres://u@h/app?sslmode=disable").unwrap();
        assert_eq!(tls.ssl_mode(), SslMode::Disable);
    }

    #[test]
    fn require_with_a_root_certificate_checks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["db".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let url = format!(
            "postgres://u@h/app?sslmode=require&sslrootcert={}",
            ca.display()
        );
        let (url, tls) = split(&url).unwrap();
        assert_eq!(url, "postgres://u@h/app");
        assert_eq!(tls.mode, Mode::VerifyCa);
        assert_eq!(tls.root_cert.as_deref(), Some(ca.as_path()));
    }

    #[test]
    fn a_question_mark_in_the_password_is_not_the_query() {
        let (url, tls) =
            split("postgres://u:pa?sslmode=disable@h/app?sslmode=verify-full").unwrap();
        assert_eq!(url, "postgres://u:pa?sslmode=disable@h/app");
        assert_eq!(tls.mode, Mode::VerifyFull);
    }

    #[test]
    fn bad_tls_settings_are_refused_with_what_would_be_right() {
        let err = |url: &str| split(url).unwrap_err().to_string();
        for public in [
            "postgres://u@h/app?sslmode=verify-ca",
            "postgres://u@h/app?sslmode=verify-ca&sslrootcert=system",
            "postgres://u@h/app?sslmode=require&sslrootcert=system",
        ] {
            let e = err(public);
            assert!(e.contains("expected sslmode=verify-full"), "{public}: {e}");
        }
        let e = err("postgres://u:secret@h/app?sslmode=verify");
        assert!(
            e.contains("sslmode=verify; expected disable, prefer, require"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
        let e = err("postgres://u@h/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
        assert!(
            e.contains("sslrootcert /nonexistent/ca.pem cannot be read"),
            "{e}"
        );
        let e = err("postgres://u@h/app?sslcert=client.pem");
        assert!(e.contains("sslcert, which berth does not support"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = err(&format!(
            "postgres://u@h/a?sslmode=verify-ca&sslrootcert={}",
            empty.display()
        ));
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(decode("%2Fetc%2Fca.pem"), "/etc/ca.pem");
        assert_eq!(decode("a%zz"), "a%zz");
        assert_eq!(decode("50%"), "50%");
    }
}
