//! The `berth` binary as users run it: config checks, CLI errors and exit codes, the
//! daemon's start, graceful stop and recovery from `kill -9`.

mod backup;
mod cli;
mod cluster;
mod crash;
mod daemon;
mod dashboard;
mod deploy;
mod examples;
mod faults;
mod flows;
mod gateway;
mod import;
mod ingest;
mod ingest_sources;
mod layout;
mod netfuzz;
mod notify;
mod openapi;
mod reload;
mod secrets;
mod services;
mod soak;
mod workers;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary under test.
pub fn berth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.env_remove("BERTH_CONFIG").env("BERTH_LOG", "warn");
    c
}

/// mosquitto_pub's QoS 1 publish of `payload` on `topic` over MQTT 5, to a broker on
/// 127.0.0.1:`port`, with `extra` arguments (`-d` shows the PUBACK's reason code).
pub fn mosquitto_pub5(port: u16, topic: &str, payload: &str, extra: &[&str]) -> Output {
    Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            "mqttv5",
            "-q",
            "1",
        ])
        .args(["-t", topic, "-m", payload])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run mosquitto_pub (apt-get install mosquitto-clients)")
}

/// A field of `/proc/PID/status` in kB (`VmRSS:`, `VmHWM:`), 0 if unreadable.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How many file descriptors the process `pid` holds.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Waits until a GET of `http://127.0.0.1:PORT/` answers `body` (by curl).
pub async fn wait_for_answer(what: &str, port: u16, body: &str) {
    berth_testkit::wait_until(what, Duration::from_secs(30), || async {
        let out = Command::new("curl")
            .args(["-s", "-m", "2", &format!("http://127.0.0.1:{port}/")])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout) == body).then_some(())
    })
    .await;
}

/// Every item under `key` of the pages of `path` (a list endpoint that takes `limit`
/// and `before`), newest first.
pub async fn every_page(
    c: &berth_api::client::Client,
    path: &str,
    key: &str,
) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let q = match before {
            Some(b) => format!("{path}{sep}limit=1000&before={b}"),
            None => format!("{path}{sep}limit=1000"),
        };
        let page = c.get_json(&q).await.unwrap();
        let list = page[key].as_array().cloned().unwrap_or_default();
        if list.is_empty() {
            return all;
        }
        before = list.last().and_then(|v| v["id"].as_i64());
        all.extend(list);
    }
}

/// Runs `berth ARGS` in `dir` and returns its output.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    berth()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run berth")
}

/// Runs `berth ARGS` in `dir` with `input` on its standard input.
pub fn run_with_input(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = berth()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("berth output")
}

/// Runs `berth ARGS` in `dir` that is expected to exit by itself (a refused start, say);
/// kills it and fails the test if it is still running after `limit`.
pub fn run_expecting_exit(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut child = berth()
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait for berth").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("berth output");
            panic!(
                "berth {args:?} was still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("berth output")
}

/// Runs curl with `args` (silent, errors shown, 10 s at most unless `args` say otherwise) and
/// returns the status code and the body.
pub fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

/// The exit code, stdout and stderr of an output.
pub fn parts(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Starts `berth up` in `dir` and waits until its API answers.
pub async fn up(dir: &Path) -> Child {
    up_with_env(dir, &[]).await
}

/// `up` with more variables in berth's environment.
pub async fn up_with_env(dir: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::File::create(dir.join("berth-up.log")).unwrap();
    let mut child = berth()
        .current_dir(dir)
        .arg("up")
        .env("BERTH_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start berth up");
    let client = berth_testkit::Project::client_for(dir);
    for _ in 0..500 {
        if client.get_json("/v1/status").await.is_ok() {
            return child;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "berth up exited with {status}: {}",
                std::fs::read_to_string(dir.join("berth-up.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("berth up did not answer within 10s");
}

/// Stops a `berth up` with SIGTERM and checks that it exits successfully.
pub fn stop(child: &mut Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "berth up ended with {status}");
}
