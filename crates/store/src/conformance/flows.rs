//! Conformance cases for schedules, batches and workflows (re-exported by
//! [`crate::conformance`], which runs them with the rest).

use serde_json::{Value, json};

use crate::StoreError;
use crate::conformance::{T0, at, done, failed, fetch, job, push, state};
use crate::flows::*;
use crate::model::*;
use crate::store::*;

fn fire(
    name: &str,
    expect: Option<Timestamp>,
    next: Timestamp,
    start: Option<Start>,
) -> ScheduleFire {
    ScheduleFire {
        name: name.into(),
        expect_next: expect,
        next_at: next,
        planned: expect.unwrap_or(T0),
        start,
        skipped: 0,
    }
}

fn step(name: &str, parents: &[&str]) -> NewStep {
    NewStep {
        name: name.into(),
        queue: "wf".into(),
        kind: name.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        optional: false,
        max_attempts: 1,
        priority: 0,
    }
}

fn workflow(steps: Vec<NewStep>) -> NewWorkflow {
    NewWorkflow {
        name: "publish".into(),
        input: json!({"doc": 7}),
        steps,
        deadline: None,
        started_by: "test".into(),
        unique_key: None,
    }
}

fn finished_with(j: &LeasedJob, result: Value) -> Finish {
    let mut f = done(j);
    f.outcome = Outcome::Completed {
        result: Some(result),
        output: None,
    };
    f
}

async fn wf(s: &dyn Store, id: i64) -> Workflow {
    s.workflow(id).await.unwrap().expect("workflow exists")
}

fn step_state(w: &Workflow, name: &str) -> Option<JobState> {
    w.steps.iter().find(|s| s.name == name).unwrap().state
}

