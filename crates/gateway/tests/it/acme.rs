//! ACME against Let's Encrypt's test server, pebble (Debian's `pebble` package): a
//! certificate ordered with the http-01 and with the tls-alpn-01 challenge, served to
//! curl verifying it against pebble's root, and kept for the next start.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_gateway::{AcmeSpec, Challenge, Gateway, TlsSpec};

use crate::{FixedBackends, curl, spec, static_route};

struct Pebble {
    child: Child,
    dir: String,
    acme_port: u16,
    mgmt_port: u16,
    http_port: u16,
    tls_port: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts pebble with an HTTPS certificate of our own making; its validator dials
/// `localhost` on `http_port` (http-01) and `tls_port` (tls-alpn-01).
fn pebble(dir: &Path) -> Pebble {
    pebble_with_validity(dir, None)
}

/// pebble issuing certificates valid for `validity` seconds (default: 5 years).
fn pebble_with_validity(dir: &Path, validity: Option<u64>) -> Pebble {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "berth test pebble CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    std::fs::write(dir.join("pebble-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf_cert.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
    // Four distinct free ports below the kernel's ephemeral range.
    let first = berth_testkit::free_port_run(4);
    let (acme_port, mgmt_port, http_port, tls_port) = (first, first + 1, first + 2, first + 3);
    let mut config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme_port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
        "certificate": dir.join("pebble-cert.pem"),
        "privateKey": dir.join("pebble-key.pem"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    if let Some(seconds) = validity {
        config["pebble"]["certificateValidityPeriod"] = seconds.into();
    }
    std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
    let child = Command::new("pebble")
        .arg("-config")
        .arg(dir.join("pebble.json"))
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pebble.log")).unwrap())
        .spawn()
        .expect("pebble runs (apt-get install pebble; .ci/run installs it)");
    // The directory and the management port open one after the other.
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [acme_port, mgmt_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Pebble {
        child,
        dir: dir.to_str().unwrap().to_owned(),
        acme_port,
        mgmt_port,
        http_port,
        tls_port,
    }
}

fn gateway_spec(p: &Pebble, dir: &Path, challenge: Challenge) -> berth_gateway::GatewaySpec {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "issued").unwrap();
    let routes = vec![static_route("/", &dir.join("site"), false)];
    let mut s = spec(routes, &dir.join("tls"));
    s.listen = vec![format!("127.0.0.1:{}", p.tls_port).parse().unwrap()];
    if challenge == Challenge::Http01 {
        s.http = Some(format!("127.0.0.1:{}", p.http_port).parse().unwrap());
    }
    s.tls = Some(TlsSpec::Acme(AcmeSpec {
        email: "ops@example.org".into(),
        domains: vec!["localhost".into()],
        directory: format!("https://127.0.0.1:{}/dir", p.acme_port),
        challenge,
        ca: Some(dir.join("pebble-ca.pem")),
        renew_before: Duration::from_secs(30 * 86_400),
    }));
    s
}

/// pebble's issuing root (made anew at each pebble start).
async fn pebble_root(p: &Pebble) -> String {
    let path = format!("{}/root.pem", p.dir);
    let (code, body) = curl(&[
        "--cacert",
        &format!("{}/pebble-ca.pem", p.dir),
        &format!("https://127.0.0.1:{}/roots/0", p.mgmt_port),
    ])
    .await;
    assert_eq!(code, "200", "{body}");
    std::fs::write(&path, body).unwrap();
    path
}

async fn served_by_pebble(p: &Pebble, root: &str, limit: Duration) {
    let url = format!("https://localhost:{}/", p.tls_port);
    let deadline = Instant::now() + limit;
    loop {
        let (code, body) = curl(&["--cacert", root, &url]).await;
        if code == "200" {
            assert_eq!(body, "issued");
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "no pebble-issued certificate was served ({code}); pebble's log:\n{}",
                std::fs::read_to_string(format!("{}/pebble.log", p.dir)).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn issue_with(challenge: Challenge) {
    let tmp = tempfile::tempdir().unwrap();
    let p = pebble(tmp.path());
    let root = pebble_root(&p).await;
    let spec = gateway_spec(&p, tmp.path(), challenge);
    let gateway = Gateway::start(spec.clone(), Arc::new(FixedBackends::default()), None)
        .await
        .expect("gateway starts");
    served_by_pebble(&p, &root, Duration::from_secs(60)).await;
    gateway.stop(Duration::from_secs(1)).await;
    let acme = tmp.path().join("tls/acme");
    for file in ["account.json", "cert.pem", "key.pem", "domains"] {
        assert!(acme.join(file).exists(), "{file} kept");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(acme.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");

    // The next start serves the kept certificate at once, without a new order.
    let before = std::fs::read(acme.join("cert.pem")).unwrap();
    let gateway = Gateway::start(spec, Arc::new(FixedBackends::default()), None)
        .await
        .expect("gateway starts again");
    served_by_pebble(&p, &root, Duration::from_secs(1)).await;
    assert_eq!(std::fs::read(acme.join("cert.pem")).unwrap(), before);
    gateway.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_over_http_01() {
    issue_with(Challenge::Http01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_over_tls_alpn_01() {
    issue_with(Challenge::TlsAlpn01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_renewed_before_it_expires() {
    let tmp = tempfile::tempdir().unwrap();
    // Certificates for 40 s, renewed when less than 35 s are left: every 5 s or so.
    let p = pebble_with_validity(tmp.path(), Some(40));
    let root = pebble_root(&p).await;
    let mut spec = gateway_spec(&p, tmp.path(), Challenge::Http01);
    if let Some(TlsSpec::Acme(acme)) = &mut spec.tls {
        acme.renew_before = Duration::from_secs(35);
    }
    let gateway = Gateway::start(spec, Arc::new(FixedBackends::default()), None)
        .await
        .expect("gateway starts");
    served_by_pebble(&p, &root, Duration::from_secs(60)).await;
    let cert = tmp.path().join("tls/acme/cert.pem");
    let first = std::fs::read(&cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&cert).unwrap() == first {
        assert!(
            Instant::now() < deadline,
            "the certificate was never renewed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The renewed one is served, and verifies.
    served_by_pebble(&p, &root, Duration::from_secs(5)).await;
    gateway.stop(Duration::from_secs(1)).await;
}
