//! Rolling restarts and definition updates: one instance at a time, the new process
//! ready before the old one stops where a spare port (or no port) allows.

use berth_supervise::{Check, Event, EventKind, InstanceState, Ports, Supervisor};

use crate::health::{probe, until};
use crate::{alive, next, spec};

/// A real HTTP server on the instance's port.
pub const HTTP_SERVER: &str = "exec python3 -m http.server {port} --bind 127.0.0.1";

fn pid_of(e: &Event) -> Option<u32> {
    match e.kind {
        EventKind::Started { pid, .. } | EventKind::Ready { pid } => Some(pid),
        _ => None,
    }
}

#[tokio::test]
async fn each_new_process_is_ready_before_its_old_one_stops_and_the_next_instance_starts() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "worker", "exec sleep 30");
    s.instances = 2;
    // Every check takes 200 ms: being ready takes a while.
    s.ready = Some(probe(Check::Command {
        command: "sleep 0.2".into(),
    }));
    sup.add(s).unwrap();
    sup.wait_ready("worker", crate::PATIENCE).await.unwrap();
    let old: Vec<u32> = sup.status().iter().map(|s| s.pid.unwrap()).collect();
    while rx.try_recv().is_ok() {}

    sup.restart("worker").await.unwrap();
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    let steps: Vec<String> = seen
        .iter()
        .map(|e| format!("{}:{}", e.instance, e.kind.name()))
        .collect();
    assert_eq!(
        steps,
        [
            "0:started",
            "0:ready",
            "0:stopped",
            "1:started",
            "1:ready",
            "1:stopped"
        ],
        "{seen:#?}"
    );
    // The stopped processes are the old ones; the ready ones are new.
    assert_eq!(pid_of(&seen[1]), pid_of(&seen[0]));
    assert!(!old.contains(&pid_of(&seen[1]).unwrap()));
    for pid in old {
        assert!(!alive(pid), "old pid {pid} is gone");
    }
    let status = sup.status();
    assert!(status.iter().all(|s| s.state == InstanceState::Running));
    assert!(status.iter().all(|s| s.restarts == 1), "{status:#?}");
    sup.stop().await;
}

#[tokio::test]
async fn a_spare_port_lets_the_new_process_start_beside_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let first = crate::free_ports(2);
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "web", HTTP_SERVER);
    s.ports = Some(Ports {
        first,
        last: first + 1,
    });
    s.ready = Some(probe(Check::Http { path: "/".into() }));
    sup.add(s).unwrap();
    sup.wait_ready("web", crate::PATIENCE).await.unwrap();
    assert_eq!(sup.status()[0].port, Some(first));
    while rx.try_recv().is_ok() {}
    sup.restart("web").await.unwrap();
    let seen: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    let kinds: Vec<_> = seen.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["started", "ready", "stopped"], "{seen:#?}");
    assert!(
        matches!(seen[0].kind, EventKind::Started { port: Some(p), .. } if p == first + 1),
        "{seen:#?}"
    );
    assert_eq!(sup.status()[0].port, Some(first + 1));
    // The freed port is the spare for the next restart, again started beside the old.
    sup.restart("web").await.unwrap();
    let seen: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    let kinds: Vec<_> = seen.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["started", "ready", "stopped"], "{seen:#?}");
    assert_eq!(sup.status()[0].port, Some(first));
    sup.stop().await;
}

#[tokio::test]
async fn without_a_spare_port_the_old_process_stops_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_ports(1);
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "web", HTTP_SERVER);
    s.ports = Some(Ports::fixed(port, 1));
    s.ready = Some(probe(Check::Tcp));
    sup.add(s).unwrap();
    sup.wait_ready("web", crate::PATIENCE).await.unwrap();
    while rx.try_recv().is_ok() {}
    sup.restart("web").await.unwrap();
    let seen: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    let kinds: Vec<_> = seen.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["stopped", "started", "ready"], "{seen:#?}");
    assert_eq!(sup.status()[0].port, Some(port));
    sup.stop().await;
}

