//! The `run` handler: one process per job.
//!
//! The command runs under `sh -c` in a process group of its own, with the args JSON on
//! stdin and `BERTH_JOB_ID`, `BERTH_JOB_KIND`, `BERTH_ATTEMPT` and `BERTH_QUEUE` in its
//! environment. `{args.NAME}` in the command is replaced by that argument, shell-quoted.
//! Exit 0 completes, exit 75 (`EX_TEMPFAIL`) asks for a retry, anything else fails the
//! attempt. A command that has a result to hand on (a workflow step's, to its children)
//! writes it as JSON to the file named by `BERTH_RESULT`. When the shell exits, whatever it left in its group is killed. At the queue's
//! timeout the group is killed and the output so far kept; dropping the attempt (cancel,
//! shutdown) kills the group too.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use berth_store::LeasedJob;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{BoundedOutput, Handler, HandlerFuture, HandlerOutcome};

/// Exit code that asks for a retry without counting a failure (sysexits' `EX_TEMPFAIL`).
pub const EXIT_RETRY: i32 = 75;

/// Runs a command per job.
#[derive(Debug, Clone)]
pub struct RunHandler {
    command: Arc<str>,
    env: Arc<[(String, String)]>,
    timeout: Option<Duration>,
    release: Option<crate::ReleaseDir>,
}

impl RunHandler {
    /// A handler for the command line `command`.
    pub fn new(command: impl Into<String>) -> Self {
        Self::with_env(command, Vec::new())
    }

    /// A handler whose processes also get `env` (berth marks them with its data dir, so
    /// that a restarted berth can find what a killed one left running).
    pub fn with_env(command: impl Into<String>, env: Vec<(String, String)>) -> Self {
        Self {
            command: command.into().into(),
            env: env.into(),
            timeout: None,
            release: None,
        }
    }

    /// Starts each process in the live release's directory, with `{release}` in the
    /// command replaced by it and `BERTH_RELEASE` set to it (when berth deploys).
    pub fn in_release(mut self, release: crate::ReleaseDir) -> Self {
        self.release = Some(release);
        self
    }

    /// Kills an attempt's process group after `limit`, keeping what it printed until then.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

impl Handler for RunHandler {
    fn handle(&self, job: LeasedJob) -> HandlerFuture {
        let this = self.clone();
        Box::pin(async move {
            // The release this attempt starts in stays in use until it ends.
            let release = this.release.as_ref().and_then(crate::ReleaseDir::enter);
            let command = match &release {
                Some((path, _)) => this
                    .command
                    .replace("{release}", &path.display().to_string()),
                None => this.command.to_string(),
            };
            run(
                &command,
                &this.env,
                release.as_ref().map(|(p, _)| p.as_path()),
                this.timeout,
                job,
            )
            .await
        })
    }

    fn enforces_timeout(&self) -> bool {
        self.timeout.is_some()
    }
}

/// Kills the process group when dropped, so that an abandoned attempt leaves nothing behind.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

async fn run(
    template: &str,
    env: &[(String, String)],
    release: Option<&std::path::Path>,
    timeout: Option<Duration>,
    job: LeasedJob,
) -> HandlerOutcome {
    let command = match expand(template, &job.args) {
        Ok(c) => c,
        Err(error) => {
            return HandlerOutcome::Failed {
                error,
                output: None,
            };
        }
    };
    let result_file = ResultFile::new(job.id, job.attempt);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&command)
        .env("BERTH_RESULT", &result_file.0)
        .env("BERTH_JOB_ID", job.id.to_string())
        .env("BERTH_JOB_KIND", &job.kind)
        .env("BERTH_ATTEMPT", job.attempt.to_string())
        .env("BERTH_QUEUE", &job.queue)
        .envs(job.workflow_step().into_iter().flat_map(|(id, step)| {
            [
                ("BERTH_WORKFLOW_ID", id.to_string()),
                ("BERTH_WORKFLOW_STEP", step.to_owned()),
            ]
        }))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = release {
        cmd.current_dir(dir).env("BERTH_RELEASE", dir);
    }
    berth_supervise::default_signals(&mut cmd);
    berth_supervise::die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HandlerOutcome::Failed {
                error: format!("cannot start `sh -c {command}`: {e}"),
                output: None,
            };
        }
    };
    let mut guard = GroupGuard(child.id().map(|p| Pid::from_raw(p as i32)));
    let args = serde_json::to_vec(&job.args).unwrap_or_default();
    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A command that does not read its stdin closes the pipe: not an error.
            let _ = stdin.write_all(&args).await;
            let _ = stdin.shutdown().await;
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut out = BoundedOutput::default();
        // The end of stderr alone: its last line says why a failed command failed.
        let mut err_tail: Vec<u8> = Vec::new();
        let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
        let (mut open_out, mut open_err) = (stdout.is_some(), stderr.is_some());
        while open_out || open_err {
            tokio::select! {
                n = read_some(&mut stdout, &mut a), if open_out => match n {
                    0 => open_out = false,
                    n => out.push(&a[..n]),
                },
                n = read_some(&mut stderr, &mut b), if open_err => match n {
                    0 => open_err = false,
                    n => {
                        out.push(&b[..n]);
                        err_tail.extend_from_slice(&b[..n]);
                        if err_tail.len() > ERR_TAIL {
                            err_tail.drain(..err_tail.len() - ERR_TAIL);
                        }
                    }
                },
            }
        }
        (out, err_tail)
    };
    let pgid = guard.0;
    let wait = async {
        let status = child.wait().await;
        // The shell exited: kill what it left in its group, which also closes the pipes
        // such leftovers would hold open.
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        status
    };
    let work = async { tokio::join!(feed, collect, wait) };
    tokio::pin!(work);
    let mut timed_out = None;
    let ((), (out, err_tail), status) = match timeout {
        Some(limit) => tokio::select! {
            r = &mut work => r,
            _ = tokio::time::sleep(limit) => {
                // Kill the group, then collect what it printed up to now.
                if let Some(pgid) = pgid {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
                timed_out = Some(limit);
                work.await
            }
        },
        None => work.await,
    };
    guard.0 = None;
    let output = out.finish();
    if let Some(limit) = timed_out {
        return HandlerOutcome::Failed {
            error: format!("timed out after {}", crate::executor::humanize(limit)),
            output,
        };
    }
    match status {
        Ok(s) if s.success() => match result_file.read() {
            Ok(result) => HandlerOutcome::Completed { result, output },
            Err(error) => HandlerOutcome::Failed { error, output },
        },
        Ok(s) if s.code() == Some(EXIT_RETRY) => HandlerOutcome::Retry {
            reason: format!("the command asked for a retry (exit {EXIT_RETRY})"),
            output,
            after: None,
        },
        Ok(s) => HandlerOutcome::Failed {
            error: match last_line(&err_tail) {
                Some(line) => format!("{}: {line}", describe_exit(s)),
                None => describe_exit(s),
            },
            output,
        },
        Err(e) => HandlerOutcome::Failed {
            error: format!("waiting for the command failed: {e}"),
            output,
        },
    }
}

