//! The conformance suite: the behaviour every [`Store`] must show, written once against the
//! trait. A backend's tests call [`conformance_suite!`](crate::conformance_suite) with an
//! async expression that opens a fresh, empty store; each case becomes its own test.
//!
//! Time is always passed in, so the cases move it by hand and never sleep.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::StoreError;
use crate::archive::{ArchiveFilter, ArchiveSelect};
use crate::model::*;
use crate::store::*;

mod auth;
mod flows;
mod messages;
mod notify;

pub use auth::*;
pub use flows::*;
pub use messages::*;
pub use notify::*;

/// A store under test, with whatever must live as long as it (a temp dir, a database).
pub struct Subject {
    /// The store.
    pub store: Box<dyn Store>,
    /// Kept alive for the test's duration.
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Opens a fresh SQLite store in a temporary directory.
pub fn sqlite_subject() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::SqliteStore::open(&dir.path().join("berth.db"), Default::default())
        .expect("open sqlite store");
    Subject {
        store: Box::new(store),
        keep: Box::new(dir),
    }
}

/// Generates one `#[tokio::test]` per conformance case, each on a fresh store from `$make`
/// (an expression of type `impl Future<Output = Subject>`).
#[macro_export]
macro_rules! conformance_suite {
    ($make:expr) => {
        $crate::conformance_suite!(@cases $make;
            insert_then_read, insert_validation_stores_nothing, delayed_job_not_early_nor_twice,
            fetch_order_and_limit, fetch_starts_attempt_under_lease, late_completion_is_stale,
            failures_retry_then_discard, snooze_does_not_count, release_returns_attempt,
            heartbeat_extends_and_detects_loss, cancel_running_makes_completion_stale,
            unique_key_dedupes_until_final, pause_and_resume, prune_by_age, list_filters_and_pages,
            queue_stats_counts, admin_retry_discard_delete, purge_queue, running_leases_expiry,
            rescue_loses_to_a_fresh_heartbeat, nodes_report_and_are_pruned,
            leader_lease_terms_and_takeover, leader_lease_taken_from_a_dead_predecessor,
            export_then_import_keeps_everything,
            events_are_listed_newest_first_with_filters, events_are_pruned_by_age,
            bad_events_store_nothing, schedule_fires_each_planned_time_once,
            schedule_fire_starts_a_workflow, batch_counts_items_and_completes,
            batch_splits_failed_chunks_down_to_single_items, batch_cancel_cancels_unfinished_jobs,
            workflow_diamond_passes_results, workflow_failure_cancels_and_retry_resumes,
            workflow_optional_step_lets_children_run, workflow_cancel_and_deadline,
            workflow_unique_key_starts_one_while_it_runs,
            flows_survive_purge_and_prune, flows_export_and_refuse_conflicting_import,
            users_are_added_changed_and_removed, failed_logins_lock_and_reset,
            tokens_expire_and_are_revoked, sessions_end_and_are_pruned, auth_exports_and_imports,
            budgets_add_up_reset_and_alert_once, settings_are_set_and_cleared,
            settings_swap_only_from_what_they_hold,
            messages_are_stored_and_listed, messages_start_jobs_and_workflows,
            dead_letters_replay, messages_are_pruned_and_copied,
            messages_with_a_seen_key_are_duplicates,
            events_are_routed_once_to_matching_channels,
            deliveries_retry_until_sent_and_are_pruned, snapshot_copies_the_store,
            final_jobs_are_archived_and_listed);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let subject: $crate::conformance::Subject = $make.await;
                $crate::conformance::$case(&*subject.store).await;
                drop(subject);
            }
        )*
    };
}

/// The fixed start of every case's clock.
pub const T0: Timestamp = Timestamp(1_767_225_600_000_000); // 2026-01-01T00:00:00Z

pub(crate) fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

pub(crate) fn job(queue: &str, kind: &str) -> NewJob {
    NewJob {
        max_attempts: 3,
        ..NewJob::new(queue, kind, json!({"n": 1}))
    }
}

pub(crate) async fn push(s: &dyn Store, jobs: Vec<NewJob>, now: Timestamp) -> Vec<i64> {
    s.insert(jobs, now)
        .await
        .expect("insert")
        .into_iter()
        .map(|i| i.id)
        .collect()
}

pub(crate) async fn fetch(
    s: &dyn Store,
    queue: &str,
    limit: u32,
    now: Timestamp,
) -> Vec<LeasedJob> {
    s.fetch(FetchRequest {
        queue: queue.into(),
        limit,
        worker: "test-worker".into(),
        now,
        lease_until: now.plus(Duration::from_secs(60)),
    })
    .await
    .expect("fetch")
}

pub(crate) async fn state(s: &dyn Store, id: i64) -> JobState {
    s.job(id).await.expect("read").expect("job exists").state
}

pub(crate) fn done(j: &LeasedJob) -> Finish {
    Finish {
        attempt: AttemptRef {
            id: j.id,
            attempt: j.attempt,
        },
        outcome: Outcome::Completed {
            result: Some(json!({"ok": true})),
            output: None,
        },
    }
}

pub(crate) fn failed(j: &LeasedJob, retry_at: Timestamp) -> Finish {
    Finish {
        attempt: AttemptRef {
            id: j.id,
            attempt: j.attempt,
        },
        outcome: Outcome::Failed {
            error: format!("boom {}", j.attempt),
            output: Some("some output".into()),
            retry_at,
        },
    }
}

