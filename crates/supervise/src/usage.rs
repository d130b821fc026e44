//! CPU time and memory of a service instance's whole process tree, read from `/proc`.
//!
//! An instance's process is `sh -c COMMAND` (or what the shell execs), in a process group
//! of its own. The work is done by what it starts: a gunicorn master and its workers, a
//! node process and its children. So an instance's usage is that of its tree: the
//! process, its descendants, and whatever else is in its process group (a grandchild
//! whose parent exited is re-parented away from the tree but stays in the group). One
//! [`ProcessTable`] is read per listing and answers for every instance.

use std::collections::HashMap;
use std::time::Duration;

/// What a process tree uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time of the processes alive now, plus that of the children
    /// they have reaped (a restarted worker's time stays counted).
    pub cpu: Duration,
    /// Resident memory, summed over the processes (pages shared between them, such as a
    /// forked worker's copy of its master, count once per process).
    pub rss_bytes: u64,
    /// Proportional memory: each page shared by N processes counts 1/N, so the sum is what
    /// the tree really holds. `None` where `/proc/PID/smaps_rollup` cannot be read (an
    /// older kernel, or another user's process without the right to read it).
    pub pss_bytes: Option<u64>,
    /// How many processes the tree holds.
    pub processes: u32,
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    ppid: u32,
    pgrp: u32,
    /// utime + stime + cutime + cstime, in clock ticks.
    ticks: u64,
    rss_pages: u64,
}

/// A snapshot of every process on the machine: parent, group, CPU ticks and resident pages.
#[derive(Debug, Default)]
pub struct ProcessTable {
    procs: HashMap<u32, Proc>,
    hz: u64,
    page: u64,
}

impl ProcessTable {
    /// Reads `/proc` (empty where there is none).
    pub fn read() -> Self {
        let mut procs = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if let Some(p) = stat(pid) {
                    procs.insert(pid, p);
                }
            }
        }
        Self {
            procs,
            hz: sysconf(nix::unistd::SysconfVar::CLK_TCK, 100),
            page: sysconf(nix::unistd::SysconfVar::PAGE_SIZE, 4096),
        }
    }

    /// The usage of `root`'s tree: itself, its descendants and the members of its
    /// process group; `None` if `root` is gone.
    pub fn tree(&self, root: u32) -> Option<Usage> {
        self.procs.get(&root)?;
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, p) in &self.procs {
            children.entry(p.ppid).or_default().push(pid);
        }
        let mut members: Vec<u32> = vec![root];
        let mut i = 0;
        while let Some(&pid) = members.get(i) {
            members.extend(children.get(&pid).into_iter().flatten().copied());
            i += 1;
        }
        members.extend(
            self.procs
                .iter()
                .filter(|(_, p)| p.pgrp == root)
                .map(|(&pid, _)| pid),
        );
        members.sort_unstable();
        members.dedup();
        let (mut ticks, mut rss_pages, mut pss) = (0, 0, Some(0));
        for pid in &members {
            let p = &self.procs[pid];
            ticks += p.ticks;
            rss_pages += p.rss_pages;
            pss = pss.zip(pss_bytes(*pid)).map(|(a, b)| a + b);
        }
        Some(Usage {
            cpu: Duration::from_millis(ticks * 1000 / self.hz),
            rss_bytes: rss_pages * self.page,
            pss_bytes: pss,
            processes: members.len() as u32,
        })
    }
}

/// The usage of `pid`'s tree (see [`ProcessTable::tree`]); reads all of `/proc`, so a
/// listing of several instances should read one [`ProcessTable`] instead.
pub fn usage(pid: u32) -> Option<Usage> {
    ProcessTable::read().tree(pid)
}

fn sysconf(var: nix::unistd::SysconfVar, default: i64) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .unwrap_or(default)
        .max(1) as u64
}

fn stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces: count fields after it.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the name: ppid is field 4, pgrp 5, utime 14, stime 15, cutime 16, cstime 17,
    // rss 24 (1-based, man proc).
    let field = |i: usize| fields.get(i - 3)?.parse::<i64>().ok();
    let ticks = [14, 15, 16, 17]
        .into_iter()
        .map(|i| field(i).map(|t| t.max(0) as u64))
        .sum::<Option<u64>>()?;
    Some(Proc {
        ppid: field(4)?.max(0) as u32,
        pgrp: field(5)?.max(0) as u32,
        ticks,
        rss_pages: field(24)?.max(0) as u64,
    })
}

/// `Pss:` of `/proc/PID/smaps_rollup`, in bytes.
fn pss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    #[test]
    fn reads_this_process() {
        let u = super::usage(std::process::id()).expect("our own /proc entry");
        assert!(u.rss_bytes > 1024 * 1024, "{u:?}");
        assert!(u.pss_bytes.is_some_and(|p| p > 0), "{u:?}");
        assert!(super::usage(u32::MAX).is_none());
    }

    /// A shell that started two children that each hold 40 MiB: the tree counts all
    /// three processes and their memory, where the shell alone holds almost nothing.
    #[test]
    fn counts_the_whole_tree() {
        let hold = "python3 -c 'import sys, time; x = bytearray(40 << 20); \
                    x[::4096] = b\"\\x01\" * len(x[::4096]); print(1, flush=True); time.sleep(60)'";
        let mut sh = Command::new("sh")
            .arg("-c")
            .arg(format!("{hold} & {hold} & wait"))
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut out = sh.stdout.take().unwrap();
        let mut ready = [0u8; 4];
        std::io::Read::read_exact(&mut out, &mut ready).unwrap();
        let pid = sh.id();
        let table = super::ProcessTable::read();
        let tree = table.tree(pid).unwrap();
        let alone = super::stat(pid).unwrap().rss_pages * table.page;
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = sh.kill();
        let _ = sh.wait();
        assert_eq!(tree.processes, 3, "{tree:?}");
        assert!(alone < 8 << 20, "the shell alone holds {alone}");
        assert!(tree.rss_bytes > 70 << 20, "{tree:?}");
        assert!(tree.pss_bytes.is_some_and(|p| p > 70 << 20), "{tree:?}");
    }
}
