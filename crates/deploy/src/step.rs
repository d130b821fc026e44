//! A deploy's commands (build steps, the migration, the smoke test): `sh -c` in the
//! release's directory, in a process group of their own, with the output kept in a log
//! file, and killed whole at the step's time limit.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

/// How a command ended.
pub(crate) struct Ran {
    /// Whether it exited 0.
    pub ok: bool,
    /// "exited with code 2", "killed after 15m (step_timeout)".
    pub how: String,
    /// The last lines of its output.
    pub tail: String,
}

/// Kills the group when dropped: a deploy cancelled mid-step leaves nothing running.
struct Group(Option<Pid>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = killpg(pid, Signal::SIGKILL);
        }
    }
}

/// Runs `command` in `cwd` with `env`, its output (stdout and stderr) appended to `log`.
pub(crate) async fn run(
    command: &str,
    cwd: &Path,
    env: &[(String, String)],
    log: &Path,
    limit: Duration,
) -> Ran {
    let file = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        Ok(f) => f,
        Err(e) => {
            return Ran {
                ok: false,
                how: format!("cannot write its log {}: {e}", log.display()),
                tail: String::new(),
            };
        }
    };
    let err = match file.try_clone() {
        Ok(f) => f,
        Err(e) => {
            return Ran {
                ok: false,
                how: format!("cannot write its log: {e}"),
                tail: String::new(),
            };
        }
    };
    let mut cmd = Command::new("sh");
    // A step's command gets default signal actions, whatever berth was started under.
    berth_supervise::default_signals(&mut cmd);
    let child = cmd
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                ok: false,
                how: format!("could not start: {e}"),
                tail: String::new(),
            };
        }
    };
    let mut group = Group(child.id().map(|p| Pid::from_raw(p as i32)));
    let (ok, how) = match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => {
            // What the shell left in its group goes with it.
            if let Some(pid) = group.0.take() {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            (
                status.success(),
                match status.code() {
                    Some(c) => format!("exited with code {c}"),
                    None => format!("ended by a signal ({status})"),
                },
            )
        }
        Ok(Err(e)) => (false, format!("cannot be waited for: {e}")),
        Err(_) => {
            drop(group);
            let _ = child.wait().await;
            (
                false,
                format!("killed after {} (step_timeout)", crate::humanize(limit)),
            )
        }
    };
    Ran {
        ok,
        how,
        tail: tail(log, 20),
    }
}

/// The last `lines` lines of a file, read from its last 4 KiB only (a build's log may be
/// large).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let read = file
        .seek(SeekFrom::Start(len.saturating_sub(4096)))
        .and_then(|_| file.read_to_end(&mut bytes));
    if read.is_err() {
        return String::new();
    }
    berth_store::tail(&String::from_utf8_lossy(&bytes), lines, 4096)
}
