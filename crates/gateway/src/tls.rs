//! Certificates: from PEM files (checked for changes and reloaded without a restart), or
//! made on the spot for development (`self-signed`), served through one resolver that
//! every handshake asks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::acme::{ACME_TLS_ALPN, Challenge, Pending};
use crate::error::GatewayError;
use crate::spec::TlsSpec;

/// The self-signed certificate's files inside the gateway's TLS directory.
const SELF_SIGNED_CERT: &str = "self-signed.crt";
const SELF_SIGNED_KEY: &str = "self-signed.key";
/// A self-signed certificate is made anew once it has less than this left.
const SELF_SIGNED_RENEW: Duration = Duration::from_secs(30 * 86_400);

/// The certificate every handshake gets, swappable while connections are served.
#[derive(Debug)]
pub(crate) struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
    /// ACME `tls-alpn-01` answers, for clients that offer only `acme-tls/1`.
    pending: Arc<Pending>,
}

impl Certificates {
    fn new(key: CertifiedKey, pending: Arc<Pending>) -> Self {
        Self {
            current: RwLock::new(Arc::new(key)),
            pending,
        }
    }

    pub(crate) fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if acme {
            return self.pending.alpn_cert(hello.server_name()?);
        }
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// The crypto berth uses: ring, named explicitly so that the choice never depends on
/// which rustls features other crates happen to enable.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS setup of the listeners: the server config, and the certificates behind it.
pub(crate) struct Tls {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) certificates: Arc<Certificates>,
    /// ACME's pending challenges, answered by the listeners.
    pub(crate) pending: Arc<Pending>,
    /// With ACME: when the certificate served now expires (`None`: a temporary one).
    pub(crate) acme_not_after: Option<SystemTime>,
}

/// Loads (or makes) the certificate of `spec`, into a config that offers HTTP/2 and
/// HTTP/1.1.
pub(crate) fn setup(spec: &TlsSpec, tls_dir: &Path) -> Result<Tls, GatewayError> {
    let mut acme_not_after = None;
    let key = match spec {
        TlsSpec::Files { cert, key } => load_files(cert, key)?,
        TlsSpec::SelfSigned => self_signed(tls_dir)?,
        TlsSpec::Acme(acme) => match crate::acme::kept(acme, &tls_dir.join("acme")) {
            Some((key, not_after)) => {
                acme_not_after = Some(not_after);
                key
            }
            // Until the first order completes, a throwaway certificate for the domains.
            None => temporary(&acme.domains).map_err(|detail| GatewayError::Tls {
                path: tls_dir.to_path_buf(),
                detail,
            })?,
        },
    };
    let pending = Arc::new(Pending::default());
    let certificates = Arc::new(Certificates::new(key, pending.clone()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls {
            path: tls_dir.to_path_buf(),
            detail: format!("cannot set up TLS: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if matches!(spec, TlsSpec::Acme(a) if a.challenge == Challenge::TlsAlpn01) {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    Ok(Tls {
        config: Arc::new(config),
        certificates,
        pending,
        acme_not_after,
    })
}

/// A TLS config for another of berth's listeners (the MQTT broker's) from PEM files,
/// loaded and checked as the gateway's are, offering the `alpn` protocols.
pub fn server_config(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, GatewayError> {
    let key = load_files(cert, key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| GatewayError::Tls {
            path: cert.to_path_buf(),
            detail: format!("cannot set up TLS: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Reads a certificate chain and its key, and checks that they belong together.
pub(crate) fn load_files(cert: &Path, key: &Path) -> Result<CertifiedKey, GatewayError> {
    let tls_error = |path: &Path, detail: String| GatewayError::Tls {
        path: path.to_path_buf(),
        detail,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_error(cert, format!("cannot read the certificate file: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(
            cert,
            "holds no certificate; expected PEM blocks starting with -----BEGIN CERTIFICATE-----"
                .into(),
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        tls_error(
            key,
            format!("no usable private key ({e}); expected a PEM PKCS#8, PKCS#1 or SEC1 key"),
        )
    })?;
    certified(chain, der).map_err(|detail| {
        tls_error(
            key,
            detail.replace(
                "the certificate",
                &format!("the certificate in {}", cert.display()),
            ),
        )
    })
}

/// A chain and its key from PEM text.
pub(crate) fn certified_from_pem(chain: &str, key: &str) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the chain".into());
    }
    let der = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| format!("no usable private key: {e}"))?;
    certified(chain, der)
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    der: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, String> {
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("the key cannot be used: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("does not belong to the certificate ({e})"))?;
    Ok(certified)
}

/// A throwaway self-signed certificate for `names`, served until ACME delivers.
fn temporary(names: &[String]) -> Result<CertifiedKey, String> {
    let made = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot make a temporary certificate: {e}"))?;
    certified_from_pem(&made.cert.pem(), &made.signing_key.serialize_pem())
}

/// The development certificate for `localhost`, `127.0.0.1` and `::1`: reused from
/// `tls_dir` while it has a month left, made anew otherwise.
fn self_signed(tls_dir: &Path) -> Result<CertifiedKey, GatewayError> {
    let cert_path = tls_dir.join(SELF_SIGNED_CERT);
    let key_path = tls_dir.join(SELF_SIGNED_KEY);
    let fresh = std::fs::metadata(&cert_path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|made| SystemTime::now().duration_since(made).ok())
        .is_some_and(|age| age + SELF_SIGNED_RENEW < Duration::from_secs(365 * 86_400));
    if fresh && let Ok(key) = load_files(&cert_path, &key_path) {
        return Ok(key);
    }
    let io_error = |path: &Path, action: &str, e: std::io::Error| GatewayError::Tls {
        path: path.to_path_buf(),
        detail: format!("cannot {action}: {e}"),
    };
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| GatewayError::Tls {
        path: cert_path.clone(),
        detail: format!("cannot make a self-signed certificate: {e}"),
    })?;
    std::fs::create_dir_all(tls_dir).map_err(|e| io_error(tls_dir, "create the directory", e))?;
    write_private(&key_path, made.signing_key.serialize_pem().as_bytes())
        .map_err(|e| io_error(&key_path, "write the key", e))?;
    write_private(&cert_path, made.cert.pem().as_bytes())
        .map_err(|e| io_error(&cert_path, "write the certificate", e))?;
    load_files(&cert_path, &key_path)
}

/// Writes a file readable by its owner only, through a temporary file and a rename.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Checks `cert` and `key` every `every` and swaps the certificate in when either
/// changed and the pair loads; a pair that does not load is logged and the old
/// certificate stays.
pub(crate) fn watch_files(
    certificates: Arc<Certificates>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
    stop: CancellationToken,
) {
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    tokio::spawn(async move {
        let mut seen = (stamp(&cert), stamp(&key));
        // A pair that failed to load is tried again each tick (it may have been caught
        // half-written), but reported once.
        let mut reported = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = (stamp(&cert), stamp(&key));
            if now == seen {
                continue;
            }
            match load_files(&cert, &key) {
                Ok(loaded) => {
                    certificates.replace(loaded);
                    seen = now;
                    reported = None;
                    tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
                }
                Err(e) if reported.as_ref() != Some(&now) => {
                    tracing::warn!(error = %e, "the changed TLS files do not load; the previous certificate stays");
                    reported = Some(now);
                }
                Err(_) => {}
            }
        }
    });
}
