//! berth's process supervisor: runs a service's instances, restarts them, keeps their
//! logs and stops them without leaving anything behind.
//!
//! It depends on no other berth crate; the config crate builds its [`ServiceSpec`]s and
//! the server, API and store consume its [`status`](Supervisor::status) and
//! [`events`](Supervisor::subscribe).
//!
//! # Layout
//! - `spec.rs`: [`ServiceSpec`], [`RestartPolicy`], [`Backoff`], [`CrashLoop`] — what to
//!   run, as typed, already-validated values.
//! - `supervisor.rs`: [`Supervisor`] — adds services, starts, signals and stops them,
//!   reports status; the last added service is stopped first.
//! - `instance.rs`: one task per instance — waiting for dependencies, spawn, readiness
//!   and liveness checks, reap, restart policy and backoff, crash-loop detection, the
//!   rolling replacement, graceful stop with the SIGKILL fallback.
//! - `probe.rs`: one HTTP, TCP or command check of a process.
//! - `ports.rs`: a service's port range, shared by its instances.
//! - `process.rs`: spawning `sh -c` in a process group of its own with
//!   `PR_SET_PDEATHSIG`, and signalling the group.
//! - `watchdog.rs`: a small `sh` process that SIGKILLs every instance's group once
//!   berth is gone, even after a `kill -9` of berth.
//! - `logs.rs`: timestamped, size-rotated log files fed from the pipes.
//! - `status.rs`: [`InstanceStatus`], [`InstanceState`], [`Exit`], [`Event`].
//! - `usage.rs`: CPU time and resident memory of a running process, from `/proc`.
//! - `error.rs`: [`Error`].

mod error;
mod instance;
pub mod logs;
mod ports;
mod probe;
mod process;
mod spec;
mod status;
mod supervisor;
pub mod usage;
mod watchdog;

pub use error::Error;
pub use process::{default_signals, die_with_parent};
pub use spec::{
    Backoff, Check, CrashLoop, Liveness, Ports, Probe, RestartPolicy, RunAs, ServiceSpec,
};
pub use status::{Event, EventKind, Exit, ExitInfo, InstanceState, InstanceStatus};
pub use supervisor::Supervisor;

/// Re-exported so that callers name stop signals without depending on nix themselves.
pub use nix::sys::signal::Signal;
