//! Job processes that a killed berth left behind.
//!
//! A `run` job's shell dies with berth (`PR_SET_PDEATHSIG`), but what the shell started
//! lives on in the job's process group. Every job process carries `BERTH_DATA_DIR` in its
//! environment, so the next berth on the same data dir — which holds the data dir lock,
//! so the old one is surely gone — finds them in `/proc` and kills their groups before the
//! rescued jobs run again.

use std::path::Path;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The environment variable that marks job processes.
pub const MARKER_VAR: &str = "BERTH_DATA_DIR";

/// The marker for a data dir.
pub fn marker(data_dir: &Path) -> (String, String) {
    let dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    (MARKER_VAR.to_string(), dir.display().to_string())
}

/// Kills the process groups of processes marked with `marker`. Returns how many groups.
pub fn kill_leftovers(marker: &(String, String)) -> usize {
    let needle = format!("{}={}", marker.0, marker.1);
    let me = std::process::id();
    // Never our own group (berth may itself have been started from a job's environment).
    let own_group = nix::unistd::getpgrp().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut groups = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        if let Some(pgid) = process_group(pid)
            && pgid != 0
            && pgid != own_group
            && !groups.contains(&pgid)
        {
            groups.push(pgid);
        }
    }
    for pgid in &groups {
        let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
    }
    groups.len()
}

/// The process group of `pid`, from `/proc/PID/stat` (the fifth field, after the
/// parenthesised command name, which may itself contain spaces).
fn process_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}
