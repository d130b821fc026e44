//! Every-five-minutes across restarts and DST changes; overlap and catch-up policies; two
//! schedulers over one store fire each planned time once.

use std::sync::Arc;
use std::time::Duration;

use berth_cron::{Cron, time_zone};
use berth_queue::{Clock, HandlerSpec, ManualClock, QueueSpec, Queues};
use berth_schedule::{CatchUp, Overlap, ScheduleDef, Scheduler, StartDef};
use berth_store::{JobFilter, JobState, SqliteStore, Store, Timestamp};
use berth_workflow::Workflows;
use serde_json::json;

fn ts(rfc3339: &str) -> Timestamp {
    rfc3339.parse().unwrap()
}

fn def(name: &str, cron: &str, tz: &str, overlap: Overlap, catch_up: CatchUp) -> ScheduleDef {
    ScheduleDef {
        name: name.into(),
        cron: Cron::parse(cron).unwrap(),
        tz: time_zone(tz).unwrap(),
        tz_name: tz.into(),
        start: StartDef::Job {
            queue: "q".into(),
            kind: name.into(),
            args: json!({}),
            max_attempts: None,
        },
        overlap,
        catch_up,
        jitter: Duration::ZERO,
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new(start: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("berth.db"), Default::default()).unwrap());
        Self {
            store,
            clock: ManualClock::new(ts(start)),
            _dir: dir,
        }
    }

    /// A scheduler as a fresh berth process would build it (a restart is a new one).
    fn scheduler(&self, defs: Vec<ScheduleDef>) -> Scheduler {
        let queues = Queues::new(
            self.store.clone(),
            Arc::new(self.clock.clone()),
            vec![QueueSpec::new("q", HandlerSpec::Pull)],
        );
        let workflows = Workflows::new(queues.clone(), Vec::new());
        Scheduler::new(queues, workflows, defs)
    }

    /// Moves the clock in steps of `step` until `until`, running a pass after each.
    async fn run(&self, s: &Scheduler, step: Duration, until: &str) {
        let until = ts(until);
        while self.clock.now() < until {
            self.clock.advance(step);
            s.tick(self.clock.now()).await.unwrap();
        }
    }

    /// The planned times of the jobs enqueued so far, oldest first.
    async fn fired(&self) -> Vec<Timestamp> {
        let mut jobs = self
            .store
            .list_jobs(JobFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        jobs.sort_by_key(|j| j.id);
        jobs.iter().map(|j| j.scheduled_at).collect()
    }

    async fn finish_all(&self) {
        for j in self
            .store
            .list_jobs(JobFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
        {
            if !j.state.is_final() {
                self.store.cancel(j.id, self.clock.now()).await.unwrap();
            }
        }
    }
}

fn every_five(from: &str, n: usize) -> Vec<Timestamp> {
    (0..n)
        .map(|i| ts(from).plus(Duration::from_secs(300 * i as u64)))
        .collect()
}

/// An every-five-minutes schedule keeps its rhythm across a restart: the new process
/// neither repeats the run the old one fired nor skips the one due while it restarted.
#[tokio::test]
async fn every_five_minutes_across_a_restart() {
    let f = Fixture::new("2026-06-01T10:00:30Z");
    let every5 = || {
        def(
            "tick",
            "*/5 * * * *",
            "UTC",
            Overlap::Allow,
            CatchUp::All { limit: 10 },
        )
    };
    let first = f.scheduler(vec![every5()]);
    f.run(&first, Duration::from_secs(7), "2026-06-01T10:16:00Z")
        .await;
    assert_eq!(f.fired().await, every_five("2026-06-01T10:05:00Z", 3));
    // Each job's unique key names its planned time, in RFC 3339.
    let first_job = f
        .store
        .list_jobs(JobFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .min_by_key(|j| j.id)
        .unwrap();
    assert_eq!(
        first_job.unique_key.as_deref(),
        Some("schedule:tick:2026-06-01T10:05:00.000Z")
    );
    drop(first);
    // Down for seven minutes (10:20 is missed), then a new process.
    f.clock.advance(Duration::from_secs(7 * 60));
    let second = f.scheduler(vec![every5()]);
    second.tick(f.clock.now()).await.unwrap();
    second.tick(f.clock.now()).await.unwrap();
    f.run(&second, Duration::from_secs(11), "2026-06-01T10:41:00Z")
        .await;
    assert_eq!(f.fired().await, every_five("2026-06-01T10:05:00Z", 8));
}

/// Across both DST changes of Europe/Berlin, every five minutes means every five real
/// minutes: no hole in the repeated hour, no run twice, nothing in the skipped hour.
#[tokio::test]
async fn every_five_minutes_across_dst_changes() {
    for (start, end, n) in [
        // Spring forward at 02:00 CET (01:00Z): 00:40Z to 01:20Z is 40 real minutes.
        ("2026-03-29T00:40:30Z", "2026-03-29T01:21:00Z", 8),
        // Fall back at 03:00 CEST (01:00Z): 00:30Z to 01:30Z is an hour, 12 runs.
        ("2026-10-25T00:30:30Z", "2026-10-25T01:31:00Z", 12),
    ] {
        let f = Fixture::new(start);
        let s = f.scheduler(vec![def(
            "tick",
            "*/5 * * * *",
            "Europe/Berlin",
            Overlap::Allow,
            CatchUp::Once,
        )]);
        f.run(&s, Duration::from_secs(13), end).await;
        let fired = f.fired().await;
        let first = ts(start).plus(Duration::from_secs(270));
        assert_eq!(fired, every_five(&first.to_string(), n), "from {start}");
    }
}

/// A daily run at 02:30 Berlin runs once on both DST days (at 03:30 when 02:30 does not
/// exist, at the first 02:30 when it happens twice).
#[tokio::test]
async fn a_daily_run_once_on_dst_days() {
    let f = Fixture::new("2026-03-28T12:00:00Z");
    let s = f.scheduler(vec![def(
        "daily",
        "30 2 * * *",
        "Europe/Berlin",
        Overlap::Allow,
        CatchUp::Once,
    )]);
    f.run(&s, Duration::from_secs(600), "2026-03-30T12:00:00Z")
        .await;
    assert_eq!(
        f.fired().await,
        vec![ts("2026-03-29T01:30:00Z"), ts("2026-03-30T00:30:00Z")]
    );
    let f = Fixture::new("2026-10-24T12:00:00Z");
    let s = f.scheduler(vec![def(
        "daily",
        "30 2 * * *",
        "Europe/Berlin",
        Overlap::Allow,
        CatchUp::Once,
    )]);
    f.run(&s, Duration::from_secs(600), "2026-10-26T12:00:00Z")
        .await;
    assert_eq!(
        f.fired().await,
        vec![ts("2026-10-25T00:30:00Z"), ts("2026-10-26T01:30:00Z")]
    );
}

/// A clock jump backwards fires nothing again; forwards, the catch-up policy decides.
#[tokio::test]
async fn a_clock_jump_neither_doubles_nor_storms() {
    let f = Fixture::new("2026-06-01T10:00:30Z");
    let s = f.scheduler(vec![def(
        "tick",
        "*/5 * * * *",
        "UTC",
        Overlap::Allow,
        CatchUp::Once,
    )]);
    f.run(&s, Duration::from_secs(10), "2026-06-01T10:11:00Z")
        .await;
    assert_eq!(f.fired().await.len(), 2);
    f.clock.set(ts("2026-06-01T09:00:00Z"));
    f.run(&s, Duration::from_secs(10), "2026-06-01T09:30:00Z")
        .await;
    assert_eq!(
        f.fired().await.len(),
        2,
        "nothing fires twice after a jump back"
    );
    f.clock.set(ts("2026-06-01T13:02:00Z"));
    s.tick(f.clock.now()).await.unwrap();
    assert_eq!(
        f.fired().await.last().copied(),
        Some(ts("2026-06-01T13:00:00Z")),
        "a jump forward runs once for the missed times"
    );
    assert_eq!(f.fired().await.len(), 3);
}

/// Catch-up after four planned runs missed: skip runs none, once runs one, all runs each
/// up to the limit.
#[tokio::test]
async fn catch_up_policies() {
    for (catch_up, expected) in [
        (CatchUp::Skip, 0),
        (CatchUp::Once, 1),
        (CatchUp::All { limit: 3 }, 3),
    ] {
        let f = Fixture::new("2026-06-01T10:00:30Z");
        let s = f.scheduler(vec![def("h", "0 * * * *", "UTC", Overlap::Allow, catch_up)]);
        s.tick(f.clock.now()).await.unwrap();
        f.clock.set(ts("2026-06-01T14:30:00Z"));
        let s = f.scheduler(vec![def("h", "0 * * * *", "UTC", Overlap::Allow, catch_up)]);
        s.tick(f.clock.now()).await.unwrap();
        let fired = f.fired().await;
        assert_eq!(fired.len(), expected, "{catch_up:?}");
        let list = s.list().await.unwrap();
        assert_eq!(list[0].next_at, ts("2026-06-01T15:00:00Z"), "{catch_up:?}");
        assert_eq!(list[0].skipped, 4 - expected as u64, "{catch_up:?}");
    }
}

/// Overlap: skip drops runs while the last one runs; queue holds the run until it
/// finished; allow starts it anyway.
#[tokio::test]
async fn overlap_policies() {
    for (overlap, while_running, after) in [
        (Overlap::Skip, 1, 1),
        (Overlap::Queue, 1, 2),
        (Overlap::Allow, 2, 2),
    ] {
        let f = Fixture::new("2026-06-01T10:00:30Z");
        let s = f.scheduler(vec![def("t", "*/5 * * * *", "UTC", overlap, CatchUp::Once)]);
        f.run(&s, Duration::from_secs(10), "2026-06-01T10:06:00Z")
            .await;
        f.run(&s, Duration::from_secs(10), "2026-06-01T10:11:00Z")
            .await;
        assert_eq!(f.fired().await.len(), while_running, "{overlap:?}");
        f.finish_all().await;
        s.tick(f.clock.now()).await.unwrap();
        let fired = f.fired().await;
        assert_eq!(fired.len(), after, "{overlap:?}");
        if overlap == Overlap::Queue {
            assert_eq!(
                fired[1],
                ts("2026-06-01T10:10:00Z"),
                "the held run starts late, not lost"
            );
        }
    }
}

/// Two schedulers over one store (two nodes, or a leader and its successor) fire each
/// planned time once; a run by hand adds one without moving the plan; paused schedules
/// skip.
#[tokio::test]
async fn two_schedulers_fire_once_and_pause_skips() {
    let f = Fixture::new("2026-06-01T10:00:30Z");
    let d = || def("t", "*/5 * * * *", "UTC", Overlap::Allow, CatchUp::Once);
    let (a, b) = (f.scheduler(vec![d()]), f.scheduler(vec![d()]));
    for _ in 0..60 {
        f.clock.advance(Duration::from_secs(10));
        let now = f.clock.now();
        let (x, y) = tokio::join!(a.tick(now), b.tick(now));
        x.unwrap();
        y.unwrap();
    }
    assert_eq!(f.fired().await, every_five("2026-06-01T10:05:00Z", 2));
    let fired = a.run_now("t").await.unwrap();
    assert!(fired.job_id.is_some());
    assert_eq!(
        a.list().await.unwrap()[0].next_at,
        ts("2026-06-01T10:15:00Z")
    );
    a.set_paused("t", true).await.unwrap();
    f.run(&a, Duration::from_secs(10), "2026-06-01T10:31:00Z")
        .await;
    assert_eq!(f.fired().await.len(), 3, "paused: nothing new");
    let info = a.set_paused("t", false).await.unwrap();
    assert_eq!(info.next_at, ts("2026-06-01T10:35:00Z"));
    assert!(info.skipped >= 4);
    assert!(matches!(
        a.run_now("nope").await,
        Err(berth_schedule::ScheduleError::Unknown { .. })
    ));
    let states: Vec<JobState> = f
        .store
        .list_jobs(JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| j.state)
        .collect();
    assert!(
        states
            .iter()
            .all(|s| *s == JobState::Available || *s == JobState::Scheduled)
    );
}

/// A workflow a schedule starts keeps the planned time it was started for, in RFC 3339.
#[tokio::test]
async fn a_scheduled_workflow_records_its_planned_time() {
    use berth_workflow::{StepDef, WorkflowDef};
    let f = Fixture::new("2026-06-01T02:59:58Z");
    let queues = Queues::new(
        f.store.clone(),
        Arc::new(f.clock.clone()),
        vec![QueueSpec::new(
            berth_workflow::step_queue("nightly", "only"),
            HandlerSpec::Pull,
        )],
    );
    let workflows = Workflows::new(
        queues.clone(),
        vec![WorkflowDef {
            name: "nightly".into(),
            timeout: None,
            steps: vec![StepDef {
                name: "only".into(),
                parents: Vec::new(),
                optional: false,
                max_attempts: 1,
            }],
        }],
    );
    let mut d = def("night", "0 3 * * *", "UTC", Overlap::Allow, CatchUp::Once);
    d.start = StartDef::Workflow {
        name: "nightly".into(),
        args: json!({}),
    };
    let s = Scheduler::new(queues, workflows, vec![d]);
    f.run(&s, Duration::from_secs(1), "2026-06-01T03:00:02Z")
        .await;
    let all = f
        .store
        .workflows(berth_store::WorkflowFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].started_by, "schedule:night");
    assert_eq!(
        all[0].unique_key.as_deref(),
        Some("schedule:night:2026-06-01T03:00:00.000Z")
    );
}
