//! Config checks and CLI errors: clear messages, meaningful exit codes, nothing changed.

use crate::{parts, run_in};

#[test]
fn init_writes_a_starter_that_checks_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = parts(&run_in(dir.path(), &["init"]));
    assert_eq!(code, 0);
    assert!(out.contains("berth check"), "{out}");
    let (code, out, _) = parts(&run_in(dir.path(), &["check"]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok (app `myapp`, 2 queues (default, emails), 0 services)"),
        "{out}"
    );
    let (code, _, err) = parts(&run_in(dir.path(), &["init"]));
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
}

/// `check` says what it read from every section, as berth will run it.
#[test]
fn check_summarises_every_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("berth.toml"),
        r#"[app]
name = "shop"

[queue.default]
handler = { run = "true" }

[schedule.nightly]
cron = "0 3 * * *"
timezone = "Europe/Berlin"
job = { queue = "default", kind = "report" }

[workflow.publish.step.fetch]
handler = { run = "true" }

[workflow.publish.step.send]
parents = ["fetch"]
handler = { run = "true" }

[notify.admins]
webhook = "https://hooks.example.org/berth"
secret_env = "HOOK_SECRET"
on = ["job.discarded", "deploy.failed"]

[backup]
schedule = "0 4 * * *"

[backup.database.shop]
sqlite = "var/shop.sqlite3"

[deploy]
build = ["make"]
migrate = "make migrate"
"#,
    )
    .unwrap();
    let (code, out, err) = parts(&run_in(dir.path(), &["check"]));
    assert_eq!(code, 0, "{err}");
    for line in [
        "ok (app `shop`, 1 queue (default), 0 services)",
        "  store      SQLite in ",
        "  schedules  nightly (\"0 3 * * *\" Europe/Berlin: job report on default)",
        "  workflows  publish (2 steps)",
        "  notify     admins (webhook, on job.discarded, deploy.failed)",
        "  backup     into ",
        "\"0 4 * * *\" UTC, databases shop",
        "  deploy     directories or archives, into ",
        "1 build step, a migration, health 10.0s",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
}

#[test]
fn check_reports_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("berth.toml"),
        "[app]\nname = \"shop\"\n\n[queue.emails]\nconcurency = 4\ntimeout = \"5 parsecs\"\n",
    )
    .unwrap();
    let (code, _, err) = parts(&run_in(dir.path(), &["check"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("berth.toml:5:1"), "{err}");
    assert!(err.contains("did you mean `concurrency`?"), "{err}");
    assert!(err.contains("berth.toml:6:11"), "{err}");
    assert!(err.contains("5 parsecs"), "{err}");
    let (code, _, err) = parts(&run_in(dir.path(), &["--json", "check"]));
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(v["error"]["exit_code"], 3);
}

#[test]
fn a_missing_config_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = parts(&run_in(dir.path(), &["check"]));
    assert_eq!(code, 1);
    assert!(err.contains("berth init"), "{err}");
    let (code, _, err) = parts(&run_in(dir.path(), &["-c", "elsewhere.toml", "check"]));
    assert_eq!(code, 3);
    assert!(err.contains("elsewhere.toml"), "{err}");
}

#[test]
fn bad_arguments_are_refused_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), &["init"]);
    let (code, _, err) = parts(&run_in(dir.path(), &["job", "show", "twelve"]));
    assert_eq!(code, 2);
    assert!(err.contains("invalid value 'twelve'"), "{err}");
    let (code, _, err) = parts(&run_in(dir.path(), &["job", "frobnicate"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = parts(&run_in(
        dir.path(),
        &["job", "push", "default", "k", "{not json"],
    ));
    assert_eq!(code, 6);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = parts(&run_in(
        dir.path(),
        &[
            "job",
            "push",
            "default",
            "k",
            "--delay",
            "1m",
            "--run-at",
            "2030-01-01T00:00:00Z",
        ],
    ));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn commands_without_a_running_berth_say_so() {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), &["init"]);
    let (code, _, err) = parts(&run_in(dir.path(), &["status"]));
    assert_eq!(code, 69);
    assert!(err.contains("berth up"), "{err}");
}
