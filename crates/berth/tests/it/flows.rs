//! Batches, workflows and schedules through the real binary: `berth up` with `run`
//! handlers, driven by `berth batch|workflow|schedule`.

use std::time::Duration;

use berth_testkit::{Project, wait_until};

use crate::{parts, run_expecting_exit, run_in, stop, up};

const LIMIT: Duration = Duration::from_secs(120);

/// 1,000 items with 3 bad ones: the chunks holding them split down to single items, the
/// command waits with progress, exits non-zero and reports exactly those 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_three_bad_items_reports_exactly_those() {
    let p = Project::new(
        r#"[app]
name = "batches"
shutdown_grace = "2s"

[queue.work]
concurrency = 8
handler = { run = "if grep -qE '[[,](13|500|977)[],]'; then echo bad item >&2; exit 1; fi" }
"#,
    );
    let items: String = (0..1000).map(|i| format!("{i}\n")).collect();
    std::fs::write(p.dir().join("items.txt"), items).unwrap();
    let mut child = up(p.dir()).await;
    let out = run_expecting_exit(
        p.dir(),
        &[
            "batch",
            "run",
            "check",
            "--queue",
            "work",
            "--items",
            "items.txt",
            "--job-size",
            "50",
            "--max-attempts",
            "1",
            "--wait",
        ],
        LIMIT,
    );
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("1000 items in 20 jobs"), "{stderr}");
    assert!(
        stdout.contains("997 of 1000 items done, 3 failed"),
        "{stdout}"
    );
    let mut failed: Vec<u32> = stdout
        .lines()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, vec![13, 500, 977], "{stdout}");
    assert!(
        stdout.contains("the command exited with code 1"),
        "{stdout}"
    );
    // The same through the API, as JSON.
    let (code, json, _) = parts(&run_in(p.dir(), &["--json", "batch", "show", "1"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(v["failures"].as_array().unwrap().len(), 3);
    // Failed work counts failed work: the three bad items are `discarded`, the chunks
    // that were split on the way to them are `split`.
    let count = |state: &str| {
        let (code, json, err) = parts(&run_in(
            p.dir(),
            &["--json", "job", "list", "--state", state, "--limit", "1000"],
        ));
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["jobs"].as_array().unwrap().len()
    };
    assert_eq!(count("discarded"), 3);
    let split = count("split");
    assert!(split >= 3, "{split} split chunks");
    let (_, table, _) = parts(&run_in(p.dir(), &["queue", "list"]));
    assert!(table.contains("SPLIT"), "{table}");
    let (_, json, _) = parts(&run_in(p.dir(), &["--json", "queue", "list"]));
    let q: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(q["queues"][0]["counts"]["discarded"], 3, "{q}");
    assert_eq!(q["queues"][0]["counts"]["split"], split, "{q}");
    // Bad input is refused before anything is created.
    std::fs::write(p.dir().join("empty.txt"), "\n\n").unwrap();
    let (code, _, err) = parts(&run_in(
        p.dir(),
        &[
            "batch",
            "run",
            "x",
            "--queue",
            "work",
            "--items",
            "empty.txt",
        ],
    ));
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("no items"), "{err}");
    let (code, _, err) = parts(&run_in(
        p.dir(),
        &[
            "batch",
            "run",
            "x",
            "--queue",
            "nope",
            "--items",
            "items.txt",
        ],
    ));
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("unknown queue `nope`"), "{err}");
    let (_, list, _) = parts(&run_in(p.dir(), &["batch", "list"]));
    assert_eq!(list.lines().count(), 2, "one batch: {list}");
    stop(&mut child);
}

