//! `berth import`: a `berth.toml` from what a team already runs.
//!
//! Reads supervisor program sections, circus watchers, a Procfile, a crontab, nginx
//! server blocks and docker-compose services that run a command, and writes the
//! `[service.NAME]`, `[schedule.NAME]` and `[gateway]` tables that do the same. Every
//! line it does not carry over is listed with its file and line and the reason; nothing
//! is dropped silently. Settings that berth does by itself (stopping the whole process
//! group, passing `Host` and `X-Forwarded-For`) become comments on the table that
//! replaces them.
//!
//! # Layout
//! - `lib.rs`: the model of what was read ([`Import`]) and the order files are read in:
//!   services first, then schedules, then nginx, which links its `proxy_pass` targets to
//!   the services that listen there;
//! - `format.rs`: which kind of file an input is;
//! - `ini.rs`: the INI reader of supervisor and circus files, with line numbers;
//! - `supervisor.rs`, `circus.rs`, `procfile.rs`, `crontab.rs`, `nginx.rs`,
//!   `compose.rs`: one reader per kind of file;
//! - `shell.rs`: what a command listens on (`-b HOST:PORT`, `unix:PATH`), and quoting;
//! - `render.rs`: the TOML text, with comments saying where each table came from.

mod circus;
mod compose;
mod crontab;
mod format;
mod ini;
mod nginx;
mod procfile;
mod render;
mod shell;
mod supervisor;

use std::fmt;

pub use format::Format;

/// One file to import.
#[derive(Clone, Debug)]
pub struct Input {
    /// The file's name as the user gave it: shown in comments and in what is skipped.
    pub file: String,
    /// Its text.
    pub text: String,
    /// Its kind, if the user named it; otherwise it is detected.
    pub format: Option<Format>,
}

/// Choices that are not in the files.
#[derive(Clone, Debug)]
pub struct Options {
    /// `[app] name`.
    pub app: String,
    /// The machine's time zone (an IANA name): cron read its times in it, so schedules
    /// get it as their `timezone`. None or UTC: berth's default (UTC) is the same.
    pub time_zone: Option<String>,
}

/// Why the files could not be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The kind of a file could not be told from its name or contents.
    #[error(
        "{file}: cannot tell what kind of file this is; expected a supervisor file \
         ([program:NAME] sections), a circus file ([watcher:NAME]), a Procfile (NAME: \
         command lines), a crontab (five time fields and a command), an nginx server block \
         (server {{ … }}) or a docker-compose file (services:); name it with --format"
    )]
    Unknown {
        /// The file.
        file: String,
    },
    /// A file that does not read as its kind (unbalanced braces, YAML that does not parse).
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// Its line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Where something was read: a file and a line (from 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file as the user named it.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
}

