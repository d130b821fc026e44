//! Readiness and liveness checks, start timeouts, and dependencies that wait for them.

use std::time::Duration;

use berth_supervise::{
    Check, Event, EventKind, Exit, InstanceState, Liveness, Ports, Probe, Supervisor,
};
use tokio::sync::broadcast;

use crate::{next, spec};

/// A probe of `check` every 50 ms with a 2 s timeout.
pub fn probe(check: Check) -> Probe {
    Probe {
        check,
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
    }
}

fn command(text: &str) -> Check {
    Check::Command {
        command: text.into(),
    }
}

/// Collects events until `done` accepts one (included).
pub async fn until(
    rx: &mut broadcast::Receiver<Event>,
    done: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(crate::PATIENCE, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no closing event within {:?}; saw {seen:#?}",
                    crate::PATIENCE
                )
            })
            .expect("event stream");
        let stop = done(&e);
        seen.push(e);
        if stop {
            return seen;
        }
    }
}

#[tokio::test]
async fn a_dependent_waits_until_its_dependency_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("db-ready");
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut db = spec(dir.path(), "db", "exec sleep 30");
    db.ready = Some(probe(command(&format!("test -f {}", flag.display()))));
    sup.add(db).unwrap();
    let mut web = spec(dir.path(), "web", "exec sleep 30");
    web.depends_on = vec!["db".into()];
    sup.add(web).unwrap();

    next(&mut rx, "db", |k| matches!(k, EventKind::Started { .. })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let states: Vec<_> = sup.status().iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [InstanceState::Starting, InstanceState::Waiting],
        "db is not ready, so web has not started"
    );
    let err = sup
        .wait_ready("web", Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not ready within 100ms"), "{err}");

    std::fs::write(&flag, "").unwrap();
    let seen = until(&mut rx, |e| {
        e.service == "web" && matches!(e.kind, EventKind::Started { .. })
    })
    .await;
    assert!(
        seen.iter()
            .any(|e| e.service == "db" && matches!(e.kind, EventKind::Ready { .. })),
        "db was ready before web started: {seen:#?}"
    );
    sup.wait_ready("web", crate::PATIENCE).await.unwrap();
    sup.stop().await;
}

#[tokio::test]
async fn a_process_not_ready_within_its_start_timeout_is_killed_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "slow", "exec sleep 30");
    s.ready = Some(probe(command("echo still warming up >&2; exit 1")));
    s.start_timeout = Duration::from_millis(300);
    sup.add(s).unwrap();
    let started = next(&mut rx, "slow", |k| matches!(k, EventKind::Started { .. })).await;
    let EventKind::Started { pid, .. } = started.kind else {
        unreachable!()
    };
    let exited = next(&mut rx, "slow", |k| matches!(k, EventKind::Exited(_))).await;
    let EventKind::Exited(Exit::NotReady(why)) = &exited.kind else {
        panic!("expected a start timeout, got {exited:?}");
    };
    assert!(why.contains("not ready within 300ms"), "{why}");
    assert!(
        why.contains("still warming up"),
        "the check's own words: {why}"
    );
    let took = exited.at.duration_since(started.at).unwrap();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(!crate::alive(pid), "the unready process was killed");
    // The failed start counts as an exit: the policy restarts it.
    next(&mut rx, "slow", |k| matches!(k, EventKind::Started { .. })).await;
    let err = sup.wait_ready("slow", Duration::from_millis(100)).await;
    assert!(err.is_err());
    sup.stop().await;
}

#[tokio::test]
async fn a_failing_liveness_check_restarts_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let alive = dir.path().join("alive");
    std::fs::write(&alive, "").unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "api", "exec sleep 30");
    s.live = Some(Liveness {
        probe: probe(command(&format!("test -f {}", alive.display()))),
        failures: 3,
    });
    sup.add(s).unwrap();
    let first = next(&mut rx, "api", |k| matches!(k, EventKind::Ready { .. })).await;
    // Passing checks change nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sup.status()[0].restarts, 0);
    std::fs::remove_file(&alive).unwrap();
    let seen = until(&mut rx, |e| matches!(e.kind, EventKind::Started { .. })).await;
    let kinds: Vec<_> = seen.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["unhealthy", "exited", "restarting", "started"]);
    let EventKind::Exited(Exit::Unhealthy(why)) = &seen[1].kind else {
        panic!("{seen:#?}");
    };
    assert!(
        why.starts_with("3 liveness checks failed in a row"),
        "{why}"
    );
    let EventKind::Ready { pid } = first.kind else {
        unreachable!()
    };
    assert!(!crate::alive(pid));
    assert_eq!(sup.status()[0].restarts, 1);
    sup.stop().await;
}

#[tokio::test]
async fn http_and_tcp_checks_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let port = crate::free_ports(3);
    let server = crate::rolling::HTTP_SERVER;
    let mut ok = spec(dir.path(), "ok", server);
    ok.ports = Some(Ports::fixed(port, 1));
    ok.ready = Some(probe(Check::Http { path: "/".into() }));
    sup.add(ok).unwrap();
    let mut tcp = spec(dir.path(), "tcp", server);
    tcp.ports = Some(Ports::fixed(port + 1, 1));
    tcp.ready = Some(probe(Check::Tcp));
    sup.add(tcp).unwrap();
    let mut missing = spec(dir.path(), "missing", server);
    missing.ports = Some(Ports::fixed(port + 2, 1));
    missing.ready = Some(probe(Check::Http {
        path: "/no-such-page".into(),
    }));
    missing.start_timeout = Duration::from_secs(2);
    sup.add(missing).unwrap();
    sup.wait_ready("ok", crate::PATIENCE).await.unwrap();
    sup.wait_ready("tcp", crate::PATIENCE).await.unwrap();
    let exited = next(&mut rx, "missing", |k| matches!(k, EventKind::Exited(_))).await;
    assert!(
        exited
            .kind
            .to_string()
            .contains("GET /no-such-page answered 404"),
        "{}",
        exited.kind
    );
    sup.stop().await;
}

#[tokio::test]
async fn a_check_command_that_hangs_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("check-child.pid");
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "hang", "exec sleep 30");
    s.ready = Some(Probe {
        timeout: Duration::from_millis(200),
        ..probe(command(&format!(
            "sleep 30 & echo $! > {}; wait",
            pid_file.display()
        )))
    });
    s.start_timeout = Duration::from_secs(5);
    sup.add(s).unwrap();
    next(&mut rx, "hang", |k| matches!(k, EventKind::Started { .. })).await;
    let pid = crate::read_pid(&pid_file).await;
    crate::eventually("the check's child is killed at the check's timeout", || {
        !crate::alive(pid)
    })
    .await;
    sup.stop().await;
}
