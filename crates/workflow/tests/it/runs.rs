//! A diamond passes results along through real commands; a step whose worker dies
//! mid-run is retried once its heartbeat timeout passes, and the workflow completes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_queue::handler::func::FnHandler;
use berth_queue::{
    Clock, Handler, HandlerOutcome, HandlerSpec, ManualClock, QueueSpec, Queues, Runtime,
    RuntimeOptions,
};
use berth_store::conformance::T0;
use berth_store::{FlowState, JobState, SqliteStore, Store, Workflow};
use berth_testkit::wait_until;
use berth_workflow::{StepDef, WorkflowDef, Workflows, step_queue};
use serde_json::json;

fn step(name: &str, parents: &[&str]) -> StepDef {
    StepDef {
        name: name.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        optional: false,
        max_attempts: 3,
    }
}

fn run_spec(workflow: &str, step: &str, command: &str) -> QueueSpec {
    QueueSpec::new(
        step_queue(workflow, step),
        HandlerSpec::Run {
            command: command.into(),
        },
    )
}

fn open(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.path().join("berth.db"), Default::default()).unwrap())
}

async fn finished(w: &Workflows, id: i64) -> Workflow {
    wait_until(
        "the workflow to finish",
        Duration::from_secs(30),
        || async {
            let got = w.get(id).await.unwrap();
            (got.state != FlowState::Running).then_some(got)
        },
    )
    .await
}

/// a → (b, c) → d, each a shell command: b and c get a's result, d gets both of theirs
/// (it hands its own args back as its result, so the test can see them).
#[tokio::test]
async fn a_diamond_of_commands_passes_results_along() {
    let dir = tempfile::tempdir().unwrap();
    let specs = vec![
        // Each step knows where it is: its workflow's id and its own name.
        run_spec(
            "pub",
            "a",
            r#"echo "{\"rows\": 12, \"wf\": $BERTH_WORKFLOW_ID, \"step\": \"$BERTH_WORKFLOW_STEP\"}" > "$BERTH_RESULT""#,
        ),
        run_spec(
            "pub",
            "b",
            r#"cat > /dev/null; echo '"b done"' > "$BERTH_RESULT""#,
        ),
        run_spec("pub", "c", r#"cat > "$BERTH_RESULT""#),
        run_spec("pub", "d", r#"cat > "$BERTH_RESULT""#),
    ];
    let queues = Queues::new(open(&dir), Arc::new(ManualClock::new(T0)), specs);
    let def = WorkflowDef {
        name: "pub".into(),
        timeout: None,
        steps: vec![
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("d", &["b", "c"]),
        ],
    };
    let workflows = Workflows::new(queues.clone(), vec![def]);
    let runtime = Runtime::start(queues.clone(), RuntimeOptions::default())
        .await
        .unwrap();
    let started = workflows
        .start("pub", json!({"doc": 7}), "test")
        .await
        .unwrap();
    let w = finished(&workflows, started.id).await;
    assert_eq!(w.state, FlowState::Completed, "{w:?}");
    let result = w.result.unwrap();
    let a = json!({"rows": 12, "wf": started.id, "step": "a"});
    assert_eq!(result["a"], a);
    assert_eq!(
        result["c"],
        json!({"input": {"doc": 7}, "parents": {"a": a}})
    );
    assert_eq!(
        result["d"]["parents"],
        json!({"b": "b done", "c": {"input": {"doc": 7}, "parents": {"a": a}}})
    );
    assert!(w.steps.iter().all(|s| s.state == Some(JobState::Completed)));
    runtime.stop().await;
}

/// A step whose command writes a result that is not JSON fails with a message saying so.
#[tokio::test]
async fn a_bad_result_fails_the_step_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = run_spec("w", "a", r#"echo 'not json' > "$BERTH_RESULT""#);
    spec.max_attempts = 1;
    let queues = Queues::new(open(&dir), Arc::new(ManualClock::new(T0)), vec![spec]);
    let mut s = step("a", &[]);
    s.max_attempts = 1;
    let workflows = Workflows::new(
        queues.clone(),
        vec![WorkflowDef {
            name: "w".into(),
            timeout: None,
            steps: vec![s],
        }],
    );
    let runtime = Runtime::start(queues.clone(), RuntimeOptions::default())
        .await
        .unwrap();
    let id = workflows.start("w", json!({}), "test").await.unwrap().id;
    let w = finished(&workflows, id).await;
    assert_eq!(w.state, FlowState::Failed);
    let err = w.steps[0].error.clone().unwrap();
    assert!(err.contains("not valid JSON"), "{err}");
    runtime.stop().await;
}

/// Node A runs the step and dies (its runtime dropped, the attempt left running in the
/// store). Once the step's heartbeat timeout has passed on the clock, node B's rescuer
/// fails the attempt; B runs the step again and the workflow completes.
#[tokio::test]
async fn a_step_whose_worker_dies_runs_again_and_the_workflow_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let clock = ManualClock::new(T0);
    let mut slow = QueueSpec::new(step_queue("w", "slow"), HandlerSpec::Pull);
    slow.lease_ttl = Some(Duration::from_secs(10));
    let after = QueueSpec::new(step_queue("w", "after"), HandlerSpec::Pull);
    let def = WorkflowDef {
        name: "w".into(),
        timeout: None,
        steps: vec![step("slow", &[]), step("after", &["slow"])],
    };
    let node = |name: &str| {
        Queues::for_node(
            store.clone(),
            Arc::new(clock.clone()),
            vec![slow.clone(), after.clone()],
            name,
        )
    };
    let handlers = |h: FnHandler| {
        let h: Arc<dyn Handler> = Arc::new(h);
        RuntimeOptions {
            handlers: HashMap::from([
                (step_queue("w", "slow"), h.clone()),
                (step_queue("w", "after"), h),
            ]),
            ..Default::default()
        }
    };
    // Node A hangs in the step, like a worker that stopped answering.
    let a = node("node-a");
    let workflows = Workflows::new(a.clone(), vec![def.clone()]);
    let runtime_a = Runtime::start(
        a.clone(),
        handlers(FnHandler::new(|_| std::future::pending::<HandlerOutcome>())),
    )
    .await
    .unwrap();
    let id = workflows.start("w", json!({}), "test").await.unwrap().id;
    let first = wait_until(
        "the step to run on node A",
        Duration::from_secs(10),
        || async {
            let w = workflows.get(id).await.unwrap();
            (w.steps[0].state == Some(JobState::Running)).then_some(w)
        },
    )
    .await;
    assert_eq!(first.steps[0].attempt, 1);
    drop(runtime_a);
    // Node B works. Before the timeout nothing is rescued; after it, the step runs again.
    let b = node("node-b");
    let runtime_b = Runtime::start(b.clone(), handlers(FnHandler::noop()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        berth_queue::maintenance::rescue_expired(&b, clock.now())
            .await
            .unwrap(),
        0
    );
    clock.advance(Duration::from_secs(6));
    assert_eq!(
        berth_queue::maintenance::rescue_expired(&b, clock.now())
            .await
            .unwrap(),
        1
    );
    let w = finished(&workflows, id).await;
    assert_eq!(w.state, FlowState::Completed, "{w:?}");
    assert_eq!(w.steps[0].attempt, 2, "the step ran a second time");
    let job = store.job(w.steps[0].job_id).await.unwrap().unwrap();
    assert!(
        job.errors[0].error.contains("stopped heartbeating"),
        "{:?}",
        job.errors
    );
    runtime_b.stop().await;
}
