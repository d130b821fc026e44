//! The executor: runs, retries, discards, concurrency, shutdown, cancel.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_queue::handler::func::FnHandler;
use berth_queue::{Enqueue, HandlerOutcome, HandlerSpec, QueueError};
use berth_store::JobState;
use serde_json::json;

use crate::{fixture, spec, start, wait_state};

fn push(queue: &str, kind: &str) -> Enqueue {
    Enqueue {
        queue: queue.into(),
        kind: kind.into(),
        args: json!({"n": 1}),
        ..Default::default()
    }
}

#[tokio::test]
async fn enqueue_refuses_bad_requests_and_stores_nothing() {
    let f = fixture(vec![spec("default", HandlerSpec::Pull)]);
    let err = f
        .queues
        .enqueue(vec![push("defualt", "x")])
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::UnknownQueue { .. }));
    assert!(err.to_string().contains("did you mean `default`"), "{err}");
    let mut both = push("default", "x");
    both.delay = Some(Duration::from_secs(1));
    both.run_at = Some(f.queues.now());
    let err = f
        .queues
        .enqueue(vec![push("default", "ok"), both])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("job 1"), "{err}");
    assert!(f.queues.enqueue(vec![push("default", " ")]).await.is_err());
    let stats = f.queues.stats().await.unwrap();
    assert_eq!(stats[0].counts.values().sum::<u64>(), 0, "nothing stored");
}

