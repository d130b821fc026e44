//! Backups of real stores: archives made while jobs are written, checked, refused when
//! damaged or changed, restored into an empty place; retention over a simulated year.

mod fuzz;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_backup::{
    ArchiveInfo, BackupError, BackupSpec, Keep, Progress, RestorePlan, RestoreTarget,
};
use berth_store::FlowStore;
use berth_store::JobStore;
use berth_store::SettingStore;
use berth_store::{NewJob, SqliteStore, Store, Timestamp};
use jiff::tz::TimeZone;
use serde_json::json;

fn quiet(_: Progress) {}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// A project dir with a media dir of a few files, one nested, one link.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".berth")).unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir_all(media.join("2026/12")).unwrap();
    std::fs::write(media.join("logo.png"), [0x89, b'P', b'N', b'G', 0, 1, 2]).unwrap();
    std::fs::write(media.join("2026/12/report.pdf"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("logo.png", media.join("current.png")).unwrap();
    dir
}

fn spec(base: &Path) -> BackupSpec {
    BackupSpec {
        dir: base.join("backups"),
        base: base.to_path_buf(),
        include: vec![base.join("media")],
        app: "shop".into(),
        databases: Vec::new(),
        missing_sqlite_is_empty: false,
    }
}

async fn push(store: &dyn Store, n: usize) -> Vec<i64> {
    let jobs = (0..n)
        .map(|i| NewJob::new("q", "import", json!({ "n": i })))
        .collect();
    store
        .insert(jobs, Timestamp::now())
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

/// An archive made while another task writes jobs holds every job committed before it
/// began and no gap (the copy is one moment of the store); restored into an empty data
/// dir and project, it brings back the jobs and the included files as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_jobs_are_written_restores_into_an_empty_place() {
    let src = project();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&src.path().join(".berth/berth.db"), Default::default()).unwrap(),
    );
    let before = push(&*store, 500).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut written = Vec::new();
            for _ in 0..200 {
                written.extend(push(&*store, 20).await);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let phases = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let seen = phases.clone();
    let report = move |p: Progress| {
        seen.lock().unwrap().insert(format!("{:?}", p.phase));
    };
    let archive = berth_backup::save(
        &*store,
        &spec(src.path()),
        Timestamp::now(),
        Arc::new(report),
    )
    .await
    .unwrap();
    let written = writer.await.unwrap();
    assert!(archive.path.ends_with(berth_backup::file_name(&archive.id)));
    assert_eq!(
        *phases.lock().unwrap(),
        BTreeSet::from(["Archive".to_string(), "Snapshot".to_string()])
    );
    // Nothing but the archive is left in the backup dir.
    let names: Vec<String> = std::fs::read_dir(src.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [berth_backup::file_name(&archive.id)]);

    let manifest = berth_backup::verify(&archive.path, &quiet).unwrap();
    assert_eq!(manifest.app, "shop");
    assert_eq!(manifest.includes, ["media"]);
    let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "parts.json",
            "store/berth.db",
            "files/0",
            "files/0/2026",
            "files/0/2026/12",
            "files/0/2026/12/report.pdf",
            "files/0/current.png",
            "files/0/logo.png"
        ]
    );

    // Restore into a project that has nothing yet.
    let dst = tempfile::tempdir().unwrap();
    let data_dir = dst.path().join(".berth");
    let restored = berth_backup::restore(
        &RestorePlan {
            archive: archive.path.clone(),
            target: RestoreTarget::Sqlite {
                data_dir: data_dir.clone(),
                db_file: "berth.db".into(),
            },
            base: dst.path().to_path_buf(),
            keep_replaced: false,
            stamp: "t1".into(),
            verified: None,
            databases: Vec::new(),
            includes: vec!["media".into()],
        },
        Arc::new(quiet),
    )
    .await
    .unwrap();
    assert_eq!(restored.dirs, [dst.path().join("media")]);
    assert!(restored.kept_aside.is_empty());
    // Nothing of the restore's own is left behind.
    let mut left: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["berth.db"]);
    let copy = SqliteStore::open(&data_dir.join("berth.db"), Default::default()).unwrap();
    let count = copy.count_jobs().await.unwrap();
    // Every job committed before the backup began; ids from 1 up without a gap.
    assert!(count >= before.len() as u64, "{count}");
    for id in [1, count as i64] {
        assert!(copy.job(id).await.unwrap().is_some(), "job {id}");
    }
    assert!(copy.job(count as i64 + 1).await.unwrap().is_none());
    assert!(
        count < (before.len() + written.len()) as u64,
        "the writer went on after the copy"
    );
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        read(&dst.path().join("media/2026/12/report.pdf")),
        read(&src.path().join("media/2026/12/report.pdf"))
    );
    assert_eq!(
        std::fs::read_link(dst.path().join("media/current.png")).unwrap(),
        Path::new("logo.png")
    );
}

