//! Certificates from an ACME server (Let's Encrypt, or a test server such as pebble).
//!
//! At start, a certificate kept in `TLS_DIR/acme/` that covers the configured domains and
//! is not due for renewal is served at once; otherwise a temporary self-signed one is
//! served while a new certificate is ordered in the background. The order answers the
//! `http-01` challenge on the plain-HTTP listener (`/.well-known/acme-challenge/TOKEN`)
//! or the `tls-alpn-01` challenge on the TLS listener itself (a special certificate for
//! clients that offer only `acme-tls/1`). The issued chain and its key are written there
//! (the key readable by berth's user only) and swapped in without a restart. A task checks
//! hourly and renews once the certificate has less than `renew_before` left; a failed
//! order is retried with a growing pause, up to an hour, while the old certificate stays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use crate::tls::{Certificates, certified_from_pem, write_private};

/// The ALPN protocol of `tls-alpn-01` validation (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// How often the certificate's remaining life is checked.
const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// The longest pause between failed orders.
const MAX_RETRY: Duration = Duration::from_secs(3600);

/// What to order, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSpec {
    /// The account's contact address.
    pub email: String,
    /// The names the certificate covers.
    pub domains: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// How the server checks that berth answers for the domains.
    pub challenge: Challenge,
    /// A PEM root to trust for the directory's own HTTPS, instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Renew once the certificate expires sooner than this.
    pub renew_before: Duration,
}

/// The ACME challenge berth answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A file on the plain-HTTP listener.
    Http01,
    /// A special certificate on the TLS listener.
    TlsAlpn01,
}

/// The answers to pending challenges, read by the listeners.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// `http-01`: token → key authorization.
    pub(crate) http: RwLock<HashMap<String, String>>,
    /// `tls-alpn-01`: domain → validation certificate.
    pub(crate) alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Pending {
    /// The key authorization for an `http-01` token.
    pub(crate) fn http_answer(&self, token: &str) -> Option<String> {
        self.http
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// The `tls-alpn-01` certificate for `domain`.
    pub(crate) fn alpn_cert(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&domain.to_ascii_lowercase())
            .cloned()
    }
}

/// The certificate kept from an earlier order, if it covers `spec` and is not yet due.
pub(crate) fn kept(spec: &AcmeSpec, dir: &Path) -> Option<(CertifiedKey, SystemTime)> {
    let chain = std::fs::read_to_string(dir.join("cert.pem")).ok()?;
    let key = std::fs::read_to_string(dir.join("key.pem")).ok()?;
    let domains = std::fs::read_to_string(dir.join("domains")).ok()?;
    if domains != kept_key(spec) {
        return None;
    }
    let certified = certified_from_pem(&chain, &key).ok()?;
    let not_after = not_after(certified.cert.first()?.as_ref())?;
    due(not_after, spec.renew_before)
        .is_none()
        .then_some((certified, not_after))
}

/// `None` while the certificate has more than `renew_before` left; else how overdue.
fn due(not_after: SystemTime, renew_before: Duration) -> Option<Duration> {
    let renew_at = not_after.checked_sub(renew_before).unwrap_or(UNIX_EPOCH);
    SystemTime::now().duration_since(renew_at).ok()
}

/// How long until the certificate is due for renewal: at least a second, at most
/// [`CHECK_EVERY`] (so that a changed clock or config is noticed).
fn until_due(not_after: SystemTime, renew_before: Duration) -> Duration {
    let renew_at = not_after.checked_sub(renew_before).unwrap_or(UNIX_EPOCH);
    renew_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .clamp(Duration::from_secs(1), CHECK_EVERY)
}

