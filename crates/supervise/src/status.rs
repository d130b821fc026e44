//! What can be observed: each instance's status, and the events the supervisor emits.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Waiting for the services it depends on to be ready before its first start.
    Waiting,
    /// Spawned, and not yet ready.
    Starting,
    /// Its process runs (and passed its readiness check, if it has one).
    Running,
    /// Asked to stop: the stop signal is sent and the grace period runs.
    Stopping,
    /// It exited and waits for its restart.
    Backoff,
    /// Stopped on request (or never started).
    Stopped,
    /// It exited and its restart policy does not restart it.
    Exited,
    /// It exited too often within the crash-loop window; restarting gave up.
    CrashLoop,
}

impl InstanceState {
    /// The lowercase name shown to users (`crashloop`, `backoff`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Waiting => "waiting",
            InstanceState::Starting => "starting",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Backoff => "backoff",
            InstanceState::Stopped => "stopped",
            InstanceState::Exited => "exited",
            InstanceState::CrashLoop => "crashloop",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal (a raw number when nix does not know it).
    Signal(i32),
    /// It could not be spawned at all (`sh` missing, `cwd` missing, …).
    SpawnFailed(String),
    /// berth killed it: it did not pass its readiness check within the start timeout.
    NotReady(String),
    /// berth restarted it: its liveness check failed too often in a row.
    Unhealthy(String),
}

impl Exit {
    /// Whether this was a successful exit (code 0).
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    pub(crate) fn from_status(status: std::process::ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::SpawnFailed(format!("ended abnormally ({status})")),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with code {code}"),
            Exit::Signal(sig) => match Signal::try_from(*sig) {
                Ok(s) => write!(f, "killed by {}", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            Exit::SpawnFailed(why) => write!(f, "could not start: {why}"),
            Exit::NotReady(why) => write!(f, "killed: {why}"),
            Exit::Unhealthy(why) => write!(f, "restarted: {why}"),
        }
    }
}

/// The last exit of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// How it ended.
    pub exit: Exit,
    /// When the exit was observed.
    pub at: SystemTime,
    /// How long the process ran.
    pub ran_for: Duration,
}

/// A snapshot of one instance, as `berth ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    /// The service's name.
    pub service: String,
    /// The instance's number, from 0.
    pub instance: u32,
    /// The running process (the leader of its process group), if any.
    pub pid: Option<u32>,
    /// Where it is in its life.
    pub state: InstanceState,
    /// When the current (or last) process was spawned.
    pub started_at: Option<SystemTime>,
    /// How many times it was restarted after an exit (explicit starts not counted).
    pub restarts: u32,
    /// Its port, if the service has ports.
    pub port: Option<u16>,
    /// Its last exit, if any.
    pub last_exit: Option<ExitInfo>,
}

/// Something that happened to an instance; the store records these later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The service's name.
    pub service: String,
    /// The instance's number.
    pub instance: u32,
    /// When it happened.
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A process was spawned.
    Started {
        /// Its pid, also its process group's id.
        pid: u32,
        /// Its port, if the service has ports.
        port: Option<u16>,
    },
    /// The process passed its readiness check (or, without one, was spawned).
    Ready {
        /// Its pid.
        pid: u32,
    },
    /// The liveness check failed too many times in a row; a restart follows.
    Unhealthy {
        /// The last check's failure.
        reason: String,
    },
    /// The process ended by itself (or could not be spawned).
    Exited(Exit),
    /// A restart is due after this wait.
    Restarting {
        /// The backoff wait before the restart.
        after: Duration,
    },
    /// Too many exits within the window: no more restarts until an explicit start.
    CrashLoop,
    /// Stopped on request.
    Stopped {
        /// How the process ended, if one was running.
        exit: Option<Exit>,
    },
}

impl EventKind {
    /// A short lowercase name: `started`, `ready`, `unhealthy`, `exited`, `restarting`,
    /// `crashloop`, `stopped`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::Ready { .. } => "ready",
            EventKind::Unhealthy { .. } => "unhealthy",
            EventKind::Exited(_) => "exited",
            EventKind::Restarting { .. } => "restarting",
            EventKind::CrashLoop => "crashloop",
            EventKind::Stopped { .. } => "stopped",
        }
    }
}

impl fmt::Display for EventKind {
    /// A sentence for people: "started as pid 4242 on port 8000", "exited with code 1".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Started {
                pid,
                port: Some(port),
            } => {
                write!(f, "started as pid {pid} on port {port}")
            }
            EventKind::Started { pid, port: None } => write!(f, "started as pid {pid}"),
            EventKind::Ready { pid } => write!(f, "pid {pid} is ready"),
            EventKind::Unhealthy { reason } => write!(f, "failed its liveness check: {reason}"),
            EventKind::Exited(exit) => write!(f, "{exit}"),
            EventKind::Restarting { after } if after.is_zero() => f.write_str("restarting now"),
            EventKind::Restarting { after } => {
                write!(f, "restarting in {}", humantime::format_duration(*after))
            }
            EventKind::CrashLoop => {
                f.write_str("exited too often; not restarted until started again")
            }
            EventKind::Stopped { exit: Some(exit) } => write!(f, "stopped ({exit})"),
            EventKind::Stopped { exit: None } => f.write_str("stopped"),
        }
    }
}
