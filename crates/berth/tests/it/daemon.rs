//! `berth up`: refuses what it must not touch, and stops gracefully.

use std::time::Duration;

use berth_testkit::{Project, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::{parts, run_expecting_exit, up};
use berth_store::JobStore;

fn project(queue: &str) -> Project {
    Project::new(&format!(
        "[app]\nname = \"t\"\nshutdown_grace = \"3s\"\n\n{queue}\n"
    ))
}

#[test]
fn a_corrupt_database_is_refused_and_left_as_it_was() {
    let p = project("[queue.q]\nhandler = \"pull\"");
    std::fs::create_dir_all(p.data_dir()).unwrap();
    let junk = b"SQLite format 3\0 but then the disk ate it".repeat(100);
    std::fs::write(p.db_path(), &junk).unwrap();
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        std::time::Duration::from_secs(30),
    ));
    assert_eq!(code, 1);
    assert!(err.contains("not a readable berth database"), "{err}");
    assert_eq!(std::fs::read(p.db_path()).unwrap(), junk);
}

#[test]
fn a_database_from_a_newer_berth_is_refused() {
    let p = project("[queue.q]\nhandler = \"pull\"");
    std::fs::create_dir_all(p.data_dir()).unwrap();
    drop(berth_store::SqliteStore::open(&p.db_path(), Default::default()).unwrap());
    // The writer thread closes its connection after the drop, and only then is the WAL
    // folded into the file whose header this test edits.
    let wal = p.db_path().with_extension("db-wal");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while wal.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was never folded in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = rusqlite_set_version(&p.db_path(), 99);
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        std::time::Duration::from_secs(30),
    ));
    assert_eq!(code, 1);
    assert!(err.contains("newer berth"), "{err}");
    assert_eq!(std::fs::read(p.db_path()).unwrap(), c);
}