/// A workflow of commands passes results from step to step; one whose required step
/// fails exits non-zero with the reason; the finished workflows are recorded as events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_from_the_command_line() {
    let p = Project::new(
        r#"[app]
name = "flows"
shutdown_grace = "2s"

[workflow.publish.step.fetch]
handler = { run = "echo '{\"pages\": 3}' > \"$BERTH_RESULT\"" }

[workflow.publish.step.render]
parents = ["fetch"]
handler = { run = "cat > \"$BERTH_RESULT\"" }

[workflow.broken.step.first]
max_attempts = 1
handler = { run = "echo no network >&2; exit 3" }

[workflow.broken.step.second]
parents = ["first"]
handler = { run = "true" }

[workflow.held.step.wait]
handler = { run = "while [ ! -e release ]; do sleep 0.05; done" }
"#,
    );
    let mut child = up(p.dir()).await;
    let out = run_expecting_exit(
        p.dir(),
        &[
            "--json",
            "workflow",
            "start",
            "publish",
            "--args",
            "{\"doc\": 9}",
            "--wait",
        ],
        LIMIT,
    );
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["state"], "completed");
    assert_eq!(
        v["result"]["render"],
        serde_json::json!({"input": {"doc": 9}, "parents": {"fetch": {"pages": 3}}})
    );
    let out = run_expecting_exit(p.dir(), &["workflow", "start", "broken", "--wait"], LIMIT);
    let (code, stdout, _) = parts(&out);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("failed — step `first`"), "{stdout}");
    assert!(
        stdout.contains("the command exited with code 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("second") && stdout.contains("cancelled"),
        "{stdout}"
    );
    let (_, list, _) = parts(&run_in(p.dir(), &["workflow", "list"]));
    assert!(
        list.contains("publish") && list.contains("broken"),
        "{list}"
    );
    let (code, _, err) = parts(&run_in(p.dir(), &["workflow", "start", "publsh"]));
    assert_eq!(code, 4);
    assert!(err.contains("did you mean `publish`?"), "{err}");
    let (code, _, err) = parts(&run_in(
        p.dir(),
        &["workflow", "start", "publish", "--args", "{x"],
    ));
    assert_eq!(code, 6, "{err}");
    let events = p
        .client()
        .get_json("/v1/events?source=workflow")
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["failed", "completed"], "{events}");
    // A unique key: the second start while the first runs starts nothing.
    let start = || {
        parts(&run_in(
            p.dir(),
            &["workflow", "start", "held", "--unique-key", "doc-9"],
        ))
    };
    let (code, first, err) = start();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not started again"), "{err}");
    let (code, again, err) = start();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("runs already: not started again"), "{err}");
    let id = |out: &str| out.split_whitespace().nth(1).unwrap_or_default().to_owned();
    assert_eq!(id(&again), id(&first), "{first}\n{again}");
    assert!(again.contains("unique key doc-9"), "{again}");
    // (Once it ended, the key starts a new one: the store's conformance suite.)
    std::fs::write(p.dir().join("release"), "").unwrap();
    stop(&mut child);
}

/// A schedule fires on its own (every second here), runs by hand, pauses; `berth check`
/// refuses a cycle among steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_fire_and_are_steered_from_the_command_line() {
    let p = Project::new(
        r#"[app]
name = "sched"
shutdown_grace = "2s"

[schedule.tick]
cron = "* * * * * *"
command = "echo tick"
"#,
    );
    let mut child = up(p.dir()).await;
    let c = p.client();
    wait_until(
        "the schedule to fire twice",
        Duration::from_secs(20),
        || {
            let c = c.clone();
            async move {
                let v = c
                    .get_json("/v1/jobs?queue=schedule.tick&state=completed")
                    .await
                    .ok()?;
                (v["jobs"].as_array()?.len() >= 2).then_some(())
            }
        },
    )
    .await;
    let (code, out, err) = parts(&run_in(p.dir(), &["schedule", "list"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("tick") && out.contains("* * * * * * (UTC)"),
        "{out}"
    );
    assert!(
        out.contains("completed") || out.contains("available") || out.contains("running"),
        "{out}"
    );
    let (code, out, _) = parts(&run_in(p.dir(), &["schedule", "run", "tick"]));
    assert_eq!(code, 0);
    assert!(out.contains("schedule `tick` started job"), "{out}");
    let (code, out, _) = parts(&run_in(p.dir(), &["schedule", "pause", "tick"]));
    assert_eq!(code, 0);
    assert!(out.contains("paused"), "{out}");
    let (code, _, err) = parts(&run_in(p.dir(), &["schedule", "run", "tock"]));
    assert_eq!(code, 4, "{err}");
    stop(&mut child);

    std::fs::write(
        p.dir().join("berth.toml"),
        "[app]\nname = \"x\"\n[workflow.w.step.a]\nparents = [\"b\"]\n[workflow.w.step.b]\nparents = [\"a\"]\n",
    )
    .unwrap();
    let (code, _, err) = parts(&run_in(p.dir(), &["check"]));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("wait on each other in a cycle"), "{err}");
}

