//! `berth import` as a team uses it: the configuration snippets of the five runbooks
//! (berth-import's fixtures), imported from the command line into the berth.toml the
//! fixtures expect, every untranslated line listed on stderr with its file and line,
//! and the result accepted by `berth check` once the directories and certificates it
//! names exist (they are made under a temporary root, where the files' absolute paths
//! are moved).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{berth, parts};

fn fixture(team: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../import/tests/fixtures")
        .join(team)
}

/// Creates what `berth check` opens: each `static` directory and the `tls` files.
fn make_paths(toml: &str) {
    let value = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("{key} = \""))? + key.len() + 4;
        Some(line[at..at + line[at..].find('"')?].to_string())
    };
    for line in toml.lines() {
        if line.starts_with("static = ") {
            std::fs::create_dir_all(value(line, "static").unwrap()).unwrap();
        }
        if line.starts_with("tls = {") {
            let (cert, key) = (value(line, "cert").unwrap(), value(line, "key").unwrap());
            std::fs::create_dir_all(Path::new(&cert).parent().unwrap()).unwrap();
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost", "-keyout", &key, "-out", &cert])
                .output()
                .expect("openssl");
            assert!(
                made.status.success(),
                "{}",
                String::from_utf8_lossy(&made.stderr)
            );
        }
    }
}

#[test]
fn each_runbooks_files_import_into_a_config_that_berth_check_accepts() {
    // Team, a line that must be listed as not translated.
    let teams = [
        ("joyce", "2-joyce.mi.hdm-stuttgart.de:36: location / { … }"),
        (
            "cloop",
            "2-loop:14: proxy_set_header X-Real-IP $remote_addr;",
        ),
        ("elife", ""),
        ("coog", "crontab:1: <min> <h> * * *"),
        ("teststand", "docker-compose.yml:49: db:"),
        ("procfile", "Procfile:4: release: python manage.py migrate"),
    ];
    for (team, listed) in teams {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_str().unwrap().to_string();
        let app = tmp.path().join(team);
        std::fs::create_dir(&app).unwrap();
        let mut files: Vec<String> = std::fs::read_dir(fixture(team))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "expected.toml")
            .collect();
        files.sort();
        let moved = |text: &str| {
            text.replace("/home/", &format!("{root}/home/"))
                .replace("/etc/letsencrypt/", &format!("{root}/etc/letsencrypt/"))
        };
        for f in &files {
            let text = std::fs::read_to_string(fixture(team).join(f)).unwrap();
            std::fs::write(app.join(f), moved(&text)).unwrap();
        }
        let mut args = vec!["import"];
        args.extend(files.iter().map(String::as_str));
        let out = berth()
            .current_dir(&app)
            .env("TZ", "UTC")
            .args(&args)
            .output()
            .unwrap();
        let (code, _, err) = parts(&out);
        assert_eq!(code, 0, "{team}: {err}");
        let written = std::fs::read_to_string(app.join("berth.toml")).unwrap();
        let expected = std::fs::read_to_string(fixture(team).join("expected.toml")).unwrap();
        assert_eq!(
            written,
            moved(&expected),
            "{team}: the CLI writes what the import gives"
        );
        if listed.is_empty() {
            assert!(err.contains("every line was translated"), "{team}: {err}");
        } else {
            assert!(err.contains("not translated"), "{team}: {err}");
            assert!(err.contains(listed), "{team}: {listed} in\n{err}");
        }
        make_paths(&written);
        let (code, out, err) = parts(&berth().current_dir(&app).arg("check").output().unwrap());
        assert_eq!(
            code, 0,
            "{team}: berth check refused the import:\n{out}{err}\n{written}"
        );

        // A second import does not replace the file unless asked to.
        let (code, _, err) = parts(&berth().current_dir(&app).args(&args).output().unwrap());
        assert_eq!(code, 1, "{team}");
        assert!(err.contains("already exists; pass --force"), "{err}");
        let (code, toml, _) = parts(
            &berth()
                .current_dir(&app)
                .env("TZ", "UTC")
                .args(&args)
                .arg("--stdout")
                .output()
                .unwrap(),
        );
        assert_eq!(
            (code, toml.as_str()),
            (0, written.as_str()),
            "{team}: --stdout"
        );
    }
}

#[test]
fn a_file_berth_cannot_tell_or_read_is_an_error_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("notes.txt"), "hello world\n").unwrap();
    let (code, _, err) = parts(
        &berth()
            .current_dir(d)
            .args(["import", "notes.txt"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("notes.txt: cannot tell what kind of file this is"),
        "{err}"
    );
    assert!(err.contains("name it with --format"), "{err}");
    let (code, _, err) = parts(
        &berth()
            .current_dir(d)
            .args(["import", "--format", "nginx", "notes.txt"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("notes.txt:1: `hello` is not ended with `;`"),
        "{err}"
    );
    let (code, _, err) = parts(
        &berth()
            .current_dir(d)
            .args(["import", "--format", "apache", "notes.txt"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2, "a usage error");
    assert!(
        err.contains("expected one of: supervisor, circus, procfile, crontab, nginx, compose"),
        "{err}"
    );
    assert!(!d.join("berth.toml").exists(), "nothing written");
}
