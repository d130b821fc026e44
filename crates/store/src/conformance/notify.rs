//! Conformance cases for the notification outbox and snapshots.

use crate::conformance::{at, fetch, job, push};
use crate::messages::NewMessage;
use crate::model::{AttemptRef, Finish, NewEvent, NewJob, Outcome};
use crate::notices::{Delivery, DeliveryFilter, NotifyRoute};
use crate::store::*;

fn route(channel: &str, on: &[&str]) -> NotifyRoute {
    NotifyRoute {
        channel: channel.into(),
        on: on.iter().map(|s| s.to_string()).collect(),
    }
}

fn event(source: &str, subject: &str, kind: &str, secs: u64) -> NewEvent {
    NewEvent {
        at: at(secs),
        node: "n1".into(),
        source: source.into(),
        subject: subject.into(),
        instance: None,
        kind: kind.into(),
        message: format!("{subject} {kind}"),
    }
}

async fn deliveries(s: &dyn Store, channel: &str) -> Vec<Delivery> {
    let mut d = s
        .notify_deliveries(DeliveryFilter {
            channel: Some(channel.into()),
            limit: 100,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    d.reverse();
    d
}

fn kinds(d: &[Delivery]) -> Vec<&str> {
    d.iter().map(|d| d.kind.as_str()).collect()
}

/// Events from every source are routed once, in order, to each channel whose filter
/// takes them: jobs that ran out of attempts, dead letters (one event per ingest and
/// write), service and budget events recorded by their owners.
pub async fn events_are_routed_once_to_matching_channels(s: &dyn Store) {
    let routes = vec![
        route("ops", &["job.discarded", "service.crashloop", "ingest.*"]),
        route("money", &["budget.*"]),
        route("all", &["*"]),
    ];
    // A job with one attempt whose handler fails: discarded, with its error.
    let id = push(
        s,
        vec![NewJob {
            max_attempts: 1,
            ..job("q", "import")
        }],
        at(0),
    )
    .await[0];
    let j = fetch(s, "q", 1, at(1)).await.remove(0);
    s.finish(
        vec![Finish {
            attempt: AttemptRef {
                id: j.id,
                attempt: j.attempt,
            },
            outcome: Outcome::Failed {
                error: "bad row 7".into(),
                output: None,
                retry_at: at(100),
            },
        }],
        at(2),
    )
    .await
    .unwrap();
    s.record_events(vec![
        event("service", "api", "started", 3),
        event("service", "api", "crashloop", 4),
        event("budget", "llm", "budget.80", 5),
    ])
    .await
    .unwrap();
    let dead = |ingest: &str| NewMessage {
        ingest: ingest.into(),
        device: Some("stand-1".into()),
        topic: "stand-1/inbound".into(),
        kind: None,
        payload: b"{".to_vec(),
        received_at: at(6),
        keep: true,
        errors: vec!["not JSON".into()],
        start: None,
        key: None,
    };
    s.message_insert(vec![dead("stands"), dead("stands"), dead("other")])
        .await
        .unwrap();

    assert_eq!(s.notify_route(routes.clone(), at(10)).await.unwrap(), 6);
    assert_eq!(s.notify_route(routes.clone(), at(11)).await.unwrap(), 0);

    let ops = deliveries(s, "ops").await;
    assert_eq!(
        kinds(&ops),
        [
            "job.discarded",
            "service.crashloop",
            "ingest.dead_letter",
            "ingest.dead_letter"
        ]
    );
    assert!(
        ops[0].message.contains(&format!("job {id} "))
            && ops[0].message.contains("bad row 7")
            && ops[0].message.contains("attempt 1 of 1"),
        "{}",
        ops[0].message
    );
    assert_eq!(ops[0].subject, "import");
    assert_eq!(ops[2].subject, "stands");
    assert!(
        ops[2]
            .message
            .starts_with("2 dead letters in ingest stands"),
        "{}",
        ops[2].message
    );
    assert_eq!(ops[3].subject, "other");
    assert!(
        ops.iter()
            .all(|d| d.created_at == at(10) && d.next_at == at(10))
    );
    assert!(ops.iter().all(|d| d.sent_at.is_none() && d.attempts == 0));
    assert_eq!(kinds(&deliveries(s, "money").await), ["budget.80"]);
    assert_eq!(
        kinds(&deliveries(s, "all").await),
        [
            "job.discarded",
            "service.started",
            "service.crashloop",
            "budget.80",
            "ingest.dead_letter",
            "ingest.dead_letter"
        ]
    );

    // Events recorded later are routed by a later call, and only they.
    s.record_events(vec![event("service", "api", "crashloop", 20)])
        .await
        .unwrap();
    assert_eq!(s.notify_route(routes, at(21)).await.unwrap(), 1);
    assert_eq!(deliveries(s, "ops").await.len(), 5);
}

/// A delivery is due from its time, waits after a failed try, and once sent is never
/// due again; sent ones are pruned by age, unsent ones only when their channel is gone.
pub async fn deliveries_retry_until_sent_and_are_pruned(s: &dyn Store) {
    s.record_events(vec![
        event("service", "a", "crashloop", 1),
        event("service", "b", "crashloop", 2),
    ])
    .await
    .unwrap();
    let routes = vec![route("mail", &["service.*"]), route("old", &["*"])];
    s.notify_route(routes, at(5)).await.unwrap();
    assert!(s.notify_due("mail", at(4), 10).await.unwrap().is_empty());
    let due = s.notify_due("mail", at(5), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(s.notify_due("mail", at(5), 1).await.unwrap().len(), 1);

    let ids: Vec<i64> = due.iter().map(|d| d.id).collect();
    s.notify_retry(ids.clone(), "connection refused".into(), at(65))
        .await
        .unwrap();
    assert!(s.notify_due("mail", at(64), 10).await.unwrap().is_empty());
    let again = s.notify_due("mail", at(65), 10).await.unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("connection refused"));

    s.notify_done(vec![ids[0]], at(66)).await.unwrap();
    // A late failure report of a sent delivery changes nothing.
    s.notify_retry(vec![ids[0]], "late".into(), at(500))
        .await
        .unwrap();
    let left = s.notify_due("mail", at(70), 10).await.unwrap();
    assert_eq!(left.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
    let pending = s.notify_pending().await.unwrap();
    assert_eq!(
        pending.iter().find(|(c, _)| c == "mail"),
        Some(&("mail".to_owned(), 1)),
        "{pending:?}"
    );
    let pending = s
        .notify_deliveries(DeliveryFilter {
            channel: Some("mail".into()),
            pending: Some(true),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    let sent = s
        .notify_deliveries(DeliveryFilter {
            pending: Some(false),
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].sent_at, Some(at(66)));
    assert_eq!(sent[0].last_error, None);

    // "old" is no longer configured: its two unsent deliveries go; the sent one of "mail"
    // goes once it is old enough; the unsent one of "mail" stays.
    let pruned = s.notify_prune(at(66), vec!["mail".into()]).await.unwrap();
    assert_eq!(pruned, 2);
    let pruned = s.notify_prune(at(67), vec!["mail".into()]).await.unwrap();
    assert_eq!(pruned, 1);
    let all = s
        .notify_deliveries(DeliveryFilter {
            limit: 10,
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
}

/// A snapshot taken while the store is in use is a complete copy of it.
pub async fn snapshot_copies_the_store(s: &dyn Store) {
    push(s, vec![job("q", "a"), job("q", "b"), job("r", "c")], at(0)).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("copy");
    let format = s.snapshot(&dest).await.unwrap();
    let size = std::fs::metadata(&dest).unwrap().len();
    assert!(size > 0);
    match format {
        SnapshotFormat::Sqlite => {
            let copy = crate::SqliteStore::open(&dest, Default::default()).unwrap();
            assert_eq!(copy.count_jobs().await.unwrap(), 3);
            let j = copy.job(3).await.unwrap().unwrap();
            assert_eq!((j.queue.as_str(), j.kind.as_str()), ("r", "c"));
        }
        // Restoring a dump is shown by the backup tests, against a fresh database.
        SnapshotFormat::PgDump => {
            let head = std::fs::read(&dest).unwrap();
            assert!(head.starts_with(b"PGDMP"), "a pg_dump custom archive");
        }
    }
    // The store goes on as before.
    push(s, vec![job("q", "d")], at(1)).await;
    assert_eq!(s.count_jobs().await.unwrap(), 4);
}
