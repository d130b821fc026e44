//! TLS to PostgreSQL: a cluster of the test's own that refuses every connection over TCP
//! that is not TLS, with a certificate for `localhost` signed by a CA the test makes.
//! Each `sslmode` is tried against it, with the right CA, a wrong one, and a host the
//! certificate does not name; `pg_dump` gets the same settings for a snapshot.

use std::path::Path;

use berth_store::conformance::T0;
use berth_store::{JobStore, NewJob, PostgresStore, SnapshotFormat, Store};
use berth_testkit::pg::PgCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;

/// A CA's certificate (PEM) and what signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// Opens the store at `url` and writes a job through it.
async fn open(url: &str) -> Result<PostgresStore, String> {
    let store = PostgresStore::open(url, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    store
        .insert(vec![NewJob::new("q", "k", json!({}))], T0)
        .await
        .map_err(|e| e.to_string())?;
    Ok(store)
}

#[tokio::test]
async fn each_sslmode_against_a_server_that_takes_only_tls() {
    let (ca_pem, issuer) = ca("berth test CA");
    let server_key = KeyPair::generate().unwrap();
    // Named for `localhost` only: 127.0.0.1 is the same server under a name the
    // certificate does not hold.
    let server = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let cluster = PgCluster::start();
    cluster.enable_tls(&server.pem(), &server_key.serialize_pem(), true);
    let port = cluster.port();
    cluster.psql(
        &format!("postgres://postgres@localhost:{port}/postgres?sslmode=require"),
        "CREATE DATABASE tls",
    );

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let (other_pem, _) = ca("some other CA");
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other_pem).unwrap();
    let url = |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/tls?{query}");
    let root = |file: &Path| format!("sslrootcert={}", file.display());

    // The server refuses plain text, so every store that opens spoke TLS.
    let e = open(&url("localhost", "sslmode=disable"))
        .await
        .err()
        .unwrap();
    assert!(e.contains("no encryption"), "{e}");

    for query in [
        String::new(),
        "sslmode=prefer".to_owned(),
        "sslmode=require".to_owned(),
        format!("sslmode=verify-ca&{}", root(&ca_file)),
        format!("sslmode=verify-full&{}", root(&ca_file)),
        format!("sslmode=require&{}", root(&ca_file)),
    ] {
        open(&url("localhost", &query))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
    }
    // verify-ca checks the chain, not the name.
    open(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&{}", root(&ca_file)),
    ))
    .await
    .unwrap();

    // A certificate for another name, or from another CA, is refused, saying why and
    // what to check.
    let e = open(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&{}", root(&ca_file)),
    ))
    .await
    .err()
    .unwrap();
    assert!(e.contains("certificate not valid for name"), "{e}");
    assert!(e.contains("and name the URL's host"), "{e}");
    for query in [
        format!("sslmode=verify-full&{}", root(&other_file)),
        format!("sslmode=require&{}", root(&other_file)),
        // Without sslrootcert: the Mozilla roots, which did not sign this one.
        "sslmode=verify-full".to_owned(),
    ] {
        let e = open(&url("localhost", &query)).await.err().unwrap();
        assert!(e.contains("UnknownIssuer"), "{query}: {e}");
        assert!(e.contains("sslmode=verify-"), "{query}: {e}");
    }

    // pg_dump is pointed at the server with the same settings.
    let store = open(&url(
        "localhost",
        &format!("sslmode=verify-full&{}", root(&ca_file)),
    ))
    .await
    .unwrap();
    let dump = dir.path().join("store.dump");
    assert_eq!(store.snapshot(&dump).await.unwrap(), SnapshotFormat::PgDump);
    assert!(std::fs::metadata(&dump).unwrap().len() > 0);
}
