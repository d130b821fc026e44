//! Stopping: the stop signal, the grace period, SIGKILL of the group, nothing left
//! behind — also after a `kill -9` of the supervising process itself.

use std::time::{Duration, Instant};

use berth_supervise::{EventKind, Exit, InstanceState, RestartPolicy, Signal, Supervisor};

use crate::{alive, eventually, next, read_pid, spec};

/// berth started under `nohup` (SIGHUP ignored) still starts its services with every
/// signal at its default action: a shell's `trap … HUP` works, and a HUP stop signal
/// stops the service at once. (Inherited, the ignored HUP made the trap a no-op, and the
/// stop waited for the grace period's SIGKILL.)
#[tokio::test]
#[allow(unsafe_code)]
async fn a_service_gets_default_signal_actions_whatever_berth_ignores() {
    // SAFETY: only changes this test process's SIGHUP action to "ignore", as nohup does;
    // no handler function is installed.
    unsafe {
        nix::sys::signal::signal(Signal::SIGHUP, nix::sys::signal::SigHandler::SigIgn).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sup = Supervisor::new();
    let command = format!(
        "trap 'exit 0' HUP; echo $$ > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let mut s = spec(dir.path(), "nohup", &command);
    s.stop_signal = Signal::SIGHUP;
    s.stop_grace = Duration::from_secs(5);
    sup.add(s).unwrap();
    read_pid(&ready).await;
    let t = Instant::now();
    sup.stop_service("nohup").await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_process_that_handles_the_stop_signal_stops_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let command = format!(
        "trap 'echo got-hup; exit 0' HUP; echo $$ > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let mut s = spec(dir.path(), "polite", &command);
    s.stop_signal = Signal::SIGHUP;
    s.stop_grace = Duration::from_secs(5);
    sup.add(s).unwrap();
    let pid = read_pid(&ready).await;
    let t = Instant::now();
    sup.stop_service("polite").await.unwrap();
    let took = t.elapsed();
    eprintln!("graceful stop took {took:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let e = next(&mut rx, "polite", |k| {
        matches!(k, EventKind::Stopped { .. })
    })
    .await;
    assert_eq!(
        e.kind,
        EventKind::Stopped {
            exit: Some(Exit::Code(0))
        }
    );
    let st = &sup.status()[0];
    assert_eq!((st.state, st.pid), (InstanceState::Stopped, None));
    assert!(!alive(pid));
    let log = std::fs::read_to_string(dir.path().join("logs/polite.0.log")).unwrap();
    assert!(log.contains(" out got-hup\n"), "{log}");
}

#[tokio::test]
async fn a_process_that_ignores_the_stop_signal_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let command = format!(
        "trap '' TERM; echo $$ > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let mut s = spec(dir.path(), "stubborn", &command);
    s.stop_grace = Duration::from_millis(400);
    sup.add(s).unwrap();
    let pid = read_pid(&ready).await;
    let t = Instant::now();
    sup.stop_service("stubborn").await.unwrap();
    let took = t.elapsed();
    eprintln!("stop with a 400 ms grace took {took:?}");
    assert!(
        took >= Duration::from_millis(400),
        "killed before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let e = next(&mut rx, "stubborn", |k| {
        matches!(k, EventKind::Stopped { .. })
    })
    .await;
    assert_eq!(
        e.kind,
        EventKind::Stopped {
            exit: Some(Exit::Signal(9))
        }
    );
    assert!(!alive(pid));
}

/// `sh -c "gunicorn …"` where the shell does not exec the command: the shell dies of
/// SIGTERM at once, and the command it ran finishes its graceful stop all the same
/// (within the grace period) instead of being killed with its group.
#[tokio::test]
async fn a_command_under_a_shell_finishes_its_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let done = dir.path().join("done");
    let script = dir.path().join("app.py");
    std::fs::write(
        &script,
        format!(
            "import signal, sys, time\n\
             stopping = []\n\
             signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))\n\
             open({ready:?}, 'w').write('1')\n\
             while not stopping:\n    time.sleep(0.02)\n\
             time.sleep(0.6)\n\
             open({done:?}, 'w').write('finished')\n",
            ready = ready.display().to_string(),
            done = done.display().to_string(),
        ),
    )
    .unwrap();
    let sup = Supervisor::new();
    // `; true` keeps the shell from exec'ing python: it stays the group's leader.
    let command = format!("python3 {}; true", script.display());
    let mut s = spec(dir.path(), "app", &command);
    s.stop_grace = Duration::from_secs(5);
    sup.add(s).unwrap();
    eventually("the app runs", || ready.exists()).await;
    let t = Instant::now();
    sup.stop_service("app").await.unwrap();
    let took = t.elapsed();
    assert_eq!(
        std::fs::read_to_string(&done).unwrap_or_default(),
        "finished",
        "the app was killed during its graceful stop"
    );
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_grandchild_dies_with_its_instance_on_stop_and_on_exit() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();

    // Stopped: the whole group gets the signal.
    let gc1 = dir.path().join("gc1");
    let command = format!("sleep 300 & echo $! > {}; wait", gc1.display());
    sup.add(spec(dir.path(), "parent", &command)).unwrap();
    let grandchild = read_pid(&gc1).await;
    assert!(alive(grandchild));
    sup.stop_service("parent").await.unwrap();
    eventually("the grandchild dies on stop", || !alive(grandchild)).await;

    // Exited: what the shell left in its group is killed.
    let gc2 = dir.path().join("gc2");
    let command = format!("sleep 300 & echo $! > {}; exit 1", gc2.display());
    let mut s = spec(dir.path(), "leaver", &command);
    s.restart = RestartPolicy::Never;
    sup.add(s).unwrap();
    next(&mut rx, "leaver", |k| matches!(k, EventKind::Exited(_))).await;
    let grandchild = read_pid(&gc2).await;
    eventually("the grandchild dies on exit", || !alive(grandchild)).await;
}

