//! Which kind of file an input is: from its name where that is telling (`Procfile`,
//! `crontab`, `docker-compose.yml`, `nginx.conf`), else from its contents.

use std::fmt;
use std::str::FromStr;

use crate::{crontab, procfile};

/// The kinds of files `berth import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// supervisor's INI: `[program:NAME]` sections.
    Supervisor,
    /// circus's INI: `[watcher:NAME]` sections.
    Circus,
    /// A Procfile: `NAME: command` lines.
    Procfile,
    /// A user's crontab: five time fields and a command per line.
    Crontab,
    /// nginx: `server { … }` blocks.
    Nginx,
    /// docker-compose: `services:` with a `command`.
    Compose,
}

impl Format {
    /// Every kind, in the order `--format` lists them.
    pub const ALL: [Format; 6] = [
        Format::Supervisor,
        Format::Circus,
        Format::Procfile,
        Format::Crontab,
        Format::Nginx,
        Format::Compose,
    ];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Supervisor => "supervisor",
            Format::Circus => "circus",
            Format::Procfile => "procfile",
            Format::Crontab => "crontab",
            Format::Nginx => "nginx",
            Format::Compose => "compose",
        }
    }

    /// The kind of `file`, from its name or its text; None if neither tells.
    pub fn detect(file: &str, text: &str) -> Option<Format> {
        let base = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
        if base.starts_with("procfile") {
            return Some(Format::Procfile);
        }
        if base.contains("compose") && (base.ends_with(".yml") || base.ends_with(".yaml")) {
            return Some(Format::Compose);
        }
        if base.starts_with("crontab") || base.ends_with(".cron") {
            return Some(Format::Crontab);
        }
        let lines = || {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        };
        if lines().any(|l| l.starts_with("[watcher:")) {
            return Some(Format::Circus);
        }
        if lines().any(|l| l.starts_with("[program:") || l == "[supervisord]") {
            return Some(Format::Supervisor);
        }
        if lines().any(|l| {
            l.split_whitespace().next() == Some("server")
                && l.trim_start_matches("server").trim_start().starts_with('{')
                || l == "server"
                || l.starts_with("http {")
        }) || base.ends_with("nginx.conf")
        {
            return Some(Format::Nginx);
        }
        if lines().any(|l| l == "services:") {
            return Some(Format::Compose);
        }
        let mut any = false;
        let all_crontab = lines().all(|l| {
            any = true;
            crontab::looks_like_entry(l) || crontab::assignment(l).is_some()
        });
        if any && all_crontab && lines().any(crontab::looks_like_entry) {
            return Some(Format::Crontab);
        }
        let all_procfile = lines().all(|l| procfile::entry(l).is_some());
        if any && all_procfile {
            return Some(Format::Procfile);
        }
        None
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown format `{s}`; expected one of: {}",
                    Format::ALL.map(Format::name).join(", ")
                )
            })
    }
}
