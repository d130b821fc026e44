//! Readiness and liveness checks: one probe of one process, with a verdict that says
//! what failed, for the event and the log.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::process::{child_env, run_as, signal_group};
use crate::spec::with_port;
use crate::{Check, Probe, ServiceSpec, Signal};

/// The most of an HTTP answer read to find its status line.
const STATUS_LINE_LIMIT: usize = 1024;

/// Runs `probe` once against the process of `spec`'s instance `instance` on `port`.
/// `Err` says why it failed ("connection refused", "answered 503", "timed out after 2s").
pub(crate) async fn run(
    probe: &Probe,
    spec: &ServiceSpec,
    instance: u32,
    port: Option<u16>,
) -> Result<(), String> {
    // A command check keeps its own timeout, which kills the check's whole process
    // group; a timeout around it would drop it first and leave that group running.
    let answered = match &probe.check {
        Check::Command { command } => {
            return shell(
                &with_port(command, port),
                spec,
                instance,
                port,
                probe.timeout,
            )
            .await;
        }
        Check::Http { path } => {
            tokio::time::timeout(probe.timeout, http(port_of(port)?, path)).await
        }
        Check::Tcp => tokio::time::timeout(probe.timeout, tcp(port_of(port)?)).await,
    };
    answered.unwrap_or_else(|_| {
        Err(format!(
            "no answer within {}",
            humantime::format_duration(probe.timeout)
        ))
    })
}

/// A TCP connection to `127.0.0.1:port` is accepted.
async fn tcp(port: u16) -> Result<(), String> {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .map(drop)
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))
}

fn port_of(port: Option<u16>) -> Result<u16, String> {
    port.ok_or_else(|| "the service has no port to check".to_string())
}

/// `GET path` over a fresh connection; 2xx and 3xx pass.
async fn http(port: u16, path: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: berth-probe\r\n\
         Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send GET {path}: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < STATUS_LINE_LIMIT {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read the answer to GET {path}: {e}"))?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&answer);
    let line = line.lines().next().unwrap_or("");
    let status = line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("GET {path} answered {code}")),
        None if line.is_empty() => Err(format!(
            "GET {path}: the connection closed without an answer"
        )),
        None => Err(format!("GET {path}: not an HTTP answer: {line:.80}")),
    }
}

/// `sh -c command` in a process group of its own, killed whole on timeout.
async fn shell(
    command: &str,
    spec: &ServiceSpec,
    instance: u32,
    port: Option<u16>,
    timeout: Duration,
) -> Result<(), String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    crate::process::default_signals(&mut cmd);
    child_env(&mut cmd, spec, instance, port);
    if let Some(user) = &spec.user {
        run_as(&mut cmd, user);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `sh -c {command}`: {e}"))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let waited = tokio::time::timeout(timeout, async {
        let mut text = String::new();
        if let Some(err) = stderr.as_mut() {
            let _ = err.take(4096).read_to_string(&mut text).await;
        }
        (child.wait().await, text)
    })
    .await;
    if let Some(pid) = pid {
        // Whatever the check left behind in its group goes with it.
        signal_group(pid, Signal::SIGKILL);
    }
    match waited {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), text)) => {
            let text = text.trim();
            Err(if text.is_empty() {
                format!("`{command}` {status}")
            } else {
                format!("`{command}` {status}: {text:.200}")
            })
        }
        Ok((Err(e), _)) => Err(format!("waiting for `{command}`: {e}")),
        Err(_) => Err(format!(
            "`{command}` did not finish within {}",
            humantime::format_duration(timeout)
        )),
    }
}