impl Origin {
    fn new(file: &str, line: usize) -> Origin {
        Origin {
            file: file.to_string(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A line that was not translated, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Where it is.
    pub at: Origin,
    /// The line as written (trimmed).
    pub text: String,
    /// Why berth has no equivalent, or what to do instead.
    pub why: String,
}

/// A `[service.NAME]` table.
#[derive(Clone, Debug, Default)]
pub struct Service {
    /// The table's name.
    pub name: String,
    /// `command`.
    pub command: String,
    /// `cwd`.
    pub cwd: Option<String>,
    /// `env`, in the order read.
    pub env: Vec<(String, String)>,
    /// Variables whose values read other variables, each as the text between double
    /// quotes of a shell `export` (literal `$`, `"`, backslashes and backquotes escaped).
    pub exports: Vec<(String, String)>,
    /// `env_file`.
    pub env_file: Option<String>,
    /// `instances` (1 is not written).
    pub instances: u32,
    /// `port`: the first instance's port.
    pub port: Option<u16>,
    /// `ready = { tcp = true }`: the command listens on `{port}`.
    pub ready_tcp: bool,
    /// `user`.
    pub user: Option<String>,
    /// `restart`, if not berth's default (`always`).
    pub restart: Option<&'static str>,
    /// `stop_signal`.
    pub stop_signal: Option<String>,
    /// `stop_grace`, a duration.
    pub stop_grace: Option<String>,
    /// `depends_on`.
    pub depends_on: Vec<String>,
    /// `log_max_size`.
    pub log_max_size: Option<String>,
    /// `log_keep`.
    pub log_keep: Option<u32>,
    /// Comments: what berth does by itself, and what changed.
    pub notes: Vec<String>,
    /// Where the program, watcher or process type was defined.
    pub from: Option<Origin>,
}

impl Service {
    /// A command that binds a TCP port gets berth's `{port}` there, so that the gateway
    /// can route to it and each instance gets its own; it counts as ready once the port
    /// accepts connections.
    fn use_port(&mut self) {
        if let Some(shell::Listen::Tcp { port, at, .. }) = shell::listen(&self.command)
            && port > 0
            && u32::from(port) + self.instances <= 65536
        {
            self.command = shell::splice(&self.command, at, "{port}");
            self.port = Some(port);
            self.ready_tcp = true;
        }
    }
}

impl Service {
    /// Prefixes the command with `export KEY="…";` for each value that reads other
    /// variables: berth passes `env` values as written, the shell expands these.
    fn export_variable_values(&mut self) {
        if self.exports.is_empty() {
            return;
        }
        let mut prefix = String::new();
        for (k, v) in std::mem::take(&mut self.exports) {
            prefix.push_str(&format!("export {k}=\"{v}\"; "));
            self.notes.push(format!(
                "{k} reads other variables, which berth's `env` does not expand: the command \
                 exports it"
            ));
        }
        self.command = format!("{prefix}{}", self.command);
    }
}

/// Whether `key` is a variable name berth's `env` takes.
fn env_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A `[schedule.NAME]` table that runs a command.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The table's name.
    pub name: String,
    /// `cron`.
    pub cron: String,
    /// `command`.
    pub command: String,
    /// `timezone`.
    pub timezone: Option<String>,
    /// Comments.
    pub notes: Vec<String>,
    /// The crontab line.
    pub from: Origin,
}

/// The `[gateway]` table.
#[derive(Clone, Debug, Default)]
pub struct Gateway {
    /// `listen`.
    pub listen: Vec<String>,
    /// `tls`.
    pub tls: Option<Tls>,
    /// `http`: the plain listener that redirects to HTTPS.
    pub http: Option<String>,
    /// `max_body`.
    pub max_body: Option<String>,
    /// `connect_timeout`.
    pub connect_timeout: Option<String>,
    /// The routes, in the order read.
    pub routes: Vec<Route>,
    /// Comments.
    pub notes: Vec<String>,
    /// The first server block.
    pub from: Option<Origin>,
}

/// The gateway's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `{ cert = "…", key = "…" }`.
    Files {
        /// The certificate chain (PEM).
        cert: String,
        /// Its private key (PEM).
        key: String,
    },
    /// `"self-signed"`: nginx listened with `ssl` but named no certificate.
    SelfSigned,
}

/// A `[[gateway.route]]`.
#[derive(Clone, Debug)]
pub struct Route {
    /// `host`.
    pub host: Option<String>,
    /// `path`.
    pub path: String,
    /// What it serves.
    pub target: Target,
    /// `strip_prefix`, where it differs from berth's default for the target.
    pub strip_prefix: Option<bool>,
    /// `index` (static).
    pub index: Option<String>,
    /// `spa` (static).
    pub spa: bool,
    /// `status` (redirect).
    pub status: Option<u16>,
    /// `max_body`.
    pub max_body: Option<String>,
    /// `timeout`.
    pub timeout: Option<String>,
    /// Comments.
    pub notes: Vec<String>,
    /// The `location` (or server) it came from.
    pub from: Origin,
}

/// What a route serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `static = DIR`.
    Static(String),
    /// `service = NAME`.
    Service(String),
    /// `proxy = URL`.
    Proxy(String),
    /// `redirect = URL`.
    Redirect(String),
}

/// What the files said, in berth's terms.
#[derive(Clone, Debug)]
pub struct Import {
    /// `[app] name`.
    pub app: String,
    /// The files read, in order.
    pub files: Vec<String>,
    /// `[service.NAME]` tables.
    pub services: Vec<Service>,
    /// `[schedule.NAME]` tables.
    pub schedules: Vec<Schedule>,
    /// `[gateway]`, if an nginx file was read.
    pub gateway: Option<Gateway>,
    /// Every line not translated, in the order read.
    pub skipped: Vec<Skipped>,
}