/// An inserted job reads back with every field as given.
pub async fn insert_then_read(s: &dyn Store) {
    let mut new = job("q", "email");
    new.tags = vec!["a".into(), "b".into()];
    new.priority = 2;
    let ins = s.insert(vec![new], T0).await.unwrap();
    assert_eq!(ins.len(), 1);
    assert!(!ins[0].duplicate);
    assert_eq!(ins[0].state, JobState::Available);
    let j = s.job(ins[0].id).await.unwrap().unwrap();
    assert_eq!(j.queue, "q");
    assert_eq!(j.kind, "email");
    assert_eq!(j.args, json!({"n": 1}));
    assert_eq!(j.priority, 2);
    assert_eq!(j.attempt, 0);
    assert_eq!(j.max_attempts, 3);
    assert_eq!(j.tags, vec!["a", "b"]);
    assert_eq!(j.scheduled_at, T0);
    assert_eq!(j.created_at, T0);
    assert!(j.errors.is_empty());
    assert!(s.job(ins[0].id + 1000).await.unwrap().is_none());
    let other = s.insert(vec![job("r", "sms")], T0).await.unwrap()[0].id;
    let mut queues = s
        .job_queues(vec![other, ins[0].id, ins[0].id + 1000])
        .await
        .unwrap();
    queues.sort();
    assert_eq!(queues, vec![(ins[0].id, "q".into()), (other, "r".into())]);
    assert!(s.job_queues(Vec::new()).await.unwrap().is_empty());
}

/// A batch with one bad job is refused whole, and says which job was wrong.
pub async fn insert_validation_stores_nothing(s: &dyn Store) {
    let mut bad = job("q", "");
    bad.kind = String::new();
    let err = s.insert(vec![job("q", "ok"), bad], T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("job 1"), "{err}");
    let zero = NewJob {
        max_attempts: 0,
        ..job("q", "k")
    };
    assert!(s.insert(vec![zero], T0).await.is_err());
    let all = s
        .list_jobs(JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty(), "nothing may be stored: {all:?}");
}

/// A job delayed by an hour is not delivered before its time, and not twice.
pub async fn delayed_job_not_early_nor_twice(s: &dyn Store) {
    let mut new = job("q", "later");
    new.scheduled_at = Some(at(3600));
    let ins = s.insert(vec![new], T0).await.unwrap();
    assert_eq!(ins[0].state, JobState::Scheduled);
    assert_eq!(s.next_due().await.unwrap(), Some(at(3600)));
    for t in [0, 60, 1800, 3599] {
        assert!(s.stage_due(at(t)).await.unwrap().is_empty());
        assert!(fetch(s, "q", 10, at(t)).await.is_empty(), "early at {t}s");
    }
    assert_eq!(s.stage_due(at(3600)).await.unwrap(), vec!["q".to_string()]);
    let got = fetch(s, "q", 10, at(3600)).await;
    assert_eq!(got.len(), 1);
    for t in [3600, 3601, 7200] {
        assert!(s.stage_due(at(t)).await.unwrap().is_empty());
        assert!(fetch(s, "q", 10, at(t)).await.is_empty(), "twice at {t}s");
    }
    assert_eq!(s.next_due().await.unwrap(), None);
    crate::conformance::assert_kept_counts(s).await;
}

/// Fetch hands out lower priority values first, then older jobs, up to the limit, and only
/// from the queue asked.
pub async fn fetch_order_and_limit(s: &dyn Store) {
    let mut jobs = Vec::new();
    for (i, p) in [3, 1, 2, 1].into_iter().enumerate() {
        let mut j = job("q", &format!("k{i}"));
        j.priority = p;
        jobs.push(j);
    }
    jobs.push(job("other", "x"));
    let ids = push(s, jobs, T0).await;
    let first = fetch(s, "q", 3, at(1)).await;
    let got: Vec<i64> = first.iter().map(|j| j.id).collect();
    assert_eq!(got, vec![ids[1], ids[3], ids[2]]);
    let rest = fetch(s, "q", 3, at(1)).await;
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(fetch(s, "q", 3, at(1)).await.is_empty());
    assert!(fetch(s, "q", 0, at(1)).await.is_empty());
    assert_eq!(fetch(s, "other", 5, at(1)).await.len(), 1);
}

/// Fetching starts a new attempt, records who took it and when the lease ends.
pub async fn fetch_starts_attempt_under_lease(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    let got = fetch(s, "q", 1, at(5)).await;
    assert_eq!(got[0].attempt, 1);
    assert_eq!(got[0].lease_expires_at, at(65));
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Running);
    assert_eq!(j.attempt, 1);
    assert_eq!(j.attempted_at, Some(at(5)));
    assert_eq!(j.attempted_by.as_deref(), Some("test-worker"));
    assert_eq!(j.lease_expires_at, Some(at(65)));
}

