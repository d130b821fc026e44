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

use crate::logs::{SharedLog, Stream, pump};
use crate::{RunAs, ServiceSpec};

/// A spawned process: the leader of its group.
#[derive(Debug)]
pub(crate) struct Proc {
    pub child: Child,
    pub pid: u32,
    /// The port it was given, if the service has ports.
    pub port: Option<u16>,
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

    /// Whether a live process (not a zombie) is left in the group: the command a shell
    /// ran, say, once the shell itself died of the stop signal.
    pub fn group_alive(&self) -> bool {
        if killpg(Pid::from_raw(self.pid as i32), None).is_err() {
            return false;
        }
        // A member may be a zombie its new parent does not reap: read the states.
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return true;
        };
        dir.flatten().any(|e| {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                return false;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                return false;
            };
            let mut fields = rest.split(' ');
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(self.pid) && state != Some("Z")
        })
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

/// Spawns instance `instance` of `spec` on `port`, its output pumped into `log`.
///
/// Spawning happens on the calling (runtime worker) thread: `PR_SET_PDEATHSIG` fires
/// when the *thread* that forked exits, and tokio's workers live as long as the
/// runtime. berth uses no `block_in_place`, which would retire a worker thread early.
pub(crate) fn spawn(
    spec: &ServiceSpec,
    instance: u32,
    port: Option<u16>,
    log: &SharedLog,
) -> Result<Proc, String> {
    let command = spec.command_for(port);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&command);
    child_env(&mut cmd, spec, instance, port);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // A supervisor dropped without stopping must not leave its processes behind.
        .kill_on_drop(true);
    // The user switch comes first: changing credentials clears the parent-death signal.
    if let Some(user) = &spec.user {
        run_as(&mut cmd, user);
    }
    default_signals(&mut cmd);
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
        port,
        started,
        started_at: SystemTime::now(),
        pumps,
    })
}

/// The environment and working directory of an instance's processes (and of its
/// command checks): `BERTH_SERVICE`, `BERTH_INSTANCE`, `PORT`, the user's `HOME`,
/// `USER` and `LOGNAME`, then the service's own `env`, which may override them.
pub(crate) fn child_env(cmd: &mut Command, spec: &ServiceSpec, instance: u32, port: Option<u16>) {
    cmd.env("BERTH_SERVICE", &spec.name)
        .env("BERTH_INSTANCE", instance.to_string());
    if let Some(port) = port {
        cmd.env("PORT", port.to_string());
    }
    if let Some(user) = &spec.user {
        cmd.env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
}

/// Switches the child to `user`: its groups, then its group id, then its user id.
#[allow(unsafe_code)]
pub(crate) fn run_as(cmd: &mut Command, user: &RunAs) {
    let (uid, gid) = (user.uid, user.gid);
    let groups: Vec<libc::gid_t> = user.groups.clone();
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // `setgroups`, `setgid` and `setuid`, which are async-signal-safe system calls; it
    // reads a vector allocated before the fork and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts the process `cmd` runs with every signal at its default action and none
/// blocked, as systemd and supervisord do. A process inherits ignored signals: under
/// `nohup` (or anything else that ignores SIGHUP), a service's `trap … HUP` and a
/// `stop_signal = "HUP"` did nothing, since a shell cannot trap a signal ignored on entry.
#[allow(unsafe_code)]
pub fn default_signals(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // `sigaction`, `sigemptyset` and `sigprocmask`, which are async-signal-safe, on
    // memory of its own stack.
    unsafe {
        cmd.pre_exec(|| {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            for signal in 1..libc::SIGRTMIN() {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::sigaction(signal, &action, std::ptr::null_mut());
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Asks the kernel to kill the process `cmd` starts if berth dies (`PR_SET_PDEATHSIG`),
/// so that a `kill -9` of berth leaves neither a service running unsupervised nor a
/// job's command unobserved (the queue's `run` handler uses it too).
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
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
