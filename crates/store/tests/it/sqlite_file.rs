//! What is particular to the SQLite file: refusing files it must not touch, keeping what
//! it committed, and many writers sharing the group commit.

use std::sync::Arc;

use berth_store::JobStore;
use berth_store::conformance::T0;
use berth_store::{FetchRequest, JobFilter, NewJob, SqliteOptions, SqliteStore, StoreError};
use serde_json::json;

fn open(path: &std::path::Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(path, SqliteOptions::default())
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let garbage = b"this is not a database, it is a shopping list: eggs, milk\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = open(&path).err().expect("must refuse");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("not a readable berth database"), "{msg}");
    assert!(msg.contains("left untouched"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_database_from_a_newer_berth_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    drop(open(&path).unwrap());
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 999").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = open(&path).err().expect("must refuse");
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, 999);
            assert_eq!(*supported, berth_store::sqlite::SCHEMA_VERSION);
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("newer berth"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            .unwrap();
    }
    let err = open(&path).err().expect("must refuse");
    assert!(err.to_string().contains("another application"), "{err}");
}

#[tokio::test]
async fn committed_jobs_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let ids: Vec<i64> = {
        let s = open(&path).unwrap();
        let jobs = (0..100)
            .map(|i| NewJob::new("q", "k", json!({ "i": i })))
            .collect();
        s.insert(jobs, T0)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect()
    };
    // Let the writer thread of the dropped store finish closing.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let s = open(&path).unwrap();
    let all = s
        .list_jobs(JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all.last().unwrap().id, ids[0]);
    assert_eq!(all[0].args, json!({ "i": 99 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetchers_never_share_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir.path().join("berth.db")).unwrap());
    let jobs = (0..2000).map(|i| NewJob::new("q", "k", json!(i))).collect();
    s.insert(jobs, T0).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .fetch(FetchRequest {
                        queue: "q".into(),
                        limit: 7,
                        worker: format!("w{w}"),
                        now: T0,
                        lease_until: T0.plus(std::time::Duration::from_secs(60)),
                    })
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, 2000, "every job handed out");
    assert_eq!(all.len(), 2000, "no job handed out twice");
}

/// A database from before `split` (schema 10): its CHECKs take the new state after the
/// upgrade, the chunks split back then become `split`, and the file stays sound.
#[test]
fn an_older_database_learns_the_split_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    drop(open(&path).unwrap());
    {
        // Back to schema 10 as it was written: the CHECKs without 'split', and a chunk
        // split back then, stored as discarded with its `split_into`.
        let c = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .unwrap();
        c.execute_batch(&format!(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, ' OR state = ''split'')', ')')
                 WHERE type = 'table' AND name = 'jobs';
             PRAGMA schema_version = {};
             PRAGMA writable_schema = RESET;",
            v + 1
        ))
        .unwrap();
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'jobs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("split"), "{sql}");
        c.execute_batch(
            "INSERT INTO jobs (queue, kind, state, max_attempts, scheduled_at, finalized_at, result, created_at)
                 VALUES ('q', 'chunk', 'discarded', 1, 0, 1, '{\"split_into\":[2,3]}', 0);
             INSERT INTO jobs (queue, kind, state, max_attempts, scheduled_at, finalized_at, created_at)
                 VALUES ('q', 'item', 'discarded', 1, 0, 1, 0);
             DROP TABLE archived_jobs;
             ALTER TABLE tokens DROP COLUMN scopes;
             DROP TRIGGER IF EXISTS job_counts_insert;
             DROP TRIGGER job_counts_update;
             DROP TRIGGER job_counts_delete;
             DROP TABLE job_counts;
             DROP TRIGGER IF EXISTS message_counts_insert;
             DROP TRIGGER message_counts_update;
             DROP TRIGGER message_counts_delete;
             DROP TABLE message_counts;
             PRAGMA user_version = 10;",
        )
        .unwrap();
        let refused = c.execute(
            "INSERT INTO jobs (queue, kind, state, max_attempts, scheduled_at, finalized_at, created_at)
                 VALUES ('q', 'x', 'split', 1, 0, 1, 0)",
            [],
        );
        assert!(refused.is_err(), "the old CHECK refuses 'split'");
    }
    let s = open(&path).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stats = s.queue_stats().await.unwrap();
        let q = &stats[0];
        assert_eq!(q.counts[&berth_store::JobState::Split], 1, "{q:?}");
        assert_eq!(q.counts[&berth_store::JobState::Discarded], 1, "{q:?}");
    });
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    c.execute(
        "INSERT INTO jobs (queue, kind, state, max_attempts, scheduled_at, finalized_at, created_at)
             VALUES ('q', 'x', 'split', 1, 0, 1, 0)",
        [],
    )
    .expect("the new CHECK takes 'split'");
}
