//! Every type the API sends and takes, in one place: the server's routes answer with
//! them, the CLI's client reads them, the dashboard renders them, and the OpenAPI
//! document at `/v1/openapi.json` is generated from them.
//!
//! - [`requests`]: request bodies, query strings and path parameters, and the parsing of
//!   the values in them (durations, times, states);
//! - [`responses`]: the answers;
//! - the records the store keeps (a job, a batch, a workflow, an event, …) are sent as
//!   the store defines them and are re-exported here.

pub mod requests;
pub mod responses;

pub use berth_deploy::{Release, ReleaseState, SourceInfo, StepRecord};
pub use berth_queue::batches::BatchReport;
pub use berth_schedule::{CatchUp, LastRun, Overlap, ScheduleInfo};
pub use berth_store::{
    ArchivedJob, AttemptError, Batch, BatchFailure, Delivery, EventRecord, FlowState, Inserted,
    Job, JobState, LeaderLease, LeasedJob, MessageCount, NodeInfo, QueueStats, StateChange,
    Timestamp, Workflow, WorkflowStep,
};
pub use requests::*;
pub use responses::*;
