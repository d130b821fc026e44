//! `berth backup` as users run it: an archive made while `berth up` takes jobs, checked,
//! restored into an empty project and over a running berth (refused, then with --stop);
//! damaged archives refused; a failed backup recorded; scheduled backups pruned.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_store::SqliteStore;
use berth_testkit::{Project, wait_until};
use serde_json::{Value, json};

use crate::{parts, run_in, stop, up};
use berth_store::JobStore;
use berth_store::NodeStore;

fn config(backups: &str, extra: &str) -> String {
    format!(
        r#"[app]
name = "shop"
shutdown_grace = "1s"

[queue.work]
handler = "pull"

[backup]
dir = "{backups}"
include = ["media"]
{extra}
"#
    )
}

fn media(d: &Path) {
    std::fs::create_dir_all(d.join("media/invoices")).unwrap();
    std::fs::write(d.join("media/invoices/1.pdf"), vec![1u8; 100_000]).unwrap();
    std::fs::write(d.join("media/logo.svg"), "<svg/>").unwrap();
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The job ids of a SQLite store, read while berth is stopped.
async fn job_ids(db: &Path) -> Vec<i64> {
    let store = SqliteStore::open(db, Default::default()).unwrap();
    let n = store.count_jobs().await.unwrap();
    let jobs = store.export_jobs(0, n as u32 + 1).await.unwrap();
    jobs.iter().map(|j| j.id).collect()
}

#[tokio::test]
async fn a_backup_of_a_running_berth_restores_into_an_empty_project() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("berth.toml"), config("backups", "")).unwrap();
    media(d);
    let mut berth = up(d).await;

    // Jobs are pushed all along; ids acknowledged before the backup began must be in it.
    let client = Project::client_for(d);
    let pushing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (client, pushing) = (client.clone(), pushing.clone());
        tokio::spawn(async move {
            let mut acked: Vec<i64> = Vec::new();
            let mut n = 0;
            while pushing.load(Ordering::Acquire) {
                let jobs: Vec<Value> = (0..50)
                    .map(|_| {
                        n += 1;
                        json!({"queue": "work", "kind": "import", "args": {"n": n}})
                    })
                    .collect();
                let v = client
                    .post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
                    .await
                    .unwrap();
                acked.extend(
                    v["jobs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|j| j["id"].as_i64().unwrap()),
                );
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: i64 =
        client.get_json("/v1/queues").await.unwrap()["queues"][0]["counts"]["available"]
            .as_i64()
            .unwrap_or(0);
    let saved = tokio::task::spawn_blocking({
        let d = d.to_path_buf();
        move || run_in(&d, &["--json", "backup", "save"])
    })
    .await
    .unwrap();
    pushing.store(false, Ordering::Release);
    let acked = writer.await.unwrap();
    let (code, out, err) = parts(&saved);
    assert_eq!(code, 0, "{err}");
    let id = json_of(&out)["id"].as_str().unwrap().to_owned();
    stop(&mut berth);

    let (code, out, _) = parts(&run_in(d, &["backup", "list"]));
    assert_eq!(code, 0);
    assert!(out.contains(&id) && out.contains("keep"), "{out}");
    assert!(
        out.contains("HOLDS") && out.contains("store, 1 dir"),
        "{out}"
    );
    let (code, out, err) = parts(&run_in(d, &["backup", "verify", &id]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("backup {id} is whole: 3 files")),
        "{out}"
    );
    assert!(out.contains("every checksum matches"), "{out}");

    // A project with nothing in it yet, whose backup dir is the first one's.
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path();
    std::fs::write(
        e.join("berth.toml"),
        config(&d.join("backups").display().to_string(), ""),
    )
    .unwrap();
    let (code, out, err) = parts(&run_in(e, &["backup", "restore", &id]));
    assert_eq!(code, 6, "without --yes and no terminal: {out}{err}");
    assert!(err.contains("pass --yes to confirm"), "{err}");
    let (code, out, err) = parts(&run_in(e, &["backup", "restore", &id, "--yes"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("restored backup {id}")), "{out}");
    let ids = job_ids(&e.join(".berth/berth.db")).await;
    let count = ids.len() as i64;
    assert_eq!(
        ids,
        (1..=count).collect::<Vec<_>>(),
        "no gap: one moment of the store"
    );
    assert!(count >= before, "{count} < {before}");
    assert!(
        count < *acked.last().unwrap(),
        "jobs went on after the backup"
    );
    assert_eq!(
        std::fs::read(e.join("media/invoices/1.pdf")).unwrap(),
        std::fs::read(d.join("media/invoices/1.pdf")).unwrap()
    );
    // The restored project runs, with the jobs in its queue.
    let mut again = up(e).await;
    let v = Project::client_for(e).get_json("/v1/queues").await.unwrap();
    assert_eq!(v["queues"][0]["counts"]["available"].as_i64(), Some(count));
    stop(&mut again);
}

#[tokio::test]
async fn restore_refuses_a_running_berth_and_damaged_archives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("berth.toml"), config("backups", "")).unwrap();
    media(d);
    let mut berth = up(d).await;
    let push = |n: usize| {
        for i in 0..n {
            let (code, _, err) = parts(&run_in(
                d,
                &["job", "push", "work", "k", &format!("{{\"i\":{i}}}")],
            ));
            assert_eq!(code, 0, "{err}");
        }
    };
    push(3);
    let (code, out, err) = parts(&run_in(d, &["--json", "backup", "save"]));
    assert_eq!(code, 0, "{err}");
    let archive = json_of(&out);
    let (id, path) = (
        archive["id"].as_str().unwrap().to_owned(),
        archive["path"].as_str().unwrap().to_owned(),
    );
    push(2);
    std::fs::write(d.join("media/later.txt"), "after the backup").unwrap();

    // Damaged copies are refused by verify and restore, and nothing is touched.
    let bytes = std::fs::read(&path).unwrap();
    let bad = d.join("bad");
    std::fs::create_dir(&bad).unwrap();
    let truncated = bad.join(berth_backup::file_name("20260101T000000Z"));
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let truncated = truncated.display().to_string();
    let (code, _, err) = parts(&run_in(d, &["backup", "verify", &truncated]));
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot be trusted") && err.contains("truncated or corrupt"),
        "{err}"
    );

    // While berth runs, a restore is refused …
    let (code, _, err) = parts(&run_in(d, &["backup", "restore", &id, "--yes"]));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("is already running") && err.contains("pass --stop"),
        "{err}"
    );
    // … and a damaged archive is refused before berth is stopped.
    let (code, _, err) = parts(&run_in(
        d,
        &["backup", "restore", &truncated, "--yes", "--stop"],
    ));
    assert_ne!(code, 0);
    assert!(err.contains("cannot be trusted"), "{err}");
    assert!(berth.try_wait().unwrap().is_none(), "berth still runs");

    // A rollback in progress: the site in maintenance and a queue paused after the backup.
    for args in [&["maintenance", "on"][..], &["queue", "pause", "work"]] {
        let (code, _, err) = parts(&run_in(d, args));
        assert_eq!(code, 0, "{err}");
    }
    // With --stop, berth is stopped and the archive restored; the replaced data is kept.
    let (code, out, err) = parts(&run_in(
        d,
        &[
            "backup",
            "restore",
            &id,
            "--yes",
            "--stop",
            "--keep-replaced",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(berth.wait().unwrap().success(), "berth stopped cleanly");
    assert!(
        out.contains(&format!("restored backup {id}")) && out.contains(": 3 jobs"),
        "{out}"
    );
    assert!(out.contains("the replaced data is kept in"), "{out}");
    assert!(!d.join("media/later.txt").exists());
    let aside: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("media.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(d.join(&aside[0]).join("later.txt").exists());
    assert_eq!(job_ids(&d.join(".berth/berth.db")).await, [1, 2, 3]);
    // The settings in force when the restore began stay, not the archive's.
    assert!(
        out.contains("maintenance mode stays on") && out.contains("queue `work` stays paused"),
        "{out}"
    );
    // The restored store names the berth the restore stopped, with a fresh heartbeat:
    // that process is gone, so the next start is no twin of it.
    let mut again = up(d).await;
    let (code, out, err) = parts(&run_in(d, &["maintenance", "status"]));
    assert_eq!((code, out.starts_with("on since")), (0, true), "{out}{err}");
    let v = berth_testkit::Project::client_for(d)
        .get_json("/v1/queues")
        .await
        .unwrap();
    assert_eq!(v["queues"][0]["paused"], true, "{v}");
    stop(&mut again);

    // A backup that cannot be made says why and is recorded for notifications.
    std::fs::remove_dir_all(d.join("media")).unwrap();
    let (code, _, err) = parts(&run_in(d, &["backup", "save"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("the included directory") && err.contains("does not exist"),
        "{err}"
    );
    let store = SqliteStore::open(&d.join(".berth/berth.db"), Default::default()).unwrap();
    let events = store
        .events(berth_store::EventFilter {
            source: Some("backup".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["failed"],
        "the restored store knows the failure only"
    );
    assert!(
        events[0].event.message.contains("the manual backup failed"),
        "{}",
        events[0].event.message
    );

    // A restore that died half-way keeps berth from starting on half-swapped data.
    std::fs::write(
        d.join(".berth/restore-in-progress"),
        "a restore of X began at T",
    )
    .unwrap();
    let out = crate::run_expecting_exit(d, &["up"], Duration::from_secs(10));
    let (code, _, err) = parts(&out);
    assert_ne!(code, 0);
    assert!(
        err.contains("a restore did not finish: a restore of X began at T"),
        "{err}"
    );
}

#[tokio::test]
async fn scheduled_backups_are_made_and_pruned_by_the_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Every second; only the first of the day and the newest are kept.
    std::fs::write(
        d.join("berth.toml"),
        config(
            "backups",
            "schedule = \"* * * * * *\"\nkeep = { daily = 1 }",
        ),
    )
    .unwrap();
    media(d);
    let mut berth = up(d).await;
    let client = Project::client_for(d);
    let events = wait_until(
        "three scheduled backups",
        Duration::from_secs(20),
        || async {
            let v = client.get_json("/v1/events?source=backup").await.ok()?;
            let e = v["events"].as_array()?.clone();
            (e.len() >= 3).then_some(e)
        },
    )
    .await;
    stop(&mut berth);
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "completed" && e["subject"] == "scheduled"),
        "{events:?}"
    );
    let (code, out, err) = parts(&run_in(d, &["--json", "backup", "list"]));
    assert_eq!(code, 0, "{err}");
    let listed = json_of(&out)["backups"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|a| a["kept"] == true));
}

/// The archive a deploy made before its migration is what a rollback restores: the
/// tiers never prune it while its release is kept, even when a nightly `backup save
/// --prune` would (one archive a day kept here). The first deploy runs before the app's
/// SQLite file exists: its backup holds the database empty.
#[test]
fn the_tiers_keep_the_backups_rollbacks_restore() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("app.sqlite3");
    std::fs::write(
        d.join("berth.toml"),
        config(
            "backups",
            &format!(
                "keep = {{ daily = 1, weekly = 0, monthly = 0, yearly = 0 }}\n\n\
                 [backup.database.app]\nsqlite = \"app.sqlite3\"\n\n\
                 [deploy]\nmigrate = \"python3 migrate.py {}\"\nrestore_on_rollback = true\nhealth = \"0s\"\n",
                db.display()
            ),
        ),
    )
    .unwrap();
    media(d);
    // Each release's migration adds its own table.
    let table = |db: &Path| -> Vec<String> {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sqlite3,sys; print(' '.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute(\"select name from sqlite_master where type='table' order by name\")))"])
            .arg(db)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    // No database yet: the first release's migration creates it (its deploy's backup
    // holds it empty).
    for v in ["v1", "v2"] {
        let src = d.join(format!("src-{v}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(
            src.join("migrate.py"),
            format!("import sqlite3, sys\nsqlite3.connect(sys.argv[1]).execute('create table if not exists {v} (x)')\n"),
        )
        .unwrap();
        let (code, out, err) = parts(&run_in(d, &["deploy", &format!("./src-{v}")]));
        assert_eq!(code, 0, "{out}{err}");
    }
    assert_eq!(table(&db), ["v1", "v2"]);
    // The nightly backup, pruned by the tiers: only today's newest would be kept.
    let (code, out, err) = parts(&run_in(d, &["backup", "save", "--prune"]));
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = parts(&run_in(d, &["--json", "backup", "list"]));
    assert_eq!(
        json_of(&out)["backups"].as_array().unwrap().len(),
        3,
        "{out}"
    );
    // Back to v1: the databases as they were before v2's migration.
    let (code, out, err) = parts(&run_in(d, &["rollback"]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(table(&db), ["v1"]);
}

/// The API (and so the dashboard) lists the archives, makes one now (refusing a second
/// while it runs), and verifies one: whole, unknown, a path instead of an id, damaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_saves_and_verifies_backups() {
    let tmp = tempfile::tempdir().unwrap();
    let backups = tmp.path().join("backups");
    let p = Project::new(&config(backups.to_str().unwrap(), ""));
    media(p.dir());
    let mut berth = up(p.dir()).await;
    let c = p.client();
    let list = c.get_json("/v1/backups").await.unwrap();
    assert_eq!(list["backups"].as_array().unwrap().len(), 0, "{list}");
    assert_eq!(list["running"], false);
    let started = c.post_json("/v1/backups", json!({})).await.unwrap();
    assert_eq!(started["prune"], true, "{started}");
    // One at a time: a second start while the first runs is refused, or comes after it.
    let again = c.post_json("/v1/backups", json!({"prune": false})).await;
    if let Err(berth_api::client::ClientError::Api { status, code, .. }) = &again {
        assert_eq!((status.as_u16(), code.as_str()), (409, "backup_running"));
    }
    let typed: berth_api::types::BackupList =
        wait_until("the backup is listed", Duration::from_secs(30), || async {
            let l: berth_api::types::BackupList = c.get("/v1/backups").await.ok()?;
            (!l.running && !l.backups.is_empty()).then_some(l)
        })
        .await;
    let first = &typed.backups[0];
    assert!(first.kept && first.bytes > 1000, "{first:?}");
    assert!(
        first.parts.as_deref().is_some_and(|p| p.contains("store")),
        "{first:?}"
    );
    let ok: berth_api::types::BackupVerified = c
        .post(
            &format!("/v1/backups/{}/verify", first.id),
            &berth_api::types::NoBody {},
        )
        .await
        .unwrap();
    assert_eq!(ok.app, "shop");
    assert!(ok.files >= 3, "the store and two media files: {ok:?}");
    let events = c.get_json("/v1/events?source=backup").await.unwrap();
    assert!(
        events["events"][0]["message"]
            .as_str()
            .unwrap()
            .contains("made in"),
        "{events}"
    );
    let err = |r: Result<Value, berth_api::client::ClientError>| match r {
        Err(berth_api::client::ClientError::Api { status, code, .. }) => (status.as_u16(), code),
        other => panic!("expected a refusal: {other:?}"),
    };
    assert_eq!(
        err(c
            .post_json("/v1/backups/20200101T000000Z/verify", json!({}))
            .await),
        (404, "unknown_backup".into())
    );
    assert_eq!(
        err(c
            .post_json("/v1/backups/..%2Fberth.toml/verify", json!({}))
            .await),
        (400, "invalid".into())
    );
    // A damaged archive: cut in half.
    let path = Path::new(&first.path);
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        err(c
            .post_json(&format!("/v1/backups/{}/verify", first.id), json!({}))
            .await),
        (422, "backup_damaged".into())
    );
    stop(&mut berth);
}
