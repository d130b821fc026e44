//! What is particular to PostgreSQL: migrations under concurrency, clear connection
//! errors, wake-ups between nodes, surviving a server restart.

use std::time::Duration;

use berth_store::FlowStore;
use berth_store::JobStore;
use berth_store::conformance::T0;
use berth_store::{FetchRequest, NewJob, PostgresStore, StoreError};
use berth_testkit::pg::{PgCluster, shared};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_apply_the_migrations_once() {
    let url = shared().fresh_database();
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::open(&url, Default::default()).await })
        })
        .collect();
    for o in opens {
        o.await.unwrap().expect("every node opens");
    }
    let versions = shared().psql(&url, "SELECT count(*), max(version) FROM berth_schema");
    assert_eq!(
        versions,
        format!(
            "{}|{}",
            berth_store::postgres::SCHEMA_VERSION,
            berth_store::postgres::SCHEMA_VERSION
        )
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = shared().fresh_database();
    drop(PostgresStore::open(&url, Default::default()).await.unwrap());
    shared().psql(
        &url,
        "INSERT INTO berth_schema (version, berth) VALUES (99, '9.9.9')",
    );
    let err = PostgresStore::open(&url, Default::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer berth"), "{err}");
}

#[tokio::test]
async fn connection_errors_name_the_host_and_never_the_password() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://app:hunter2-secret@127.0.0.1:{port}/shop?connect_timeout=2");
    let err = PostgresStore::open(&url, Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.contains("database shop"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A wrong password on a real server.
    let cluster = shared();
    cluster.psql(&cluster.url(), "DO $$ BEGIN CREATE ROLE appuser LOGIN PASSWORD 'right'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    let bad = format!(
        "postgres://appuser:wrong-secret@127.0.0.1:{}/nosuchdb",
        cluster.port()
    );
    let err = PostgresStore::open(&bad, Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{}", cluster.port())),
        "{err}"
    );
    assert!(!err.contains("wrong-secret"), "{err}");
    let err = PostgresStore::open("postgres://a:b@/", Default::default())
        .await
        .err();
    assert!(err.is_some());
    let err = PostgresStore::open("mysql://x", Default::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("postgres://USER"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_on_one_node_wakes_the_others() {
    let url = shared().fresh_database();
    let a = PostgresStore::open(&url, Default::default()).await.unwrap();
    let b = PostgresStore::open(&url, Default::default()).await.unwrap();
    let mut wakes = b.wakeups().unwrap();
    // The listener announces itself with a wake-all once it listens.
    let first = tokio::time::timeout(Duration::from_secs(5), wakes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, berth_store::postgres::WAKE_ALL);
    a.insert(vec![NewJob::new("mail", "send", json!({}))], T0)
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), wakes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, "mail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_survived() {
    let cluster = PgCluster::start();
    let url = cluster.fresh_database();
    let s = PostgresStore::open(&url, Default::default()).await.unwrap();
    s.insert(vec![NewJob::new("q", "k", json!(1))], T0)
        .await
        .unwrap();
    cluster.restart();
    // The pooled connections died with the server; the next calls reconnect.
    let mut ok = None;
    for _ in 0..50 {
        match s.insert(vec![NewJob::new("q", "k", json!(2))], T0).await {
            Ok(r) => {
                ok = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(ok.is_some(), "the store reconnected after the restart");
    let got = s
        .fetch(FetchRequest {
            queue: "q".into(),
            limit: 10,
            worker: "w".into(),
            now: T0,
            lease_until: T0.plus(Duration::from_secs(60)),
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "nothing lost");
}

/// `copy_all` carries schedules, batches and workflows (ids and states kept) from the
/// embedded store to PostgreSQL, and a copied workflow goes on advancing there.
#[tokio::test]
async fn a_copy_to_postgres_keeps_schedules_batches_and_workflows() {
    use berth_store::{AttemptRef, Finish, FlowState, NewBatch, NewStep, NewWorkflow, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let from =
        berth_store::SqliteStore::open(&dir.path().join("berth.db"), Default::default()).unwrap();
    from.schedule_prepare("tick", "*/5 * * * * UTC", T0)
        .await
        .unwrap();
    let new_batch = |items: Vec<serde_json::Value>| NewBatch {
        queue: "b".into(),
        kind: "k".into(),
        items,
        job_size: 1,
        max_attempts: 1,
        priority: 0,
    };
    let batch = from
        .batch_create(new_batch(vec![json!(1), json!(2)]), T0)
        .await
        .unwrap();
    let step = |name: &str, parents: &[&str]| NewStep {
        name: name.into(),
        queue: "w".into(),
        kind: name.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        optional: false,
        max_attempts: 1,
        priority: 0,
    };
    let wf = from
        .workflow_start(
            NewWorkflow {
                name: "w".into(),
                input: json!({}),
                steps: vec![step("a", &[]), step("b", &["a"])],
                deadline: None,
                started_by: "test".into(),
                unique_key: None,
            },
            T0,
        )
        .await
        .unwrap();
    let to = PostgresStore::open(&shared().fresh_database(), Default::default())
        .await
        .unwrap();
    let report = berth_store::transfer::copy_all(&from, &to, false, T0, |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.jobs, report.flows), (4, 3));
    assert_eq!(
        to.export_flows().await.unwrap(),
        from.export_flows().await.unwrap()
    );
    // The copied workflow advances on PostgreSQL; new ids continue above the copied ones.
    let a = to
        .fetch(FetchRequest {
            queue: "w".into(),
            limit: 1,
            worker: "w1".into(),
            now: T0,
            lease_until: T0.plus(Duration::from_secs(60)),
        })
        .await
        .unwrap();
    to.finish(
        vec![Finish {
            attempt: AttemptRef {
                id: a[0].id,
                attempt: 1,
            },
            outcome: Outcome::Completed {
                result: Some(json!(1)),
                output: None,
            },
        }],
        T0,
    )
    .await
    .unwrap();
    let w = to.workflow(wf).await.unwrap().unwrap();
    assert_eq!(w.state, FlowState::Running);
    assert_eq!(w.steps[1].state, Some(berth_store::JobState::Available));
    let next = to
        .batch_create(new_batch(vec![json!(3)]), T0)
        .await
        .unwrap();
    assert!(next.id > batch.id);
}