#[tokio::test]
async fn stop_stops_every_service_last_added_first() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    for name in ["db", "api", "worker"] {
        sup.add(spec(dir.path(), name, "sleep 300")).unwrap();
        next(&mut rx, name, |k| matches!(k, EventKind::Started { .. })).await;
    }
    sup.stop().await;
    let mut order = Vec::new();
    while order.len() < 3 {
        let e = rx.recv().await.unwrap();
        if matches!(e.kind, EventKind::Stopped { .. }) {
            order.push(e.service);
        }
    }
    assert_eq!(order, ["worker", "api", "db"]);
    assert!(
        sup.status()
            .iter()
            .all(|s| s.state == InstanceState::Stopped)
    );
}

#[tokio::test]
async fn signal_reaches_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let command = format!(
        "trap 'echo reloaded' USR1; echo $$ > {}; while :; do sleep 0.05; done",
        ready.display()
    );
    sup.add(spec(dir.path(), "reload", &command)).unwrap();
    read_pid(&ready).await;
    sup.signal("reload", Signal::SIGUSR1).unwrap();
    let log = dir.path().join("logs/reload.0.log");
    eventually("the trap runs", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(" out reloaded\n"))
    })
    .await;
    sup.stop().await;
    next(&mut rx, "reload", |k| {
        matches!(k, EventKind::Stopped { .. })
    })
    .await;
}

/// Where the host process writes its service's pids; set only in the host.
const HOST_DIR: &str = "BERTH_SUPERVISE_TEST_HOST_DIR";

/// Not a test on its own: the body of the process that
/// `nothing_survives_a_kill_9_of_the_supervisor` starts and then kills.
#[test]
fn host_for_kill_9() {
    let Ok(dir) = std::env::var(HOST_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sup = Supervisor::new();
        let command = format!(
            "sleep 300 & echo $! > {d}/grandchild; echo $$ > {d}/leader; wait",
            d = dir.display()
        );
        sup.add(spec(&dir, "svc", &command)).unwrap();
        std::future::pending::<()>().await;
    });
}

#[tokio::test]
async fn nothing_survives_a_kill_9_of_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stop::host_for_kill_9", "--nocapture"])
        .env(HOST_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let leader = read_pid(&dir.path().join("leader")).await;
    let grandchild = read_pid(&dir.path().join("grandchild")).await;
    assert!(alive(leader) && alive(grandchild));
    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();
    eventually("the leader dies (parent-death signal)", || !alive(leader)).await;
    eventually("the grandchild dies (watchdog)", || !alive(grandchild)).await;
}