/// A planned time fires once, whoever tries; the next time only moves with a new
/// signature; pausing and a run by hand keep the next time.
pub async fn schedule_fires_each_planned_time_once(s: &dyn Store) {
    let st = s
        .schedule_prepare("tick", "*/5 * * * * UTC", at(300))
        .await
        .unwrap();
    assert_eq!(
        (st.next_at, st.last_job_id, st.paused),
        (at(300), None, false)
    );
    // Preparing again with the same signature keeps the stored next time.
    let st = s
        .schedule_prepare("tick", "*/5 * * * * UTC", at(900))
        .await
        .unwrap();
    assert_eq!(st.next_at, at(300));
    let start = Some(Start::Job(job("q", "tick")));
    let first = s
        .schedule_fire(fire("tick", Some(at(300)), at(600), start.clone()), at(300))
        .await
        .unwrap()
        .expect("fires");
    let again = s
        .schedule_fire(fire("tick", Some(at(300)), at(600), start.clone()), at(301))
        .await
        .unwrap();
    assert_eq!(again, None, "a planned time fires once");
    let st = &s.schedules().await.unwrap()[0];
    assert_eq!(st.next_at, at(600));
    assert_eq!(st.last_job_id, first.job_id);
    assert_eq!(st.last_planned_at, Some(at(300)));
    assert_eq!(st.last_fired_at, Some(at(300)));
    assert_eq!(state(s, first.job_id.unwrap()).await, JobState::Available);
    // Skipping records the count and starts nothing.
    let mut skip = fire("tick", Some(at(600)), at(1200), None);
    skip.skipped = 1;
    assert_eq!(
        s.schedule_fire(skip, at(1000)).await.unwrap(),
        Some(Fired {
            job_id: None,
            workflow_id: None
        })
    );
    let st = &s.schedules().await.unwrap()[0];
    assert_eq!(
        (st.next_at, st.skipped, st.last_job_id),
        (at(1200), 1, first.job_id)
    );
    // A run by hand leaves the next time alone.
    let by_hand = s
        .schedule_fire(fire("tick", None, at(1), start.clone()), at(1100))
        .await
        .unwrap()
        .unwrap();
    let st = &s.schedules().await.unwrap()[0];
    assert_eq!((st.next_at, st.last_job_id), (at(1200), by_hand.job_id));
    // A new signature moves the next time.
    let st = s
        .schedule_prepare("tick", "0 * * * * UTC", at(3600))
        .await
        .unwrap();
    assert_eq!(st.next_at, at(3600));
    assert!(s.schedule_set_paused("tick", true).await.unwrap().paused);
    assert!(!s.schedule_set_paused("tick", false).await.unwrap().paused);
    assert!(matches!(
        s.schedule_set_paused("nope", true).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.schedule_fire(fire("nope", None, at(1), start), at(1))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// A schedule may start a workflow, in the same transaction as its firing.
pub async fn schedule_fire_starts_a_workflow(s: &dyn Store) {
    s.schedule_prepare("pub", "sig", at(60)).await.unwrap();
    let mut w = workflow(vec![step("a", &[]), step("b", &["a"])]);
    w.started_by = "schedule:pub".into();
    let fired = s
        .schedule_fire(
            fire("pub", Some(at(60)), at(120), Some(Start::Workflow(w))),
            at(60),
        )
        .await
        .unwrap()
        .unwrap();
    let w = wf(s, fired.workflow_id.unwrap()).await;
    assert_eq!(
        (w.state, w.started_by.as_str()),
        (FlowState::Running, "schedule:pub")
    );
    assert_eq!(s.schedules().await.unwrap()[0].last_workflow_id, Some(w.id));
    // A workflow with a cycle is refused and nothing moves.
    let bad = workflow(vec![step("a", &["b"]), step("b", &["a"])]);
    let e = s
        .schedule_fire(
            fire("pub", Some(at(120)), at(180), Some(Start::Workflow(bad))),
            at(120),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("form a cycle"), "{e}");
    assert_eq!(s.schedules().await.unwrap()[0].next_at, at(120));
}

fn new_batch(items: Vec<Value>, size: u32, attempts: u32) -> NewBatch {
    NewBatch {
        queue: "bq".into(),
        kind: "import".into(),
        items,
        job_size: size,
        max_attempts: attempts,
        priority: 0,
    }
}

/// A batch cuts its items into jobs and completes when every job has; an event says so.
pub async fn batch_counts_items_and_completes(s: &dyn Store) {
    let items: Vec<Value> = (0..5).map(|i| json!({ "row": i })).collect();
    let b = s.batch_create(new_batch(items, 2, 3), T0).await.unwrap();
    assert_eq!(
        (b.state, b.total_items, b.done_items),
        (FlowState::Running, 5, 0)
    );
    let got = fetch(s, "bq", 10, at(1)).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].args, json!({"items": [{"row": 0}, {"row": 1}]}));
    assert_eq!(got[2].args, json!({"items": [{"row": 4}]}));
    s.finish(vec![done(&got[0]), done(&got[1])], at(2))
        .await
        .unwrap();
    let mid = s.batch(b.id).await.unwrap().unwrap();
    assert_eq!(
        (mid.state, mid.done_items, mid.pending_items()),
        (FlowState::Running, 4, 1)
    );
    s.finish(vec![done(&got[2])], at(3)).await.unwrap();
    let end = s.batch(b.id).await.unwrap().unwrap();
    assert_eq!(
        (end.state, end.done_items, end.finalized_at),
        (FlowState::Completed, 5, Some(at(3)))
    );
    let ev = s
        .events(EventFilter {
            source: Some("batch".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event.kind, "completed");
    assert!(
        ev[0].event.message.contains("5 of 5 items done"),
        "{}",
        ev[0].event.message
    );
    assert_eq!(
        s.batches(BatchFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap(),
        vec![end]
    );
    assert!(matches!(
        s.batch_create(new_batch(vec![], 2, 1), T0).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.batch_create(new_batch(vec![json!(1)], 0, 1), T0).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Runs every available job of the batch queue until none is left: items equal to "bad"
/// fail (their jobs' last attempt), the rest complete.
async fn burn_batch(s: &dyn Store, mut t: u64) -> u64 {
    loop {
        t += 1;
        let got = fetch(s, "bq", 100, at(t)).await;
        if got.is_empty() {
            return t;
        }
        let finishes = got
            .iter()
            .map(|j| {
                if j.args["items"].as_array().unwrap().contains(&json!("bad")) {
                    failed(j, at(t))
                } else {
                    done(j)
                }
            })
            .collect();
        s.finish(finishes, at(t)).await.unwrap();
    }
}

/// A chunk that fails its last attempt is split in halves down to single items, so only
/// the bad item fails; retrying the failed items can finish the batch.
pub async fn batch_splits_failed_chunks_down_to_single_items(s: &dyn Store) {
    let items = vec![json!("a"), json!("b"), json!("bad"), json!("d"), json!("e")];
    let b = s.batch_create(new_batch(items, 5, 1), T0).await.unwrap();
    let t = burn_batch(s, 0).await;
    let end = s.batch(b.id).await.unwrap().unwrap();
    assert_eq!(
        (
            end.state,
            end.done_items,
            end.failed_items,
            end.pending_items()
        ),
        (FlowState::Failed, 4, 1, 0)
    );
    let failures = s.batch_failures(b.id, 100).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].items, vec![json!("bad")]);
    assert_eq!(failures[0].error.as_deref(), Some("boom 1"));
    // The first chunk was split: retrying it by itself is refused.
    let first = s.export_jobs(0, 1).await.unwrap().remove(0);
    assert!(first.result.as_ref().unwrap().get("split_into").is_some());
    assert_eq!(
        first.state,
        JobState::Split,
        "a split chunk is not a failure"
    );
    // Counted as split, not as discarded: one discarded job, the bad item's.
    let stats = s.queue_stats().await.unwrap();
    let q = stats.iter().find(|q| q.name == first.queue).unwrap();
    assert_eq!(q.counts[&JobState::Discarded], 1, "{q:?}");
    assert_eq!(q.counts[&JobState::Split], 2, "{q:?}");
    // Only the bad item's job says it was discarded.
    let discarded_events = s
        .events(EventFilter {
            source: Some("job".into()),
            kinds: vec!["discarded".into()],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(discarded_events.len(), 1, "{discarded_events:?}");
    let e = s.retry(first.id, at(t)).await.unwrap_err();
    assert!(e.to_string().contains("was split into jobs"), "{e}");
    // Retry the failed items; this time the item passes.
    let (again, n) = s.batch_retry_failed(b.id, at(t + 1)).await.unwrap();
    assert_eq!(
        (again.state, again.failed_items, n),
        (FlowState::Running, 0, 1)
    );
    // While the batch runs again, its jobs stay out of the archive.
    let e = s
        .archive_jobs(
            crate::ArchiveSelect {
                id: Some(first.id),
                ..Default::default()
            },
            10,
            at(t + 1),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("still running"), "{e}");
    let none = s
        .archive_jobs(crate::ArchiveSelect::default(), 10, at(t + 1))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let got = fetch(s, "bq", 10, at(t + 2)).await;
    assert_eq!(got.len(), 1);
    s.finish(vec![done(&got[0])], at(t + 3)).await.unwrap();
    let end = s.batch(b.id).await.unwrap().unwrap();
    assert_eq!((end.state, end.done_items), (FlowState::Completed, 5));
    crate::conformance::assert_kept_counts(s).await;
}

/// Cancelling a batch cancels what has not finished; a running job's outcome is then
/// stale; a finished batch cannot be cancelled.
pub async fn batch_cancel_cancels_unfinished_jobs(s: &dyn Store) {
    let items: Vec<Value> = (0..4).map(|i| json!(i)).collect();
    let b = s.batch_create(new_batch(items, 1, 1), T0).await.unwrap();
    let got = fetch(s, "bq", 2, at(1)).await;
    s.finish(vec![done(&got[0])], at(2)).await.unwrap();
    let (c, cancelled) = s.batch_cancel(b.id, at(3)).await.unwrap();
    assert_eq!(
        cancelled.len(),
        3,
        "the running job and the two waiting ones"
    );
    assert_eq!(
        (c.state, c.done_items, c.cancelled_items),
        (FlowState::Cancelled, 1, 3)
    );
    assert_eq!(
        s.finish(vec![done(&got[1])], at(4)).await.unwrap(),
        vec![Finished::Stale]
    );
    assert!(matches!(
        s.batch_cancel(b.id, at(5)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.batch_cancel(999, at(5)).await,
        Err(StoreError::NotFound(_))
    ));
    crate::conformance::assert_kept_counts(s).await;
}

/// a → (b, c) → d: each step gets its parents' results; the workflow's result holds
/// every step's.
pub async fn workflow_diamond_passes_results(s: &dyn Store) {
    let id = s
        .workflow_start(
            workflow(vec![
                step("a", &[]),
                step("b", &["a"]),
                step("c", &["a"]),
                step("d", &["b", "c"]),
            ]),
            T0,
        )
        .await
        .unwrap();
    let w = wf(s, id).await;
    assert_eq!(step_state(&w, "a"), Some(JobState::Available));
    assert_eq!(step_state(&w, "d"), Some(JobState::Pending));
    let a = fetch(s, "wf", 10, at(1)).await;
    assert_eq!(a.len(), 1, "only the root runs first");
    assert_eq!(a[0].args, json!({"input": {"doc": 7}, "parents": {}}));
    assert_eq!(a[0].workflow_id, Some(id), "a step knows its workflow");
    s.finish(vec![finished_with(&a[0], json!({"a": 1}))], at(2))
        .await
        .unwrap();
    let bc = fetch(s, "wf", 10, at(3)).await;
    assert_eq!(bc.len(), 2);
    for j in &bc {
        assert_eq!(
            j.args,
            json!({"input": {"doc": 7}, "parents": {"a": {"a": 1}}})
        );
    }
    s.finish(vec![finished_with(&bc[0], json!(2))], at(4))
        .await
        .unwrap();
    assert!(
        fetch(s, "wf", 10, at(5)).await.is_empty(),
        "d waits for both"
    );
    s.finish(vec![finished_with(&bc[1], json!(3))], at(6))
        .await
        .unwrap();
    let d = fetch(s, "wf", 10, at(7)).await;
    assert_eq!(
        d[0].args,
        json!({"input": {"doc": 7}, "parents": {"b": 2, "c": 3}})
    );
    s.finish(vec![finished_with(&d[0], json!("published"))], at(8))
        .await
        .unwrap();
    let w = wf(s, id).await;
    assert_eq!(
        (w.state, w.finalized_at),
        (FlowState::Completed, Some(at(8)))
    );
    assert_eq!(
        w.result,
        Some(json!({"a": {"a": 1}, "b": 2, "c": 3, "d": "published"}))
    );
    let ev = s
        .events(EventFilter {
            source: Some("workflow".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((ev.len(), ev[0].event.kind.as_str()), (1, "completed"));
    assert_eq!(
        s.workflows(WorkflowFilter {
            name: Some("publish".into()),
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .len(),
        1
    );
}

/// A required step's last failure fails the workflow and cancels what waits; a retry runs
/// the failed step again and the workflow can complete. A step cannot be retried alone.
pub async fn workflow_failure_cancels_and_retry_resumes(s: &dyn Store) {
    let id = s
        .workflow_start(
            workflow(vec![step("a", &[]), step("b", &["a"]), step("c", &["b"])]),
            T0,
        )
        .await
        .unwrap();
    let a = fetch(s, "wf", 1, at(1)).await;
    s.finish(vec![done(&a[0])], at(2)).await.unwrap();
    let b = fetch(s, "wf", 1, at(3)).await;
    s.finish(vec![failed(&b[0], at(4))], at(4)).await.unwrap();
    let w = wf(s, id).await;
    assert_eq!(w.state, FlowState::Failed);
    assert!(
        w.error.as_deref().unwrap().contains("step `b`"),
        "{:?}",
        w.error
    );
    assert_eq!(step_state(&w, "b"), Some(JobState::Discarded));
    assert_eq!(step_state(&w, "c"), Some(JobState::Cancelled));
    // The event (and the mail it becomes) says what the failed step said.
    let events = s
        .events(EventFilter {
            source: Some("workflow".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let failed_event = events
        .iter()
        .find(|e| e.event.kind == "failed")
        .expect("a workflow.failed event");
    assert!(
        failed_event
            .event
            .message
            .contains("the step's last error: boom 1\noutput, the end:\nsome output"),
        "{}",
        failed_event.event.message
    );
    let e = s.retry(b[0].id, at(5)).await.unwrap_err();
    assert!(e.to_string().contains("retry the workflow"), "{e}");
    let w = s.workflow_retry(id, None, at(6)).await.unwrap();
    assert_eq!(w.state, FlowState::Running);
    assert_eq!(step_state(&w, "b"), Some(JobState::Available));
    assert_eq!(step_state(&w, "c"), Some(JobState::Pending));
    let b = fetch(s, "wf", 1, at(7)).await;
    assert_eq!(b[0].attempt, 2);
    s.finish(vec![done(&b[0])], at(8)).await.unwrap();
    let c = fetch(s, "wf", 1, at(9)).await;
    s.finish(vec![done(&c[0])], at(10)).await.unwrap();
    assert_eq!(wf(s, id).await.state, FlowState::Completed);
    assert!(matches!(
        s.workflow_retry(id, None, at(11)).await,
        Err(StoreError::Conflict(_))
    ));
    crate::conformance::assert_kept_counts(s).await;
}

/// An optional step's failure lets its children run, with a null result from it.
pub async fn workflow_optional_step_lets_children_run(s: &dyn Store) {
    let mut a = step("a", &[]);
    a.optional = true;
    let id = s
        .workflow_start(workflow(vec![a, step("b", &["a"])]), T0)
        .await
        .unwrap();
    let a = fetch(s, "wf", 1, at(1)).await;
    s.finish(vec![failed(&a[0], at(2))], at(2)).await.unwrap();
    let b = fetch(s, "wf", 1, at(3)).await;
    assert_eq!(b[0].args["parents"], json!({"a": null}));
    s.finish(vec![done(&b[0])], at(4)).await.unwrap();
    assert_eq!(wf(s, id).await.state, FlowState::Completed);
}

/// A start with the unique key of a running workflow starts nothing and answers that
/// workflow; once it ended, the key starts a new one. The key is listed and filtered by.
pub async fn workflow_unique_key_starts_one_while_it_runs(s: &dyn Store) {
    let keyed = || {
        let mut w = workflow(vec![step("a", &[])]);
        w.unique_key = Some("file:report.csv:1234".into());
        w
    };
    let first = s.workflow_start(keyed(), T0).await.unwrap();
    let again = s.workflow_start(keyed(), at(1)).await.unwrap();
    assert_eq!(again, first, "the running one is the answer");
    let jobs = s
        .list_jobs(JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "no second set of steps: {jobs:?}");
    // Without a key, every start is new.
    let plain = s
        .workflow_start(workflow(vec![step("a", &[])]), at(2))
        .await
        .unwrap();
    assert_ne!(plain, first);
    s.workflow_cancel(first, at(3)).await.unwrap();
    let second = s.workflow_start(keyed(), at(4)).await.unwrap();
    assert_ne!(second, first, "an ended workflow's key starts a new one");
    let listed: Vec<i64> = s
        .workflows(WorkflowFilter {
            unique_key: Some("file:report.csv:1234".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(listed, [second, first]);
    assert_eq!(
        wf(s, second).await.unique_key.as_deref(),
        Some("file:report.csv:1234")
    );
}

/// Cancelling a workflow cancels its unfinished steps; a workflow past its deadline fails.
pub async fn workflow_cancel_and_deadline(s: &dyn Store) {
    let id = s
        .workflow_start(workflow(vec![step("a", &[]), step("b", &["a"])]), T0)
        .await
        .unwrap();
    let running = fetch(s, "wf", 1, at(1)).await;
    let w = s.workflow_cancel(id, at(2)).await.unwrap();
    assert_eq!(w.state, FlowState::Cancelled);
    assert_eq!(step_state(&w, "a"), Some(JobState::Cancelled));
    assert_eq!(step_state(&w, "b"), Some(JobState::Cancelled));
    assert_eq!(
        s.finish(vec![done(&running[0])], at(3)).await.unwrap(),
        vec![Finished::Stale]
    );
    assert!(matches!(
        s.workflow_cancel(id, at(4)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.workflow_cancel(12345, at(4)).await,
        Err(StoreError::NotFound(_))
    ));

    let mut timed = workflow(vec![step("a", &[])]);
    timed.deadline = Some(at(100));
    let t = s.workflow_start(timed, at(10)).await.unwrap();
    assert!(s.workflow_expire(at(99)).await.unwrap().is_empty());
    assert_eq!(s.workflow_expire(at(100)).await.unwrap(), vec![t]);
    let w = wf(s, t).await;
    assert_eq!(w.state, FlowState::Failed);
    assert!(w.error.unwrap().contains("timed out"));
    // Retried with a new deadline, it runs again.
    let w = s.workflow_retry(t, Some(at(500)), at(101)).await.unwrap();
    assert_eq!((w.state, w.deadline), (FlowState::Running, Some(at(500))));
    assert_eq!(step_state(&w, "a"), Some(JobState::Available));
    crate::conformance::assert_kept_counts(s).await;
}

/// Purging a queue leaves the jobs of batches and workflows; pruning keeps the steps of a
/// running workflow; finished batches and workflows are pruned by age; a job of a running
/// batch cannot be deleted.
pub async fn flows_survive_purge_and_prune(s: &dyn Store) {
    let b = s
        .batch_create(new_batch(vec![json!(1), json!(2)], 1, 1), T0)
        .await
        .unwrap();
    assert_eq!(s.purge("bq", vec![JobState::Available]).await.unwrap(), 0);
    let got = fetch(s, "bq", 1, at(1)).await;
    let e = s.delete(got[0].id + 1).await.unwrap_err();
    assert!(e.to_string().contains("still running"), "{e}");
    let id = s
        .workflow_start(workflow(vec![step("a", &[]), step("b", &["a"])]), T0)
        .await
        .unwrap();
    let a = fetch(s, "wf", 1, at(1)).await;
    s.finish(vec![done(&a[0])], at(2)).await.unwrap();
    assert_eq!(
        s.prune("wf", JobState::Completed, at(1000), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.prune_flows(at(1000)).await.unwrap(),
        0,
        "nothing finished"
    );
    let bb = fetch(s, "wf", 1, at(3)).await;
    s.finish(vec![done(&bb[0])], at(4)).await.unwrap();
    s.batch_cancel(b.id, at(5)).await.unwrap();
    assert_eq!(wf(s, id).await.state, FlowState::Completed);
    assert_eq!(
        s.prune_flows(at(5)).await.unwrap(),
        1,
        "the workflow ended at 4"
    );
    assert_eq!(
        s.prune_flows(at(6)).await.unwrap(),
        1,
        "the batch ended at 5"
    );
    assert!(s.workflow(id).await.unwrap().is_none());
    assert!(s.batch(b.id).await.unwrap().is_none());
    crate::conformance::assert_kept_counts(s).await;
}

/// Everything exported reads back; importing it again over itself is refused as a whole.
pub async fn flows_export_and_refuse_conflicting_import(s: &dyn Store) {
    s.schedule_prepare("tick", "sig", at(60)).await.unwrap();
    let b = s
        .batch_create(new_batch(vec![json!(1)], 1, 1), T0)
        .await
        .unwrap();
    let id = s
        .workflow_start(workflow(vec![step("a", &[])]), T0)
        .await
        .unwrap();
    let dump = s.export_flows().await.unwrap();
    assert_eq!(dump.schedules.len(), 1);
    assert_eq!(dump.batches, vec![b]);
    assert_eq!(dump.workflows.len(), 1);
    assert_eq!(dump.workflows[0].id, id);
    assert_eq!(dump.workflows[0].steps.len(), 1);
    assert!(matches!(
        s.import_flows(dump.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.export_flows().await.unwrap(), dump, "nothing changed");
    let _ = push;
}
