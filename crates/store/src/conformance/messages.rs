//! Conformance cases for ingested messages and dead letters.

use serde_json::json;

use crate::StoreError;
use crate::conformance::{at, state};
use crate::flows::{NewStep, NewWorkflow, Start};
use crate::messages::{MessageCount, MessageFilter, MessageKey, MessageStored, NewMessage, Replay};
use crate::model::{JobState, NewJob};
use crate::store::*;

fn message(ingest: &str, device: &str, kind: &str, secs: u64) -> NewMessage {
    NewMessage {
        ingest: ingest.into(),
        device: Some(device.into()),
        topic: format!("{device}/inbound"),
        kind: Some(kind.into()),
        payload: format!(r#"{{"type":"{kind}","n":{secs}}}"#).into_bytes(),
        received_at: at(secs),
        keep: true,
        errors: Vec::new(),
        start: None,
        key: None,
    }
}

/// Inserts messages that are all kept; their ids.
async fn insert(s: &dyn Store, messages: Vec<NewMessage>) -> Vec<i64> {
    s.message_insert(messages)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.expect("a kept message has an id"))
        .collect()
}

fn dead(ingest: &str, payload: &[u8], secs: u64) -> NewMessage {
    NewMessage {
        device: None,
        kind: None,
        payload: payload.to_vec(),
        errors: vec![
            "at /seq: \"x\" is not of type \"integer\"".into(),
            "second".into(),
        ],
        ..message(ingest, "-", "-", secs)
    }
}

fn filter(dead: bool) -> MessageFilter {
    MessageFilter {
        dead,
        limit: 100,
        ..MessageFilter::default()
    }
}

/// Messages and dead letters are stored in order with their bytes, and listed by ingest,
/// device, kind and time, newest first, page by page.
pub async fn messages_are_stored_and_listed(s: &dyn Store) {
    let bytes: Vec<u8> = vec![0xff, 0x00, b'{', 0x80];
    let ids = insert(
        s,
        vec![
            message("stands", "s1", "status", 1),
            message("stands", "s2", "result", 2),
            dead("stands", &bytes, 3),
            message("stands", "s1", "result", 4),
            message("lab", "s1", "status", 5),
        ],
    )
    .await;
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    // Each id is its own message's.
    for (i, id) in ids.iter().enumerate() {
        let m = s.message(*id).await.unwrap().unwrap();
        assert_eq!(m.received_at, at(i as u64 + 1), "message {id}");
    }

    // Counted per device and kind, most first, without fetching a message.
    let counted = |d: Option<&str>, k: Option<&str>, n: u64| MessageCount {
        device: d.map(str::to_owned),
        kind: k.map(str::to_owned),
        count: n,
    };
    assert_eq!(
        s.message_counts(MessageFilter {
            ingest: Some("stands".into()),
            ..filter(false)
        })
        .await
        .unwrap(),
        vec![
            counted(Some("s1"), Some("result"), 1),
            counted(Some("s1"), Some("status"), 1),
            counted(Some("s2"), Some("result"), 1),
        ]
    );
    assert_eq!(
        s.message_counts(MessageFilter {
            device: Some("s1".into()),
            ..filter(false)
        })
        .await
        .unwrap(),
        vec![
            counted(Some("s1"), Some("status"), 2),
            counted(Some("s1"), Some("result"), 1),
        ]
    );
    assert_eq!(
        s.message_counts(filter(true)).await.unwrap(),
        vec![counted(None, None, 1)]
    );
    let stored = s.messages(filter(false)).await.unwrap();
    assert_eq!(
        stored.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3], ids[1], ids[0]]
    );
    let first = stored.last().unwrap();
    assert_eq!(first.payload, br#"{"type":"status","n":1}"#);
    assert_eq!(first.topic, "s1/inbound");
    assert_eq!(first.received_at, at(1));
    assert!(!first.dead && first.errors.is_empty() && first.job_id.is_none());

    let letters = s.messages(filter(true)).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].payload, bytes,
        "dead letters keep their exact bytes"
    );
    assert!(letters[0].dead);
    assert_eq!(letters[0].errors.len(), 2);
    assert_eq!(s.message(ids[2]).await.unwrap().unwrap(), letters[0]);
    assert_eq!(s.message(999_999).await.unwrap(), None);

    let of = |f: MessageFilter| async move {
        s.messages(f)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect::<Vec<_>>()
    };
    let base = filter(false);
    assert_eq!(
        of(MessageFilter {
            ingest: Some("stands".into()),
            device: Some("s1".into()),
            ..base.clone()
        })
        .await,
        vec![ids[3], ids[0]]
    );
    assert_eq!(
        of(MessageFilter {
            kind: Some("result".into()),
            ..base.clone()
        })
        .await,
        vec![ids[3], ids[1]]
    );
    assert_eq!(
        of(MessageFilter {
            since: Some(at(2)),
            until: Some(at(5)),
            ..base.clone()
        })
        .await,
        vec![ids[3], ids[1]]
    );
    assert_eq!(
        of(MessageFilter {
            before_id: Some(ids[3]),
            limit: 1,
            ..base.clone()
        })
        .await,
        vec![ids[1]]
    );
}

