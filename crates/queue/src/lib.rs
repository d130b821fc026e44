//! berth's durable job queue.
//!
//! # Layout
//! - [`queues`]: [`Queues`], the handle for enqueue, the pull API and admin actions;
//! - [`executor`]: runs a queue's jobs in this process: fetch under a lease, handler,
//!   timeout, batched completions, heartbeats, graceful drain;
//! - [`handler`]: `run` (a process per job), `post` (HTTP), in-process functions;
//! - [`maintenance`]: stager, rescuer (expired leases, orphans of a previous run), pruner;
//! - [`leader`]: node heartbeats and the leader lease that gates maintenance;
//!   [`leader_task`]: the leader-only work of other crates (schedules, workflow deadlines);
//! - [`batches`]: batches of items cut into jobs, split on failure;
//! - [`runtime`]: starts all of the above for a set of queues and stops them;
//! - [`spec`]: the per-queue settings; [`clock`]: injectable time; [`error`].

pub mod batches;
pub mod clock;
pub mod error;
pub mod executor;
pub mod handler;
pub mod leader;
pub mod leader_task;
pub mod live;
pub mod maintenance;
pub mod metrics;
pub mod queues;
pub mod release;
pub mod runtime;
pub mod spec;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{QueueError, Result};
pub use handler::{Handler, HandlerOutcome};
pub use leader_task::{LeaderTask, TickFuture};
pub use live::Live;
pub use queues::{Enqueue, Queues, Report};
pub use release::ReleaseDir;
pub use runtime::{
    CONCURRENCY_KEY, Options as RuntimeOptions, QueueChanges, QueueControl, Runtime,
};
pub use spec::{Backoff, HandlerSpec, QueueSpec, Retention};