impl Import {
    /// The `berth.toml` text.
    pub fn to_toml(&self) -> String {
        render::render(self)
    }

    /// Adds a service under a name no other service has (`web`, `web-2`, …).
    fn add_service(&mut self, mut service: Service) {
        service.name = self.unique(&service.name, |i, n| i.services.iter().any(|s| s.name == n));
        self.services.push(service);
    }

    fn add_schedule(&mut self, mut schedule: Schedule) {
        schedule.name = self.unique(&schedule.name, |i, n| {
            i.schedules.iter().any(|s| s.name == n)
        });
        self.schedules.push(schedule);
    }

    fn unique(&self, wanted: &str, taken: impl Fn(&Import, &str) -> bool) -> String {
        let base = name(wanted);
        if !taken(self, &base) {
            return base;
        }
        (2..)
            .map(|i| format!("{base}-{i}"))
            .find(|n| !taken(self, n))
            .expect("some suffix is free")
    }

    fn skip(&mut self, file: &str, line: usize, text: &str, why: impl Into<String>) {
        self.skipped.push(Skipped {
            at: Origin::new(file, line),
            text: text.trim().to_string(),
            why: why.into(),
        });
    }
}

/// Reads the inputs and translates them. Files that make services are read first, in
/// the order given, then crontabs, then nginx files (which link to those services).
pub fn import(inputs: &[Input], options: &Options) -> Result<Import, ImportError> {
    let mut out = Import {
        app: name(&options.app),
        files: inputs.iter().map(|i| i.file.clone()).collect(),
        services: Vec::new(),
        schedules: Vec::new(),
        gateway: None,
        skipped: Vec::new(),
    };
    let mut kinds = Vec::with_capacity(inputs.len());
    for input in inputs {
        let kind = match input.format {
            Some(f) => f,
            None => {
                Format::detect(&input.file, &input.text).ok_or_else(|| ImportError::Unknown {
                    file: input.file.clone(),
                })?
            }
        };
        kinds.push(kind);
    }
    let zone = options
        .time_zone
        .as_deref()
        .filter(|z| !matches!(*z, "UTC" | "Etc/UTC" | "Etc/Universal" | "Universal"))
        .filter(|z| berth_cron::time_zone(z).is_ok());
    for pass in 0..3 {
        for (input, kind) in inputs.iter().zip(&kinds) {
            let order = match kind {
                Format::Crontab => 1,
                Format::Nginx => 2,
                _ => 0,
            };
            if order != pass {
                continue;
            }
            match kind {
                Format::Supervisor => supervisor::read(&mut out, &input.file, &input.text),
                Format::Circus => circus::read(&mut out, &input.file, &input.text),
                Format::Procfile => procfile::read(&mut out, &input.file, &input.text),
                Format::Compose => compose::read(&mut out, &input.file, &input.text)?,
                Format::Crontab => crontab::read(&mut out, &input.file, &input.text, zone),
                Format::Nginx => nginx::read(&mut out, &input.file, &input.text)?,
            }
        }
    }
    // What was skipped, file by file in the order given, line by line.
    let order = |file: &str| inputs.iter().position(|i| i.file == file);
    out.skipped.sort_by_key(|s| (order(&s.at.file), s.at.line));
    for s in &mut out.services {
        s.export_variable_values();
    }
    // A service may wait only on services of this file (compose's `db` was an image).
    let names: Vec<String> = out.services.iter().map(|s| s.name.clone()).collect();
    for s in &mut out.services {
        let (keep, gone): (Vec<String>, Vec<String>) =
            s.depends_on.drain(..).partition(|d| names.contains(d));
        s.depends_on = keep;
        for d in gone {
            s.notes.push(format!(
                "depended on {d}, which is not a service here (see the end)"
            ));
        }
    }
    Ok(out)
}

/// A name berth accepts for a table (ASCII letters, digits, `_`, `-`): other characters
/// become `-`; an empty result is `app`.
pub fn name(wanted: &str) -> String {
    let mut out = String::new();
    for c in wanted.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "app".into() } else { out }
}