/// A late completion of a rescued job does not overwrite its new attempt.
pub async fn late_completion_is_stale(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    let first = fetch(s, "q", 1, at(1)).await.remove(0);
    // The lease expires; the rescuer finds it and fails the attempt for an immediate retry.
    let expired = s.running_leases(at(100), true, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].attempt.attempt, 1);
    let r = s
        .finish(vec![failed(&first, at(100))], at(100))
        .await
        .unwrap();
    assert_eq!(r, vec![Finished::Applied(JobState::Available)]);
    let second = fetch(s, "q", 1, at(101)).await.remove(0);
    assert_eq!(second.attempt, 2);
    // The first worker wakes up and reports success: ignored.
    let late = s.finish(vec![done(&first)], at(102)).await.unwrap();
    assert_eq!(late, vec![Finished::Stale]);
    assert_eq!(state(s, id).await, JobState::Running);
    let ok = s.finish(vec![done(&second)], at(103)).await.unwrap();
    assert_eq!(ok, vec![Finished::Applied(JobState::Completed)]);
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.finalized_at, Some(at(103)));
    assert_eq!(j.result, Some(json!({"ok": true})));
    assert_eq!(j.lease_expires_at, None);
    // And a second completion of the finished attempt changes nothing.
    assert_eq!(
        s.finish(vec![done(&second)], at(104)).await.unwrap(),
        vec![Finished::Stale]
    );
}

/// A failed attempt is retried at its time; the last one discards the job; every error
/// is kept with its attempt and output.
pub async fn failures_retry_then_discard(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    for n in 1..=3u32 {
        let now = at(u64::from(n) * 100);
        s.stage_due(now).await.unwrap();
        let j = fetch(s, "q", 1, now).await.remove(0);
        assert_eq!(j.attempt, n);
        let r = s
            .finish(vec![failed(&j, now.plus(Duration::from_secs(10)))], now)
            .await
            .unwrap();
        if n < 3 {
            assert_eq!(r, vec![Finished::Applied(JobState::Retryable)]);
            assert!(
                fetch(s, "q", 1, now).await.is_empty(),
                "not before retry_at"
            );
        } else {
            assert_eq!(r, vec![Finished::Applied(JobState::Discarded)]);
        }
    }
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Discarded);
    assert_eq!(j.finalized_at, Some(at(300)));
    assert_eq!(j.errors.len(), 3);
    assert_eq!(j.errors[2].attempt, 3);
    assert_eq!(j.errors[2].error, "boom 3");
    assert_eq!(j.errors[0].output.as_deref(), Some("some output"));
    assert!(s.stage_due(at(10_000)).await.unwrap().is_empty());
    crate::conformance::assert_kept_counts(s).await;
}

/// A snoozed attempt is recorded but does not use up the attempts.
pub async fn snooze_does_not_count(s: &dyn Store) {
    let id = push(
        s,
        vec![NewJob {
            max_attempts: 1,
            ..job("q", "k")
        }],
        T0,
    )
    .await[0];
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    let r = s
        .finish(
            vec![Finish {
                attempt: AttemptRef {
                    id,
                    attempt: j.attempt,
                },
                outcome: Outcome::Snooze {
                    reason: "busy".into(),
                    output: Some("waiting for the mail server".into()),
                    until: at(30),
                },
            }],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(r, vec![Finished::Applied(JobState::Scheduled)]);
    s.stage_due(at(30)).await.unwrap();
    let j2 = fetch(s, "q", 1, at(30)).await.remove(0);
    assert_eq!(j2.attempt, 2);
    assert_eq!(j2.max_attempts, 2);
    let r = s.finish(vec![failed(&j2, at(40))], at(31)).await.unwrap();
    assert_eq!(r, vec![Finished::Applied(JobState::Discarded)]);
    let errors = s.job(id).await.unwrap().unwrap().errors;
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].output.as_deref(),
        Some("waiting for the mail server")
    );
}