/// Sets the schema version with the sqlite3-compatible header field and returns the bytes.
fn rusqlite_set_version(path: &std::path::Path, v: u32) -> Vec<u8> {
    // `PRAGMA user_version` lives at byte offset 60 of the header, big-endian.
    let mut bytes = std::fs::read(path).unwrap();
    bytes[60..64].copy_from_slice(&v.to_be_bytes());
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_berth_on_the_same_data_dir_is_refused() {
    let p = project("[queue.q]\nhandler = \"pull\"");
    let mut first = up(p.dir()).await;
    let (code, _, err) = parts(&run_expecting_exit(
        p.dir(),
        &["up"],
        std::time::Duration::from_secs(30),
    ));
    assert_eq!(code, 1);
    assert!(err.contains("already running"), "{err}");
    assert!(
        err.contains(&first.id().to_string()),
        "names the pid: {err}"
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_releases_the_ones_that_do_not() {
    let p = project(
        "[queue.q]\nhandler = { run = \"sleep $(cat | sed 's/[^0-9]//g'); echo slept\" }\nconcurrency = 4",
    );
    let mut child = up(p.dir()).await;
    let c = p.client();
    let short = c
        .post_json(
            "/v1/jobs",
            json!({"queue": "q", "kind": "s", "args": {"secs": 1}}),
        )
        .await
        .unwrap();
    let long = c
        .post_json(
            "/v1/jobs",
            json!({"queue": "q", "kind": "l", "args": {"secs": 30}}),
        )
        .await
        .unwrap();
    wait_until("both jobs to run", Duration::from_secs(10), || {
        let c = c.clone();
        async move {
            let v = c.get_json("/v1/jobs?state=running").await.ok()?;
            (v["jobs"].as_array()?.len() == 2).then_some(())
        }
    })
    .await;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    // Read the database directly: berth is gone.
    let store = berth_store::SqliteStore::open(&p.db_path(), Default::default()).unwrap();

    let s = store
        .job(short["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state, berth_store::JobState::Completed);
    assert_eq!(s.output.as_deref(), Some("slept\n"));
    let l = store
        .job(long["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.state, berth_store::JobState::Available, "released");
    assert_eq!(
        (l.attempt, l.max_attempts),
        (1, 26),
        "not counted against the limit"
    );
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_no_job_process_survives_the_restart() {
    let pidfile = tempfile::NamedTempFile::new().unwrap();
    let p = project(&format!(
        "[queue.q]\nhandler = {{ run = \"sleep 60 & echo $! > {}; wait\" }}",
        pidfile.path().display()
    ));
    let mut first = up(p.dir()).await;
    p.client()
        .post_json("/v1/jobs", json!({"queue": "q", "kind": "slow"}))
        .await
        .unwrap();
    let pid: i32 = wait_until(
        "the job to start its child",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(pidfile.path())
                .ok()?
                .trim()
                .parse()
                .ok()
        },
    )
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        alive(pid),
        "the grandchild outlives a kill -9 of berth until the restart"
    );
    let mut second = up(p.dir()).await;
    wait_until(
        "the leftover to be killed",
        Duration::from_secs(5),
        || async { (!alive(pid)).then_some(()) },
    )
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
}

/// `berth job list | head -1`: the CLI whose output pipe closed ends quietly, with exit
/// code 0 and nothing on standard error, instead of panicking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_ends_the_cli_quietly() {
    let p = project("[queue.q]\nhandler = \"pull\"");
    let mut child = up(p.dir()).await;
    let jobs: Vec<_> = (0..50)
        .map(|i| json!({"queue": "q", "kind": "k", "args": {"i": i}}))
        .collect();
    p.client()
        .post_json("/v1/jobs/bulk", json!({ "jobs": jobs }))
        .await
        .unwrap();
    for args in [
        &["job", "list"][..],
        &["--json", "job", "list"],
        &["status"],
    ] {
        // The reading end is closed before berth writes a byte: every write fails with
        // EPIPE, as after `head` has read its lines.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = crate::berth()
            .current_dir(p.dir())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let (code, _, err) = parts(&out);
        assert_eq!((code, err.as_str()), (0, ""), "berth {args:?}");
    }
    // Through a real `head`, too.
    let bin = env!("CARGO_BIN_EXE_berth");
    let out = std::process::Command::new("sh")
        .current_dir(p.dir())
        .env("BERTH_LOG", "warn")
        .arg("-c")
        .arg(format!(
            "'{bin}' job list --limit 50 2>err | head -1; cat err"
        ))
        .output()
        .unwrap();
    let (code, text, _) = parts(&out);
    assert_eq!(code, 0);
    assert_eq!(
        text.lines().count(),
        1,
        "one line from head, nothing from berth: {text}"
    );
    crate::stop(&mut child);
}

/// `/metrics` in the Prometheus text format, read by Prometheus' own Python parser:
/// jobs by queue and state, the leader, services and the gateway's routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_read_by_a_real_prometheus_parser() {
    let port = berth_testkit::free_port_run(2);
    let mqtt = port + 1;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("site")).unwrap();
    std::fs::write(d.join("site/index.html"), "hi").unwrap();
    std::fs::write(
        d.join("berth.toml"),
        format!(
            "[app]\nname = \"metrics\"\nshutdown_grace = \"1s\"\n\n[queue.imports]\nhandler = \"pull\"\n\n\
             [queue.quick]\nhandler = {{ run = \"true\" }}\n\n\
             [service.worker]\ncommand = \"sleep 600\"\n\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [[gateway.route]]\npath = \"/\"\nstatic = \"site\"\n\n\
             [schedule.nightly]\ncron = \"0 3 * * *\"\njob = {{ queue = \"imports\", kind = \"report\" }}\n\n\
             [ingest.hooks]\nwebhook = {{ path = \"/hooks\", auth = \"none\" }}\n\n\
             [ingest.stands]\nmqtt = {{ listen = \"127.0.0.1:{mqtt}\", auth = \"anonymous\" }}\ntopics = [\"+/inbound\"]\n"
        ),
    )
    .unwrap();
    let mut berth = crate::up(d).await;
    for _ in 0..3 {
        let (code, _, err) = crate::parts(&crate::run_in(d, &["job", "push", "imports", "row"]));
        assert_eq!(code, 0, "{err}");
    }
    for _ in 0..2 {
        let (code, _, err) = crate::parts(&crate::run_in(d, &["job", "push", "quick", "noop"]));
        assert_eq!(code, 0, "{err}");
    }
    let dd = d.to_path_buf();
    berth_testkit::wait_until(
        "the quick jobs to complete",
        Duration::from_secs(30),
        || {
            let dd = dd.clone();
            async move {
                let (_, out, _) = crate::parts(&crate::run_in(
                    &dd,
                    &[
                        "--json",
                        "job",
                        "list",
                        "--queue",
                        "quick",
                        "--state",
                        "completed",
                    ],
                ));
                let v: serde_json::Value = serde_json::from_str(&out).ok()?;
                (v["jobs"].as_array()?.len() == 2).then_some(())
            }
        },
    )
    .await;
    let get = |url: &str| {
        std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", url])
            .status()
            .unwrap()
    };
    assert!(get(&format!("http://127.0.0.1:{port}/")).success());
    for body in [r#"{"seq": 1}"#, "{not json"] {
        let posted = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-d", body])
            .arg(format!("http://127.0.0.1:{port}/hooks/s1"))
            .status()
            .unwrap();
        assert!(posted.success());
    }
    // A subscriber holds one MQTT connection open while metrics are read.
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &mqtt.to_string(),
            "-t",
            "lab/#",
            "-W",
            "30",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dd = d.to_path_buf();
    wait_until("the subscriber to connect", Duration::from_secs(10), || {
        let dd = dd.clone();
        async move {
            let out = std::process::Command::new("curl")
                .args(["-s", "--unix-socket"])
                .arg(dd.join(".berth/berth.sock"))
                .arg("http://localhost/metrics")
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .contains("berth_mqtt_connections{ingest=\"stands\"} 1")
                .then_some(())
        }
    })
    .await;
    // A backup made now is what the backup metric reports.
    let (code, _, err) = crate::parts(&crate::run_in(d, &["backup", "save"]));
    assert_eq!(code, 0, "{err}");
    std::fs::write(
        d.join("parse.py"),
        r#"import json, subprocess, sys
from prometheus_client.parser import text_string_to_metric_families
text = subprocess.run(["curl", "-s", "--unix-socket", ".berth/berth.sock", "http://localhost/metrics"],
                      check=True, capture_output=True, text=True).stdout
out = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        key = s.name + json.dumps(s.labels, sort_keys=True)
        out[key] = s.value
    out["type:" + family.name] = family.type
print(json.dumps(out))
"#,
    )
    .unwrap();
    let out = std::process::Command::new("python3")
        .current_dir(d)
        .arg("parse.py")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = |k: &str| m[k].as_f64().unwrap_or_else(|| panic!("no {k} in {m}"));
    assert_eq!(
        at(r#"berth_jobs{"queue": "imports", "state": "available"}"#),
        3.0
    );
    assert_eq!(
        at(r#"berth_jobs{"queue": "imports", "state": "running"}"#),
        0.0
    );
    assert_eq!(at(r#"berth_queue_paused{"queue": "imports"}"#), 0.0);
    assert!(at(r#"berth_queue_oldest_available_age_seconds{"queue": "imports"}"#) >= 0.0);
    assert_eq!(at("berth_nodes{}"), 1.0);
    assert!(at("berth_leader_term{}") >= 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let saved = at("berth_backup_last_success_timestamp_seconds{}");
    assert!(
        saved > now - 300.0 && saved <= now + 1.0,
        "{saved} vs {now}"
    );
    assert_eq!(at("berth_backup_last_failure_timestamp_seconds{}"), 0.0);
    assert_eq!(
        at(r#"berth_service_instances{"service": "worker", "state": "running"}"#),
        1.0
    );
    assert_eq!(
        at(r#"berth_service_restarts_total{"service": "worker"}"#),
        0.0
    );
    assert_eq!(m["type:berth_service_restarts"], "counter", "{m}");
    assert_eq!(
        at(r#"berth_gateway_requests_total{"code": "2xx", "route": "/"}"#),
        1.0
    );
    assert_eq!(
        at(r#"berth_build_info{"app": "metrics", "version": "0.1.0"}"#),
        1.0
    );
    // What this berth counted: pushes, attempts, waits and run times.
    assert_eq!(at(r#"berth_jobs_enqueued_total{"queue": "imports"}"#), 3.0);
    assert_eq!(
        at(r#"berth_job_attempts_total{"outcome": "completed", "queue": "quick"}"#),
        2.0
    );
    assert_eq!(at(r#"berth_executor_busy_slots{"queue": "quick"}"#), 0.0);
    assert_eq!(m["type:berth_job_run_seconds"], "histogram", "{m}");
    assert_eq!(at(r#"berth_job_run_seconds_count{"queue": "quick"}"#), 2.0);
    assert_eq!(
        at(r#"berth_job_run_seconds_bucket{"le": "+Inf", "queue": "quick"}"#),
        2.0
    );
    assert_eq!(at(r#"berth_job_wait_seconds_count{"queue": "quick"}"#), 2.0);
    assert!(
        at(r#"berth_schedule_next_run_timestamp_seconds{"schedule": "nightly"}"#)
            > std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
    );
    assert_eq!(
        at(r#"berth_messages{"dead": "false", "ingest": "hooks"}"#),
        1.0
    );
    assert_eq!(
        at(r#"berth_messages{"dead": "true", "ingest": "hooks"}"#),
        1.0
    );
    assert_eq!(at(r#"berth_mqtt_connections{"ingest": "stands"}"#), 1.0);
    let _ = sub.kill();
    let _ = sub.wait();
    assert_eq!(
        m["type:berth_gateway_request_duration_seconds"], "histogram",
        "{m}"
    );
    assert_eq!(
        at(r#"berth_gateway_request_duration_seconds_bucket{"le": "60", "route": "/"}"#),
        1.0
    );
    assert_eq!(
        at(r#"berth_gateway_request_duration_seconds_count{"route": "/"}"#),
        1.0
    );
    crate::stop(&mut berth);
}

/// Started the way systemd starts a `Type=notify` unit: `berth up` says READY=1 on the
/// real datagram socket named by NOTIFY_SOCKET once it serves (its API answers), feeds
/// the watchdog at half of WATCHDOG_USEC, and says STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_speaks_the_systemd_notify_protocol() {
    let p = berth_testkit::Project::new(&berth_testkit::config_text(
        "[queue.tasks]\nhandler = \"pull\"\n",
    ));
    let socket_path = p.dir().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut child = crate::up_with_env(
        p.dir(),
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    let mut buf = [0u8; 4096];
    let mut read = || {
        let n = socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = read();
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(ready.contains("STATUS=up: app"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    // The API answers by then.
    assert!(p.client().get_json("/v1/status").await.is_ok());
    let mut pings = 0;
    while pings < 3 {
        let m = read();
        assert_eq!(m, "WATCHDOG=1");
        pings += 1;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = loop {
        let m = read();
        if m != "WATCHDOG=1" {
            break m;
        }
    };
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// `berth systemd-unit` prints a `Type=notify` unit for this app, and
/// `systemd-analyze verify` accepts it where systemd is installed.
#[test]
fn systemd_unit_is_printed_and_verified() {
    let p = berth_testkit::Project::new(&berth_testkit::config_text(
        "[queue.tasks]\nhandler = \"pull\"\n",
    ));
    let (code, unit, err) = crate::parts(&crate::run_in(p.dir(), &["systemd-unit"]));
    assert_eq!(code, 0, "{err}");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LimitNOFILE=65536",
        "WatchdogSec=60s",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(line), "{line} missing:\n{unit}");
    }
    assert!(
        unit.contains(" up\n") && unit.contains("--config "),
        "{unit}"
    );
    let (code, user_unit, _) = crate::parts(&crate::run_in(p.dir(), &["systemd-unit", "--user"]));
    assert_eq!(code, 0);
    assert!(user_unit.contains("WantedBy=default.target") && !user_unit.contains("User="));
    // --write --user puts it under the user's systemd directory.
    let home = tempfile::tempdir().unwrap();
    let out = crate::berth()
        .current_dir(p.dir())
        .env("HOME", home.path())
        .args(["systemd-unit", "--user", "--write"])
        .output()
        .unwrap();
    let (code, _, err) = crate::parts(&out);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("systemctl --user daemon-reload"), "{err}");
    let written = std::fs::read_dir(home.path().join(".config/systemd/user"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(std::fs::read_to_string(&written[0]).unwrap(), user_unit);
    let verify = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if verify.is_ok_and(|o| o.status.success()) {
        let file = p.dir().join("berth-test.service");
        std::fs::write(&file, &unit).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("systemd-analyze is not installed here: the unit was not verified by it");
    }
}

/// The admin socket is the whole API without a token: it is berth's own user's only,
/// even when berth was started with a umask that lets everyone write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_socket_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let p = project("[queue.q]\nhandler = \"pull\"");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec {} up",
            env!("CARGO_BIN_EXE_berth")
        ))
        .current_dir(p.dir())
        .env_remove("BERTH_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = p.client();
    wait_until("berth answers", Duration::from_secs(20), || async {
        client.get_json("/v1/status").await.ok()
    })
    .await;
    let socket = p.dir().join(".berth").join("berth.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
}
