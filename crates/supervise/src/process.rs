//! Spawning an instance's process and signalling its process group.
//!
//! Each instance runs `sh -c COMMAND` as the leader of a process group of its own, so
//! that one signal reaches the shell and everything it started. The leader also asks the
//! kernel for SIGKILL when berth dies (`PR_SET_PDEATHSIG`); that flag is not inherited
//! by the leader's own children, which is why the [`Watchdog`](crate::watchdog) exists.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::ServiceSpec;
use crate::logs::{SharedLog, Stream, pump};

/// A spawned process: the leader of its group.
#[derive(Debug)]
pub(crate) struct Proc {
    pub child: Child,
    pub pid: u32,
    pub started: Instant,
    pub started_at: SystemTime,
    /// The tasks copying stdout and stderr into the log.
    pub pumps: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Sends `signal` to the whole process group; a group already gone is not an error.
    pub fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    /// Waits (up to `limit`) until the pipes are drained into the log, so that an exit
    /// is reported after the last lines are written. A process that escaped the group
    /// may hold a pipe open; its pump then goes on in the background.
    pub async fn drain_logs(&mut self, limit: Duration) {
        let pumps = std::mem::take(&mut self.pumps);
        let _ = tokio::time::timeout(limit, async {
            for pump in pumps {
                let _ = pump.await;
            }
        })
        .await;
    }
}

/// Sends `signal` to the process group `pgid`, ignoring a group that no longer exists.
pub(crate) fn signal_group(pgid: u32, signal: Signal) {
    let _ = killpg(Pid::from_raw(pgid as i32), signal);
}

/// Spawns instance `instance` of `spec`, its output pumped into `log`.
///
/// Spawning happens on the calling (runtime worker) thread: `PR_SET_PDEATHSIG` fires
/// when the *thread* that forked exits, and tokio's workers live as long as the
/// runtime. berth uses no `block_in_place`, which would retire a worker thread early.
pub(crate) fn spawn(spec: &ServiceSpec, instance: u32, log: &SharedLog) -> Result<Proc, String> {
    let command = spec.command_for(instance);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&command)
        .env("BERTH_SERVICE", &spec.name)
        .env("BERTH_INSTANCE", instance.to_string());
    if let Some(port) = spec.port(instance) {
        cmd.env("PORT", port.to_string());
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A supervisor dropped without stopping must not leave its processes behind.
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
    let started = Instant::now();
    let pid = child
        .id()
        .ok_or("the process exited before its pid was read")?;
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, Stream::Out, log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, Stream::Err, log.clone())));
    }
    Ok(Proc {
        child,
        pid,
        started,
        started_at: SystemTime::now(),
        pumps,
    })
}

/// Asks the kernel to kill the instance's shell if berth dies, so that a `kill -9` of
/// berth does not leave services running unsupervised.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // `prctl`, `getppid` and `_exit`, which are async-signal-safe; it reads a copied
    // integer and touches no other memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // berth died between the fork and the prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
