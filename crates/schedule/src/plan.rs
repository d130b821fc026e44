//! The decision of one pass over a due schedule, as a pure function so that every policy
//! can be tested without a store or a clock.

use std::time::Duration;

use berth_store::Timestamp;

use crate::def::{CatchUp, Overlap};

/// A run this late (or less) is not "missed": `catch_up = "skip"` still starts it. It
/// covers a busy leader and a leader change.
pub const GRACE: Duration = Duration::from_secs(60);

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The planned times to start, oldest first.
    pub fires: Vec<Timestamp>,
    /// The next planned time to store after the last firing (or the skip).
    pub next_at: Timestamp,
    /// Planned times dropped by the policies.
    pub skipped: u64,
    /// Start nothing and store nothing yet: the previous run must finish first.
    pub hold: bool,
}

/// Decides a pass over a schedule whose planned times `due` (oldest first, at least one)
/// are due. `after_due` is the first planned time after the last of them; `latest_due_at`
/// is when the latest was due (its planned time plus jitter); `previous_running`: the last
/// run has not finished.
pub fn decide(
    overlap: Overlap,
    catch_up: CatchUp,
    due: &[Timestamp],
    after_due: Timestamp,
    latest_due_at: Timestamp,
    now: Timestamp,
    previous_running: bool,
) -> Decision {
    let n = due.len();
    let latest = due[n - 1];
    let chosen: &[Timestamp] = match catch_up {
        CatchUp::Skip if now.since(latest_due_at) <= GRACE => &due[n - 1..],
        CatchUp::Skip => &[],
        CatchUp::Once => &due[n - 1..],
        CatchUp::All { limit } => &due[n.saturating_sub(limit.max(1) as usize)..],
    };
    let skip_all = Decision {
        fires: Vec::new(),
        next_at: after_due,
        skipped: n as u64,
        hold: false,
    };
    match overlap {
        Overlap::Allow => Decision {
            fires: chosen.to_vec(),
            next_at: after_due,
            skipped: (n - chosen.len()) as u64,
            hold: false,
        },
        Overlap::Skip if previous_running || chosen.is_empty() => skip_all,
        // Catching up several times would overlap each run with the one before: the
        // latest stands for them all.
        Overlap::Skip => Decision {
            fires: vec![latest],
            next_at: after_due,
            skipped: (n - 1) as u64,
            hold: false,
        },
        Overlap::Queue if previous_running => Decision {
            fires: Vec::new(),
            next_at: due[0],
            skipped: 0,
            hold: true,
        },
        Overlap::Queue if chosen.is_empty() => skip_all,
        // One at a time: the next chosen time stays due until this run has finished.
        Overlap::Queue => Decision {
            fires: vec![chosen[0]],
            next_at: chosen.get(1).copied().unwrap_or(after_due),
            skipped: (n - chosen.len()) as u64,
            hold: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(min: u64) -> Timestamp {
        Timestamp(0).plus(Duration::from_secs(min * 60))
    }

    fn d(overlap: Overlap, catch_up: CatchUp, due: &[u64], now: u64, running: bool) -> Decision {
        let due: Vec<Timestamp> = due.iter().map(|m| t(*m)).collect();
        let last = *due.last().unwrap();
        decide(
            overlap,
            catch_up,
            &due,
            last.plus(Duration::from_secs(300)),
            last,
            t(now),
            running,
        )
    }

    #[test]
    fn on_time_runs_fire_under_every_policy() {
        for overlap in [Overlap::Skip, Overlap::Allow, Overlap::Queue] {
            for catch_up in [CatchUp::Skip, CatchUp::Once, CatchUp::All { limit: 5 }] {
                let got = d(overlap, catch_up, &[10], 10, false);
                assert_eq!(got.fires, vec![t(10)], "{overlap:?} {catch_up:?}");
                assert_eq!((got.skipped, got.hold), (0, false));
                assert_eq!(got.next_at, t(15));
            }
        }
    }

    #[test]
    fn catch_up_after_downtime() {
        let due = [0, 5, 10, 15, 20];
        let skip = d(Overlap::Allow, CatchUp::Skip, &due, 22, false);
        assert_eq!((skip.fires, skip.skipped), (vec![], 5));
        let once = d(Overlap::Allow, CatchUp::Once, &due, 22, false);
        assert_eq!((once.fires, once.skipped), (vec![t(20)], 4));
        let all = d(Overlap::Allow, CatchUp::All { limit: 3 }, &due, 22, false);
        assert_eq!((all.fires, all.skipped), (vec![t(10), t(15), t(20)], 2));
        assert_eq!(all.next_at, t(25));
    }

    #[test]
    fn overlap_with_a_running_previous_run() {
        let skip = d(Overlap::Skip, CatchUp::Once, &[10], 10, true);
        assert_eq!(
            (skip.fires.len(), skip.skipped, skip.next_at),
            (0, 1, t(15))
        );
        let allow = d(Overlap::Allow, CatchUp::Once, &[10], 10, true);
        assert_eq!(allow.fires, vec![t(10)]);
        let queue = d(Overlap::Queue, CatchUp::Once, &[10], 10, true);
        assert!(queue.hold);
        assert_eq!(queue.next_at, t(10));
    }

    #[test]
    fn queued_catch_up_runs_one_at_a_time() {
        let q = d(
            Overlap::Queue,
            CatchUp::All { limit: 2 },
            &[0, 5, 10],
            12,
            false,
        );
        assert_eq!((q.fires, q.next_at, q.skipped), (vec![t(5)], t(10), 1));
        let s = d(
            Overlap::Skip,
            CatchUp::All { limit: 2 },
            &[0, 5, 10],
            12,
            false,
        );
        assert_eq!((s.fires, s.next_at, s.skipped), (vec![t(10)], t(15), 2));
    }
}
