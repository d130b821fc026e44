//! Supervisor tests with real processes (`sh`, `sleep`, `python3 -m http.server`):
//! readiness and liveness, dependencies, rolling restarts, restarts and backoff, crash
//! loops, stopping, process groups, the watchdog after a `kill -9`, and logs. They wait
//! on the supervisor's events; they poll only for what a child process reports through
//! a file, and sleep only where time itself is under test.

mod health;
mod logs;
mod restart;
mod rolling;
mod stop;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_supervise::{Backoff, CrashLoop, Event, EventKind, RestartPolicy, ServiceSpec};
use tokio::sync::broadcast;

/// How long a test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A spec for tests: fast backoff, a tolerant crash-loop window, short grace.
pub fn spec(dir: &Path, name: &str, command: &str) -> ServiceSpec {
    let mut s = ServiceSpec::new(name, command, dir.join("logs"));
    s.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        factor: 2.0,
        reset_after: Duration::from_secs(5),
    };
    s.crash_loop = CrashLoop {
        max_exits: 10,
        window: Duration::from_secs(30),
    };
    s.stop_grace = Duration::from_secs(5);
    s.restart = RestartPolicy::Always;
    s
}

/// The next event of `service` that `pred` accepts; panics after [`PATIENCE`].
pub async fn next(
    rx: &mut broadcast::Receiver<Event>,
    service: &str,
    pred: impl Fn(&EventKind) -> bool,
) -> Event {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(e)) if e.service == service && pred(&e.kind) => return e,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event stream: {e}"),
            Err(_) => panic!("no matching event for `{service}` within {PATIENCE:?}"),
        }
    }
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !(state.starts_with('Z') || state.starts_with('X'))
        }
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms until it holds; panics after [`PATIENCE`]. For what only a
/// child process or the kernel can tell (a file written, a pid gone).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads a pid a child wrote into `path`, waiting for it.
pub async fn read_pid(path: &Path) -> u32 {
    let mut pid = None;
    eventually(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await;
    pid.unwrap()
}

/// The first of `count` consecutive ports free a moment ago, above the kernel's
/// ephemeral range (32768–60999) so that no outgoing connection takes one meanwhile.
pub fn free_ports(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let span = 4_000 - count;
    let seed = (std::process::id() % u32::from(span)) as u16;
    for _ in 0..200 {
        let offset = NEXT.fetch_add(count + 3, Ordering::Relaxed);
        let first = 61_200 + seed.wrapping_add(offset) % span;
        if (first..first + count).all(|p| std::net::TcpListener::bind(("0.0.0.0", p)).is_ok()) {
            return first;
        }
    }
    panic!("no {count} free ports in a row above 61200");
}
