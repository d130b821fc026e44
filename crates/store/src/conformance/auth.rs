//! Conformance cases for users, tokens and sessions (re-exported by
//! [`crate::conformance`], which runs them with the rest).

use std::time::Duration;

use crate::StoreError;
use crate::auth::*;
use crate::conformance::at;
use crate::store::*;

fn token(id: &str, user: &str, expires: Option<u64>) -> NewToken {
    NewToken {
        token: TokenRecord {
            id: id.into(),
            user: user.into(),
            label: format!("{id} label"),
            created_at: at(1),
            expires_at: expires.map(at),
            scopes: if id == "tok_2" {
                vec!["messages:read".into(), "jobs:push:imports".into()]
            } else {
                Vec::new()
            },
        },
        hash: format!("hash-of-{id}"),
    }
}

/// Users: added once, roles sorted, password and roles changed, removed with their
/// tokens and sessions.
pub async fn users_are_added_changed_and_removed(s: &dyn Store) {
    let alice = s
        .user_create(
            "alice",
            "$argon2id$a",
            vec!["ops".into(), "admin".into(), "ops".into()],
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(alice.roles, ["admin", "ops"]);
    assert_eq!((alice.failed_logins, alice.locked_until), (0, None));
    let again = s.user_create("alice", "$argon2id$b", vec![], at(1)).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        s.user("alice").await.unwrap().unwrap().password_hash,
        "$argon2id$a"
    );
    s.user_create("bob", "$argon2id$c", vec![], at(2))
        .await
        .unwrap();
    let names: Vec<String> = s
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    s.session_create("sess-a", "alice", at(3600), at(3))
        .await
        .unwrap();
    s.token_create(token("tok_a", "alice", None)).await.unwrap();
    let changed = s
        .user_update(
            "alice",
            Some("$argon2id$new".into()),
            Some(vec!["viewer".into()]),
            at(4),
        )
        .await
        .unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert_eq!(changed.roles, ["viewer"]);
    assert_eq!(changed.updated_at, at(4));
    // A new password ends the sessions; tokens stay.
    assert!(s.session_user("sess-a", at(5)).await.unwrap().is_none());
    assert!(
        s.token_user("hash-of-tok_a", at(5))
            .await
            .unwrap()
            .is_some()
    );
    let roles_only = s
        .user_update("alice", None, Some(vec![]), at(6))
        .await
        .unwrap();
    assert_eq!(roles_only.password_hash, "$argon2id$new");
    assert!(roles_only.roles.is_empty());

    s.session_create("sess-b", "alice", at(3600), at(7))
        .await
        .unwrap();
    s.user_remove("alice").await.unwrap();
    assert!(s.user("alice").await.unwrap().is_none());
    assert!(
        s.token_user("hash-of-tok_a", at(8))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.session_user("sess-b", at(8)).await.unwrap().is_none());
    assert!(s.tokens().await.unwrap().is_empty());
    for missing in [
        s.user_remove("alice").await.err(),
        s.user_update("alice", None, None, at(9)).await.err(),
        s.token_create(token("tok_x", "nobody", None)).await.err(),
        s.session_create("s", "nobody", at(99), at(9)).await.err(),
    ] {
        assert!(
            matches!(missing, Some(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
}

/// Failed logins count up and lock the user for a while; a success or a new password
/// starts the count over.
pub async fn failed_logins_lock_and_reset(s: &dyn Store) {
    let lockout = Lockout {
        after: 3,
        lasts: Duration::from_secs(900),
    };
    s.user_create("carol", "$argon2id$x", vec![], at(0))
        .await
        .unwrap();
    assert_eq!(s.login_failed("carol", lockout, at(1)).await.unwrap(), None);
    assert_eq!(s.login_failed("carol", lockout, at(2)).await.unwrap(), None);
    assert_eq!(s.user("carol").await.unwrap().unwrap().failed_logins, 2);
    s.login_succeeded("carol").await.unwrap();
    assert_eq!(s.user("carol").await.unwrap().unwrap().failed_logins, 0);
    for t in 3..5 {
        assert_eq!(s.login_failed("carol", lockout, at(t)).await.unwrap(), None);
    }
    let locked = s.login_failed("carol", lockout, at(5)).await.unwrap();
    assert_eq!(locked, Some(at(905)));
    let u = s.user("carol").await.unwrap().unwrap();
    assert_eq!((u.failed_logins, u.locked_until), (0, Some(at(905))));
    // An unknown name is no error and creates nothing.
    assert_eq!(
        s.login_failed("nobody", lockout, at(6)).await.unwrap(),
        None
    );
    assert!(s.user("nobody").await.unwrap().is_none());
    // A new password lifts the lock.
    s.user_update("carol", Some("$argon2id$y".into()), None, at(7))
        .await
        .unwrap();
    assert_eq!(s.user("carol").await.unwrap().unwrap().locked_until, None);
}

/// Tokens: found by hash with their user until they expire or are revoked.
pub async fn tokens_expire_and_are_revoked(s: &dyn Store) {
    s.user_create("dave", "$argon2id$d", vec!["api".into()], at(0))
        .await
        .unwrap();
    s.token_create(token("tok_1", "dave", None)).await.unwrap();
    s.token_create(token("tok_2", "dave", Some(100)))
        .await
        .unwrap();
    let dup = s.token_create(token("tok_1", "dave", None)).await;
    assert!(dup.is_err(), "a second token with the same id was stored");
    let (t, u) = s
        .token_user("hash-of-tok_2", at(99))
        .await
        .unwrap()
        .expect("live token");
    assert_eq!((t.id.as_str(), u.name.as_str()), ("tok_2", "dave"));
    assert_eq!(u.roles, ["api"]);
    assert_eq!(t.scopes, ["messages:read", "jobs:push:imports"]);
    assert!(
        s.token_user("hash-of-tok_2", at(100))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.token_user("wrong", at(1)).await.unwrap().is_none());
    let ids: Vec<String> = s
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids.len(), 2);
    s.token_revoke("tok_1").await.unwrap();
    assert!(
        s.token_user("hash-of-tok_1", at(2))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        s.token_revoke("tok_1").await,
        Err(StoreError::NotFound(_))
    ));
}

/// Sessions: found until they end, deleted at logout, pruned after.
pub async fn sessions_end_and_are_pruned(s: &dyn Store) {
    s.user_create("erin", "$argon2id$e", vec![], at(0))
        .await
        .unwrap();
    s.session_create("s1", "erin", at(100), at(0))
        .await
        .unwrap();
    s.session_create("s2", "erin", at(200), at(0))
        .await
        .unwrap();
    let (session, user) = s
        .session_user("s1", at(50))
        .await
        .unwrap()
        .expect("a session");
    assert_eq!(
        (session.user.as_str(), session.expires_at),
        ("erin", at(100))
    );
    assert_eq!(user.name, "erin");
    assert!(s.session_user("s1", at(100)).await.unwrap().is_none());
    s.session_delete("s2").await.unwrap();
    s.session_delete("s2").await.unwrap();
    assert!(s.session_user("s2", at(1)).await.unwrap().is_none());
    s.session_create("s3", "erin", at(300), at(0))
        .await
        .unwrap();
    assert_eq!(s.prune_sessions(at(150)).await.unwrap(), 1);
    assert!(s.session_user("s3", at(150)).await.unwrap().is_some());
}

/// Users and tokens copy to another store as they are.
pub async fn auth_exports_and_imports(s: &dyn Store) {
    s.user_create("frank", "$argon2id$f", vec!["admin".into()], at(0))
        .await
        .unwrap();
    s.token_create(token("tok_f", "frank", Some(500)))
        .await
        .unwrap();
    let dump = s.export_auth().await.unwrap();
    assert_eq!(dump.users.len(), 1);
    assert_eq!(dump.tokens[0].hash, "hash-of-tok_f");
    // Into the same store it clashes rather than doubles.
    assert!(s.import_auth(dump.clone()).await.is_err());
    s.user_remove("frank").await.unwrap();
    s.import_auth(dump.clone()).await.unwrap();
    assert_eq!(s.export_auth().await.unwrap(), dump);
}

/// Budgets: spending adds up within a period, a new period starts over, each alert level
/// is raised once, and a reset empties the period.
pub async fn budgets_add_up_reset_and_alert_once(s: &dyn Store) {
    let p1 = at(0);
    let p2 = at(86_400);
    assert_eq!(
        s.budget_add("nlu", p1, 2_000, at(1)).await.unwrap().spent,
        2_000
    );
    let b = s.budget_add("nlu", p1, 3_000, at(2)).await.unwrap();
    assert_eq!((b.period_start, b.spent, b.alerted), (p1, 5_000, 0));
    assert!(s.budget_alert("nlu", p1, 80).await.unwrap());
    assert!(
        !s.budget_alert("nlu", p1, 80).await.unwrap(),
        "raised twice"
    );
    assert!(s.budget_alert("nlu", p1, 100).await.unwrap());
    // A node whose clock lags adds to the current period.
    let lagging = s
        .budget_add("nlu", at(0).minus(Duration::from_secs(1)), 1, at(3))
        .await
        .unwrap();
    assert_eq!((lagging.period_start, lagging.spent), (p1, 5_001));
    // The next period starts over, alerts too.
    let b = s.budget_add("nlu", p2, 7, at(86_401)).await.unwrap();
    assert_eq!((b.period_start, b.spent, b.alerted), (p2, 7, 0));
    assert!(
        !s.budget_alert("nlu", p1, 80).await.unwrap(),
        "an old period's alert"
    );
    s.budget_add("other", p2, 1, at(86_402)).await.unwrap();
    s.budget_reset("nlu", p2, at(86_403)).await.unwrap();
    let all = s.budgets().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, "nlu");
    assert_eq!((all[0].1.spent, all[0].1.alerted), (0, 0));
    // Resetting a budget that never spent creates it empty.
    s.budget_reset("fresh", p2, at(86_404)).await.unwrap();
    assert_eq!(s.budgets().await.unwrap().len(), 3);
}

/// A swap takes effect only when the setting holds what the caller expects: two
/// claims of one lock, one wins; a release by the loser changes nothing.
pub async fn settings_swap_only_from_what_they_hold(s: &dyn Store) {
    let a = serde_json::json!({"node": "a", "release": "r1"});
    let b = serde_json::json!({"node": "b", "release": "r2"});
    assert!(
        s.swap_setting("lock", None, Some(a.clone()), at(1))
            .await
            .unwrap()
    );
    assert!(
        !s.swap_setting("lock", None, Some(b.clone()), at(2))
            .await
            .unwrap()
    );
    assert_eq!(s.setting("lock").await.unwrap(), Some(a.clone()));
    // The loser cannot release or take over what it does not hold.
    assert!(
        !s.swap_setting("lock", Some(b.clone()), None, at(3))
            .await
            .unwrap()
    );
    assert!(
        !s.swap_setting("lock", Some(b.clone()), Some(b.clone()), at(3))
            .await
            .unwrap()
    );
    // Renewed by its holder (the same keys in another order are the same value).
    let renewed = serde_json::json!({"release": "r1", "node": "a", "until": 5});
    let same = serde_json::json!({"release": "r1", "node": "a"});
    assert!(
        s.swap_setting("lock", Some(same), Some(renewed.clone()), at(4))
            .await
            .unwrap()
    );
    assert!(
        !s.swap_setting("lock", None, None, at(4)).await.unwrap(),
        "it is set"
    );
    assert!(
        s.swap_setting("lock", Some(renewed), None, at(5))
            .await
            .unwrap()
    );
    assert_eq!(s.setting("lock").await.unwrap(), None);
    assert!(
        s.swap_setting("lock", None, None, at(6)).await.unwrap(),
        "it is not set"
    );
    // Then another claim wins.
    assert!(
        s.swap_setting("lock", None, Some(b.clone()), at(7))
            .await
            .unwrap()
    );
    assert_eq!(s.setting("lock").await.unwrap(), Some(b));
}

/// Settings: set, replaced, cleared.
pub async fn settings_are_set_and_cleared(s: &dyn Store) {
    assert_eq!(s.setting("maintenance").await.unwrap(), None);
    let on = serde_json::json!({"message": "back at 5"});
    s.set_setting("maintenance", Some(on.clone()), at(1))
        .await
        .unwrap();
    assert_eq!(s.setting("maintenance").await.unwrap(), Some(on));
    let other = serde_json::json!({"message": null});
    s.set_setting("maintenance", Some(other.clone()), at(2))
        .await
        .unwrap();
    assert_eq!(s.setting("maintenance").await.unwrap(), Some(other));
    s.set_setting("maintenance", None, at(3)).await.unwrap();
    s.set_setting("maintenance", None, at(4)).await.unwrap();
    assert_eq!(s.setting("maintenance").await.unwrap(), None);
}
