//! `berth logs NAME [-f] [--since D] [--instance N] [--lines N]`: a service's output,
//! read from the log files in the data dir (so it works while berth is stopped, too).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::Ctx;
use crate::exit::UsageError;

/// `berth logs` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service.
    name: String,
    /// Keep printing new lines as they are written.
    #[arg(short, long)]
    follow: bool,
    /// Only lines from this long ago on, e.g. 10m, 2h.
    #[arg(long)]
    since: Option<String>,
    /// Only this instance (default: all).
    #[arg(long)]
    instance: Option<u32>,
    /// How many of the last lines to print first (default 100; 0 for all).
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: usize,
}

/// Prints the logs.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    let Some(service) = config.services.get(&args.name) else {
        let known: Vec<&str> = config.services.keys().map(String::as_str).collect();
        bail!(UsageError(format!(
            "no service `{}` in {}; the services are: {}",
            args.name,
            config.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if let Some(i) = args.instance
        && i >= service.instances
    {
        bail!(UsageError(format!(
            "service `{}` has {} instance(s), numbered from 0; there is no instance {i}",
            args.name, service.instances
        )));
    }
    let since = args
        .since
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s).map_err(|e| {
                UsageError(format!(
                    "--since {s:?}: {e}; expected a duration such as 10m or 2h"
                ))
            })
        })
        .transpose()?
        .map(|d| SystemTime::now() - d);
    let dir = berth_server::services::log_dir(&config);
    let instances: Vec<u32> = match args.instance {
        Some(i) => vec![i],
        None => (0..service.instances).collect(),
    };
    let many = instances.len() > 1;
    let mut files: Vec<(u32, PathBuf, u64)> = Vec::new();
    let mut lines: Vec<(String, u32, String)> = Vec::new();
    for i in &instances {
        let path = berth_supervise::logs::log_path(&dir, &args.name, *i);
        // Rotated files first (oldest first), then the current one.
        let mut parts: Vec<PathBuf> = (1..=service.log_keep)
            .rev()
            .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
            .filter(|p| p.exists())
            .collect();
        parts.push(path.clone());
        for part in &parts {
            if let Ok(text) = std::fs::read_to_string(part) {
                for line in text.lines() {
                    lines.push((stamp(line).to_string(), *i, line.to_string()));
                }
            }
        }
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        files.push((*i, path, len));
    }
    // Interleave instances by time (the lines start with an RFC 3339 stamp).
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(since) = since {
        lines.retain(|(t, _, _)| humantime::parse_rfc3339_weak(t).is_ok_and(|t| t >= since));
    }
    let skip = if args.lines == 0 {
        0
    } else {
        lines.len().saturating_sub(args.lines)
    };
    for (_, i, line) in lines.into_iter().skip(skip) {
        print_line(many, i, &line);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow(many, files).await
}

fn stamp(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

fn print_line(many: bool, instance: u32, line: &str) {
    if many {
        outln!("[{instance}] {line}");
    } else {
        outln!("{line}");
    }
}

/// Prints what is appended to each file, reopening a file that was rotated.
async fn follow(many: bool, mut files: Vec<(u32, PathBuf, u64)>) -> anyhow::Result<ExitCode> {
    loop {
        for (i, path, offset) in files.iter_mut() {
            let len = std::fs::metadata(&*path).map(|m| m.len()).unwrap_or(0);
            if len < *offset {
                // Rotated: the current file starts afresh.
                *offset = 0;
            }
            if len > *offset {
                read_from(path, offset, |line| print_line(many, *i, line))?;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn read_from(path: &Path, offset: &mut u64, mut each: impl FnMut(&str)) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    f.seek(SeekFrom::Start(*offset))?;
    let mut reader = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            // A partial last line waits for the rest.
            break;
        }
        *offset += n as u64;
        each(line.trim_end_matches('\n'));
    }
    Ok(())
}