/// Orders a certificate when needed and keeps it renewed, until `stop`.
pub(crate) async fn keep_renewed(
    spec: AcmeSpec,
    dir: PathBuf,
    mut not_after: Option<SystemTime>,
    certificates: Arc<Certificates>,
    pending: Arc<Pending>,
    stop: CancellationToken,
) {
    let mut pause = Duration::from_secs(10);
    loop {
        let needed = not_after.is_none_or(|t| due(t, spec.renew_before).is_some());
        let wait = if needed {
            tracing::info!(domains = ?spec.domains, directory = %spec.directory, "ordering a certificate over ACME");
            let ordered = order(&spec, &dir, &pending).await;
            // Whatever happened, no challenge answer outlives its order.
            pending
                .http
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            pending
                .alpn
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            match ordered {
                Ok((certified, expires)) => {
                    certificates.replace(certified);
                    not_after = Some(expires);
                    pause = Duration::from_secs(10);
                    tracing::info!(domains = ?spec.domains, "ACME certificate installed");
                    until_due(expires, spec.renew_before)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?pause, "the ACME order failed; the current certificate stays");
                    let wait = pause;
                    pause = (pause * 2).min(MAX_RETRY);
                    wait
                }
            }
        } else {
            not_after.map_or(CHECK_EVERY, |t| until_due(t, spec.renew_before))
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One order, from account to installed files.
async fn order(
    spec: &AcmeSpec,
    dir: &Path,
    pending: &Pending,
) -> Result<(CertifiedKey, SystemTime), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let account = account(spec, dir).await?;
    let identifiers: Vec<Identifier> = spec.domains.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| format!("the ACME server refused the order: {e}"))?;
    let kind = match spec.challenge {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut tokens = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| format!("cannot read an authorization: {e}"))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("an authorization is {other:?}")),
        }
        let domain = authz.identifier().to_string();
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| format!("the ACME server does not offer {kind:?} for {domain}"))?;
        let key_auth = challenge.key_authorization();
        match spec.challenge {
            Challenge::Http01 => {
                pending
                    .http
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(challenge.token.clone(), key_auth.as_str().to_owned());
                tokens.push(challenge.token.clone());
            }
            Challenge::TlsAlpn01 => {
                let cert = alpn_cert(&domain, key_auth.digest().as_ref())?;
                pending
                    .alpn
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(domain.to_ascii_lowercase(), Arc::new(cert));
            }
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| format!("cannot start the challenge for {domain}: {e}"))?;
    }
    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retry).await;
    // The answers are of no use once the order is decided.
    {
        let mut http = pending.http.write().unwrap_or_else(|e| e.into_inner());
        for t in &tokens {
            http.remove(t);
        }
    }
    pending
        .alpn
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    let status = status.map_err(|e| format!("the order did not become ready: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!(
            "the ACME server did not validate the domains (order {status:?}): {:?}",
            order.state().error
        ));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("cannot finalize the order: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("cannot download the certificate: {e}"))?;
    let certified = certified_from_pem(&chain_pem, &key_pem)
        .map_err(|e| format!("the issued certificate does not load: {e}"))?;
    let expires = certified
        .cert
        .first()
        .and_then(|c| not_after(c.as_ref()))
        .ok_or("the issued certificate has no readable expiry")?;
    let io =
        |what: &str, e: std::io::Error| format!("cannot write {what} in {}: {e}", dir.display());
    write_private(&dir.join("key.pem"), key_pem.as_bytes()).map_err(|e| io("the key", e))?;
    write_private(&dir.join("cert.pem"), chain_pem.as_bytes())
        .map_err(|e| io("the certificate", e))?;
    write_private(&dir.join("domains"), kept_key(spec).as_bytes())
        .map_err(|e| io("the domain list", e))?;
    Ok((certified, expires))
}