/// A stored message starts its job (or workflow) in the same transaction, and the job
/// learns the message's id; a dead letter starts nothing.
pub async fn messages_start_jobs_and_workflows(s: &dyn Store) {
    let job = NewJob::new("stands", "status", json!({"device": "s1"}));
    let workflow = NewWorkflow {
        name: "report".into(),
        input: json!({}),
        steps: vec![NewStep {
            name: "render".into(),
            queue: "reports".into(),
            kind: "render".into(),
            parents: Vec::new(),
            max_attempts: 3,
            priority: 0,
            optional: false,
        }],
        deadline: None,
        started_by: "ingest:stands".into(),
        unique_key: None,
    };
    let ids = insert(
        s,
        vec![
            NewMessage {
                start: Some(Start::Job(job.clone())),
                ..message("stands", "s1", "status", 1)
            },
            NewMessage {
                start: Some(Start::Job(job.clone())),
                ..dead("stands", b"{", 2)
            },
            NewMessage {
                start: Some(Start::Workflow(workflow)),
                ..message("stands", "s2", "result", 3)
            },
        ],
    )
    .await;
    let first = s.message(ids[0]).await.unwrap().unwrap();
    let job_id = first.job_id.expect("the stored message started a job");
    let started = s.job(job_id).await.unwrap().unwrap();
    assert_eq!(started.args, json!({"device": "s1", "message_id": ids[0]}));
    assert_eq!(state(s, job_id).await, JobState::Available);

    let letter = s.message(ids[1]).await.unwrap().unwrap();
    assert_eq!((letter.job_id, letter.workflow_id), (None, None));
    assert_eq!(
        s.count_jobs().await.unwrap(),
        2,
        "one job, one workflow step"
    );

    let third = s.message(ids[2]).await.unwrap().unwrap();
    let wf = s
        .workflow(third.workflow_id.expect("started a workflow"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(wf.input, json!({"message_id": ids[2]}));

    // Not kept (`store = false`): the job starts in the same transaction, without a
    // message row; a dead letter is kept all the same.
    let got = s
        .message_insert(vec![
            NewMessage {
                keep: false,
                start: Some(Start::Job(job.clone())),
                ..message("stands", "s3", "status", 4)
            },
            NewMessage {
                keep: false,
                ..dead("stands", b"[", 5)
            },
        ])
        .await
        .unwrap();
    assert_eq!(got[0].id, None);
    assert!(got[1].id.is_some(), "dead letters are always kept");
    assert_eq!(s.count_jobs().await.unwrap(), 3);
    let jobs = s
        .list_jobs(crate::model::JobFilter {
            queue: Some("stands".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        jobs[0].args,
        json!({"device": "s1"}),
        "no message id to give"
    );
    assert_eq!(s.messages(filter(false)).await.unwrap().len(), 2);
    crate::conformance::assert_kept_counts(s).await;
}

/// A dead letter replayed with errors stays dead with the new reasons; replayed clean it
/// becomes a stored message and starts its job; a stored message cannot be replayed.
pub async fn dead_letters_replay(s: &dyn Store) {
    let id = insert(s, vec![dead("stands", br#"{"seq":"x"}"#, 1)]).await[0];
    let still = s
        .message_replay(
            id,
            Replay {
                device: None,
                kind: None,
                errors: vec!["still wrong".into()],
                start: Some(Start::Job(NewJob::new("q", "k", json!({})))),
            },
            at(5),
        )
        .await
        .unwrap();
    assert!(still.dead);
    assert_eq!(still.errors, vec!["still wrong".to_string()]);
    assert_eq!(still.replayed_at, Some(at(5)));
    assert_eq!(still.job_id, None, "a dead letter starts nothing");
    assert_eq!(still.payload, br#"{"seq":"x"}"#);

    let fixed = s
        .message_replay(
            id,
            Replay {
                device: Some("s9".into()),
                kind: Some("status".into()),
                errors: Vec::new(),
                start: Some(Start::Job(NewJob::new("q", "k", json!({})))),
            },
            at(6),
        )
        .await
        .unwrap();
    assert!(!fixed.dead && fixed.errors.is_empty());
    assert_eq!(
        (fixed.device.as_deref(), fixed.kind.as_deref()),
        (Some("s9"), Some("status"))
    );
    let job = s.job(fixed.job_id.unwrap()).await.unwrap().unwrap();
    assert_eq!(job.args, json!({"message_id": id}));
    assert!(s.messages(filter(true)).await.unwrap().is_empty());
    assert_eq!(s.messages(filter(false)).await.unwrap(), vec![fixed]);

    let again = Replay {
        device: None,
        kind: None,
        errors: Vec::new(),
        start: None,
    };
    match s.message_replay(id, again.clone(), at(7)).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("not a dead letter"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    match s.message_replay(424_242, again, at(7)).await {
        Err(StoreError::NotFound(m)) => assert!(m.contains("424242"), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    crate::conformance::assert_kept_counts(s).await;
}

/// Retention deletes one ingest's old messages and dead letters, in bounded rounds, and
/// nothing of other ingests or newer ones; export and import keep every field.
pub async fn messages_are_pruned_and_copied(s: &dyn Store) {
    insert(
        s,
        vec![
            message("stands", "s1", "status", 1),
            dead("stands", b"x", 2),
            message("stands", "s1", "status", 3),
            message("lab", "s1", "status", 1),
            message("stands", "s1", "status", 10),
        ],
    )
    .await;
    assert_eq!(s.prune_messages("stands", at(5), 2).await.unwrap(), 2);
    assert_eq!(s.prune_messages("stands", at(5), 2).await.unwrap(), 1);
    assert_eq!(s.prune_messages("stands", at(5), 2).await.unwrap(), 0);
    let left = s.export_messages(0, 100).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|m| (m.ingest.as_str(), m.received_at))
            .collect::<Vec<_>>(),
        vec![("lab", at(1)), ("stands", at(10))]
    );
    assert_eq!(s.export_messages(left[0].id, 100).await.unwrap(), left[1..]);

    // Emptied: a new message never takes an old one's id.
    let highest = left[1].id;
    for ingest in ["stands", "lab"] {
        s.prune_messages(ingest, at(1_000), 100).await.unwrap();
    }
    assert!(s.export_messages(0, 100).await.unwrap().is_empty());
    let fresh = insert(s, vec![message("lab", "s3", "status", 30)]).await[0];
    assert!(fresh > highest, "{fresh} reuses an id up to {highest}");
    s.prune_messages("lab", at(1_000), 100).await.unwrap();
    // Imported back: the same rows, and new ids above them.
    s.import_messages(left.clone()).await.unwrap();
    assert_eq!(s.export_messages(0, 100).await.unwrap(), left);
    let next = insert(s, vec![message("lab", "s2", "status", 20)]).await;
    assert!(next[0] > fresh);
    crate::conformance::assert_kept_counts(s).await;
}

/// A resend with the same key before the first one's key expires is a duplicate: counted
/// on the first message, neither stored nor starting anything; in one batch as across
/// batches, per ingest; after expiry the key is taken afresh. Dead letters ignore keys.
pub async fn messages_with_a_seen_key_are_duplicates(s: &dyn Store) {
    let job = NewJob::new("results", "result", json!({}));
    let keyed = |ingest: &str, key: &str, secs: u64| NewMessage {
        key: Some(MessageKey {
            value: key.into(),
            until: at(secs + 60),
        }),
        start: Some(Start::Job(job.clone())),
        ..message(ingest, "s1", "result", secs)
    };
    let first = s
        .message_insert(vec![
            keyed("stands", "s1/7", 1),
            keyed("stands", "s1/7", 1),
            keyed("stands", "s1/8", 1),
            keyed("other", "s1/7", 1),
        ])
        .await
        .unwrap();
    let id7 = first[0].id.unwrap();
    assert!(!first[0].duplicate);
    assert_eq!(
        first[1],
        MessageStored {
            id: Some(id7),
            duplicate: true
        }
    );
    assert!(!first[2].duplicate && !first[3].duplicate, "{first:?}");
    assert_eq!(
        s.count_jobs().await.unwrap(),
        3,
        "the resend started nothing"
    );
    // A later batch, within the window; and a dead letter with the same key.
    let later = s
        .message_insert(vec![
            keyed("stands", "s1/7", 30),
            NewMessage {
                key: Some(MessageKey {
                    value: "s1/7".into(),
                    until: at(90),
                }),
                ..dead("stands", b"{", 30)
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        later[0],
        MessageStored {
            id: Some(id7),
            duplicate: true
        }
    );
    assert!(!later[1].duplicate, "a dead letter is always kept");
    let shown = s.message(id7).await.unwrap().unwrap();
    assert_eq!(shown.duplicates, 2);
    assert_eq!(s.messages(filter(false)).await.unwrap().len(), 3);
    // Not kept, a keyed message still drops its resends.
    let unkept = |secs| NewMessage {
        keep: false,
        ..keyed("stands", "s1/9", secs)
    };
    let got = s.message_insert(vec![unkept(40)]).await.unwrap();
    assert_eq!(
        got[0],
        MessageStored {
            id: None,
            duplicate: false
        }
    );
    let got = s.message_insert(vec![unkept(41)]).await.unwrap();
    assert_eq!(
        got[0],
        MessageStored {
            id: None,
            duplicate: true
        }
    );
    assert_eq!(s.count_jobs().await.unwrap(), 4);
    // Once the key expired (60 s after the first), the same key is a new message.
    let after = s
        .message_insert(vec![keyed("stands", "s1/7", 61)])
        .await
        .unwrap();
    assert!(!after[0].duplicate);
    assert_ne!(after[0].id, Some(id7));
    let again = s
        .message_insert(vec![keyed("stands", "s1/7", 62)])
        .await
        .unwrap();
    assert_eq!(again[0].id, after[0].id);
    assert!(again[0].duplicate);
    assert_eq!(s.count_jobs().await.unwrap(), 5);
    crate::conformance::assert_kept_counts(s).await;
}