/// Releasing an attempt (shutdown) makes the job available without counting the attempt;
/// the attempt number still grows, so a late write of the released attempt stays stale.
pub async fn release_returns_attempt(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    let r = s
        .finish(
            vec![Finish {
                attempt: AttemptRef {
                    id,
                    attempt: j.attempt,
                },
                outcome: Outcome::Release,
            }],
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(r, vec![Finished::Applied(JobState::Available)]);
    let again = fetch(s, "q", 1, at(3)).await.remove(0);
    assert_eq!((again.attempt, again.max_attempts), (2, 4));
    assert_eq!(
        s.finish(vec![done(&j)], at(4)).await.unwrap(),
        vec![Finished::Stale]
    );
}

/// The rescuer's write loses to a heartbeat that landed after it looked.
pub async fn rescue_loses_to_a_fresh_heartbeat(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    let j = fetch(s, "q", 1, at(0)).await.remove(0); // lease until 60
    let expired = s.running_leases(at(61), true, 10).await.unwrap();
    assert_eq!(expired.len(), 1);
    let a = AttemptRef {
        id,
        attempt: j.attempt,
    };
    s.heartbeat(vec![a], at(200), at(61)).await.unwrap();
    let rescue = |now| Finish {
        attempt: a,
        outcome: Outcome::LeaseExpired {
            error: "lease expired".into(),
            retry_at: now,
        },
    };
    assert_eq!(
        s.finish(vec![rescue(at(61))], at(61)).await.unwrap(),
        vec![Finished::Stale]
    );
    assert_eq!(state(s, id).await, JobState::Running);
    let r = s.finish(vec![rescue(at(201))], at(201)).await.unwrap();
    assert_eq!(r, vec![Finished::Applied(JobState::Available)]);
    crate::conformance::assert_kept_counts(s).await;
}

/// Heartbeats extend a lease while the attempt is current, and tell the worker when not.
pub async fn heartbeat_extends_and_detects_loss(s: &dyn Store) {
    let id = push(s, vec![job("q", "k")], T0).await[0];
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    let a = AttemptRef {
        id,
        attempt: j.attempt,
    };
    assert_eq!(
        s.heartbeat(vec![a], at(500), at(50)).await.unwrap(),
        vec![true]
    );
    assert!(
        s.running_leases(at(400), true, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let wrong = AttemptRef { id, attempt: 7 };
    assert_eq!(
        s.heartbeat(vec![wrong], at(600), at(60)).await.unwrap(),
        vec![false]
    );
    s.cancel(id, at(70)).await.unwrap();
    assert_eq!(
        s.heartbeat(vec![a], at(700), at(80)).await.unwrap(),
        vec![false]
    );
}

/// Cancelling a running job finalizes it at once; its worker's completion is stale.
pub async fn cancel_running_makes_completion_stale(s: &dyn Store) {
    let ids = push(s, vec![job("q", "a"), job("q", "b")], T0).await;
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    let ch = s.cancel(j.id, at(2)).await.unwrap();
    assert_eq!(ch.from, JobState::Running);
    assert_eq!(ch.to, Some(JobState::Cancelled));
    assert_eq!(
        s.finish(vec![done(&j)], at(3)).await.unwrap(),
        vec![Finished::Stale]
    );
    assert_eq!(state(s, j.id).await, JobState::Cancelled);
    // Waiting jobs cancel too; final ones refuse with a reason.
    s.cancel(ids[1], at(4)).await.unwrap();
    let err = s.cancel(ids[1], at(5)).await.unwrap_err();
    assert!(err.to_string().contains("already finished"), "{err}");
    assert!(matches!(
        s.cancel(9999, at(5)).await,
        Err(StoreError::JobNotFound(9999))
    ));
    crate::conformance::assert_kept_counts(s).await;
}

/// A unique key admits one job until that job is final.
pub async fn unique_key_dedupes_until_final(s: &dyn Store) {
    let keyed = || NewJob {
        unique_key: Some("report:42".into()),
        ..job("q", "report")
    };
    let a = s.insert(vec![keyed(), keyed()], T0).await.unwrap();
    assert!(!a[0].duplicate);
    assert!(a[1].duplicate);
    assert_eq!(a[0].id, a[1].id);
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    let b = s.insert(vec![keyed()], at(2)).await.unwrap();
    assert!(b[0].duplicate, "still running: a duplicate");
    assert_eq!(b[0].state, JobState::Running);
    s.finish(vec![done(&j)], at(3)).await.unwrap();
    let c = s.insert(vec![keyed()], at(4)).await.unwrap();
    assert!(!c[0].duplicate);
    assert_ne!(c[0].id, a[0].id);
    // Running the finished one again would make two with the key: refused, nothing changed.
    let err = s.retry(a[0].id, at(5)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(state(s, a[0].id).await, JobState::Completed);
}

/// A paused queue hands out nothing until resumed.
pub async fn pause_and_resume(s: &dyn Store) {
    push(s, vec![job("q", "k")], T0).await;
    s.set_paused("q", true, at(1)).await.unwrap();
    assert_eq!(s.paused_queues().await.unwrap(), vec!["q".to_string()]);
    assert!(fetch(s, "q", 1, at(2)).await.is_empty());
    s.set_paused("q", false, at(3)).await.unwrap();
    assert!(s.paused_queues().await.unwrap().is_empty());
    assert_eq!(fetch(s, "q", 1, at(4)).await.len(), 1);
}

/// Pruning deletes only final jobs of the queue and state asked, older than the cutoff.
pub async fn prune_by_age(s: &dyn Store) {
    push(s, vec![job("q", "a"), job("q", "b"), job("q", "c")], T0).await;
    let js = fetch(s, "q", 2, at(1)).await;
    s.finish(vec![done(&js[0])], at(10)).await.unwrap();
    s.finish(vec![done(&js[1])], at(1000)).await.unwrap();
    assert_eq!(
        s.prune("q", JobState::Completed, at(500), 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.prune("q", JobState::Completed, at(500), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.prune("other", JobState::Completed, at(5000), 100)
            .await
            .unwrap(),
        0
    );
    assert!(
        s.prune("q", JobState::Available, at(5000), 100)
            .await
            .is_err()
    );
    assert!(s.job(js[0].id).await.unwrap().is_none());
    assert!(s.job(js[1].id).await.unwrap().is_some());
    crate::conformance::assert_kept_counts(s).await;
}

/// Listing filters by queue, state, kind and tag, newest first, in pages.
pub async fn list_filters_and_pages(s: &dyn Store) {
    let mut jobs: Vec<NewJob> = (0..25)
        .map(|i| job("q", if i % 2 == 0 { "even" } else { "odd" }))
        .collect();
    jobs[3].tags = vec!["vip".into()];
    jobs[5].args = json!({"customer": "alice@example.com", "order": 4711});
    jobs.push(job("other", "even"));
    push(s, jobs, T0).await;
    let page = |before_id, limit| JobFilter {
        queue: Some("q".into()),
        before_id,
        limit,
        ..Default::default()
    };
    let p1 = s.list_jobs(page(None, 10)).await.unwrap();
    assert_eq!(p1.len(), 10);
    assert!(p1.windows(2).all(|w| w[0].id > w[1].id));
    let p3 = s.list_jobs(page(Some(p1[9].id - 10), 10)).await.unwrap();
    assert_eq!(p3.len(), 5);
    let even = s
        .list_jobs(JobFilter {
            kind: Some("even".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(even.len(), 14);
    let vip = s
        .list_jobs(JobFilter {
            tag: Some("vip".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(vip.len(), 1);
    // A search in the arguments' JSON text, and the time a job was pushed.
    let search = |text: &str| JobFilter {
        args_contains: Some(text.into()),
        limit: 100,
        ..Default::default()
    };
    let alice = s.list_jobs(search("alice@example.com")).await.unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].args["order"], 4711);
    assert_eq!(s.list_jobs(search("4711")).await.unwrap().len(), 1);
    assert!(
        s.list_jobs(search("Alice")).await.unwrap().is_empty(),
        "case-sensitive"
    );
    assert_eq!(
        s.list_jobs(search("%")).await.unwrap().len(),
        0,
        "no pattern"
    );
    let later = push(s, vec![job("q", "late")], at(3600)).await;
    let since = |after: Option<Timestamp>, before: Option<Timestamp>| JobFilter {
        created_after: after,
        created_before: before,
        limit: 100,
        ..Default::default()
    };
    let new = s.list_jobs(since(Some(at(60)), None)).await.unwrap();
    assert_eq!(new.iter().map(|j| j.id).collect::<Vec<_>>(), later);
    let old = s.list_jobs(since(None, Some(at(60)))).await.unwrap();
    assert_eq!(old.len(), 26);
    let between = s.list_jobs(since(Some(T0), Some(at(3600)))).await.unwrap();
    assert_eq!(between.len(), 26, "the end is excluded");
    fetch(s, "q", 4, at(1)).await;
    let running = s
        .list_jobs(JobFilter {
            states: vec![JobState::Running, JobState::Completed],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 4);
}

/// The counts the store keeps (jobs per queue and state, messages per ingest) equal what
/// counting every row gives. Called at the end of the cases that move rows in every way.
pub async fn assert_kept_counts(s: &dyn Store) {
    let mut jobs: BTreeMap<(String, JobState), u64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = s.export_jobs(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for j in &page {
            *jobs.entry((j.queue.clone(), j.state)).or_default() += 1;
        }
    }
    let mut kept = BTreeMap::new();
    for q in s.queue_stats().await.unwrap() {
        for (state, n) in q.counts {
            if n > 0 {
                kept.insert((q.name.clone(), state), n);
            }
        }
    }
    assert_eq!(kept, jobs, "kept job counts against counted rows");
    assert_eq!(s.count_jobs().await.unwrap(), jobs.values().sum::<u64>());
    let mut messages: BTreeMap<String, crate::MessageTotals> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = s.export_messages(after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        for m in &page {
            let t = messages
                .entry(m.ingest.clone())
                .or_insert_with(|| crate::MessageTotals {
                    ingest: m.ingest.clone(),
                    ..Default::default()
                });
            if m.dead {
                t.dead += 1;
            } else {
                t.messages += 1;
            }
        }
    }
    assert_eq!(
        s.message_totals().await.unwrap(),
        messages.into_values().collect::<Vec<_>>(),
        "kept message counts against counted rows"
    );
}

/// Counts per queue and state, the oldest waiting job, and pause flags.
pub async fn queue_stats_counts(s: &dyn Store) {
    push(s, vec![job("a", "k"), job("a", "k")], T0).await;
    push(s, vec![job("a", "k")], at(50)).await;
    let mut later = job("b", "k");
    later.scheduled_at = Some(at(999));
    push(s, vec![later], at(1)).await;
    fetch(s, "a", 1, at(60)).await;
    s.set_paused("c", true, at(61)).await.unwrap();
    let stats = s.queue_stats().await.unwrap();
    let names: Vec<&str> = stats.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b", "c"]);
    assert_eq!(stats[0].counts[&JobState::Available], 2);
    assert_eq!(stats[0].counts[&JobState::Running], 1);
    assert_eq!(stats[0].counts[&JobState::Completed], 0);
    assert_eq!(stats[0].oldest_available_at, Some(T0));
    assert_eq!(stats[1].counts[&JobState::Scheduled], 1);
    assert_eq!(stats[1].oldest_available_at, None);
    assert!(stats[2].paused);
    assert!(!stats[0].paused);
    // Throughput: completions counted from each time on.
    let two = fetch(s, "a", 2, at(70)).await;
    s.finish(vec![done(&two[0])], at(100)).await.unwrap();
    s.finish(vec![done(&two[1])], at(200)).await.unwrap();
    assert_eq!(
        s.completed_since("a", vec![at(50), at(150), at(300)])
            .await
            .unwrap(),
        vec![2, 1, 0]
    );
    assert_eq!(s.completed_since("b", vec![at(0)]).await.unwrap(), vec![0]);
    crate::conformance::assert_kept_counts(s).await;
}

/// Retry gives a discarded job one more attempt; discard and delete follow their rules.
pub async fn admin_retry_discard_delete(s: &dyn Store) {
    let ids = push(
        s,
        vec![
            NewJob {
                max_attempts: 1,
                ..job("q", "k")
            },
            job("other", "x"),
        ],
        T0,
    )
    .await;
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    assert_eq!(j.id, ids[0]);
    s.finish(vec![failed(&j, at(2))], at(2)).await.unwrap();
    assert_eq!(state(s, ids[0]).await, JobState::Discarded);
    let err = s.delete(ids[1] + 100).await.unwrap_err();
    assert!(matches!(err, StoreError::JobNotFound(_)));
    let ch = s.retry(ids[0], at(3)).await.unwrap();
    assert_eq!(
        (ch.from, ch.to),
        (JobState::Discarded, Some(JobState::Available))
    );
    let again = fetch(s, "q", 1, at(4)).await.remove(0);
    assert_eq!((again.attempt, again.max_attempts), (2, 2));
    assert!(s.retry(ids[0], at(5)).await.is_err(), "running: no retry");
    let err = s.delete(ids[0]).await.unwrap_err();
    assert!(err.to_string().contains("cancel it first"), "{err}");
    s.discard(ids[1], at(6)).await.unwrap();
    assert_eq!(state(s, ids[1]).await, JobState::Discarded);
    let del = s.delete(ids[1]).await.unwrap();
    assert_eq!(del.to, None);
    assert!(s.job(ids[1]).await.unwrap().is_none());
    crate::conformance::assert_kept_counts(s).await;
}

/// Purging removes the asked states of one queue and refuses running jobs.
pub async fn purge_queue(s: &dyn Store) {
    push(
        s,
        vec![
            job("q", "a"),
            job("q", "b"),
            job("q", "c"),
            job("keep", "d"),
        ],
        T0,
    )
    .await;
    fetch(s, "q", 1, at(1)).await;
    assert!(s.purge("q", vec![JobState::Running]).await.is_err());
    assert_eq!(s.purge("q", vec![JobState::Available]).await.unwrap(), 2);
    let left = s
        .list_jobs(JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    crate::conformance::assert_kept_counts(s).await;
}

/// Expired leases are listed for the rescuer; all running ones when asked.
pub async fn running_leases_expiry(s: &dyn Store) {
    push(s, vec![job("q", "a"), job("q", "b")], T0).await;
    fetch(s, "q", 1, at(0)).await; // lease until 60
    fetch(s, "q", 1, at(30)).await; // lease until 90
    assert!(s.running_leases(at(59), true, 10).await.unwrap().is_empty());
    assert_eq!(s.running_leases(at(61), true, 10).await.unwrap().len(), 1);
    assert_eq!(s.running_leases(at(91), true, 10).await.unwrap().len(), 2);
    assert_eq!(s.running_leases(at(91), true, 1).await.unwrap().len(), 1);
    let all = s.running_leases(at(0), false, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].attempted_by.as_deref(), Some("test-worker"));
}

fn node(id: &str, at_secs: u64) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        host: "host-1".into(),
        pid: 42,
        version: "0.1.0".into(),
        started_at: T0,
        heartbeat_at: at(at_secs),
    }
}

/// Nodes report, are listed most recent first, and are forgotten when long silent.
pub async fn nodes_report_and_are_pruned(s: &dyn Store) {
    s.node_heartbeat(node("a", 1)).await.unwrap();
    s.node_heartbeat(node("b", 5)).await.unwrap();
    s.node_heartbeat(node("a", 10)).await.unwrap();
    let all = s.nodes().await.unwrap();
    assert_eq!(
        all.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        vec!["a", "b"]
    );
    assert_eq!(all[0].heartbeat_at, at(10));
    assert_eq!(s.prune_nodes(at(6)).await.unwrap(), 1);
    assert_eq!(s.nodes().await.unwrap().len(), 1);
}

fn event(secs: u64, subject: &str, instance: Option<u32>, kind: &str) -> NewEvent {
    NewEvent {
        at: at(secs),
        node: "node-a".into(),
        source: "service".into(),
        subject: subject.into(),
        instance,
        kind: kind.into(),
        message: format!("{subject} {kind} ✓"),
    }
}

/// Every recorded event (up to 100), newest first.
async fn every_event(s: &dyn Store) -> Vec<EventRecord> {
    s.events(EventFilter {
        limit: 100,
        ..EventFilter::default()
    })
    .await
    .unwrap()
}

/// Events come back newest first, whole, and filtered by source, subject, kinds, time
/// and id (for paging).
pub async fn events_are_listed_newest_first_with_filters(s: &dyn Store) {
    let all = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    assert!(every_event(s).await.is_empty());
    s.record_events(vec![
        event(1, "web", Some(0), "started"),
        event(2, "web", Some(1), "started"),
        event(3, "db", None, "exited"),
    ])
    .await
    .unwrap();
    s.record_events(vec![event(4, "web", Some(0), "crashloop")])
        .await
        .unwrap();
    s.record_events(Vec::new()).await.unwrap();
    let listed = every_event(s).await;
    let order: Vec<_> = listed.iter().map(|e| e.event.at).collect();
    assert_eq!(order, [at(4), at(3), at(2), at(1)]);
    assert!(listed.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(listed[1].event, event(3, "db", None, "exited"));
    let web = s
        .events(EventFilter {
            subject: Some("web".into()),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(web.len(), 3);
    let kinds = s
        .events(EventFilter {
            kinds: vec!["exited".into(), "crashloop".into()],
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds
            .iter()
            .map(|e| e.event.kind.as_str())
            .collect::<Vec<_>>(),
        ["crashloop", "exited"]
    );
    let page = s
        .events(EventFilter {
            before_id: Some(listed[1].id),
            limit: 1,
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].event.at, at(2));
    let since = s
        .events(EventFilter {
            since: Some(at(3)),
            source: Some("service".into()),
            ..all.clone()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 2);
    let other = s
        .events(EventFilter {
            source: Some("ingest".into()),
            ..all
        })
        .await
        .unwrap();
    assert!(other.is_empty());
}

/// Pruning forgets exactly the events before the cutoff.
pub async fn events_are_pruned_by_age(s: &dyn Store) {
    s.record_events(
        (1..=5)
            .map(|i| event(i, "web", Some(0), "started"))
            .collect(),
    )
    .await
    .unwrap();
    assert_eq!(s.prune_events(at(3)).await.unwrap(), 2);
    let left = every_event(s).await;
    assert_eq!(left.len(), 3);
    assert_eq!(left.last().unwrap().event.at, at(3));
}

/// A batch with one invalid event (an empty kind) is refused whole: nothing of it is
/// stored, and what was stored before stays.
pub async fn bad_events_store_nothing(s: &dyn Store) {
    s.record_events(vec![event(1, "web", Some(0), "started")])
        .await
        .unwrap();
    let err = s
        .record_events(vec![
            event(2, "web", Some(0), "exited"),
            event(3, "web", Some(0), ""),
        ])
        .await;
    assert!(err.is_err(), "an empty kind must be refused");
    let left = every_event(s).await;
    assert_eq!(left.len(), 1);
}

/// One holder at a time; renewal only within the holder's term and before expiry; an
/// expired lease goes to the next node under a new term; a resignation frees it at once.
pub async fn leader_lease_terms_and_takeover(s: &dyn Store) {
    let ttl = Duration::from_secs(15);
    let l = s.leader().await.unwrap();
    assert_eq!((l.holder, l.term), (None, 0));
    let a = s.leader_elect("a", None, None, ttl, at(0)).await.unwrap();
    assert_eq!(
        (a.holder.as_deref(), a.term, a.expires_at),
        (Some("a"), 1, at(15))
    );
    let b = s.leader_elect("b", None, None, ttl, at(5)).await.unwrap();
    assert_eq!(
        b.holder.as_deref(),
        Some("a"),
        "b cannot take a valid lease"
    );
    let a2 = s
        .leader_elect("a", Some(1), None, ttl, at(10))
        .await
        .unwrap();
    assert_eq!(
        (a2.term, a2.expires_at),
        (1, at(25)),
        "renewed within its term"
    );
    // a stops renewing; after expiry b takes over under term 2.
    let b2 = s.leader_elect("b", None, None, ttl, at(26)).await.unwrap();
    assert_eq!((b2.holder.as_deref(), b2.term), (Some("b"), 2));
    // a wakes up and tries to renew its old term: refused, b keeps it.
    let stale = s
        .leader_elect("a", Some(1), None, ttl, at(27))
        .await
        .unwrap();
    assert_eq!((stale.holder.as_deref(), stale.term), (Some("b"), 2));
    // b resigns; a may take it at once, under a new term.
    s.leader_resign("a", 2).await.unwrap();
    assert_eq!(
        s.leader().await.unwrap().holder.as_deref(),
        Some("b"),
        "only the holder resigns"
    );
    s.leader_resign("b", 2).await.unwrap();
    let a3 = s.leader_elect("a", None, None, ttl, at(28)).await.unwrap();
    assert_eq!((a3.holder.as_deref(), a3.term), (Some("a"), 3));
}

/// A node's next run takes a lease its dead predecessor (same node name, another boot)
/// still holds at once, under a new term; a lease another node holds is left alone, and
/// the holder itself renews as before.
pub async fn leader_lease_taken_from_a_dead_predecessor(s: &dyn Store) {
    let ttl = Duration::from_secs(15);
    let first = s
        .leader_elect("berth:n1:100-aaaaaa", None, Some("berth:n1:"), ttl, at(0))
        .await
        .unwrap();
    assert_eq!(
        (first.holder.as_deref(), first.term),
        (Some("berth:n1:100-aaaaaa"), 1)
    );
    // Another node, even with a name n1 is a prefix of, waits for expiry.
    let other = s
        .leader_elect("berth:n10:7-bbbbbb", None, Some("berth:n10:"), ttl, at(1))
        .await
        .unwrap();
    assert_eq!(other.holder.as_deref(), Some("berth:n1:100-aaaaaa"));
    // The holder renews within its term and is not displaced by its own prefix.
    let renewed = s
        .leader_elect(
            "berth:n1:100-aaaaaa",
            Some(1),
            Some("berth:n1:"),
            ttl,
            at(2),
        )
        .await
        .unwrap();
    assert_eq!((renewed.term, renewed.expires_at), (1, at(17)));
    // n1 is killed and starts again: its new boot leads at once.
    let next = s
        .leader_elect("berth:n1:200-cccccc", None, Some("berth:n1:"), ttl, at(3))
        .await
        .unwrap();
    assert_eq!(
        (next.holder.as_deref(), next.term, next.expires_at),
        (Some("berth:n1:200-cccccc"), 2, at(18))
    );
    // The dead boot's term can no longer be renewed.
    let stale = s
        .leader_elect("berth:n1:100-aaaaaa", Some(1), None, ttl, at(4))
        .await
        .unwrap();
    assert_eq!(stale.holder.as_deref(), Some("berth:n1:200-cccccc"));
}

/// Every job exported page by page and imported again is the same, to the field; new
/// inserts continue above the imported ids.
pub async fn export_then_import_keeps_everything(s: &dyn Store) {
    let mut jobs: Vec<NewJob> = (0..25).map(|i| job("q", &format!("k{i}"))).collect();
    jobs[3].tags = vec!["t".into()];
    jobs[4].unique_key = Some("u".into());
    jobs[5].scheduled_at = Some(at(999));
    push(s, jobs, T0).await;
    let got = fetch(s, "q", 3, at(1)).await;
    s.finish(vec![failed(&got[0], at(5))], at(2)).await.unwrap();
    s.finish(vec![done(&got[1])], at(3)).await.unwrap();
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = s.export_jobs(after, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().id;
        all.extend(page);
    }
    assert_eq!(all.len(), 25);
    assert_eq!(s.count_jobs().await.unwrap(), 25);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for j in &all {
        if j.state != JobState::Running {
            s.delete(j.id).await.unwrap();
        } else {
            s.cancel(j.id, at(4)).await.unwrap();
            s.delete(j.id).await.unwrap();
        }
    }
    assert_eq!(s.count_jobs().await.unwrap(), 0);
    s.import_jobs(all.clone()).await.unwrap();
    let mut back = s.export_jobs(0, 100).await.unwrap();
    back.sort_by_key(|j| j.id);
    assert_eq!(back, all);
    let next = push(s, vec![job("q", "new")], at(10)).await[0];
    assert!(next > all.last().unwrap().id);
    crate::conformance::assert_kept_counts(s).await;
}

/// Final jobs move to the archive by queue and state or one by one, leave the live table
/// (and its counts and pruning), and are listed, shown and paged there with their history;
/// jobs that are not final, or that a running batch may still need, stay.
pub async fn final_jobs_are_archived_and_listed(s: &dyn Store) {
    let once = |q: &str, k: &str| NewJob {
        max_attempts: 1,
        ..job(q, k)
    };
    let mut all = vec![once("imports", "row"); 5];
    all.push(once("mail", "send"));
    let ids = push(s, all, T0).await;
    // Three fail for good, one completes, one stays available; the mail job completes.
    let got = fetch(s, "imports", 4, at(1)).await;
    let mut ends: Vec<Finish> = got[..3].iter().map(|j| failed(j, at(100))).collect();
    ends.push(done(&got[3]));
    ends.extend(fetch(s, "mail", 1, at(1)).await.iter().map(done));
    s.finish(ends, at(2)).await.unwrap();
    let d = [got[3].clone()];
    let discarded: Vec<i64> = s
        .list_jobs(JobFilter {
            states: vec![JobState::Discarded],
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(discarded.len(), 3);
    // Not final: refused, with what would be right; nothing moved.
    let waiting = ids
        .iter()
        .copied()
        .find(|id| !discarded.contains(id) && *id != d[0].id && *id != ids[5])
        .unwrap();
    let e = s
        .archive_jobs(
            ArchiveSelect {
                id: Some(waiting),
                ..Default::default()
            },
            1000,
            at(50),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("only final jobs"), "{e}");
    let e = s
        .archive_jobs(
            ArchiveSelect {
                states: vec![JobState::Available],
                ..Default::default()
            },
            1000,
            at(50),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not final"), "{e}");
    // The failed work of one queue, two at a time.
    let select = ArchiveSelect {
        queue: Some("imports".into()),
        states: vec![JobState::Discarded],
        ..Default::default()
    };
    let first = s.archive_jobs(select.clone(), 2, at(50)).await.unwrap();
    let mut oldest = discarded.clone();
    oldest.sort_unstable();
    assert_eq!(first, oldest[..2], "oldest first");
    let rest = s.archive_jobs(select.clone(), 2, at(51)).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(s.archive_jobs(select, 2, at(52)).await.unwrap().is_empty());
    let stats = s.queue_stats().await.unwrap();
    let q = stats.iter().find(|q| q.name == "imports").unwrap();
    assert_eq!(q.counts[&JobState::Discarded], 0, "out of the live table");
    assert_eq!(q.counts[&JobState::Completed], 1);
    // One job by id.
    let one = s
        .archive_jobs(
            ArchiveSelect {
                id: Some(ids[5]),
                ..Default::default()
            },
            1000,
            at(53),
        )
        .await
        .unwrap();
    assert_eq!(one, vec![ids[5]]);
    assert!(s.job(ids[5]).await.unwrap().is_none());
    // Listed most recently archived first, paged, filtered; shown whole.
    let all = s
        .archived_jobs(ArchiveFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].job.id, ids[5]);
    assert_eq!(all[0].archived_at, at(53));
    let page = s
        .archived_jobs(ArchiveFilter {
            before_seq: Some(all[1].seq),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    let failed_only = s
        .archived_jobs(ArchiveFilter {
            queue: Some("imports".into()),
            state: Some(JobState::Discarded),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed_only.len(), 3);
    let shown = s.archived_job(discarded[0]).await.unwrap().unwrap();
    assert_eq!(shown.job.errors.len(), 1, "the whole history");
    assert_eq!(shown.job.errors[0].error, "boom 1");
    assert_eq!(shown.job.state, JobState::Discarded);
    assert!(s.archived_job(waiting).await.unwrap().is_none());
    // Unknown job.
    let e = s
        .archive_jobs(
            ArchiveSelect {
                id: Some(999_999),
                ..Default::default()
            },
            1000,
            at(54),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::JobNotFound(999_999)), "{e}");
}
