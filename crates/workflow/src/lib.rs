//! berth's workflows: graphs of steps over the job queue.
//!
//! # Layout
//! - [`WorkflowDef`] and [`StepDef`]: a `[workflow.NAME]` as the server built it from the
//!   config. Each step runs on a queue of its own (`workflow.NAME.STEP`), so it has its own
//!   handler, attempts, backoff, timeout and heartbeat timeout.
//! - [`Workflows`]: start, show, list, cancel and retry workflows.
//! - [`Deadlines`]: the leader task that fails workflows past their time limit.
//!
//! The graph itself moves inside the store: when a step's job finishes, the same
//! transaction releases the children whose parents have all finished (handing them the
//! parents' results) or fails the workflow. Nothing here has to be running for a
//! workflow to make progress, and a crash can never leave a step finished with its
//! children still waiting.

mod deadlines;
mod def;
mod error;
mod workflows;

pub use deadlines::Deadlines;
pub use def::{StepDef, WorkflowDef, step_queue};
pub use error::{Result, WorkflowError};
pub use workflows::Workflows;