/// The file a command may write its JSON result to; removed with the attempt.
struct ResultFile(std::path::PathBuf);

/// The largest result berth reads back.
const MAX_RESULT: u64 = 1024 * 1024;

impl ResultFile {
    fn new(job: i64, attempt: u32) -> Self {
        Self(std::env::temp_dir().join(format!(
            "berth-result-{job}-{attempt}-{:08x}.json",
            fastrand::u32(..)
        )))
    }

    /// The result, if the command wrote one; an error if it is not JSON or too large.
    fn read(&self) -> Result<Option<Value>, String> {
        let text = match std::fs::metadata(&self.0) {
            Err(_) => return Ok(None),
            Ok(m) if m.len() > MAX_RESULT => {
                return Err(format!(
                    "the result written to $BERTH_RESULT is {} bytes; at most {MAX_RESULT} are read",
                    m.len()
                ));
            }
            Ok(_) => std::fs::read_to_string(&self.0)
                .map_err(|e| format!("cannot read the result written to $BERTH_RESULT: {e}"))?,
        };
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| {
            format!("the result written to $BERTH_RESULT is not valid JSON ({e}); write a JSON value such as {{\"rows\": 12}}")
        })
    }
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn read_some<R: tokio::io::AsyncRead + Unpin>(r: &mut Option<R>, buf: &mut [u8]) -> usize {
    match r {
        Some(r) => r.read(buf).await.unwrap_or(0),
        None => 0,
    }
}

/// How much of the end of stderr is kept to find its last line.
const ERR_TAIL: usize = 4096;
/// The longest last line of stderr quoted in a failure's error.
const ERR_LINE: usize = 200;

/// The last non-blank line of `tail`, at most [`ERR_LINE`] characters.
fn last_line(tail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(tail);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(match line.char_indices().nth(ERR_LINE) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    })
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("the command exited with code {code}"),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string());
            format!("the command was killed by signal {name}")
        }
        _ => format!("the command ended abnormally ({s})"),
    }
}

/// Replaces `{args.NAME}` (a top-level key, or a dotted path) with that value, quoted for
/// `sh`. Strings are inserted as they are; other values as JSON. A missing key is an error.
pub fn expand(template: &str, args: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{args.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `{{args.` in the command {template:?}"))?;
        let path = &after[..end];
        let mut v = args;
        for part in path.split('.') {
            v = v.get(part).ok_or_else(|| {
                format!("the command uses {{args.{path}}} but the job's args have no `{path}`")
            })?;
        }
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&shell_quote(&text));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_and_quotes_arguments() {
        let args = json!({"file": "a b's.csv", "n": 3, "deep": {"x": "ok"}});
        assert_eq!(
            expand("import {args.file} --n {args.n} {args.deep.x}", &args).unwrap(),
            r#"import 'a b'\''s.csv' --n 3 ok"#
        );
        assert!(
            expand("x {args.missing}", &args)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            expand("x {args.file", &args)
                .unwrap_err()
                .contains("unclosed")
        );
        assert_eq!(expand("plain", &args).unwrap(), "plain");
    }
}