/// Failed work kept aside (the back office's `qarchive` / `jarchive`): a queue's
/// discarded jobs, then one job, leave the live table for the archive, where they are
/// listed, shown and exported as JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_are_archived_listed_shown_and_exported() {
    let p = Project::new(
        r#"[app]
name = "archive"
shutdown_grace = "2s"

[queue.work]
max_attempts = 1
handler = { run = "if grep -q bad; then echo cannot read row >&2; exit 1; fi" }
"#,
    );
    let mut child = up(p.dir()).await;
    for args in [r#"{"n":1}"#, r#"{"bad":2}"#, r#"{"bad":3}"#, r#"{"bad":4}"#] {
        let (code, _, err) = parts(&run_in(p.dir(), &["job", "push", "work", "row", args]));
        assert_eq!(code, 0, "{err}");
    }
    let dir = p.dir().to_path_buf();
    wait_until("the jobs to finish", LIMIT, || {
        let dir = dir.clone();
        async move {
            let (_, out, _) = parts(&run_in(&dir, &["--json", "queue", "list"]));
            let v: serde_json::Value = serde_json::from_str(&out).ok()?;
            let c = &v["queues"][0]["counts"];
            (c["discarded"] == 3 && c["completed"] == 1).then_some(())
        }
    })
    .await;
    // Not final, or unknown: refused with what would be right, nothing moved.
    let (code, _, err) = parts(&run_in(p.dir(), &["archive", "add", "--job", "999"]));
    assert_ne!(code, 0);
    assert!(err.contains("999"), "{err}");
    let (code, _, err) = parts(&run_in(
        p.dir(),
        &["archive", "add", "--queue", "work", "--state", "running"],
    ));
    assert_ne!(code, 0);
    assert!(err.contains("only final jobs"), "{err}");
    // The queue's failed work (the default state), then the completed job by id.
    let (code, out, err) = parts(&run_in(p.dir(), &["archive", "add", "--queue", "work"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("archived 3 job(s)"), "{out}");
    let (code, out, err) = parts(&run_in(p.dir(), &["archive", "add", "--job", "1"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("archived 1 job(s)"), "{out}");
    let (_, out, _) = parts(&run_in(p.dir(), &["--json", "job", "list"]));
    let live: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(live["jobs"].as_array().unwrap().is_empty(), "{live}");
    let (_, table, _) = parts(&run_in(
        p.dir(),
        &["archive", "list", "--state", "discarded"],
    ));
    assert_eq!(table.lines().count(), 4, "a header and three jobs: {table}");
    assert!(table.contains("exited with code 1"), "{table}");
    let (code, shown, err) = parts(&run_in(p.dir(), &["archive", "show", "2"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        shown.contains("discarded") && shown.contains("archived"),
        "{shown}"
    );
    let (code, _, err) = parts(&run_in(p.dir(), &["archive", "show", "77"]));
    assert_ne!(code, 0);
    assert!(err.contains("not in the archive"), "{err}");
    // JSON lines, one job each, with its history.
    let (code, lines, err) = parts(&run_in(p.dir(), &["archive", "export"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("exported 4"), "{err}");
    let jobs: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jobs.len(), 4);
    let bad = jobs.iter().find(|j| j["id"] == 3).unwrap();
    assert_eq!(bad["state"], "discarded");
    assert!(
        bad["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("exited with code 1"),
        "{bad}"
    );
    assert!(bad["archived_at"].is_string(), "{bad}");
    stop(&mut child);
}
