//! Logs: timestamped lines from both streams, size-based rotation.

use std::time::SystemTime;

use berth_supervise::{EventKind, RestartPolicy, Supervisor};

use crate::{next, spec};

#[tokio::test]
async fn output_lands_in_the_log_with_timestamps_and_stream_markers() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let before = SystemTime::now() - std::time::Duration::from_secs(1);
    let mut s = spec(
        dir.path(),
        "talk",
        "echo hello; echo oops >&2; printf 'no newline'",
    );
    s.restart = RestartPolicy::Never;
    sup.add(s).unwrap();
    // The exit is reported once the pipes are drained into the log.
    next(&mut rx, "talk", |k| matches!(k, EventKind::Exited(_))).await;
    let log = std::fs::read_to_string(dir.path().join("logs/talk.0.log")).unwrap();
    let mut lines: Vec<(String, String)> = Vec::new();
    for line in log.lines() {
        let mut parts = line.splitn(3, ' ');
        let stamp = humantime::parse_rfc3339(parts.next().unwrap()).unwrap();
        assert!(stamp >= before && stamp <= SystemTime::now(), "{line}");
        lines.push((
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        ));
    }
    // stdout and stderr are separate pipes: their relative order is not kept.
    lines.sort();
    let want = [("err", "oops"), ("out", "hello"), ("out", "no newline")];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(lines, want);
}

#[tokio::test]
async fn rotation_keeps_the_configured_count() {
    let dir = tempfile::tempdir().unwrap();
    let sup = Supervisor::new();
    let mut rx = sup.subscribe();
    let mut s = spec(
        dir.path(),
        "chatty",
        "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done",
    );
    s.restart = RestartPolicy::Never;
    s.log_max_bytes = 300;
    s.log_keep = 2;
    sup.add(s).unwrap();
    next(&mut rx, "chatty", |k| matches!(k, EventKind::Exited(_))).await;

    let logs = dir.path().join("logs");
    let mut names: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["chatty.0.log", "chatty.0.log.1", "chatty.0.log.2"]);
    // Oldest first, the kept files hold the tail of the output without a gap.
    let mut numbers = Vec::new();
    for name in ["chatty.0.log.2", "chatty.0.log.1", "chatty.0.log"] {
        let text = std::fs::read_to_string(logs.join(name)).unwrap();
        assert!(text.len() <= 300, "{name} has {} bytes", text.len());
        for line in text.lines() {
            let n: u32 = line.rsplit("line-").next().unwrap().parse().unwrap();
            numbers.push(n);
        }
    }
    assert_eq!(*numbers.last().unwrap(), 99);
    assert!(numbers.len() > 5);
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
}
