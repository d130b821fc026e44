//! berth's schedules: cron expressions that start jobs or workflows.
//!
//! # Layout
//! - [`ScheduleDef`]: a `[schedule.NAME]` as the server built it from the config: when
//!   (cron expression and time zone, optional jitter), what (a job, or a workflow), and
//!   the overlap and catch-up policies.
//! - [`plan`]: the pure decision — given the planned times that are due, whether the
//!   previous run is still going, and the policies — of what to start and what to skip.
//! - [`Scheduler`]: the leader task that fires schedules, and the admin actions (list,
//!   run now, pause, resume).
//!
//! The next planned time lives in the store and is always computed from the previous
//! planned time, never from the clock alone; firing is a compare-and-set on it in the
//! same transaction as the enqueue. So a restart, a clock jump, a DST change or a second
//! node that briefly believes it leads can neither skip a run nor start one twice.

mod def;
mod error;
pub mod plan;
mod scheduler;

pub use def::{CatchUp, Overlap, ScheduleDef, StartDef};
pub use error::{Result, ScheduleError};
pub use scheduler::{LastRun, ScheduleInfo, Scheduler};
