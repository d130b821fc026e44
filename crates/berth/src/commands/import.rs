//! `berth import FILE…`: writes a berth.toml from supervisor, circus, Procfile, crontab,
//! nginx and docker-compose files, and lists every line it did not translate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_import::{Format, Input, Options};

use super::Ctx;

/// `berth import` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The files a team runs today: supervisor `.conf` files, a circus `.ini`, a
    /// Procfile, a crontab (`crontab -l > crontab`), nginx server blocks, a
    /// docker-compose file. Each kind is told by its name or contents.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the berth.toml instead of writing it.
    #[arg(long)]
    stdout: bool,
    /// Replace an existing berth.toml.
    #[arg(long)]
    force: bool,
    /// The kind of every FILE, where it cannot be told: supervisor, circus, procfile,
    /// crontab, nginx or compose.
    #[arg(long, value_name = "KIND", value_parser = parse_format)]
    format: Option<Format>,
    /// `[app] name` (default: the name of the directory the berth.toml goes in).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

/// Translates the files, writes (or prints) the result and lists what was skipped.
pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let path = match &ctx.config_path {
        Some(p) => p.clone(),
        None => std::env::current_dir()?.join(berth_config::FILE_NAME),
    };
    if !args.stdout && path.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it, or --stdout to print the import",
            path.display()
        );
    }
    let mut inputs = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        inputs.push(Input {
            file: file.display().to_string(),
            text,
            format: args.format,
        });
    }
    let app = match &args.name {
        Some(n) => n.clone(),
        None => app_name(&path),
    };
    let options = Options {
        app,
        time_zone: system_time_zone(),
    };
    let import = berth_import::import(&inputs, &options)?;
    let toml = import.to_toml();
    // The import must be a config berth reads; if not, that is berth import's bug, and
    // nothing is written.
    let config = match berth_config::parse(&toml, &path) {
        Ok(config) => config,
        Err(e) => bail!(
            "berth import wrote a config that berth does not read (please report this):\n{e}\n\
             --- the import ---\n{toml}"
        ),
    };
    if args.stdout {
        print!("{toml}");
    } else {
        std::fs::write(&path, &toml).with_context(|| format!("cannot write {}", path.display()))?;
    }
    report(&import, &path, args.stdout);
    // The directories and certificates it names come from the imported files: on
    // another machine than the one they describe, `berth check` cannot find them yet.
    if let Err(e) = super::check::files(&config) {
        eprintln!(
            "note: berth check on this machine says: {e:#}\n      (the paths come from the \
             imported files: run berth where they exist, or change them)"
        );
    } else if !args.stdout {
        eprintln!("check it with `berth check`, then run `berth up`");
    }
    Ok(ExitCode::SUCCESS)
}

/// What was written and what was not translated, on stderr (stdout may hold the TOML).
fn report(import: &berth_import::Import, path: &Path, printed: bool) {
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut parts = vec![
        count(import.services.len(), "service"),
        count(import.schedules.len(), "schedule"),
    ];
    if let Some(gw) = &import.gateway {
        parts.push(format!(
            "a gateway with {}",
            count(gw.routes.len(), "route")
        ));
    }
    let target = if printed {
        "printed".to_string()
    } else {
        format!("wrote {}", path.display())
    };
    eprintln!("{target}: {}", parts.join(", "));
    if import.skipped.is_empty() {
        eprintln!("every line was translated");
        return;
    }
    eprintln!(
        "{} not translated (also listed at the end of the file):",
        count(import.skipped.len(), "line")
    );
    for s in &import.skipped {
        eprintln!("  {}: {}", s.at, s.text);
        eprintln!("      {}", s.why);
    }
}

/// The directory the config goes in, as an app name.
fn app_name(path: &Path) -> String {
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .and_then(|p| p.canonicalize().ok());
    let name = dir
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "app".into());
    berth_import::name(&name)
}

/// The machine's time zone, in which cron read its times: `TZ`, else /etc/timezone,
/// else the zone /etc/localtime links to.
fn system_time_zone() -> Option<String> {
    if let Ok(tz) = std::env::var("TZ") {
        let tz = tz.trim_start_matches(':').trim().to_string();
        if !tz.is_empty() && !tz.starts_with('/') {
            return Some(tz);
        }
    }
    if let Ok(text) = std::fs::read_to_string("/etc/timezone") {
        let tz = text.trim();
        if !tz.is_empty() {
            return Some(tz.to_string());
        }
    }
    let link = std::fs::read_link("/etc/localtime").ok()?;
    let link = link.to_string_lossy();
    link.split_once("zoneinfo/")
        .map(|(_, zone)| zone.to_string())
}
