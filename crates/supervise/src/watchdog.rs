//! The watchdog: kills every instance's process group after berth's own death.
//!
//! `PR_SET_PDEATHSIG` kills an instance's leader when berth dies, but not what the
//! leader started (the flag is not inherited across `fork`), and a `kill -9` of berth
//! gives berth no chance to clean up. So berth starts one small `sh` process, in a group
//! of its own and ignoring terminal signals, and tells it on a pipe which groups exist
//! (`+ PGID` after a spawn, `- PGID` once a group is gone). When the pipe closes —
//! however berth ended — the watchdog SIGKILLs the groups still listed and exits.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Mutex;

use crate::Error;

const SCRIPT: &str = r#"trap '' INT TERM HUP QUIT
g=''
while read op pg; do
  case $op in
    +) g="$g $pg" ;;
    -) n=''; for x in $g; do [ "$x" = "$pg" ] || n="$n $x"; done; g=$n ;;
  esac
done
for x in $g; do kill -s KILL -- "-$x" 2>/dev/null; done
"#;

/// The watchdog process and the pipe to it.
#[derive(Debug)]
pub(crate) struct Watchdog {
    stdin: Mutex<Option<ChildStdin>>,
    // Kept so that tokio reaps the watchdog when it exits.
    _child: Child,
}

impl Watchdog {
    /// Starts the watchdog.
    pub fn start() -> Result<Self, Error> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::Watchdog)?;
        let stdin = child.stdin.take();
        Ok(Self {
            stdin: Mutex::new(stdin),
            _child: child,
        })
    }

    /// Lists the group `pgid`.
    pub async fn add(&self, pgid: u32) {
        self.send(format!("+ {pgid}\n")).await;
    }

    /// Forgets the group `pgid` (it is gone, and its id may be reused).
    pub async fn remove(&self, pgid: u32) {
        self.send(format!("- {pgid}\n")).await;
    }

    async fn send(&self, line: String) {
        let mut stdin = self.stdin.lock().await;
        if let Some(pipe) = stdin.as_mut()
            && let Err(e) = pipe.write_all(line.as_bytes()).await
        {
            tracing::warn!(error = %e, "the service watchdog is gone; services may outlive a killed berth");
            *stdin = None;
        }
    }
}
