//! What to run: a service's definition as typed, already-validated values.
//!
//! Parsing and checking `[service.NAME]` is the config crate's job; by the time a
//! [`ServiceSpec`] exists, every value in it is usable as it is.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// One service: a command run as `instances` processes, each supervised on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The service's name, unique within a supervisor; also names its log files.
    pub name: String,
    /// Run with `sh -c`; `{port}` is replaced by the instance's port.
    pub command: String,
    /// The working directory; berth's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Added to the environment berth inherited (after `PORT`, so it may override it).
    pub env: Vec<(String, String)>,
    /// How many processes run the command; instance `i` is numbered from 0.
    pub instances: u32,
    /// The ports the instances take theirs from. `None`: no ports.
    pub ports: Option<Ports>,
    /// Services whose instances must all be ready before this one's first start.
    pub depends_on: Vec<String>,
    /// When a started process counts as ready; `None`: as soon as it is spawned.
    pub ready: Option<Probe>,
    /// How long a started process may take to become ready before it is killed and
    /// counted as a failed start.
    pub start_timeout: Duration,
    /// A check repeated while the instance runs; enough failures in a row restart it.
    pub live: Option<Liveness>,
    /// The user the processes run as (berth must be root to switch); `None`: berth's.
    pub user: Option<RunAs>,
    /// When an exited instance is started again.
    pub restart: RestartPolicy,
    /// How long to wait before restarting.
    pub backoff: Backoff,
    /// When restarting gives up.
    pub crash_loop: CrashLoop,
    /// Sent to the instance's process group to ask it to stop.
    pub stop_signal: Signal,
    /// How long a stopping instance may take before its group is killed with SIGKILL.
    pub stop_grace: Duration,
    /// Where `NAME.INSTANCE.log` and its rotated files live.
    pub log_dir: PathBuf,
    /// A log file reaching this size is rotated.
    pub log_max_bytes: u64,
    /// How many rotated files (`.1` … `.N`) are kept.
    pub log_keep: u32,
}

impl ServiceSpec {
    /// A spec with berth's defaults: one instance, no port, `always` restart, SIGTERM
    /// with 10 s of grace, 10 MiB logs keeping 5 rotated files.
    pub fn new(name: impl Into<String>, command: impl Into<String>, log_dir: PathBuf) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            cwd: None,
            env: Vec::new(),
            instances: 1,
            ports: None,
            depends_on: Vec::new(),
            ready: None,
            start_timeout: Duration::from_secs(60),
            live: None,
            user: None,
            restart: RestartPolicy::Always,
            backoff: Backoff::default(),
            crash_loop: CrashLoop::default(),
            stop_signal: Signal::SIGTERM,
            stop_grace: Duration::from_secs(10),
            log_dir,
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 5,
        }
    }

    /// The port instance `instance` prefers: the range's first plus its number.
    pub fn port(&self, instance: u32) -> Option<u16> {
        self.ports.map(|p| p.first + instance as u16)
    }

    /// The command line for a process on `port`: `{port}` replaced by it.
    pub fn command_for(&self, port: Option<u16>) -> String {
        with_port(&self.command, port)
    }
}

/// `text` with `{port}` replaced by `port`, if there is one.
pub(crate) fn with_port(text: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => text.replace("{port}", &port.to_string()),
        None => text.to_owned(),
    }
}

/// The ports of a service: instance `i` prefers `first + i`; the rest of the range is
/// spare, for the new process of a rolling restart to start beside the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The first port of the range.
    pub first: u16,
    /// The last port of the range (inclusive), at least `first + instances - 1`.
    pub last: u16,
}

impl Ports {
    /// A range of exactly `instances` ports from `first`: no spare.
    pub fn fixed(first: u16, instances: u32) -> Self {
        Self {
            first,
            last: first + (instances.max(1) - 1) as u16,
        }
    }
}

/// A check of an instance: is it ready, is it still alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What is checked.
    pub check: Check,
    /// How long to wait between two checks.
    pub interval: Duration,
    /// How long one check may take before it counts as failed.
    pub timeout: Duration,
}

/// What a [`Probe`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `GET path` on `127.0.0.1:PORT`; a 2xx or 3xx status passes.
    Http {
        /// The request path, starting with `/`.
        path: String,
    },
    /// A TCP connection to `127.0.0.1:PORT` is accepted.
    Tcp,
    /// `sh -c command` (with `{port}` replaced and the instance's environment) exits 0.
    Command {
        /// The shell command.
        command: String,
    },
}

/// The liveness check: `failures` failed probes in a row restart the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// The check and its timing.
    pub probe: Probe,
    /// Consecutive failures that restart the instance (≥ 1).
    pub failures: u32,
}

/// A user to run the processes as, resolved when the service is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name, for `USER` and `LOGNAME`.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Every group it is a member of, the primary one included.
    pub groups: Vec<u32>,
    /// Its home directory, for `HOME`.
    pub home: std::path::PathBuf,
}

/// When an exited instance is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// After every exit, successful or not.
    Always,
    /// After an exit with a non-zero code or by a signal.
    OnFailure,
    /// Never; the instance stays `Exited`.
    Never,
}

impl RestartPolicy {
    /// Whether an exit that `succeeded` is followed by a restart.
    pub fn restarts(self, succeeded: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !succeeded,
            RestartPolicy::Never => false,
        }
    }
}

/// Exponential backoff between restarts.
///
/// The first restart after a stable run is immediate, so that a one-off crash costs no
/// downtime beyond the respawn; each further restart without a stable run in between
/// waits `initial`, then `initial × factor`, … up to `max`. A run that lasted
/// `reset_after` counts as stable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the second consecutive restart.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// How much each wait grows over the previous one (≥ 1).
    pub factor: f64,
    /// A run this long resets the backoff.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The wait before restart number `n` (0-based) since the last stable run.
    pub fn delay(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let grown = self.initial.as_secs_f64() * self.factor.powi(n as i32 - 1);
        if !grown.is_finite() || grown >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(grown)
        }
    }
}

/// Restarting gives up when an instance exits more than `max_exits` times within
/// `window`: it goes to the `CrashLoop` state until it is started explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoop {
    /// Exits tolerated within the window.
    pub max_exits: u32,
    /// The window.
    pub window: Duration,
}

impl Default for CrashLoop {
    fn default() -> Self {
        Self {
            max_exits: 5,
            window: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_from_an_immediate_first_restart_to_the_cap() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            factor: 2.0,
            reset_after: Duration::from_secs(1),
        };
        let delays: Vec<_> = (0..6).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 500, 500]);
        assert_eq!(b.delay(10_000), b.max);
    }

    #[test]
    fn ports_and_command_substitution() {
        let mut s = ServiceSpec::new("api", "serve -b 127.0.0.1:{port}", "logs".into());
        assert_eq!(s.command_for(None), "serve -b 127.0.0.1:{port}");
        s.ports = Some(Ports::fixed(8000, 3));
        assert_eq!(s.ports.unwrap().last, 8002);
        assert_eq!(s.port(2), Some(8002));
        assert_eq!(s.command_for(s.port(2)), "serve -b 127.0.0.1:8002");
    }
}
