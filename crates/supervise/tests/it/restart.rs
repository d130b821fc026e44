//! Restart policies, backoff, crash loops and bad commands.

use std::time::Duration;

use berth_supervise::{
    CrashLoop, EventKind, Exit, InstanceState, Ports, RestartPolicy, Supervisor,
};

use crate::{next, spec};

#[tokio::test]
async fn a_crashing_command_restarts_with_growing_backoff_then_crash_loops() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "crash", "exit 3");
    s.crash_loop = CrashLoop {
        max_exits: 4,
        window: Duration::from_secs(30),
    };
    sup.add(s).unwrap();

    let mut afters = Vec::new();
    let mut respawn_gaps = Vec::new();
    next(&mut rx, "crash", |k| matches!(k, EventKind::Started { .. })).await;
    for _ in 0..4 {
        let exited = next(&mut rx, "crash", |k| matches!(k, EventKind::Exited(_))).await;
        assert_eq!(exited.kind, EventKind::Exited(Exit::Code(3)));
        let restarting = next(&mut rx, "crash", |_| true).await;
        let EventKind::Restarting { after } = restarting.kind else {
            panic!("expected a restart, got {restarting:?}");
        };
        afters.push(after);
        let started = next(&mut rx, "crash", |_| true).await;
        assert!(
            matches!(started.kind, EventKind::Started { .. }),
            "{started:?}"
        );
        let gap = started.at.duration_since(exited.at).unwrap();
        assert!(
            gap >= after,
            "restarted after {gap:?}, before its backoff {after:?}"
        );
        respawn_gaps.push(gap);
    }
    let ms: Vec<_> = afters.iter().map(|d| d.as_millis()).collect();
    assert_eq!(
        ms,
        [0, 20, 40, 80],
        "the first restart is immediate, then it doubles"
    );
    eprintln!("exit observed → respawned: {respawn_gaps:?}");

    // The fifth exit within the window is one too many.
    next(&mut rx, "crash", |k| matches!(k, EventKind::Exited(_))).await;
    let e = next(&mut rx, "crash", |_| true).await;
    assert_eq!(e.kind, EventKind::CrashLoop);
    let st = &sup.status()[0];
    assert_eq!(st.state, InstanceState::CrashLoop);
    assert_eq!(st.restarts, 4);
    assert_eq!(st.pid, None);
    assert_eq!(st.last_exit.as_ref().unwrap().exit, Exit::Code(3));

    // An explicit start clears the crash loop and starts afresh.
    sup.start("crash").unwrap();
    next(&mut rx, "crash", |k| matches!(k, EventKind::Started { .. })).await;
    let e = next(&mut rx, "crash", |k| {
        matches!(k, EventKind::Restarting { .. })
    })
    .await;
    assert_eq!(
        e.kind,
        EventKind::Restarting {
            after: Duration::ZERO
        }
    );
    sup.stop().await;
}

#[tokio::test]
async fn never_does_not_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "once", "exit 1");
    s.restart = RestartPolicy::Never;
    sup.add(s).unwrap();
    next(&mut rx, "once", |k| matches!(k, EventKind::Exited(_))).await;
    // Nothing follows the exit: this much silence is the point.
    let silence = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(silence.is_err(), "unexpected event {silence:?}");
    let st = &sup.status()[0];
    assert_eq!(st.state, InstanceState::Exited);
    assert_eq!(st.restarts, 0);
    assert_eq!(st.last_exit.as_ref().unwrap().exit, Exit::Code(1));
}

#[tokio::test]
async fn on_failure_restarts_a_failure_but_not_a_success() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    // Fails the first time, succeeds the second.
    let marker = dir.path().join("ran-once");
    let command = format!(
        "if [ -e {m} ]; then exit 0; else touch {m}; exit 2; fi",
        m = marker.display()
    );
    let mut s = spec(dir.path(), "job", &command);
    s.restart = RestartPolicy::OnFailure;
    sup.add(s).unwrap();
    let e = next(&mut rx, "job", |k| matches!(k, EventKind::Exited(_))).await;
    assert_eq!(e.kind, EventKind::Exited(Exit::Code(2)));
    next(&mut rx, "job", |k| {
        matches!(k, EventKind::Restarting { .. })
    })
    .await;
    let e = next(&mut rx, "job", |k| matches!(k, EventKind::Exited(_))).await;
    assert_eq!(e.kind, EventKind::Exited(Exit::Code(0)));
    let silence = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
    assert!(silence.is_err(), "unexpected event {silence:?}");
    let st = &sup.status()[0];
    assert_eq!(st.state, InstanceState::Exited);
    assert_eq!(st.restarts, 1);
}

#[tokio::test]
async fn a_bad_command_ends_in_crash_loop_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "typo", "gunicron main:app");
    s.crash_loop = CrashLoop {
        max_exits: 2,
        window: Duration::from_secs(30),
    };
    sup.add(s).unwrap();
    next(&mut rx, "typo", |k| *k == EventKind::CrashLoop).await;
    let st = &sup.status()[0];
    assert_eq!(st.state, InstanceState::CrashLoop);
    assert_eq!(st.last_exit.as_ref().unwrap().exit, Exit::Code(127));
    let log = std::fs::read_to_string(dir.path().join("logs/typo.0.log")).unwrap();
    assert!(log.contains(" err ") && log.contains("gunicron"), "{log}");
}

#[tokio::test]
async fn a_missing_working_directory_is_a_spawn_failure() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "nowhere", "true");
    s.cwd = Some(dir.path().join("missing"));
    s.crash_loop.max_exits = 1;
    sup.add(s).unwrap();
    let e = next(&mut rx, "nowhere", |k| matches!(k, EventKind::Exited(_))).await;
    let EventKind::Exited(Exit::SpawnFailed(why)) = e.kind else {
        panic!("{e:?}");
    };
    assert!(why.contains("No such file"), "{why}");
    next(&mut rx, "nowhere", |k| *k == EventKind::CrashLoop).await;
}

#[tokio::test]
async fn port_is_substituted_and_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(
        dir.path(),
        "web",
        "echo arg={port} env=$PORT i=$BERTH_INSTANCE",
    );
    s.instances = 2;
    s.ports = Some(Ports::fixed(61_100, 2));
    s.restart = RestartPolicy::Never;
    sup.add(s).unwrap();
    for _ in 0..2 {
        next(&mut rx, "web", |k| matches!(k, EventKind::Exited(_))).await;
    }
    let ports: Vec<_> = sup.status().iter().map(|s| s.port).collect();
    assert_eq!(ports, [Some(61_100), Some(61_101)]);
    for (i, port) in [(0, 61_100), (1, 61_101)] {
        let log = std::fs::read_to_string(dir.path().join(format!("logs/web.{i}.log"))).unwrap();
        assert!(
            log.contains(&format!("out arg={port} env={port} i={i}\n")),
            "{log}"
        );
    }
}

#[tokio::test]
async fn adding_a_service_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    sup.add(spec(dir.path(), "a", "sleep 30")).unwrap();
    let err = sup.add(spec(dir.path(), "a", "sleep 30")).unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    let err = sup.start("b").unwrap_err();
    assert!(err.to_string().contains("no service named `b`"), "{err}");
    sup.stop().await;
}
