//! TLS: a self-signed certificate for development, certificate files swapped while
//! serving, bad files refused at start, and plain HTTP redirected to HTTPS — all checked
//! with curl verifying the certificate, over HTTP/2.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_gateway::{Gateway, GatewayError, RouteSpec, TlsSpec};

use crate::{FixedBackends, curl, curl_head, spec, start, static_route, with_tls};

fn site(dir: &Path) -> Vec<RouteSpec> {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "secure").unwrap();
    vec![static_route("/", &dir.join("site"), false)]
}

/// A self-signed certificate for `name`, written as `name.pem` and `name.key`.
fn cert_for(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_serves_http2_and_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let tls_dir = tmp.path().join("tls");
    let spec = with_tls(spec(site(tmp.path()), &tls_dir), TlsSpec::SelfSigned);
    let (gateway, base) = start(spec.clone(), Arc::new(FixedBackends::default())).await;
    let ca = tls_dir.join("self-signed.crt");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca, &base]).await,
        ("200".into(), "secure".into())
    );
    let head = curl_head(&["--http2", "--cacert", ca, &base]).await;
    assert!(head.starts_with("http/2 200"), "{head}");
    let head = curl_head(&["--http1.1", "--cacert", ca, &base]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Without the certificate as a trust anchor, curl refuses it.
    assert!(curl(&[&base]).await.0.starts_with("curl failed"));
    gateway.stop(Duration::from_secs(1)).await;

    // The next start reuses the same certificate, so a browser's exception holds.
    let first = std::fs::read(tls_dir.join("self-signed.crt")).unwrap();
    let (gateway, _) = start(spec, Arc::new(FixedBackends::default())).await;
    assert_eq!(
        std::fs::read(tls_dir.join("self-signed.crt")).unwrap(),
        first
    );
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_are_reloaded_when_they_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha_cert, alpha_key) = cert_for(tmp.path(), "alpha.test");
    let (beta_cert, beta_key) = cert_for(tmp.path(), "beta.test");
    let cert = tmp.path().join("fullchain.pem");
    let key = tmp.path().join("privkey.pem");
    std::fs::copy(&alpha_cert, &cert).unwrap();
    std::fs::copy(&alpha_key, &key).unwrap();
    let spec = with_tls(
        spec(site(tmp.path()), &tmp.path().join("tls")),
        TlsSpec::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
    );
    let (gateway, _) = start(spec, Arc::new(FixedBackends::default())).await;
    let port = gateway.local_addrs()[0].port();
    let ask = |name: &str, ca: &Path| {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let url = format!("https://{name}:{port}/");
        let ca = ca.to_str().unwrap().to_owned();
        async move {
            curl(&["--resolve", &resolve, "--cacert", &ca, &url])
                .await
                .0
        }
    };
    assert_eq!(ask("alpha.test", &alpha_cert).await, "200");
    assert!(
        ask("beta.test", &beta_cert)
            .await
            .starts_with("curl failed")
    );

    // Renewed files: first a half-written state (new cert, old key), then the new key.
    std::fs::copy(&beta_cert, &cert).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ask("alpha.test", &alpha_cert).await,
        "200",
        "a mismatched pair is not loaded"
    );
    std::fs::copy(&beta_key, &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask("beta.test", &beta_cert).await != "200" {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ask("alpha.test", &alpha_cert)
            .await
            .starts_with("curl failed")
    );
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_are_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (alpha_cert, _) = cert_for(tmp.path(), "alpha.test");
    let (_, beta_key) = cert_for(tmp.path(), "beta.test");
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let cases = [
        (junk.clone(), beta_key.clone(), "holds no certificate"),
        (
            tmp.path().join("missing.pem"),
            beta_key.clone(),
            "cannot read the certificate file",
        ),
        (alpha_cert.clone(), junk.clone(), "no usable private key"),
        (
            alpha_cert.clone(),
            beta_key.clone(),
            "does not belong to the certificate",
        ),
    ];
    for (cert, key, expected) in cases {
        let spec = with_tls(
            spec(site(tmp.path()), &tmp.path().join("tls")),
            TlsSpec::Files { cert, key },
        );
        let err = match Gateway::start(spec, Arc::new(FixedBackends::default()), None).await {
            Ok(_) => panic!("a bad pair was accepted ({expected})"),
            Err(e) => e,
        };
        assert!(matches!(err, GatewayError::Tls { .. }), "{err:?}");
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = with_tls(
        spec(site(tmp.path()), &tmp.path().join("tls")),
        TlsSpec::SelfSigned,
    );
    spec.http = Some("127.0.0.1:0".parse().unwrap());
    let (gateway, _) = start(spec, Arc::new(FixedBackends::default())).await;
    let https_port = gateway.local_addrs()[0].port();
    let http = gateway.http_addr().unwrap();
    let head = curl_head(&[
        "-H",
        "Host: localhost:80",
        &format!("http://{http}/a/b?c=d"),
    ])
    .await;
    assert!(head.starts_with("http/1.1 308"), "{head}");
    assert!(
        head.contains(&format!("location: https://localhost:{https_port}/a/b?c=d")),
        "{head}"
    );
    // curl following the redirect lands on the HTTPS site.
    let ca = tmp.path().join("tls/self-signed.crt");
    let (code, body) = curl(&[
        "-L",
        "--cacert",
        ca.to_str().unwrap(),
        &format!("http://localhost:{}/", http.port()),
    ])
    .await;
    assert_eq!((code.as_str(), body.as_str()), ("200", "secure"));
    gateway.stop(Duration::from_secs(1)).await;
}

/// What `openssl s_client` says connecting to `addr` with `args` (a protocol version),
/// and whether the handshake completed.
async fn handshake(addr: std::net::SocketAddr, args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr.to_string(),
                "-servername",
                "localhost",
            ])
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let done = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
        (done, text)
    })
    .await
    .unwrap()
}

/// Only TLS 1.2 and 1.3 are spoken: a client offering TLS 1.0 or 1.1 (with OpenSSL's own
/// floor lowered so that it really offers them) is refused by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_tls_versions_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = with_tls(
        spec(site(tmp.path()), &tmp.path().join("tls")),
        TlsSpec::SelfSigned,
    );
    let (gateway, _) = start(spec, Arc::new(FixedBackends::default())).await;
    let addr = gateway.local_addrs()[0];
    for ok in ["-tls1_3", "-tls1_2"] {
        let (done, text) = handshake(addr, &[ok]).await;
        assert!(done, "{ok}: {text}");
    }
    for old in ["-tls1_1", "-tls1"] {
        let (done, text) = handshake(addr, &[old, "-cipher", "DEFAULT@SECLEVEL=0"]).await;
        assert!(!done, "{old} was accepted: {text}");
        // The client did offer it, and the server answered with an alert (rustls says
        // handshake_failure, 40, to a hello without a version it speaks).
        assert!(!text.contains("no protocols available"), "{old}: {text}");
        assert!(text.contains("SSL alert number"), "{old}: {text}");
    }
    gateway.stop(Duration::from_secs(1)).await;
}