/// Replaced data is moved aside and kept when asked; the store that was there and the
/// included directory are both put back by a second restore of the first state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_replaces_current_data_and_can_keep_it_aside() {
    let p = project();
    let db = p.path().join(".berth/berth.db");
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    push(&store, 3).await;
    let first = berth_backup::save(
        &store,
        &spec(p.path()),
        at("2026-12-01T03:00:00Z"),
        Arc::new(quiet),
    )
    .await
    .unwrap();
    push(&store, 4).await;
    std::fs::write(p.path().join("media/new.txt"), "added later").unwrap();
    drop(store);
    let report = berth_backup::restore(
        &RestorePlan {
            archive: first.path.clone(),
            target: RestoreTarget::Sqlite {
                data_dir: p.path().join(".berth"),
                db_file: "berth.db".into(),
            },
            base: p.path().to_path_buf(),
            keep_replaced: true,
            stamp: "t2".into(),
            verified: None,
            databases: Vec::new(),
            includes: vec!["media".into()],
        },
        Arc::new(quiet),
    )
    .await
    .unwrap();
    let store = SqliteStore::open(&db, Default::default()).unwrap();
    assert_eq!(store.count_jobs().await.unwrap(), 3);
    assert!(!p.path().join("media/new.txt").exists());
    let mut aside = report.kept_aside.clone();
    aside.sort();
    assert_eq!(
        aside,
        [
            p.path().join(".berth/replaced-t2"),
            p.path().join("media.replaced-t2")
        ]
    );
    assert!(p.path().join("media.replaced-t2/new.txt").exists());
    let kept = SqliteStore::open(
        &p.path().join(".berth/replaced-t2/berth.db"),
        Default::default(),
    )
    .unwrap();
    assert_eq!(kept.count_jobs().await.unwrap(), 7);
}

/// Rewrites an archive with one change made by `edit` to the bytes of entry `name`,
/// keeping its manifest: a valid zstd stream and tar whose contents were changed.
fn repack(from: &Path, to: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) {
    let mut input =
        tar::Archive::new(zstd::Decoder::new(std::fs::File::open(from).unwrap()).unwrap());
    let out = zstd::Encoder::new(std::fs::File::create(to).unwrap(), 3).unwrap();
    let mut builder = tar::Builder::new(out);
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_str().unwrap().to_owned();
        let mut header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == name {
            edit(&mut data);
        }
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_changed_archives_are_refused_and_nothing_is_touched() {
    let p = project();
    let store = SqliteStore::open(&p.path().join(".berth/berth.db"), Default::default()).unwrap();
    push(&store, 5).await;
    let good = berth_backup::save(&store, &spec(p.path()), Timestamp::now(), Arc::new(quiet))
        .await
        .unwrap();
    drop(store);
    let bytes = std::fs::read(&good.path).unwrap();
    let bad = tempfile::tempdir().unwrap();
    let refused = |path: &Path| match berth_backup::verify(path, &quiet) {
        Err(BackupError::Damaged { detail, .. }) => detail,
        other => panic!("expected the archive to be refused, got {other:?}"),
    };

    let truncated = bad.path().join("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let why = refused(&truncated);
    assert!(why.contains("truncated or corrupt"), "{why}");

    let flipped = bad.path().join("flipped.tar.zst");
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&flipped, &b).unwrap();
    refused(&flipped);

    let changed = bad.path().join("changed.tar.zst");
    repack(&good.path, &changed, "files/0/logo.png", |d| d[1] = b'J');
    let why = refused(&changed);
    assert_eq!(
        why,
        "files/0/logo.png does not match its checksum in the manifest (it was changed)"
    );

    let removed = bad.path().join("no-manifest.tar.zst");
    repack(&good.path, &removed, "manifest.json", |d| d.clear());
    let why = refused(&removed);
    assert!(why.contains("manifest is not valid"), "{why}");

    // A restore of a changed archive touches nothing.
    let before = std::fs::read(p.path().join(".berth/berth.db")).unwrap();
    let err = berth_backup::restore(
        &RestorePlan {
            archive: changed.clone(),
            target: RestoreTarget::Sqlite {
                data_dir: p.path().join(".berth"),
                db_file: "berth.db".into(),
            },
            base: p.path().to_path_buf(),
            keep_replaced: false,
            stamp: "t3".into(),
            verified: None,
            databases: Vec::new(),
            includes: vec!["media".into()],
        },
        Arc::new(quiet),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::Damaged { .. }), "{err}");
    assert_eq!(
        std::fs::read(p.path().join(".berth/berth.db")).unwrap(),
        before
    );
    assert!(!p.path().join("media.restoring-t3").exists());
    assert!(!p.path().join(".berth/.restore-t3.store").exists());
}

