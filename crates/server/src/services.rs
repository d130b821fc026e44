//! `[service.NAME]` → running services: the supervisor's specs, built in dependency
//! order, with each env file read and each port checked free before anything starts.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_config::{CheckConfig, Config, ProbeConfig, Restart, ServiceConfig};
use berth_supervise::{
    Backoff, Check, CrashLoop, Liveness, Ports, Probe, RestartPolicy, RunAs, ServiceSpec, Signal,
};

/// The specs of every configured service, dependencies first, with their env files
/// read. Ports are checked by [`check_ports`]. With a live `release` (berth deploys the
/// application), a service without `cwd` runs in it, and `{release}` in a command, a
/// `cwd` or an environment value is its path.
pub fn service_specs(config: &Config, release: Option<&Path>) -> anyhow::Result<Vec<ServiceSpec>> {
    let rel = |text: &str| match release {
        Some(r) => text.replace("{release}", &r.display().to_string()),
        None => text.to_owned(),
    };
    let log_dir = log_dir(config);
    let mut specs = Vec::new();
    for name in start_order(&config.services) {
        let s = &config.services[&name];
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(file) = &s.env_file {
            env.extend(read_env_file(file, &s.name)?);
        }
        env.extend(s.env.iter().map(|(k, v)| (k.clone(), rel(v))));
        if let Some(r) = release {
            env.push(("BERTH_RELEASE".into(), r.display().to_string()));
        }
        let cwd = match (&s.cwd, release) {
            // `{release}/backend`: the part from the placeholder on (the config joined
            // it to its own directory).
            (Some(c), Some(r)) => Some(
                match c
                    .to_str()
                    .and_then(|c| c.find("{release}").map(|i| &c[i..]))
                {
                    Some(tail) => {
                        PathBuf::from(tail.replacen("{release}", &r.display().to_string(), 1))
                    }
                    None => c.clone(),
                },
            ),
            (Some(c), None) => Some(c.clone()),
            (None, Some(r)) => Some(r.to_path_buf()),
            (None, None) => None,
        };
        specs.push(ServiceSpec {
            name: s.name.clone(),
            command: rel(&s.command),
            cwd,
            env,
            instances: s.instances,
            ports: s.ports.map(|p| Ports {
                first: p.first,
                last: p.last,
            }),
            depends_on: s.depends_on.clone(),
            ready: s.ready.as_ref().map(probe),
            start_timeout: s.start_timeout,
            live: s.live.as_ref().map(|l| Liveness {
                probe: probe(&l.probe),
                failures: l.failures,
            }),
            user: s.user.as_deref().map(|u| run_as(u, &s.name)).transpose()?,
            restart: match s.restart {
                Restart::Always => RestartPolicy::Always,
                Restart::OnFailure => RestartPolicy::OnFailure,
                Restart::Never => RestartPolicy::Never,
            },
            backoff: Backoff {
                initial: s.backoff.initial,
                max: s.backoff.max,
                factor: s.backoff.factor,
                ..Backoff::default()
            },
            crash_loop: CrashLoop {
                max_exits: s.crash_loop.max_exits,
                window: s.crash_loop.window,
            },
            stop_signal: s
                .stop_signal
                .parse::<Signal>()
                .with_context(|| format!("service `{}`: unknown stop_signal", s.name))?,
            stop_grace: s.stop_grace,
            log_dir: log_dir.clone(),
            log_max_bytes: s.log_max_size,
            log_keep: s.log_keep,
        });
    }
    Ok(specs)
}

fn probe(p: &ProbeConfig) -> Probe {
    Probe {
        check: match &p.check {
            CheckConfig::Http(path) => Check::Http { path: path.clone() },
            CheckConfig::Tcp => Check::Tcp,
            CheckConfig::Command(command) => Check::Command {
                command: command.clone(),
            },
        },
        interval: p.interval,
        timeout: p.timeout,
    }
}

/// Looks `user` up; switching to another user needs berth to run as root.
fn run_as(user: &str, service: &str) -> anyhow::Result<RunAs> {
    use nix::unistd::{Uid, User, getgrouplist};
    let found = User::from_name(user)
        .with_context(|| format!("service `{service}`: cannot look up user `{user}`"))?
        .with_context(|| {
            format!("service `{service}`: no user named `{user}` on this machine; expected an existing user such as \"www-data\"")
        })?;
    let me = Uid::current();
    if !me.is_root() && me != found.uid {
        bail!(
            "service `{service}`: running it as `{user}` needs berth to run as root (berth runs as uid {me}); remove `user` or start berth as root"
        );
    }
    let name = std::ffi::CString::new(user).context("user name with a NUL byte")?;
    let groups = getgrouplist(&name, found.gid)
        .with_context(|| format!("service `{service}`: cannot list the groups of `{user}`"))?;
    Ok(RunAs {
        name: user.to_owned(),
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        groups: groups.into_iter().map(|g| g.as_raw()).collect(),
        home: found.dir,
    })
}

/// Services ordered so that each comes after what it depends on (the config refused
/// cycles and unknown names); ties by name.
fn start_order(services: &BTreeMap<String, ServiceConfig>) -> Vec<String> {
    let mut done: Vec<String> = Vec::new();
    let mut placed: HashSet<&str> = HashSet::new();
    while done.len() < services.len() {
        let before = done.len();
        for (name, s) in services {
            if !placed.contains(name.as_str())
                && s.depends_on.iter().all(|d| placed.contains(d.as_str()))
            {
                placed.insert(name.as_str());
                done.push(name.clone());
            }
        }
        if done.len() == before {
            // Unreachable after validation; start the rest rather than hang.
            done.extend(
                services
                    .keys()
                    .filter(|n| !placed.contains(n.as_str()))
                    .cloned(),
            );
        }
    }
    done
}

/// `KEY=VALUE` lines; `#` comments, blank lines and an `export ` prefix are allowed,
/// values may be quoted. Errors name the file and line, never a value.
pub fn read_env_file(path: &Path, service: &str) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "service `{service}`: cannot read its env_file {}",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            bail!(
                "{}:{}: expected KEY=VALUE (service `{service}`'s env_file)",
                path.display(),
                n + 1
            );
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!(
                "{}:{}: `{key}` is not a valid variable name (service `{service}`'s env_file)",
                path.display(),
                n + 1
            );
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Every instance's port must be free before the service starts.
pub fn check_ports(s: &ServiceConfig) -> anyhow::Result<()> {
    let Some(ports) = s.ports else {
        return Ok(());
    };
    for i in 0..s.instances {
        let port = ports.first + i as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_err() {
            bail!(
                "service `{}`: port {port} (instance {i}) is already taken; stop what uses it or choose another `port`",
                s.name
            );
        }
    }
    Ok(())
}

/// Where a service's logs live.
pub fn log_dir(config: &Config) -> PathBuf {
    config.app.data_dir.join("logs")
}
