//! Queue tests: executors, handlers and maintenance over a real SQLite store, with an
//! injected clock for everything that depends on time.

mod backoff;
mod executor;
mod handlers;
mod maintenance;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_queue::handler::func::FnHandler;
use berth_queue::{Handler, HandlerSpec, ManualClock, QueueSpec, Queues, Runtime, RuntimeOptions};
use berth_store::conformance::T0;
use berth_store::{JobState, SqliteStore, Store};

/// Queues over a fresh SQLite store and a manual clock.
pub struct Fixture {
    /// The queues under test.
    pub queues: Queues,
    /// Their clock.
    pub clock: ManualClock,
    _dir: tempfile::TempDir,
}

/// A fixture with the given queues.
pub fn fixture(specs: Vec<QueueSpec>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("berth.db"), Default::default()).unwrap());
    let clock = ManualClock::new(T0);
    let queues = Queues::new(store, Arc::new(clock.clone()), specs);
    Fixture {
        queues,
        clock,
        _dir: dir,
    }
}

/// A queue with three attempts.
pub fn spec(name: &str, handler: HandlerSpec) -> QueueSpec {
    QueueSpec {
        max_attempts: 3,
        ..QueueSpec::new(name, handler)
    }
}

/// Starts the runtime with in-process handlers for the named queues.
pub async fn start(f: &Fixture, handlers: Vec<(&str, FnHandler)>, grace: Duration) -> Runtime {
    let map: HashMap<String, Arc<dyn Handler>> = handlers
        .into_iter()
        .map(|(q, h)| (q.to_string(), Arc::new(h) as Arc<dyn Handler>))
        .collect();
    let options = RuntimeOptions {
        handlers: map,
        grace,
        ..Default::default()
    };
    Runtime::start(f.queues.clone(), options).await.unwrap()
}

/// Waits until job `id` is in `state` (the executor signals nothing the test can await).
pub async fn wait_state(q: &Queues, id: i64, state: JobState) -> berth_store::Job {
    berth_testkit::wait_until(
        &format!("job {id} to be {state}"),
        Duration::from_secs(10),
        || async {
            let j = q.job(id).await.unwrap();
            (j.state == state).then_some(j)
        },
    )
    .await
}
