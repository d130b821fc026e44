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

[ingest.stands]
mqtt = { listen = "127.0.0.1:1883", websocket = "127.0.0.1:9001", auth = "anonymous" }
topics = ["stands/+/status"]
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
        "stands (MQTT on 127.0.0.1:1883, over WebSocket on 127.0.0.1:9001)",
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

/// A stand page's token reads messages and pushes onto its own queue over the TCP API,
/// and is refused on everything else, writes first of all; the admin token still reaches
/// everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_tokens_reach_only_what_their_scopes_name() {
    let port = berth_testkit::free_port_run(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            "[app]\nname = \"scopes\"\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [queue.imports]\nhandler = \"pull\"\n\n[queue.mail]\nhandler = \"pull\"\n"
        ),
    )
    .unwrap();
    let added = crate::run_with_input(
        d,
        &["user", "add", "page", "--password-stdin"],
        "pw-of-the-page\n",
    );
    assert_eq!(parts(&added).0, 0, "{:?}", parts(&added));
    let (code, scoped, err) = parts(&run_in(
        d,
        &[
            "token",
            "create",
            "page",
            "--scope",
            "messages:read",
            "--scope",
            "jobs:push:imports",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("with scopes messages:read, jobs:push:imports"),
        "{err}"
    );
    let (code, plain, _) = parts(&run_in(d, &["token", "create", "page"]));
    assert_eq!(code, 0);
    let (code, _, err) = parts(&run_in(
        d,
        &["token", "create", "page", "--scope", "jobs:write"],
    ));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("expected one of"), "{err}");
    let (_, list, _) = parts(&run_in(d, &["token", "list"]));
    assert!(list.contains("messages:read,jobs:push:imports"), "{list}");
    let admin = "admin-token-of-enough-length";
    let mut berth = crate::up_with_env(d, &[("BERTH_API_TOKEN", admin)]).await;
    let call = |token: &str, method: &str, path: &str, body: Option<&str>| {
        let mut c = std::process::Command::new("curl");
        c.args(["-s", "-w", "\n%{http_code}", "-X", method])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("http://127.0.0.1:{port}{path}"));
        if let Some(b) = body {
            c.args(["-H", "content-type: application/json", "-d", b]);
        }
        let out = c.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let scoped = scoped.trim();
    let (status, body) = call(scoped, "GET", "/v1/messages", None);
    assert_eq!(status, "200", "{body}");
    let (status, body) = call(scoped, "GET", "/v1/messages/counts", None);
    assert_eq!(status, "200", "{body}");
    let push = |q: &str| format!(r#"{{"queue": "{q}", "kind": "row"}}"#);
    let (status, body) = call(scoped, "POST", "/v1/jobs", Some(&push("imports")));
    assert_eq!(status, "201", "{body}");
    // Writes it was not given: refused, saying which scope it would need.
    let (status, body) = call(scoped, "POST", "/v1/jobs", Some(&push("mail")));
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("jobs:push:mail"), "{body}");
    for (method, path) in [
        ("POST", "/v1/messages/1/replay"),
        ("POST", "/v1/queues/imports/purge"),
        ("DELETE", "/v1/jobs/1"),
        ("POST", "/v1/reload"),
        ("GET", "/v1/jobs"),
    ] {
        let (status, body) = call(scoped, method, path, Some("{}"));
        assert_eq!(status, "403", "{method} {path}: {body}");
        assert!(body.contains("forbidden"), "{body}");
    }
    let (status, body) = call(plain.trim(), "GET", "/v1/messages", None);
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("no API scopes"), "{body}");
    let (status, _) = call("not-a-token", "GET", "/v1/messages", None);
    assert_eq!(status, "401");
    // Nothing the refused calls asked for happened; the admin token reaches everything.
    let (status, body) = call(admin, "GET", "/v1/jobs", None);
    assert_eq!(status, "200", "{body}");
    let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["jobs"][0]["queue"], "imports");
    crate::stop(&mut berth);
}

/// Shell completions and the man page come from the CLI's own definitions: the bash
/// script parses and names every command, the man page is roff that groff renders.
#[test]
fn completions_and_man_pages_come_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, bash, err) = parts(&run_in(d, &["completions", "bash"]));
    assert_eq!(code, 0, "{err}");
    for name in [
        "systemd-unit",
        "completions",
        "queue",
        "concurrency",
        "--json",
    ] {
        assert!(bash.contains(name), "{name} is not completed");
    }
    std::fs::write(d.join("berth.bash"), &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(d.join("berth.bash"))
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let (code, zsh, _) = parts(&run_in(d, &["completions", "zsh"]));
    assert_eq!(code, 0);
    assert!(
        zsh.starts_with("#compdef berth"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    let (code, _, err) = parts(&run_in(d, &["completions", "tcsh"]));
    assert_ne!(code, 0);
    assert!(err.contains("possible values"), "{err}");

    let (code, page, err) = parts(&run_in(d, &["man"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH berth 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(
        page.contains("systemd\\-unit") || page.contains("systemd-unit"),
        "{page}"
    );
    let pages = d.join("man");
    let (code, _, err) = parts(&run_in(d, &["man", "--dir", pages.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("man pages into"), "{err}");
    for name in ["berth.1", "berth-queue.1", "berth-queue-concurrency.1"] {
        assert!(pages.join(name).exists(), "{name} was not written");
    }
    if std::process::Command::new("groff")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww"])
            .arg(pages.join("berth-queue-concurrency.1"))
            .output()
            .unwrap();
        assert!(out.status.success());
        // Bold and underline are overstruck (`X\x08X`): keep the last of each pair.
        let mut text = String::new();
        for c in String::from_utf8_lossy(&out.stdout).chars() {
            if c == '\u{8}' {
                text.pop();
            } else {
                text.push(c);
            }
        }
        assert!(text.contains("--reset"), "{text}");
        assert!(text.contains("Back to the config's concurrency"), "{text}");
    }
}
