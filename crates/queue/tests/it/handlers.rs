//! The `run` and `post` handlers against real processes and a real HTTP server.

use std::time::Duration;

use berth_queue::handler::post::PostHandler;
use berth_queue::handler::run::RunHandler;
use berth_queue::{Handler, HandlerOutcome, HandlerSpec};
use berth_store::{JobState, LeasedJob, Timestamp};
use berth_testkit::sink::Sink;
use serde_json::json;

use crate::{fixture, spec, wait_state};

fn leased(args: serde_json::Value) -> LeasedJob {
    LeasedJob {
        id: 42,
        queue: "q".into(),
        kind: "import".into(),
        args,
        attempt: 2,
        max_attempts: 5,
        priority: 0,
        lease_expires_at: Timestamp(0),
        workflow_id: None,
        created_at: Timestamp(0),
    }
}

async fn run(cmd: &str, args: serde_json::Value) -> HandlerOutcome {
    RunHandler::new(cmd).handle(leased(args)).await
}

#[tokio::test]
async fn run_passes_args_on_stdin_and_the_attempt_in_the_environment() {
    let out = run(
        r#"echo "$BERTH_JOB_ID $BERTH_JOB_KIND $BERTH_ATTEMPT $BERTH_QUEUE"; cat; echo; echo {args.file} >&2"#,
        json!({"file": "a b.csv"}),
    )
    .await;
    match out {
        HandlerOutcome::Completed {
            output: Some(o), ..
        } => {
            assert!(o.contains("42 import 2 q"), "{o}");
            assert!(o.contains(r#"{"file":"a b.csv"}"#), "{o}");
            assert!(o.contains("a b.csv"), "{o}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn run_exit_codes_complete_retry_or_fail() {
    assert!(matches!(
        run("exit 0", json!({})).await,
        HandlerOutcome::Completed { .. }
    ));
    assert!(matches!(
        run("exit 75", json!({})).await,
        HandlerOutcome::Retry { after: None, .. }
    ));
    match run("echo oops >&2; exit 3", json!({})).await {
        HandlerOutcome::Failed { error, output } => {
            // The error quotes the last line of stderr: why it failed.
            assert_eq!(error, "the command exited with code 3: oops");
            assert_eq!(output.as_deref(), Some("oops\n"));
        }
        other => panic!("{other:?}"),
    }
    match run(
        "echo progress; echo 'contract C-7: no premium' >&2; echo; exit 1",
        json!({}),
    )
    .await
    {
        HandlerOutcome::Failed { error, .. } => {
            assert_eq!(
                error,
                "the command exited with code 1: contract C-7: no premium"
            )
        }
        other => panic!("{other:?}"),
    }
    match run("echo only stdout; exit 2", json!({})).await {
        HandlerOutcome::Failed { error, .. } => assert_eq!(error, "the command exited with code 2"),
        other => panic!("{other:?}"),
    }
    match run("kill -TERM $$", json!({})).await {
        HandlerOutcome::Failed { error, .. } => assert!(error.contains("SIGTERM"), "{error}"),
        other => panic!("{other:?}"),
    }
    match run("echo {args.nope}", json!({})).await {
        HandlerOutcome::Failed { error, .. } => assert!(error.contains("args.nope"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn run_output_is_bounded() {
    match run("head -c 300000 /dev/zero | tr '\\0' x; echo END", json!({})).await {
        HandlerOutcome::Completed {
            output: Some(o), ..
        } => {
            assert!(o.len() < 70_000, "{}", o.len());
            assert!(o.starts_with("[… "), "{}", &o[..40]);
            assert!(o.ends_with("END\n"));
        }
        other => panic!("{other:?}"),
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie would still count, so also look at its state.
    let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !status.is_empty() && !status.contains(") Z ")
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let mut s = spec(
        "q",
        HandlerSpec::Run {
            command: String::new(),
        },
    );
    s.timeout = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    // A grandchild in the background, and the shell waiting on it.
    s.handler = HandlerSpec::Run {
        command: format!(
            "echo started; sleep 60 & echo $! > {}; wait",
            pidfile.display()
        ),
    };
    let f = fixture(vec![s]);
    let rt = berth_queue::Runtime::start(f.queues.clone(), Default::default())
        .await
        .unwrap();
    let id = f
        .queues
        .enqueue(vec![berth_queue::Enqueue {
            queue: "q".into(),
            kind: "slow".into(),
            ..Default::default()
        }])
        .await
        .unwrap()[0]
        .id;
    let j = wait_state(&f.queues, id, JobState::Retryable).await;
    assert_eq!(j.errors[0].error, "timed out after 300ms", "{:?}", j.errors);
    assert_eq!(
        j.errors[0].output.as_deref(),
        Some("started\n"),
        "output kept"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    berth_testkit::wait_until("the grandchild to die", Duration::from_secs(5), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    rt.stop().await;
}

#[tokio::test]
async fn post_completes_on_2xx_with_the_body_as_result() {
    let sink = Sink::with(|hit| (200, vec![], json!({"got": hit.body}).to_string())).await;
    let h = PostHandler::new(&sink.url()).unwrap();
    match h.handle(leased(json!({"x": 1}))).await {
        HandlerOutcome::Completed { result, .. } => {
            assert_eq!(result, Some(json!({"got": {"x": 1}})))
        }
        other => panic!("{other:?}"),
    }
    let hits = sink.hits();
    assert_eq!(
        (hits[0].job_id, hits[0].attempt, hits[0].kind.as_str()),
        (42, 2, "import")
    );
}

#[tokio::test]
async fn post_retries_after_retry_after_and_fails_other_statuses() {
    let sink = Sink::with(|hit| match hit.body["case"].as_str() {
        Some("busy") => (503, vec![("retry-after", "120".into())], String::new()),
        Some("limited") => (429, vec![], String::new()),
        _ => (500, vec![], "database down".into()),
    })
    .await;
    let h = PostHandler::new(&sink.url()).unwrap();
    match h.handle(leased(json!({"case": "busy"}))).await {
        HandlerOutcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(120))),
        other => panic!("{other:?}"),
    }
    match h.handle(leased(json!({"case": "limited"}))).await {
        HandlerOutcome::Failed { error, .. } => assert!(error.contains("429"), "{error}"),
        other => panic!("{other:?}"),
    }
    match h.handle(leased(json!({"case": "broken"}))).await {
        HandlerOutcome::Failed { error, output } => {
            assert!(error.contains("500"), "{error}");
            assert_eq!(output.as_deref(), Some("database down"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn post_to_a_closed_port_fails_the_attempt() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = PostHandler::new(&format!("http://127.0.0.1:{port}/jobs")).unwrap();
    match h.handle(leased(json!({}))).await {
        HandlerOutcome::Failed { error, .. } => assert!(error.contains("failed"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert!(PostHandler::new("https://example.org/x").is_err());
    assert!(PostHandler::new("not a url").is_err());
}

#[tokio::test]
async fn a_background_child_does_not_hold_the_attempt_open() {
    let t = std::time::Instant::now();
    // `sleep` inherits stdout; the attempt ends when the shell does, and the leftover dies.
    let out = run("sleep 30 & echo done", json!({})).await;
    assert!(matches!(out, HandlerOutcome::Completed { .. }), "{out:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn exit_75_keeps_its_output() {
    match run("echo 'mail server busy'; exit 75", json!({})).await {
        HandlerOutcome::Retry { output, .. } => {
            assert_eq!(output.as_deref(), Some("mail server busy\n"))
        }
        other => panic!("{other:?}"),
    }
}