#[tokio::test]
async fn jobs_run_and_complete_with_their_result() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let h = FnHandler::new(|job| async move {
        HandlerOutcome::Completed {
            result: Some(json!({"echo": job.args, "kind": job.kind})),
            output: Some("hello".into()),
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_secs(1)).await;
    let ids = f
        .queues
        .enqueue(vec![push("q", "a"), push("q", "b")])
        .await
        .unwrap();
    for ins in &ids {
        let j = wait_state(&f.queues, ins.id, JobState::Completed).await;
        assert_eq!(j.result.unwrap()["echo"], json!({"n": 1}));
        assert_eq!(j.output.as_deref(), Some("hello"));
        assert_eq!(j.attempt, 1);
    }
    rt.stop().await;
}

#[tokio::test]
async fn failures_back_off_then_discard_with_every_error_kept() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let h = FnHandler::new(|job| async move {
        HandlerOutcome::Failed {
            error: format!("attempt {} broke", job.attempt),
            output: Some("trace".into()),
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_secs(1)).await;
    let id = f.queues.enqueue(vec![push("q", "a")]).await.unwrap()[0].id;
    for attempt in 1..=2u32 {
        let j = wait_state(&f.queues, id, JobState::Retryable).await;
        assert_eq!(j.attempt, attempt);
        // Backoff with jitter: after attempt n, about initial * 2^(n-1), never more than +10%.
        let wait = j.scheduled_at.since(f.queues.now());
        assert!(
            wait <= Duration::from_secs_f64(1.1 * 2f64.powi(attempt as i32 - 1)),
            "{wait:?}"
        );
        f.clock.advance(Duration::from_secs(10));
        berth_queue::maintenance::stage(&f.queues, f.queues.now())
            .await
            .unwrap();
    }
    let j = wait_state(&f.queues, id, JobState::Discarded).await;
    assert_eq!(j.errors.len(), 3);
    assert_eq!(j.errors[2].error, "attempt 3 broke");
    assert_eq!(j.errors[0].output.as_deref(), Some("trace"));
    rt.stop().await;
}

#[tokio::test]
async fn concurrency_is_respected() {
    let mut s = spec("q", HandlerSpec::Pull);
    s.concurrency = 3;
    let f = fixture(vec![s]);
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n2, p2) = (now.clone(), peak.clone());
    let h = FnHandler::new(move |_| {
        let (n, p) = (n2.clone(), p2.clone());
        async move {
            let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(cur, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            HandlerOutcome::Completed {
                result: None,
                output: None,
            }
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_secs(1)).await;
    let ids = f
        .queues
        .enqueue((0..12).map(|_| push("q", "a")).collect())
        .await
        .unwrap();
    wait_state(&f.queues, ids[11].id, JobState::Completed).await;
    for i in &ids {
        wait_state(&f.queues, i.id, JobState::Completed).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    rt.stop().await;
}

#[tokio::test]
async fn a_delayed_job_runs_at_its_time_once() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    let h = FnHandler::new(move |_| {
        let r = r2.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            HandlerOutcome::Completed {
                result: None,
                output: None,
            }
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_secs(1)).await;
    let mut e = push("q", "later");
    e.delay = Some(Duration::from_secs(3600));
    let id = f.queues.enqueue(vec![e]).await.unwrap()[0].id;
    for _ in 0..59 {
        f.clock.advance(Duration::from_secs(60));
        berth_queue::maintenance::stage(&f.queues, f.queues.now())
            .await
            .unwrap();
    }
    // 59 minutes: still waiting, never handed out.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(f.queues.job(id).await.unwrap().state, JobState::Scheduled);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    f.clock.advance(Duration::from_secs(60));
    berth_queue::maintenance::stage(&f.queues, f.queues.now())
        .await
        .unwrap();
    wait_state(&f.queues, id, JobState::Completed).await;
    for _ in 0..5 {
        f.clock.advance(Duration::from_secs(3600));
        berth_queue::maintenance::stage(&f.queues, f.queues.now())
            .await
            .unwrap();
    }
    rt.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran exactly once");
}

#[tokio::test]
async fn shutdown_waits_for_short_jobs_and_releases_long_ones() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let h = FnHandler::new(|job| async move {
        let ms = if job.kind == "long" { 60_000 } else { 100 };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        HandlerOutcome::Completed {
            result: None,
            output: None,
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_millis(500)).await;
    let ids = f
        .queues
        .enqueue(vec![push("q", "short"), push("q", "long")])
        .await
        .unwrap();
    wait_state(&f.queues, ids[1].id, JobState::Running).await;
    rt.stop().await;
    let short = f.queues.job(ids[0].id).await.unwrap();
    assert_eq!(
        short.state,
        JobState::Completed,
        "finished within the grace period"
    );
    let long = f.queues.job(ids[1].id).await.unwrap();
    assert_eq!(
        long.state,
        JobState::Available,
        "released to run on the next start"
    );
    assert_eq!(
        (long.attempt, long.max_attempts),
        (1, 4),
        "the released attempt is not counted against the limit"
    );
}

#[tokio::test]
async fn cancel_stops_a_running_attempt() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    let finished = Arc::new(AtomicUsize::new(0));
    let f2 = finished.clone();
    let h = FnHandler::new(move |_| {
        let f = f2.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            f.fetch_add(1, Ordering::SeqCst);
            HandlerOutcome::Completed {
                result: None,
                output: None,
            }
        }
    });
    let rt = start(&f, vec![("q", h)], Duration::from_secs(5)).await;
    let id = f.queues.enqueue(vec![push("q", "a")]).await.unwrap()[0].id;
    wait_state(&f.queues, id, JobState::Running).await;
    let ch = f.queues.cancel(id).await.unwrap();
    assert_eq!(ch.from, JobState::Running);
    let started = std::time::Instant::now();
    rt.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the attempt was stopped, not waited for"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    assert_eq!(f.queues.job(id).await.unwrap().state, JobState::Cancelled);
}

#[tokio::test]
async fn a_paused_queue_holds_its_jobs_until_resumed() {
    let f = fixture(vec![spec("q", HandlerSpec::Pull)]);
    f.queues.set_paused("q", true).await.unwrap();
    let rt = start(&f, vec![("q", FnHandler::noop())], Duration::from_secs(1)).await;
    let id = f.queues.enqueue(vec![push("q", "a")]).await.unwrap()[0].id;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(f.queues.job(id).await.unwrap().state, JobState::Available);
    f.queues.set_paused("q", false).await.unwrap();
    wait_state(&f.queues, id, JobState::Completed).await;
    assert!(f.queues.set_paused("nope", true).await.is_err());
    rt.stop().await;
}
