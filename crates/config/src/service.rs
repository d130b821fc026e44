//! The `[service.NAME]` tables: each checked on its own, then `depends_on`
//! checked across all of them (unknown names, cycles).
//!
//! Like the rest of validation, every problem is reported and the check
//! carries on with a default.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeValue;

use crate::diagnostic::Diagnostics;
use crate::queue::{backoff_factor, initial_and_max};
use crate::section::{Invalid, Section, unknown_name};
use crate::validate::valid_env_name;

/// The signals a service may be stopped with, without their `SIG` prefix.
const STOP_SIGNALS: &[&str] = &["TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "KILL"];

/// An example command, for messages.
const COMMAND_EXAMPLE: &str = "\"gunicorn app:app -b 127.0.0.1:{port}\"";

/// The highest port there is.
const MAX_PORT: u32 = u16::MAX as u32;

/// What one service's `depends_on` says, with the spans to report at.
struct Dependencies {
    /// The `depends_on` key.
    key: Range<usize>,
    /// Names of existing services, in the order written.
    targets: Vec<String>,
}

/// Builds every service under the `[service]` table. The result is only
/// meaningful when `d` stayed empty.
pub(crate) fn services(
    section: &Section<'_, '_>,
    path: &Path,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, ServiceConfig> {
    let config_dir = path.parent().unwrap_or(Path::new(""));
    // Every name written, even one with a bad table: a dependency on it is not
    // "unknown", only the table is wrong (and reported as such).
    let names: Vec<&str> = section
        .entries()
        .map(|(key, _)| key.get_ref().as_ref())
        .collect();
    let mut services = BTreeMap::new();
    let mut graph = BTreeMap::new();
    for (name, table) in section.named_tables("service", "web", d) {
        let (service, dependencies) = service(name, &table, config_dir, &names, d);
        services.insert(name.to_owned(), service);
        if let Some(dependencies) = dependencies {
            graph.insert(name.to_owned(), dependencies);
        }
    }
    report_cycles(&graph, d);
    services
}

fn service(
    name: &str,
    section: &Section<'_, '_>,
    config_dir: &Path,
    names: &[&str],
    d: &mut Diagnostics<'_>,
) -> (ServiceConfig, Option<Dependencies>) {
    let mut service = ServiceConfig::new(name, "");

    if section.get("command").is_none() {
        d.error(
            section.span(),
            format!(
                "missing `command` {}: expected a line such as `command = {COMMAND_EXAMPLE}`",
                section.place()
            ),
        );
    }
    if let Some(command) = section.string("command", "command", d, |command| {
        if command.trim().is_empty() {
            Err(Invalid::Expected(format!(
                "expected a shell command such as {COMMAND_EXAMPLE}"
            )))
        } else if command.contains('\0') {
            Err(Invalid::Expected(
                "expected a command without NUL characters".into(),
            ))
        } else {
            Ok(command.to_owned())
        }
    }) {
        service.command = command;
    }

    service.cwd = section.path("cwd", "\"backend\"", config_dir, d);
    service.env = env(section, d);
    service.env_file = section.path("env_file", "\".env\"", config_dir, d);

    // The ranges fit in a u32 (or u16 for `port`), so the conversions cannot fail.
    if let Some(n) = section.integer("instances", 1..=64, d) {
        service.instances = u32::try_from(n).unwrap_or(service.instances);
    }
    service.ports = ports(section, service.instances, d);
    if service.command.contains("{port}")
        && service.ports.is_none()
        && section.get("port").is_none()
        && section.get("ports").is_none()
        && let Some(command) = section.get("command")
    {
        d.error(
            command.span(),
            format!(
                "`command` uses {{port}} but no `port` is set {}; add e.g. port = 8000 \
                 (instance i gets port + i)",
                section.place()
            ),
        );
    }
    if let Some(user) = section.string("user", "user name", d, |user| {
        let valid = !user.is_empty()
            && user.len() <= 32
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if valid {
            Ok(user.to_owned())
        } else {
            Err(Invalid::Expected(
                "expected a user name such as \"www-data\" (letters, digits, `_`, `-`, `.`)".into(),
            ))
        }
    }) {
        service.user = Some(user);
    }
    let has_port = service.ports.is_some();
    let ready_form = "a table such as ready = { http = \"/healthz\" }, { tcp = true } or \
                      { command = \"pg_isready\" }";
    if let Some(table) = section.table("ready", ready_form, d) {
        service.ready = probe(&table, Duration::from_secs(1), has_port, d);
        table.finish(d);
    }
    if let Some(timeout) = section.duration("start_timeout", false, d) {
        service.start_timeout = timeout;
    }
    let live_form = "a table such as live = { http = \"/healthz\", interval = \"10s\", \
                     failures = 3 }";
    if let Some(table) = section.table("live", live_form, d) {
        let probe = probe(&table, Duration::from_secs(10), has_port, d);
        let failures = table
            .integer("failures", 1..=100, d)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(3);
        table.finish(d);
        service.live = probe.map(|probe| LiveConfig { probe, failures });
    }

    if let Some(restart) = section.string("restart", "value", d, |restart| match restart {
        "always" => Ok(Restart::Always),
        "on-failure" => Ok(Restart::OnFailure),
        "never" => Ok(Restart::Never),
        _ => Err(Invalid::Expected(
            "expected \"always\", \"on-failure\" or \"never\"".into(),
        )),
    }) {
        service.restart = restart;
    }
    if let Some(signal) = section.string("stop_signal", "signal", d, stop_signal) {
        service.stop_signal = signal;
    }
    if let Some(grace) = section.duration("stop_grace", true, d) {
        service.stop_grace = grace;
    }

    let backoff_form = "a table such as backoff = { initial = \"100ms\", max = \"30s\" }";
    if let Some(table) = section.table("backoff", backoff_form, d) {
        service.backoff = backoff(&table, d);
    }
    let crash_loop_form = "a table such as crash_loop = { max_exits = 5, window = \"60s\" }";
    if let Some(table) = section.table("crash_loop", crash_loop_form, d) {
        service.crash_loop = crash_loop(&table, d);
    }

    let dependencies = depends_on(name, section, names, d);
    if let Some(dependencies) = &dependencies {
        service.depends_on = dependencies.targets.clone();
    }
    if let Some(size) = section.size("log_max_size", d) {
        service.log_max_size = size;
    }
    if let Some(n) = section.integer("log_keep", 0..=100, d) {
        service.log_keep = u32::try_from(n).unwrap_or(service.log_keep);
    }

    section.finish(d);
    (service, dependencies)
}

/// `port = 8000` (one port per instance) or `ports = "8000-8009"` (a range with room
/// to spare), not both.
fn ports(section: &Section<'_, '_>, instances: u32, d: &mut Diagnostics<'_>) -> Option<PortRange> {
    if let (Some(_), Some(value)) = (section.get("port"), section.get("ports")) {
        d.error(
            value.span(),
            format!(
                "both `port` and `ports` are set {}: expected one of them, `port = 8000` for \
                 one port per instance or `ports = \"8000-8009\"` for a range with spare ports",
                section.place()
            ),
        );
        return None;
    }
    if let Some(first) = section
        .integer("port", 1..=i64::from(MAX_PORT), d)
        .and_then(|n| u16::try_from(n).ok())
    {
        let last = u32::from(first) + instances - 1;
        if last > MAX_PORT {
            if let Some(value) = section.get("port") {
                d.error(
                    value.span(),
                    format!(
                        "ports {first} to {last} for the {instances} instances {} go past \
                         {MAX_PORT}: expected `port` to be at most {}",
                        section.place(),
                        MAX_PORT + 1 - instances,
                    ),
                );
            }
            return None;
        }
        return Some(PortRange {
            first,
            last: last as u16,
        });
    }
    section.string("ports", "port range", d, |text| {
        let expected = || {
            Invalid::Expected(format!(
                "expected a range \"FIRST-LAST\" of ports from 1 to {MAX_PORT} with room for \
                 the {instances} instance(s), such as \"8000-8009\""
            ))
        };
        let (first, last) = text.split_once('-').ok_or_else(expected)?;
        let first: u16 = first.trim().parse().map_err(|_| expected())?;
        let last: u16 = last.trim().parse().map_err(|_| expected())?;
        if first == 0 || u32::from(last) + 1 < u32::from(first) + instances {
            return Err(expected());
        }
        Ok(PortRange { first, last })
    })
}

/// A readiness or liveness check: exactly one of `http`, `tcp` and `command`, with an
/// optional `interval` (default `interval`) and `timeout` (default 2s).
fn probe(
    section: &Section<'_, '_>,
    interval: Duration,
    has_port: bool,
    d: &mut Diagnostics<'_>,
) -> Option<ProbeConfig> {
    let kinds: Vec<&str> = ["http", "tcp", "command"]
        .into_iter()
        .filter(|k| section.get(k).is_some())
        .collect();
    let interval = section.duration("interval", false, d).unwrap_or(interval);
    let timeout = section
        .duration("timeout", false, d)
        .unwrap_or(Duration::from_secs(2));
    if kinds.len() != 1 {
        d.error(
            section.span(),
            format!(
                "{} {}: expected exactly one of `http = \"/healthz\"`, `tcp = true` or \
                 `command = \"…\"`",
                if kinds.is_empty() {
                    "no check given".to_owned()
                } else {
                    format!("{} checks given ({})", kinds.len(), kinds.join(", "))
                },
                section.place()
            ),
        );
        return None;
    }
    let check = match kinds[0] {
        "http" => CheckConfig::Http(section.string("http", "path", d, |path| {
            if path.starts_with('/') && !path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Ok(path.to_owned())
            } else {
                Err(Invalid::Expected(
                    "expected a URL path starting with `/`, without spaces, such as \"/healthz\""
                        .into(),
                ))
            }
        })?),
        "tcp" => {
            let value = section.get("tcp")?;
            if !matches!(value.get_ref(), DeValue::Boolean(true)) {
                section.wrong_type("tcp", value, "`true`", d);
                return None;
            }
            CheckConfig::Tcp
        }
        _ => CheckConfig::Command(section.string("command", "command", d, |command| {
            if command.trim().is_empty() || command.contains('\0') {
                Err(Invalid::Expected(
                    "expected a shell command such as \"pg_isready -p {port}\"".into(),
                ))
            } else {
                Ok(command.to_owned())
            }
        })?),
    };
    if !has_port && matches!(check, CheckConfig::Http(_) | CheckConfig::Tcp) {
        d.error(
            section.span(),
            format!(
                "the `{}` check {} connects to the instance's port, but the service has none: \
                 set `port` (or `ports`), or check with `command = \"…\"`",
                kinds[0],
                section.place()
            ),
        );
        return None;
    }
    Some(ProbeConfig {
        check,
        interval,
        timeout,
    })
}

/// `env = { KEY = "value" }`. Values are never repeated in messages: they may
/// be secrets.
fn env(service: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let form = "a table such as env = { DJANGO_SETTINGS_MODULE = \"app.settings\" }";
    let Some(section) = service.table("env", form, d) else {
        return env;
    };
    for (key, value) in section.entries() {
        let name = key.get_ref().as_ref();
        if !valid_env_name(name) {
            d.error(
                key.span(),
                format!(
                    "invalid environment variable name `{name}` {}: expected ASCII letters, \
                     digits and `_`, not starting with a digit, such as DJANGO_SETTINGS_MODULE",
                    section.place()
                ),
            );
            continue;
        }
        match value.get_ref() {
            DeValue::String(text) if text.contains('\0') => d.error(
                value.span(),
                format!(
                    "invalid value for `{name}` {}: it contains a NUL character; expected a \
                     string without one",
                    section.place()
                ),
            ),
            DeValue::String(text) => {
                env.insert(name.to_owned(), text.to_string());
            }
            _ => section.wrong_type(name, value, "a string (quote numbers: \"1\")", d),
        }
    }
    env
}

/// `"TERM"`, `"sigterm"`, … → `"SIGTERM"`.
fn stop_signal(text: &str) -> Result<String, Invalid> {
    let upper = text.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if STOP_SIGNALS.contains(&bare) {
        Ok(format!("SIG{bare}"))
    } else {
        Err(Invalid::Expected(
            "expected one of \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\", \"SIGUSR1\", \
             \"SIGUSR2\" or \"SIGKILL\" (the SIG prefix is optional)"
                .into(),
        ))
    }
}

fn backoff(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> ServiceBackoff {
    let mut backoff = ServiceBackoff::default();
    (backoff.initial, backoff.max) = initial_and_max(section, backoff.initial, backoff.max, d);
    if let Some(factor) = backoff_factor(section, d) {
        backoff.factor = factor;
    }
    section.finish(d);
    backoff
}

fn crash_loop(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> CrashLoopConfig {
    let mut crash_loop = CrashLoopConfig::default();
    if let Some(n) = section.integer("max_exits", 1..=1_000, d) {
        crash_loop.max_exits = u32::try_from(n).unwrap_or(crash_loop.max_exits);
    }
    if let Some(window) = section.duration("window", false, d) {
        crash_loop.window = window;
    }
    section.finish(d);
    crash_loop
}

/// `depends_on = ["db", …]`: names of other services of this file, each once.
/// `None` when absent or not an array.
fn depends_on(
    name: &str,
    section: &Section<'_, '_>,
    names: &[&str],
    d: &mut Diagnostics<'_>,
) -> Option<Dependencies> {
    const EXPECTED: &str = "an array of service names such as [\"db\"]";
    let value = section.get("depends_on")?;
    let DeValue::Array(items) = value.get_ref() else {
        section.wrong_type("depends_on", value, EXPECTED, d);
        return None;
    };
    let mut dependencies = Dependencies {
        key: section
            .key_span("depends_on")
            .unwrap_or_else(|| value.span()),
        targets: Vec::new(),
    };
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != name).collect();
    for item in items.iter() {
        let DeValue::String(target) = item.get_ref() else {
            section.wrong_type("depends_on", item, "a service name such as \"db\"", d);
            continue;
        };
        let target: &str = target;
        if !names.contains(&target) {
            let message = unknown_name(
                format!(
                    "unknown service `{target}` in `depends_on` {}",
                    section.place()
                ),
                target,
                &others,
                "expected the name of another [service.NAME] in this file",
            );
            d.error(item.span(), message);
        } else if dependencies.targets.iter().any(|t| t == target) {
            d.error(
                item.span(),
                format!(
                    "`{target}` appears twice in `depends_on` {}: expected each service once",
                    section.place()
                ),
            );
        } else {
            dependencies.targets.push(target.to_owned());
        }
    }
    Some(dependencies)
}

/// Reports each dependency cycle once, at the `depends_on` key of the service
/// with the smallest name in it.
fn report_cycles(graph: &BTreeMap<String, Dependencies>, d: &mut Diagnostics<'_>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        /// On the current path of the search.
        Active,
        /// Fully explored.
        Done,
    }

    fn visit<'g>(
        node: &'g str,
        graph: &'g BTreeMap<String, Dependencies>,
        marks: &mut BTreeMap<&'g str, Mark>,
        path: &mut Vec<&'g str>,
        d: &mut Diagnostics<'_>,
    ) {
        match marks.get(node) {
            Some(Mark::Done) => return,
            Some(Mark::Active) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                report_cycle(&path[start..], graph, d);
                return;
            }
            None => {}
        }
        marks.insert(node, Mark::Active);
        path.push(node);
        if let Some(dependencies) = graph.get(node) {
            for target in &dependencies.targets {
                visit(target, graph, marks, path, d);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
    }

    let mut marks = BTreeMap::new();
    let mut path = Vec::new();
    for node in graph.keys() {
        visit(node, graph, &mut marks, &mut path, d);
    }
}

/// `cycle` lists each service once, each depending on the next and the last on
/// the first.
fn report_cycle(cycle: &[&str], graph: &BTreeMap<String, Dependencies>, d: &mut Diagnostics<'_>) {
    let Some(first) = (0..cycle.len()).min_by_key(|&i| cycle[i]) else {
        return;
    };
    let mut names: Vec<&str> = cycle[first..]
        .iter()
        .chain(&cycle[..first])
        .copied()
        .collect();
    let head = names[0];
    names.push(head);
    let Some(dependencies) = graph.get(head) else {
        return;
    };
    d.error(
        dependencies.key.clone(),
        format!(
            "dependency cycle in `depends_on` in [service.{head}]: {}; expected services that \
             do not depend on each other in a loop (remove one of these dependencies)",
            names.join(" → ")
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::stop_signal;
    use crate::section::parse_size;

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("1", 1),
            ("512B", 512),
            ("10MiB", 10 << 20),
            ("10 MiB", 10 << 20),
            ("10mib", 10 << 20),
            ("500KB", 500_000),
            ("2KiB", 2048),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
            ("1GiB", 1 << 30),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for bad in [
            "",
            "0",
            "0MiB",
            "MiB",
            "10 parsecs",
            "1.5MiB",
            "-1",
            " 1MiB",
            "10MiBs",
            "99999999999999GiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn signals() {
        for (text, normal) in [
            ("TERM", "SIGTERM"),
            ("SIGTERM", "SIGTERM"),
            ("sigint", "SIGINT"),
            ("Quit", "SIGQUIT"),
            ("hup", "SIGHUP"),
            ("USR1", "SIGUSR1"),
            ("SIGUSR2", "SIGUSR2"),
            ("kill", "SIGKILL"),
        ] {
            assert_eq!(stop_signal(text).ok().as_deref(), Some(normal), "{text}");
        }
        for bad in ["", "SIG", "STOP", "SIGSEGV", "15", " TERM", "SIGSIGTERM"] {
            assert!(stop_signal(bad).is_err(), "{bad}");
        }
    }
}

/// One `[service.NAME]` table: a long-running command of the application, run as
/// one or more supervised processes.
///
/// Validation guarantees: `command` is not blank; `port` is set whenever `command`
/// contains `{port}`, and `port + instances - 1` fits in a `u16`; every name in
/// `depends_on` is another service of the same config, and the dependencies form
/// no cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The table key: lowercase letters, digits, `_` and `-`, at most 64 characters.
    pub name: String,
    /// `command` (required, not blank): run with `sh -c`. `{port}` in it stands for
    /// the instance's port.
    pub command: String,
    /// `cwd`: the working directory, resolved against the config file's directory.
    /// `None`: berth's own.
    pub cwd: Option<PathBuf>,
    /// `env = { KEY = "value" }`: added to the environment of every instance. Keys
    /// are environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
    pub env: BTreeMap<String, String>,
    /// `env_file`: a file of `KEY=value` lines, resolved against the config file's
    /// directory. The config crate never reads it (it may hold secrets); whoever
    /// starts the service does.
    pub env_file: Option<PathBuf>,
    /// `instances` (default 1, 1..=64): how many processes run the command.
    pub instances: u32,
    /// The instances' ports, from `port = 8000` (exactly one port per instance:
    /// instance `i` gets `port + i`) or `ports = "8000-8009"` (instance `i` prefers
    /// `first + i`; the rest are spare, so that a rolling restart can start the new
    /// process beside the old one). Required when `command` contains `{port}`.
    pub ports: Option<PortRange>,
    /// `user`: the user the processes run as; berth must run as root to switch.
    /// `None`: berth's own user.
    pub user: Option<String>,
    /// `ready`: when a started process counts as ready. `None`: once spawned.
    pub ready: Option<ProbeConfig>,
    /// `start_timeout` (default 60s, > 0): how long a started process may take to
    /// become ready before it is killed and counted as a failed start.
    pub start_timeout: Duration,
    /// `live`: a check repeated while an instance runs; `failures` failed checks in a
    /// row restart it.
    pub live: Option<LiveConfig>,
    /// `restart` (default `"always"`): when an exited instance is started again.
    pub restart: Restart,
    /// `stop_signal` (default `"SIGTERM"`): sent to an instance's process group to
    /// stop it, stored in its `SIG…` form: one of `SIGTERM`, `SIGINT`, `SIGQUIT`,
    /// `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGKILL`.
    pub stop_signal: String,
    /// `stop_grace` (default 10s): how long a stopping instance may take before its
    /// process group is killed with SIGKILL.
    pub stop_grace: Duration,
    /// `backoff`: the delay between restarts.
    pub backoff: ServiceBackoff,
    /// `crash_loop`: when restarting gives up.
    pub crash_loop: CrashLoopConfig,
    /// `depends_on` (default none): services started before this one and stopped
    /// after it.
    pub depends_on: Vec<String>,
    /// `log_max_size` (default 10 MiB, > 0): an instance's log file of this many
    /// bytes is rotated.
    pub log_max_size: u64,
    /// `log_keep` (default 5, 0..=100): how many rotated log files are kept.
    pub log_keep: u32,
}

impl ServiceConfig {
    /// A service called `name` that runs `command`, with every other option at its
    /// default.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            cwd: None,
            env: BTreeMap::new(),
            env_file: None,
            instances: 1,
            ports: None,
            user: None,
            ready: None,
            start_timeout: Duration::from_secs(60),
            live: None,
            restart: Restart::default(),
            stop_signal: "SIGTERM".to_owned(),
            stop_grace: Duration::from_secs(10),
            backoff: ServiceBackoff::default(),
            crash_loop: CrashLoopConfig::default(),
            depends_on: Vec::new(),
            log_max_size: 10 * 1024 * 1024,
            log_keep: 5,
        }
    }
}

