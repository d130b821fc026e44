//! CPU time and resident memory of a running process, read from `/proc`.

use std::time::Duration;

/// What a process has used so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
}

/// The usage of `pid`, or `None` if it is gone (or this is not Linux).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is parenthesised and may hold spaces: count fields after it.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15, rss 24 (1-based, man proc).
    let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    let (utime, stime, rss_pages) = (ticks(14)?, ticks(15)?, ticks(24)?);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096)
        .max(1) as u64;
    Some(Usage {
        cpu: Duration::from_millis((utime + stime) * 1000 / hz),
        rss_bytes: rss_pages * page,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let u = super::usage(std::process::id()).expect("our own /proc entry");
        assert!(u.rss_bytes > 1024 * 1024, "{u:?}");
        assert!(super::usage(u32::MAX).is_none());
    }
}