#[tokio::test]
async fn a_replacement_that_never_gets_ready_leaves_the_old_process_running() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "api", "exec sleep 30");
    s.instances = 2;
    sup.add(s.clone()).unwrap();
    sup.wait_ready("api", crate::PATIENCE).await.unwrap();
    let old: Vec<u32> = sup.status().iter().map(|s| s.pid.unwrap()).collect();
    // The new definition crashes at once.
    s.command = "echo broken config >&2; exit 2".into();
    s.ready = Some(probe(Check::Command {
        command: "true".into(),
    }));
    let err = sup.update(s.clone()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("restart of `api` stopped at instance 0: the new process exited with code 2; the old one keeps running"),
        "{err}"
    );
    let now: Vec<u32> = sup.status().iter().map(|s| s.pid.unwrap()).collect();
    assert_eq!(now, old, "both old processes still serve");
    assert!(old.iter().all(|p| alive(*p)));
    assert!(
        sup.status()
            .iter()
            .all(|s| s.state == InstanceState::Running)
    );
    // The service keeps the definition its processes run; a fixed one rolls on.
    assert_eq!(sup.spec("api").unwrap().command, "exec sleep 30");
    s.command = "exec sleep 31".into();
    sup.update(s).await.unwrap();
    let seen = until(&mut rx, |e| {
        e.instance == 1 && matches!(e.kind, EventKind::Stopped { .. })
    })
    .await;
    assert!(!seen.is_empty());
    assert!(old.iter().all(|p| !alive(*p)));
    sup.stop().await;
}

#[tokio::test]
async fn a_restart_waits_for_an_instance_that_is_still_starting() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let sup = std::sync::Arc::new(Supervisor::new());
    let mut s = spec(dir.path(), "web", "exec sleep 30");
    // Ready only once the test says so.
    s.ready = Some(probe(Check::Command {
        command: format!("test -e {}", go.display()),
    }));
    sup.add(s).unwrap();
    let first = loop {
        if let Some(pid) = sup.status()[0].pid {
            break pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(sup.status()[0].state, InstanceState::Starting);
    // A deploy right after `berth up`: the restart is held, not refused.
    let restart = tokio::spawn({
        let sup = sup.clone();
        async move { sup.restart("web").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!restart.is_finished(), "held while instance 0 starts");
    std::fs::write(&go, "").unwrap();
    restart.await.unwrap().unwrap();
    let status = &sup.status()[0];
    assert_eq!(status.state, InstanceState::Running);
    assert_ne!(status.pid, Some(first), "a new process runs");
    assert!(!alive(first));
    sup.stop().await;
}

#[tokio::test]
async fn a_restart_held_by_a_start_that_fails_starts_the_new_definition() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    // This definition never gets ready and exits after a while.
    let mut s = spec(dir.path(), "web", "sleep 0.5; exit 3");
    s.ready = Some(probe(Check::Command {
        command: "false".into(),
    }));
    sup.add(s.clone()).unwrap();
    while sup.status()[0].state != InstanceState::Starting {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.command = "exec sleep 30".into();
    s.ready = Some(probe(Check::Command {
        command: "true".into(),
    }));
    sup.update(s).await.unwrap();
    let status = &sup.status()[0];
    assert_eq!(status.state, InstanceState::Running);
    assert_eq!(sup.spec("web").unwrap().command, "exec sleep 30");
    sup.stop().await;
}

#[tokio::test]
async fn a_replacement_that_dies_while_the_old_process_stops_is_seen_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sup = std::sync::Arc::new(Supervisor::new());
    let mut rx = sup.subscribe();
    // The old process takes 3 s to stop.
    let mut s = spec(
        dir.path(),
        "web",
        "trap 'sleep 3; exit 0' TERM; while :; do sleep 0.05; done",
    );
    s.stop_grace = std::time::Duration::from_secs(10);
    sup.add(s.clone()).unwrap();
    sup.wait_ready("web", crate::PATIENCE).await.unwrap();
    // The new one is ready at once, and dies 300 ms later.
    s.command = "sleep 0.3; exit 7".into();
    s.ready = Some(probe(Check::Command {
        command: "true".into(),
    }));
    let started = std::time::Instant::now();
    let updating = tokio::spawn({
        let sup = sup.clone();
        async move { sup.update(s).await }
    });
    until(&mut rx, |e| {
        matches!(e.kind, EventKind::Exited(berth_supervise::Exit::Code(7)))
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the new process's death showed only after {:?}, once the old one had stopped",
        started.elapsed()
    );
    assert_ne!(sup.status()[0].state, InstanceState::Running);
    let err = updating.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("while the old one was stopping"),
        "{err}"
    );
    sup.stop().await;
}

#[tokio::test]
async fn changing_the_instance_count_replaces_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(dir.path(), "w", "exec sleep 30");
    sup.add(s.clone()).unwrap();
    sup.add(spec(dir.path(), "z", "exec sleep 30")).unwrap();
    sup.wait_ready("w", crate::PATIENCE).await.unwrap();
    s.instances = 3;
    sup.update(s).await.unwrap();
    sup.wait_ready("w", crate::PATIENCE).await.unwrap();
    assert_eq!(sup.services(), ["w", "z"], "the start order is kept");
    let w: Vec<_> = sup
        .status()
        .into_iter()
        .filter(|s| s.service == "w")
        .collect();
    assert_eq!(w.len(), 3);
    next(&mut rx, "w", |k| matches!(k, EventKind::Stopped { .. })).await;
    sup.stop().await;
}
