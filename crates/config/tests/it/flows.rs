//! `[schedule.NAME]` and `[workflow.NAME]`: what is accepted, and every mistake refused
//! with its place and what would be right.

use std::time::Duration;

use berth_config::{CatchUp, Overlap, ScheduleTarget};
use serde_json::json;

use crate::{diagnostics, one_error, valid, with_app};

const FLOWS: &str = r#"
[queue.default]

[workflow.publish]
timeout = "1h"

[workflow.publish.step.fetch]
handler = { run = "python3 fetch.py" }

[workflow.publish.step.render]
parents = ["fetch"]
handler = { post = "http://127.0.0.1:8000/render" }
heartbeat_timeout = "30s"
max_attempts = 5

[workflow.publish.step.notify]
parents = ["fetch", "render"]
optional = true

[schedule.cleanup]
cron = "*/5 * * * *"
job = { queue = "default", kind = "cleanup", args = { days = 30, dry = false } }

[schedule.nightly]
cron = "@daily"
timezone = "Europe/Berlin"
command = "python3 manage.py clearsessions"
overlap = "queue"
catch_up = "all"
catch_up_limit = 3
jitter = "2m"

[schedule.publish]
cron = "0 */2 * * * *"
workflow = { name = "publish", args = { channel = "web" } }
overlap = "allow"
catch_up = "skip"
"#;

#[test]
fn schedules_and_workflows_are_read() {
    let c = valid(&with_app(FLOWS));
    let w = &c.workflows["publish"];
    assert_eq!(w.timeout, Some(Duration::from_secs(3600)));
    assert_eq!(
        w.steps["fetch"].queue.max_attempts, 3,
        "steps default to 3 attempts"
    );
    assert_eq!(w.steps["render"].queue.max_attempts, 5);
    assert_eq!(
        w.steps["render"].heartbeat_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(w.steps["notify"].parents, vec!["fetch", "render"]);
    assert!(w.steps["notify"].optional);

    let cleanup = &c.schedules["cleanup"];
    assert_eq!(cleanup.timezone, "UTC");
    assert_eq!(
        (cleanup.overlap, cleanup.catch_up),
        (Overlap::Skip, CatchUp::Once)
    );
    assert_eq!(
        cleanup.target,
        ScheduleTarget::Job {
            queue: "default".into(),
            kind: "cleanup".into(),
            args: json!({"days": 30, "dry": false})
        }
    );
    let nightly = &c.schedules["nightly"];
    assert_eq!(
        (nightly.overlap, nightly.catch_up),
        (Overlap::Queue, CatchUp::All(3))
    );
    assert_eq!(nightly.jitter, Duration::from_secs(120));
    assert_eq!(nightly.timezone, "Europe/Berlin");
    assert_eq!(
        c.schedules["publish"].target,
        ScheduleTarget::Workflow {
            name: "publish".into(),
            args: json!({"channel": "web"})
        }
    );
}

#[test]
fn a_bad_cron_expression_is_refused_at_its_place() {
    let (line, column, message) = one_error(
        "[app]\nname = \"x\"\n[queue.q]\n[schedule.s]\ncron = \"61 * * * *\"\njob = { queue = \"q\", kind = \"k\" }\n",
    );
    assert_eq!((line, column), (5, 8));
    assert!(message.contains("minute field `61`"), "{message}");
    assert!(message.contains("expected 5 fields"), "{message}");
    let (_, _, message) = one_error(&with_app(
        "[queue.q]\n[schedule.s]\ncron = \"* * *\"\njob = { queue = \"q\", kind = \"k\" }\n",
    ));
    assert!(message.contains("found 3"), "{message}");
    let (_, _, message) = one_error(&with_app(
        "[queue.q]\n[schedule.s]\ncron = \"0 0 31 2 *\"\njob = { queue = \"q\", kind = \"k\" }\n",
    ));
    assert!(message.contains("never fires"), "{message}");
}

#[test]
fn unknown_queues_workflows_and_time_zones_are_refused() {
    let (_, _, message) = one_error(&with_app(
        "[queue.default]\n[schedule.s]\ncron = \"@hourly\"\njob = { queue = \"defualt\", kind = \"k\" }\n",
    ));
    assert!(
        message.contains("unknown queue `defualt`; did you mean `default`?"),
        "{message}"
    );
    let (_, _, message) = one_error(&with_app(
        "[schedule.s]\ncron = \"@hourly\"\nworkflow = \"nope\"\n",
    ));
    assert!(message.contains("unknown workflow `nope`"), "{message}");
    assert!(message.contains("add a [workflow.NAME] table"), "{message}");
    let (_, _, message) = one_error(&with_app(
        "[queue.q]\n[schedule.s]\ncron = \"@hourly\"\ntimezone = \"Mars/Olympus\"\njob = { queue = \"q\", kind = \"k\" }\n",
    ));
    assert!(message.contains("Mars/Olympus"), "{message}");
    let (_, _, message) = one_error(&with_app(
        "[queue.q]\n[schedule.s]\ncron = \"@hourly\"\njob = { queue = \"q\", kind = \"k\" }\ncommand = \"true\"\n",
    ));
    assert!(message.contains("has both job and command"), "{message}");
    let (_, _, message) = one_error(&with_app("[schedule.s]\ncron = \"@hourly\"\n"));
    assert!(message.contains("has nothing to start"), "{message}");
    let (_, _, message) = one_error(&with_app(
        "[queue.q]\n[schedule.s]\ncron = \"@hourly\"\njob = { queue = \"q\", kind = \"k\" }\noverlap = \"sometimes\"\n",
    ));
    assert!(
        message.contains("expected \"skip\", \"allow\" or \"queue\""),
        "{message}"
    );
}

#[test]
fn unknown_steps_and_cycles_are_refused() {
    let (line, _, message) = one_error(&with_app(
        "[workflow.w.step.a]\n[workflow.w.step.b]\nparents = [\"aa\"]\n",
    ));
    assert_eq!(line, 6);
    assert!(
        message.contains("unknown step `aa` in `parents`"),
        "{message}"
    );
    assert!(message.contains("did you mean `a`?"), "{message}");
    let (line, _, message) = one_error(&with_app(
        "[workflow.w.step.a]\nparents = [\"c\"]\n[workflow.w.step.b]\nparents = [\"a\"]\n[workflow.w.step.c]\nparents = [\"b\"]\n[workflow.w.step.d]\n",
    ));
    assert_eq!(line, 5);
    assert!(
        message.contains("the steps a, b, c of [workflow.w] wait on each other in a cycle"),
        "{message}"
    );
    let (_, _, message) = one_error(&with_app("[workflow.w]\ntimeout = \"1h\"\n"));
    assert!(message.contains("has no steps"), "{message}");
    let (_, _, message) = one_error(&with_app("[workflow.w.step.a]\nparents = [\"a\"]\n"));
    assert!(message.contains("cannot wait for itself"), "{message}");
    let found = diagnostics(&with_app("[workflow.w.step.a]\nretries = 3\n"));
    assert!(
        found[0].message.contains("unknown key `retries`"),
        "{:?}",
        found
    );
}
