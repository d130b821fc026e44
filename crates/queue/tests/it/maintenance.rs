//! Rescue, orphans and pruning, with the clock moved by hand.

use std::time::Duration;

use berth_queue::{Enqueue, HandlerSpec, Report, maintenance};
use berth_store::{AttemptRef, FetchRequest, Finished, JobState};

use crate::{fixture, spec};

fn push() -> Enqueue {
    Enqueue {
        queue: "q".into(),
        kind: "k".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_expired_lease_is_rescued_and_the_late_completion_is_refused() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let id = f.queues.enqueue(vec![push()]).await.unwrap()[0].id;
    let lease = Duration::from_secs(30);
    let first = f
        .queues
        .lease("q", "w1", 1, Duration::ZERO, lease)
        .await
        .unwrap();
    assert_eq!(first[0].attempt, 1);
    f.clock.advance(Duration::from_secs(29));
    assert_eq!(
        maintenance::rescue_expired(&f.queues, f.queues.now())
            .await
            .unwrap(),
        0
    );
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(
        maintenance::rescue_expired(&f.queues, f.queues.now())
            .await
            .unwrap(),
        1
    );
    let j = f.queues.job(id).await.unwrap();
    assert_eq!(j.state, JobState::Available);
    assert!(
        j.errors[0].error.contains("lease expired"),
        "{:?}",
        j.errors
    );
    assert!(j.errors[0].error.contains("worker:w1"), "{:?}", j.errors);
    let second = f
        .queues
        .lease("q", "w2", 1, Duration::ZERO, lease)
        .await
        .unwrap();
    assert_eq!(second[0].attempt, 2);
    let late = f
        .queues
        .report(AttemptRef { id, attempt: 1 }, Report::Complete(None))
        .await
        .unwrap();
    assert_eq!(late, Finished::Stale);
    let hb = f
        .queues
        .heartbeat(AttemptRef { id, attempt: 1 }, lease)
        .await
        .unwrap();
    assert!(!hb, "the old attempt's heartbeat is refused too");
    assert_eq!(f.queues.job(id).await.unwrap().state, JobState::Running);
    let ok = f
        .queues
        .report(AttemptRef { id, attempt: 2 }, Report::Complete(None))
        .await
        .unwrap();
    assert_eq!(ok, Finished::Applied(JobState::Completed));
}

#[tokio::test]
async fn a_heartbeat_cannot_stretch_a_lease_past_the_queues_cap() {
    // A workflow step's `heartbeat_timeout` is its queue's lease cap: 10 s here.
    let mut capped = spec("q", HandlerSpec::Pull);
    capped.lease_ttl = Some(Duration::from_secs(10));
    let f = fixture(vec![capped]);
    let id = f.queues.enqueue(vec![push()]).await.unwrap()[0].id;
    let hour = Duration::from_secs(3600);
    f.queues
        .lease("q", "w1", 1, Duration::ZERO, hour)
        .await
        .unwrap();
    f.clock.advance(Duration::from_secs(5));
    assert!(
        f.queues
            .heartbeat(AttemptRef { id, attempt: 1 }, hour)
            .await
            .unwrap()
    );
    // The heartbeat asked for an hour and got 10 s: past them, the attempt is rescued.
    f.clock.advance(Duration::from_secs(11));
    assert_eq!(
        maintenance::rescue_expired(&f.queues, f.queues.now())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn orphans_of_a_previous_run_are_rescued_at_once_but_others_keep_theirs() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let ids = f
        .queues
        .enqueue(vec![push(), push(), push()])
        .await
        .unwrap();
    let now = f.queues.now();
    // One job leased by this node's previous run, one by another node sharing the store,
    // one by an external worker.
    let previous_run = format!("berth:{}:1-dead", f.queues.node_name());
    for worker in [previous_run.as_str(), "berth:other-node:7-beef"] {
        f.queues
            .store()
            .fetch(FetchRequest {
                queue: "q".into(),
                limit: 1,
                worker: worker.into(),
                now,
                lease_until: now.plus(Duration::from_secs(60)),
            })
            .await
            .unwrap();
    }
    f.queues
        .lease("q", "py-worker", 1, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        maintenance::rescue_orphans(&f.queues, now).await.unwrap(),
        1
    );
    assert_eq!(
        f.queues.job(ids[0].id).await.unwrap().state,
        JobState::Available
    );
    assert_eq!(
        f.queues.job(ids[1].id).await.unwrap().state,
        JobState::Running,
        "another node's attempt is left to its lease"
    );
    assert_eq!(
        f.queues.job(ids[2].id).await.unwrap().state,
        JobState::Running
    );
}

#[tokio::test]
async fn finished_jobs_are_pruned_after_their_retention() {
    let mut s = spec("q", HandlerSpec::Pull);
    s.retention.completed = Duration::from_secs(3600);
    s.retention.discarded = Duration::from_secs(7200);
    let f = fixture(vec![s]);
    let ids = f
        .queues
        .enqueue(vec![push(), push(), push()])
        .await
        .unwrap();
    let got = f
        .queues
        .lease("q", "w", 3, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap();
    let mut it = got.iter().map(|j| AttemptRef {
        id: j.id,
        attempt: j.attempt,
    });
    f.queues
        .report(it.next().unwrap(), Report::Complete(None))
        .await
        .unwrap();
    let fail = Report::Fail {
        error: "bad".into(),
        retry: false,
        retry_after: None,
    };
    f.queues.report(it.next().unwrap(), fail).await.unwrap();
    f.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        maintenance::prune(&f.queues, f.queues.now()).await.unwrap(),
        1
    );
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        maintenance::prune(&f.queues, f.queues.now()).await.unwrap(),
        1
    );
    assert_eq!(
        f.queues.job(ids[2].id).await.unwrap().state,
        JobState::Running
    );
    let left = f.queues.stats().await.unwrap();
    assert_eq!(left[0].counts.values().sum::<u64>(), 1);
}

#[tokio::test]
async fn leasing_is_only_for_pull_queues_and_waits_for_jobs() {
    let f = fixture(vec![
        spec("q", HandlerSpec::Pull),
        spec(
            "cmd",
            HandlerSpec::Run {
                command: "true".into(),
            },
        ),
    ]);
    let err = f
        .queues
        .lease("cmd", "w", 1, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pull"), "{err}");
    let q = f.queues.clone();
    let waiter = tokio::spawn(async move {
        q.lease(
            "q",
            "w",
            1,
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    f.queues.enqueue(vec![push()]).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "woken, not polled"
    );
}
