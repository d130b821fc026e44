//! The five systems of `examples/`, each run end to end as a user runs it:
//! `examples/run_example.py NAME` copies the example, gives it free ports, runs its
//! install step (`sh setup.sh`) and `berth up`, drives it with real clients (curl,
//! paho-mqtt, an SMTP sink, headless Chromium) through its `check.py`, and stops berth,
//! which must exit 0.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// One example at a time: each runs berth, its services and a browser, on two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn run_example(name: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/run_example.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(name)
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env_remove("BERTH_CONFIG")
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the example `{name}` failed:\n{text}");
    assert!(text.contains(&format!("[{name}] passed")), "{text}");
}

#[test]
fn chatbot() {
    run_example("chatbot");
}

#[test]
fn teststand() {
    run_example("teststand");
}

#[test]
fn lms_import() {
    run_example("lms-import");
}

#[test]
fn publishing_bot() {
    run_example("publishing-bot");
}

#[test]
fn backoffice() {
    run_example("backoffice");
}
