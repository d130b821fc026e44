//! The throwaway PostgreSQL cluster: start, databases, restart, drop, the shared one.

use std::net::TcpListener;
use std::time::Instant;

use berth_testkit::pg::{self, PgCluster};

#[test]
fn a_cluster_serves_its_databases_survives_a_restart_and_is_gone_after_drop() {
    let started = Instant::now();
    let cluster = PgCluster::start();
    eprintln!(
        "cluster on port {} started in {:?}",
        cluster.port(),
        started.elapsed()
    );
    assert_ne!(cluster.port(), 5432, "never the machine's shared server");
    assert_eq!(
        cluster.url(),
        format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port())
    );
    assert!(cluster.dir().starts_with(std::env::temp_dir()));

    let a = cluster.create_database("alpha");
    let b = cluster.fresh_database();
    assert_eq!(
        a,
        format!("postgres://postgres@127.0.0.1:{}/alpha", cluster.port())
    );
    assert_ne!(a, b);
    for url in [&a, &b] {
        assert_eq!(cluster.psql(url, "select 1"), "1");
    }
    assert_eq!(cluster.psql(&a, "show max_connections"), "200");
    assert_eq!(cluster.psql(&a, "show fsync"), "on");
    assert_eq!(cluster.psql(&a, "show server_encoding"), "UTF8");

    cluster.psql(&a, "create table t (x int); insert into t values (42)");
    let port = cluster.port();
    cluster.restart();
    assert_eq!(cluster.port(), port);
    assert_eq!(cluster.psql(&a, "select x from t"), "42");
    assert_eq!(cluster.psql(&b, "select 1"), "1");

    cluster.stop();
    cluster.start_again();
    assert_eq!(cluster.psql(&a, "select count(*) from t"), "1");

    let dir = cluster.dir().to_owned();
    drop(cluster);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
}

#[test]
fn fresh_databases_are_distinct() {
    let cluster = pg::shared();
    let urls: Vec<String> = (0..3).map(|_| cluster.fresh_database()).collect();
    for (i, url) in urls.iter().enumerate() {
        assert!(!urls[..i].contains(url));
        assert_eq!(
            cluster.psql(url, "select current_database() like 'test_%'"),
            "t"
        );
    }
}

#[test]
fn shared_is_one_cluster() {
    let first = pg::shared();
    let again = pg::shared();
    assert_eq!(first.port(), again.port());
    assert!(std::ptr::eq(first, again));
    assert_eq!(again.psql(&again.url(), "select 1"), "1");
}
