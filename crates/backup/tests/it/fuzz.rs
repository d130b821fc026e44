//! Archive reading against damaged archives (berth-mutate): a real archive, mutated
//! byte by byte, cut short or glued to another. Reading one never panics; it either
//! finds the archive whole (the same manifest as the one written) or refuses it,
//! saying it cannot be trusted and why; a restore is only ever made from the former.

use std::sync::{Arc, OnceLock};

use berth_backup::{BackupError, BackupSpec, Manifest, Progress};
use berth_store::{NewJob, SqliteStore, Store, Timestamp};
use proptest::prelude::*;
use serde_json::json;

fn quiet(_: Progress) {}

/// One archive of a small store and a media dir (a file, a nested one, a link), made
/// once: its bytes and its manifest.
fn archive() -> &'static (Vec<u8>, Manifest) {
    static ARCHIVE: OnceLock<(Vec<u8>, Manifest)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".berth")).unwrap();
        let media = dir.path().join("media");
        std::fs::create_dir_all(media.join("2026")).unwrap();
        std::fs::write(media.join("logo.png"), [0x89, b'P', b'N', b'G', 0, 1, 2]).unwrap();
        std::fs::write(media.join("2026/notes.txt"), "a note\n".repeat(40)).unwrap();
        std::os::unix::fs::symlink("logo.png", media.join("current.png")).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join(".berth/berth.db"), Default::default()).unwrap(),
        );
        runtime.block_on(async {
            let jobs = (0..20)
                .map(|i| NewJob::new("q", "k", json!({ "i": i })))
                .collect();
            store.insert(jobs, Timestamp::now()).await.unwrap();
        });
        let spec = BackupSpec {
            dir: dir.path().join("backups"),
            base: dir.path().to_path_buf(),
            include: vec![media],
            app: "shop".into(),
            databases: Vec::new(),
            missing_sqlite_is_empty: false,
        };
        let info = runtime
            .block_on(berth_backup::save(
                &*store,
                &spec,
                Timestamp::now(),
                Arc::new(quiet),
            ))
            .unwrap();
        let bytes = std::fs::read(&info.path).unwrap();
        let manifest = berth_backup::verify(&info.path, &quiet).unwrap();
        (bytes, manifest)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_damaged_archive_is_refused_with_why(bytes in berth_mutate::mixed(vec![archive().0.clone()], 4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shop-20261206T120000Z.tar.zst");
        std::fs::write(&path, &bytes).unwrap();
        match berth_backup::verify(&path, &quiet) {
            Ok(manifest) => prop_assert_eq!(&manifest, &archive().1),
            Err(BackupError::Damaged { detail, .. }) => prop_assert!(!detail.is_empty()),
            Err(other) => prop_assert!(false, "not refused as damaged: {}", other),
        }
        // Reading its parts (what `berth backup list` shows) never panics either.
        let _ = berth_backup::parts(&path);
    }
}