fn archive(id_time: Timestamp) -> ArchiveInfo {
    let id = berth_backup::id_at(id_time);
    ArchiveInfo {
        path: format!("/backups/{}", berth_backup::file_name(&id)).into(),
        id,
        created: id_time,
        size: 1,
    }
}

/// A year of daily backups at 03:00 (and two made by hand), pruned after each one as the
/// scheduler does, keeps exactly: the last 7 days, the first of each of the last 4 ISO
/// weeks, the first of each month, the first of the year, and the newest.
#[test]
fn retention_over_a_simulated_year_keeps_exactly_the_tiers() {
    let keep = Keep {
        daily: 7,
        weekly: 4,
        monthly: 12,
        yearly: 3,
    };
    let tz = TimeZone::UTC;
    let mut held: Vec<ArchiveInfo> = Vec::new();
    let mut day = jiff::civil::date(2026, 1, 1);
    let end = jiff::civil::date(2026, 12, 31);
    let stamp = |d: jiff::civil::Date, h: i8| {
        let ts = d
            .at(h, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap()
            .timestamp();
        Timestamp(ts.as_microsecond())
    };
    while day <= end {
        let mut made = vec![stamp(day, 3)];
        if day == jiff::civil::date(2026, 12, 30) || day == end {
            made.push(stamp(day, 15));
        }
        for t in made {
            held.push(archive(t));
            let kept = berth_backup::plan(&held, keep, &tz);
            held.retain(|a| kept.contains(&a.id));
        }
        day = day.tomorrow().unwrap();
    }
    let ids: Vec<String> = held.iter().map(|a| a.id.clone()).collect();
    let mut expected: Vec<String> = (1..=12)
        .map(|m| format!("2026{m:02}01T030000Z"))
        .chain([7, 14, 21].map(|d| format!("202612{d:02}T030000Z")))
        .chain((25..=31).map(|d| format!("202612{d:02}T030000Z")))
        .chain(["20261231T150000Z".to_string()])
        .collect();
    expected.sort();
    assert_eq!(ids, expected);

    // In another zone, the day an archive falls on is that zone's: 23:30 UTC on the
    // 1st is the 2nd in Berlin, so the next day's 03:00 UTC archive is not the first.
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    let two = [
        archive(at("2026-03-01T23:30:00Z")),
        archive(at("2026-03-02T03:00:00Z")),
        archive(at("2026-03-03T03:00:00Z")),
    ];
    let daily_only = Keep {
        daily: 2,
        ..Keep::default()
    };
    let kept = berth_backup::plan(&two, daily_only, &berlin);
    assert_eq!(
        kept,
        BTreeSet::from([
            "20260301T233000Z".to_string(),
            "20260303T030000Z".to_string()
        ])
    );
    let kept = berth_backup::plan(&two, daily_only, &TimeZone::UTC);
    assert_eq!(
        kept,
        BTreeSet::from([
            "20260302T030000Z".to_string(),
            "20260303T030000Z".to_string()
        ])
    );
}

/// The same on PostgreSQL: `pg_dump` while the store is in use, restored over later
/// changes (kept aside as a dump) and into a database that is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_over_changes_and_into_an_empty_database() {
    use berth_store::{PostgresOptions, PostgresStore};
    let cluster = berth_testkit::pg::shared();
    let url = cluster.fresh_database();
    let p = project();
    let store = PostgresStore::open(&url, PostgresOptions::default())
        .await
        .unwrap();
    push(&store, 50).await;
    let archive = berth_backup::save(&store, &spec(p.path()), Timestamp::now(), Arc::new(quiet))
        .await
        .unwrap();
    let manifest = berth_backup::verify(&archive.path, &quiet).unwrap();
    assert_eq!(manifest.store_entry(), "store/berth.pgdump");
    push(&store, 5).await;
    drop(store);
    let plan = |url: &str, stamp: &str| RestorePlan {
        archive: archive.path.clone(),
        target: RestoreTarget::Postgres {
            data_dir: p.path().join(".berth"),
            url: url.to_owned(),
        },
        base: p.path().to_path_buf(),
        keep_replaced: true,
        stamp: stamp.into(),
        verified: None,
        includes: vec!["media".into()],
        databases: Vec::new(),
    };
    let report = berth_backup::restore(&plan(&url, "pg1"), Arc::new(quiet))
        .await
        .unwrap();
    assert!(
        report
            .kept_aside
            .contains(&p.path().join(".berth/replaced-pg1.pgdump"))
    );
    let store = PostgresStore::open(&url, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(store.count_jobs().await.unwrap(), 50);
    // New ids continue after the restored ones.
    assert_eq!(push(&store, 1).await, [51]);

    let empty = cluster.fresh_database();
    std::fs::remove_dir_all(p.path().join("media")).unwrap();
    berth_backup::restore(&plan(&empty, "pg2"), Arc::new(quiet))
        .await
        .unwrap();
    let copy = PostgresStore::open(&empty, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(copy.count_jobs().await.unwrap(), 50);
    assert!(p.path().join("media/logo.png").exists());
    // An archive of the embedded store is refused for a PostgreSQL target.
    let sqlite = SqliteStore::open(&p.path().join(".berth/berth.db"), Default::default()).unwrap();
    let other = berth_backup::save(&sqlite, &spec(p.path()), Timestamp::now(), Arc::new(quiet))
        .await
        .unwrap();
    let err = berth_backup::restore(
        &RestorePlan {
            archive: other.path,
            ..plan(&empty, "pg3")
        },
        Arc::new(quiet),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the archive holds the embedded SQLite store, and this config's store is a PostgreSQL store"),
        "{err}"
    );
}

/// Writes an archive of the given entries (no manifest): (name, link target or file bytes).
fn craft(to: &Path, entries: &[(&str, Result<&str, &[u8]>)]) {
    let out = zstd::Encoder::new(std::fs::File::create(to).unwrap(), 3).unwrap();
    let mut b = tar::Builder::new(out);
    for (name, what) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        match what {
            Ok(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, name, target).unwrap();
            }
            Err(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(bytes.len() as u64);
                b.append_data(&mut h, name, *bytes).unwrap();
            }
        }
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// An archive cannot write through a link it made, nor carry bytes after its end, nor
/// restore a directory the config does not include; an included directory that is a
/// link is archived as the directory it points to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_stay_in_their_place() {
    let bad = tempfile::tempdir().unwrap();
    let through = bad.path().join("through.tar.zst");
    craft(
        &through,
        &[("files/0/l", Ok("/")), ("files/0/l/etc-x", Err(b"boom"))],
    );
    match berth_backup::verify(&through, &quiet) {
        Err(BackupError::Damaged { detail, .. }) => {
            assert!(
                detail.contains("would be written outside its place"),
                "{detail}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let p = project();
    // `media` is a link to the real directory.
    std::fs::rename(p.path().join("media"), p.path().join("real-media")).unwrap();
    std::os::unix::fs::symlink("real-media", p.path().join("media")).unwrap();
    let store = SqliteStore::open(&p.path().join(".berth/berth.db"), Default::default()).unwrap();
    let archive = berth_backup::save(&store, &spec(p.path()), Timestamp::now(), Arc::new(quiet))
        .await
        .unwrap();
    drop(store);
    let manifest = berth_backup::verify(&archive.path, &quiet).unwrap();
    assert!(
        manifest
            .entries
            .iter()
            .any(|e| e.path == "files/0/2026/12/report.pdf"),
        "{:?}",
        manifest.entries
    );

    let appended = bad.path().join("appended.tar.zst");
    let mut bytes = std::fs::read(&archive.path).unwrap();
    bytes.extend_from_slice(b"and some more");
    std::fs::write(&appended, &bytes).unwrap();
    assert!(matches!(
        berth_backup::verify(&appended, &quiet),
        Err(BackupError::Damaged { .. })
    ));

    let err = berth_backup::restore(
        &RestorePlan {
            archive: archive.path.clone(),
            target: RestoreTarget::Sqlite {
                data_dir: p.path().join(".berth"),
                db_file: "berth.db".into(),
            },
            base: p.path().to_path_buf(),
            keep_replaced: false,
            stamp: "t4".into(),
            verified: None,
            databases: Vec::new(),
            includes: vec!["uploads".into()],
        },
        Arc::new(quiet),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the archive holds the directory media, which this config does not include"),
        "{err}"
    );
}

/// The settings in force before a restore are put back into the restored store:
/// maintenance mode on or off, queues and schedules paused or running, and a paused
/// schedule the archive does not know yet is recreated paused.
#[tokio::test]
async fn settings_in_force_are_kept_over_the_archives() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| SqliteStore::open(&dir.path().join(name), Default::default()).unwrap();
    let now = at("2026-12-05T10:00:00Z");
    // The archive: maintenance off, queue `a` paused, schedules `x` paused and `y` running.
    let archived = open("archived.db");
    archived.set_paused("a", true, now).await.unwrap();
    for name in ["x", "y"] {
        archived
            .schedule_prepare(name, "* * * * *", now)
            .await
            .unwrap();
    }
    archived.schedule_set_paused("x", true).await.unwrap();
    // What is in force now: maintenance on, queue `b` paused, schedules `y` and `z` paused.
    let current = open("current.db");
    let page = json!({"message": "rolling back", "since": now.to_string()});
    current
        .set_setting("maintenance", Some(page.clone()), now)
        .await
        .unwrap();
    current.set_paused("b", true, now).await.unwrap();
    for name in ["x", "y", "z"] {
        current
            .schedule_prepare(name, "* * * * *", now)
            .await
            .unwrap();
    }
    for name in ["y", "z"] {
        current.schedule_set_paused(name, true).await.unwrap();
    }
    let in_force = berth_backup::InForce::read(&current).await.unwrap();
    let said = in_force.apply(&archived, now).await.unwrap();
    assert_eq!(
        berth_backup::InForce::read(&archived).await.unwrap(),
        in_force,
        "{said:?}"
    );
    assert_eq!(archived.setting("maintenance").await.unwrap(), Some(page));
    assert_eq!(said.len(), 6, "{said:?}");
    assert!(
        said.contains(&"maintenance mode stays on (it was off in the archive)".to_owned()),
        "{said:?}"
    );
    // Applied again, nothing is left to change.
    assert!(in_force.apply(&archived, now).await.unwrap().is_empty());
}

/// The application's own databases travel in the archive beside the store: a SQLite
/// file, a PostgreSQL database and a MariaDB one. After a "migration" (a new column, a new
/// table, more rows) a restore puts each back as it was; an archive's database that the
/// config does not name, or names as another kind, is refused before anything changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_databases_are_archived_and_restored() {
    use berth_backup::{DatabaseSource, DatabaseSpec};
    let p = project();
    let store = SqliteStore::open(&p.path().join(".berth/berth.db"), Default::default()).unwrap();
    push(&store, 3).await;
    // SQLite: the app's own file.
    let app_db = p.path().join("var/app.sqlite3");
    std::fs::create_dir_all(app_db.parent().unwrap()).unwrap();
    let sqlite = |sql: &str| {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.executescript(sys.argv[2]) if ';' in sys.argv[2] else c.execute(sys.argv[2]); print(r.fetchall() if ';' not in sys.argv[2] else ''); c.commit()")
            .arg(&app_db)
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    sqlite(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes (body) VALUES ('a'), ('b');",
    );
    // PostgreSQL: the app's database, behind a password.
    let cluster = berth_testkit::pg::shared();
    let pg_url = cluster.fresh_database();
    cluster.psql(
        &pg_url,
        "CREATE TABLE orders (id serial PRIMARY KEY, total int); \
         INSERT INTO orders (total) VALUES (10), (20), (30);",
    );
    let mut databases = vec![
        DatabaseSpec {
            name: "notes".into(),
            source: DatabaseSource::Sqlite {
                path: app_db.clone(),
            },
        },
        DatabaseSpec {
            name: "shop".into(),
            source: DatabaseSource::Postgres {
                url: pg_url.clone(),
                password: None,
            },
        },
    ];
    // MariaDB where its server is installed.
    let maria =
        berth_testkit::mariadb::MariaDb::available().then(berth_testkit::mariadb::MariaDb::start);
    if let Some(m) = &maria {
        m.sql(
            "",
            "CREATE DATABASE lms; USE lms; CREATE TABLE courses (id int PRIMARY KEY, title varchar(40)); \
             INSERT INTO courses VALUES (1, 'maths'), (2, 'physics');",
        );
        databases.push(DatabaseSpec {
            name: "lms".into(),
            source: DatabaseSource::Mysql(berth_store::external::Mysql {
                host: "127.0.0.1".into(),
                port: m.port(),
                user: "app".into(),
                database: "lms".into(),
                password: Some(berth_testkit::mariadb::MariaDb::PASSWORD.into()),
            }),
        });
    } else {
        println!("MariaDB's server is not installed: its part of this test is skipped");
    }
    let mut s = spec(p.path());
    s.databases = databases.clone();
    let archive = berth_backup::save(&store, &s, Timestamp::now(), Arc::new(quiet))
        .await
        .unwrap();
    let manifest = berth_backup::verify(&archive.path, &quiet).unwrap();
    let held: Vec<(String, &str)> = manifest
        .databases
        .iter()
        .map(|d| (d.name.clone(), d.format.describe()))
        .collect();
    let mut expected = vec![
        ("notes".to_owned(), "SQLite"),
        ("shop".to_owned(), "PostgreSQL"),
    ];
    if maria.is_some() {
        expected.push(("lms".to_owned(), "MySQL"));
    }
    assert_eq!(held, expected);
    // The listing reads the same from the archive's first entry alone.
    let parts = berth_backup::parts(&archive.path).unwrap().unwrap();
    assert_eq!(parts.databases, manifest.databases);
    assert!(
        parts
            .describe()
            .starts_with("store, 1 dir, notes (SQLite), shop (PostgreSQL)"),
        "{}",
        parts.describe()
    );
    assert!(
        manifest
            .entries
            .iter()
            .any(|e| e.path == "databases/shop.pgdump" && e.size > 0)
    );

    // A migration and new rows everywhere.
    sqlite(
        "ALTER TABLE notes ADD COLUMN tag TEXT; CREATE TABLE later (x int); INSERT INTO notes (body) VALUES ('c');",
    );
    cluster.psql(
        &pg_url,
        "ALTER TABLE orders ADD COLUMN note text; CREATE TABLE later (x int); \
         INSERT INTO orders (total) VALUES (40);",
    );
    if let Some(m) = &maria {
        m.sql(
            "lms",
            "ALTER TABLE courses ADD COLUMN room int; CREATE TABLE later (x int); \
             INSERT INTO courses VALUES (3, 'art', 1);",
        );
    }
    drop(store);
    let plan = |dbs: Vec<DatabaseSpec>, stamp: &str| RestorePlan {
        archive: archive.path.clone(),
        target: RestoreTarget::Sqlite {
            data_dir: p.path().join(".berth"),
            db_file: "berth.db".into(),
        },
        base: p.path().to_path_buf(),
        keep_replaced: false,
        stamp: stamp.into(),
        verified: None,
        includes: vec!["media".into()],
        databases: dbs,
    };
    // Refused: the config lacks a database the archive holds, or names it as another kind.
    let err = berth_backup::restore(&plan(databases[..1].to_vec(), "r0"), Arc::new(quiet))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the archive holds the database `shop`, which this config does not name"),
        "{err}"
    );
    let mut wrong = databases.clone();
    wrong[1].source = DatabaseSource::Sqlite {
        path: p.path().join("shop.db"),
    };
    let err = berth_backup::restore(&plan(wrong, "r1"), Arc::new(quiet))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("as a PostgreSQL database"), "{err}");
    assert_eq!(
        sqlite("SELECT count(*) FROM notes"),
        "[(3,)]",
        "nothing changed"
    );

    berth_backup::restore(&plan(databases.clone(), "r2"), Arc::new(quiet))
        .await
        .unwrap();
    assert_eq!(sqlite("SELECT count(*) FROM notes"), "[(2,)]");
    assert_eq!(
        sqlite("SELECT name FROM sqlite_master WHERE name = 'later'"),
        "[]"
    );
    assert_eq!(
        cluster.psql(&pg_url, "SELECT count(*) FROM orders").trim(),
        "3"
    );
    assert_eq!(
        cluster
            .psql(
                &pg_url,
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'"
            )
            .trim(),
        "0"
    );
    assert_eq!(
        cluster
            .psql(
                &pg_url,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'later'"
            )
            .trim(),
        "0"
    );
    if let Some(m) = &maria {
        assert_eq!(m.sql("lms", "SELECT count(*) FROM courses").trim(), "2");
        assert_eq!(
            m.sql(
                "lms",
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'lms' AND column_name = 'room'"
            )
            .trim(),
            "0"
        );
        assert_eq!(
            m.sql(
                "lms",
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lms' AND table_name = 'later'"
            )
            .trim(),
            "0"
        );
    }
}
