//! What to run: a service's definition as typed, already-validated values.
//!
//! Parsing and checking `[service.NAME]` is the config crate's job; by the time a
//! [`ServiceSpec`] exists, every value in it is usable as it is.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// One service: a command run as `instances` processes, each supervised on its own.
#[derive(Debug, Clone)]
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
    /// The first instance's port; instance `i` gets `first + i`. `None`: no port.
    pub ports: Option<u16>,
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

    /// The port of instance `instance`, if the service has ports.
    pub fn port(&self, instance: u32) -> Option<u16> {
        self.ports.map(|first| first + instance as u16)
    }

    /// The command line of instance `instance`: `{port}` replaced by its port.
    pub fn command_for(&self, instance: u32) -> String {
        match self.port(instance) {
            Some(port) => self.command.replace("{port}", &port.to_string()),
            None => self.command.clone(),
        }
    }
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
        let mut s = ServiceSpec::new("api", "serve -b 127.0.0.1:{port}", "/tmp".into());
        assert_eq!(s.command_for(0), "serve -b 127.0.0.1:{port}");
        s.ports = Some(8000);
        assert_eq!(s.port(2), Some(8002));
        assert_eq!(s.command_for(2), "serve -b 127.0.0.1:8002");
    }
}