/// A service's port range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The first port; instance `i` prefers `first + i`.
    pub first: u16,
    /// The last port, at least `first + instances - 1`.
    pub last: u16,
}

/// `ready = { http = "/healthz" }`, `{ tcp = true }` or `{ command = "…" }`, with
/// optional `interval` and `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeConfig {
    /// What is checked.
    pub check: CheckConfig,
    /// Between two checks (default 1s for `ready`, 10s for `live`).
    pub interval: Duration,
    /// How long one check may take (default 2s).
    pub timeout: Duration,
}

/// The kind of a [`ProbeConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckConfig {
    /// `http = "/path"`: `GET /path` on `127.0.0.1:PORT` answers 2xx or 3xx.
    Http(String),
    /// `tcp = true`: `127.0.0.1:PORT` accepts a connection.
    Tcp,
    /// `command = "…"`: the shell command exits 0 (`{port}` is replaced).
    Command(String),
}

/// `live = { …a probe…, failures = 3 }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveConfig {
    /// The check and its timing.
    pub probe: ProbeConfig,
    /// Failed checks in a row that restart the instance (default 3, 1..=100).
    pub failures: u32,
}

/// `restart = "always" | "on-failure" | "never"`: when an exited instance is
/// started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// `"always"` (the default): after every exit, successful or not.
    #[default]
    Always,
    /// `"on-failure"`: after an exit with a non-zero code or by a signal.
    OnFailure,
    /// `"never"`: an exited instance stays down until it is started again.
    Never,
}

/// `backoff = { initial = "100ms", max = "30s", factor = 2.0 }`: exponential delay
/// between restarts of a service's instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceBackoff {
    /// The first delay (default 100ms, > 0).
    pub initial: Duration,
    /// The longest delay (default 30s, >= `initial`).
    pub max: Duration,
    /// Growth per further restart (default 2.0, finite and >= 1.0).
    pub factor: f64,
}

impl Default for ServiceBackoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
        }
    }
}

/// `crash_loop = { max_exits = 5, window = "60s" }`: an instance that exits more
/// than `max_exits` times within `window` is not restarted any more and shows as
/// crash-looping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopConfig {
    /// Exits tolerated within the window (default 5, 1..=1000).
    pub max_exits: u32,
    /// The window (default 60s, > 0).
    pub window: Duration,
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        Self {
            max_exits: 5,
            window: Duration::from_secs(60),
        }
    }
}
