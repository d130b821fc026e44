//! The data dir lock: one berth per data dir.
//!
//! An advisory `flock` on `berth.lock`, held for the daemon's life and released by the
//! kernel when the process dies however it dies, so a `kill -9` leaves no stale lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nix::fcntl::{Flock, FlockArg};

/// Held while this berth runs.
pub struct DataDirLock {
    _lock: Flock<File>,
    /// The lock file.
    pub path: PathBuf,
    /// The pid the previous holder wrote, if any: that process is surely gone now.
    pub previous_pid: Option<u32>,
    /// Held by a command for a while (see [`DataDirLock::for_a_while`]).
    hand_back: bool,
}

impl DataDirLock {
    /// Takes the lock or says who holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("berth.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                bail!(
                    "another berth (pid {}) is already running on the data dir {}; stop it first, or give this one another `data_dir`",
                    pid.trim(),
                    data_dir.display()
                );
            }
        };
        let mut previous = String::new();
        let _ = lock.read_to_string(&mut previous);
        let previous_pid = previous.trim().parse().ok();
        lock.set_len(0).context("cannot write the lock file")?;
        lock.rewind().context("cannot write the lock file")?;
        write!(lock, "{}", std::process::id()).context("cannot write the lock file")?;
        Ok(Self {
            _lock: lock,
            path,
            previous_pid,
            hand_back: false,
        })
    }

    /// The lock of a command that holds it only for a while (a restore, a store
    /// migration): when released, however the command ends, the file names the berth
    /// that ran before again, so that the next `berth up` knows which run of this node is
    /// gone (its leftover node row and leader lease) rather than seeing the command's pid.
    pub fn for_a_while(mut self) -> Self {
        self.hand_back = true;
        self
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        if !self.hand_back {
            return;
        }
        let _ = self._lock.set_len(0);
        let _ = self._lock.rewind();
        if let Some(pid) = self.previous_pid {
            let _ = write!(self._lock, "{pid}");
        }
    }
}