/// The ACME account: kept in `account.json`, made at the first order.
async fn account(spec: &AcmeSpec, dir: &Path) -> Result<Account, String> {
    let builder = || match &spec.ca {
        Some(ca) => Account::builder_with_root(ca)
            .map_err(|e| format!("cannot trust {} for the ACME server: {e}", ca.display())),
        None => Account::builder().map_err(|e| format!("cannot set up an HTTPS client: {e}")),
    };
    let path = dir.join("account.json");
    // An account belongs to one ACME server and contact: another makes a new one.
    let kept_for = std::fs::read_to_string(dir.join("account-for")).unwrap_or_default();
    if let Ok(text) = std::fs::read_to_string(&path)
        && kept_for == account_key(spec)
        && let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text)
    {
        match builder()?.from_credentials(credentials).await {
            Ok(account) => return Ok(account),
            Err(e) => {
                tracing::warn!(error = %e, "the kept ACME account does not work; making a new one")
            }
        }
    }
    let contact = format!("mailto:{}", spec.email);
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &[&contact],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            spec.directory.clone(),
            None,
        )
        .await
        .map_err(|e| format!("cannot create an account at {}: {e}", spec.directory))?;
    let text = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
    write_private(&path, text.as_bytes())
        .map_err(|e| format!("cannot keep the ACME account in {}: {e}", path.display()))?;
    write_private(&dir.join("account-for"), account_key(spec).as_bytes())
        .map_err(|e| format!("cannot keep the ACME account in {}: {e}", dir.display()))?;
    Ok(account)
}

/// What a kept certificate is for: its domains, and the server that issued it.
fn kept_key(spec: &AcmeSpec) -> String {
    format!("{}\ndirectory {}", spec.domains.join("\n"), spec.directory)
}

/// What an account is for: the directory and the contact.
fn account_key(spec: &AcmeSpec) -> String {
    format!("{}\n{}", spec.directory, spec.email)
}

/// The `tls-alpn-01` validation certificate for `domain` (RFC 8737). It is not checked
/// against its key: webpki refuses to parse a certificate with the critical
/// acmeIdentifier extension, which only the validator needs to read.
fn alpn_cert(domain: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = crate::tls::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("the validation key cannot be used: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing))
}

/// The `notAfter` of a DER certificate: Certificate → tbsCertificate → validity.
pub(crate) fn not_after(der: &[u8]) -> Option<SystemTime> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    // An explicit version ([0]) comes first when present.
    if rest.first() == Some(&0xA0) {
        rest = tlv(rest)?.2;
    }
    for _ in 0..3 {
        // serialNumber, signature, issuer
        rest = tlv(rest)?.2;
    }
    let (_, validity, _) = tlv(rest)?;
    let (_, _, after_before) = tlv(validity)?;
    let (tag, time, _) = tlv(after_before)?;
    let text = std::str::from_utf8(time).ok()?;
    let full = match tag {
        0x17 => {
            // UTCTime: YYMMDDHHMMSSZ, years 1950–2049.
            let yy: u32 = text.get(0..2)?.parse().ok()?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{text}")
        }
        0x18 => text.to_owned(),
        _ => return None,
    };
    let f = |a: usize, b: usize| full.get(a..b).and_then(|s| s.parse::<i16>().ok());
    let date = jiff::civil::date(f(0, 4)?, f(4, 6)? as i8, f(6, 8)? as i8);
    let at = date
        .at(f(8, 10)? as i8, f(10, 12)? as i8, f(12, 14)? as i8, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?;
    Some(SystemTime::from(at.timestamp()))
}

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = input.get(header..header + len)?;
    Some((tag, body, &input[header + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_of_a_certificate_is_read() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.org".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let cert = params.self_signed(&key).unwrap();
        let expires = not_after(cert.der()).unwrap();
        let expected = jiff::civil::date(2031, 7, 4)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp();
        assert_eq!(jiff::Timestamp::try_from(expires).unwrap(), expected);
        assert_eq!(not_after(b"\x30\x03garbage"), None);
    }

    #[test]
    fn renewal_is_due_inside_the_window() {
        let in_10_days = SystemTime::now() + Duration::from_secs(10 * 86_400);
        assert!(due(in_10_days, Duration::from_secs(30 * 86_400)).is_some());
        assert!(due(in_10_days, Duration::from_secs(86_400)).is_none());
    }
}
