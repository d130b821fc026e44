//! circus: each `[watcher:NAME]` becomes a `[service.NAME]`, with the variables of its
//! `[env:NAME]` section; `$(circus.env.X)` becomes `${X}`, which `sh -c` reads from the
//! environment berth passes on.

use crate::ini::{self, Entry};
use crate::{Import, Origin, Service};

/// Reads a circus file into `out`.
pub fn read(out: &mut Import, file: &str, text: &str) {
    let (sections, stray) = ini::parse(text, false);
    for (line, text) in stray {
        out.skip(file, line, &text, "not inside a [watcher:NAME] section");
    }
    // [env:NAME] sections may come before or after their watcher.
    let mut envs: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for section in &sections {
        if let Some(names) = section.name.strip_prefix("env:") {
            let mut vars: Vec<(String, String)> = Vec::new();
            for e in &section.entries {
                let key = e.key.to_ascii_uppercase();
                if crate::env_name(&key) {
                    vars.push((key, e.value.clone()));
                } else {
                    out.skip(
                        file,
                        e.line,
                        &e.text,
                        "not a variable name berth's `env` takes ([A-Za-z_][A-Za-z0-9_]*)",
                    );
                }
            }
            for name in names.split(',') {
                envs.push((name.trim().to_string(), vars.clone()));
            }
        }
    }
    for section in &sections {
        if let Some(name) = section.name.strip_prefix("watcher:") {
            let name = name.trim();
            let env = envs
                .iter()
                .filter(|(n, _)| n == name)
                .flat_map(|(_, vars)| vars.clone())
                .collect();
            watcher(out, file, name, section.line, &section.entries, env);
        } else if section.name.starts_with("env:") {
            // Read above; keys came out uppercased, as circus passes them.
        } else {
            let why = match section.name.split(':').next().unwrap_or_default() {
                "circus" => "`berth up` replaces circusd; its CLI talks over DATA_DIR/berth.sock",
                "socket" => "berth does not pass sockets to services: the command binds {port}",
                "plugin" => "berth has no circus plugins; alerts go to [notify.NAME]",
                _ => "berth has no such section",
            };
            out.skip(file, section.line, &format!("[{}]", section.name), why);
            for e in &section.entries {
                out.skip(
                    file,
                    e.line,
                    &e.text,
                    format!("in [{}]: {why}", section.name),
                );
            }
        }
    }
}

fn watcher(
    out: &mut Import,
    file: &str,
    name: &str,
    line: usize,
    entries: &[Entry],
    env: Vec<(String, String)>,
) {
    let mut s = Service {
        name: name.to_string(),
        instances: 1,
        from: Some(Origin::new(file, line)),
        ..Service::default()
    };
    // circus fills in $(circus.env.X) from its environment; berth's `env` is taken as
    // written, so such a value is exported by the command's shell.
    for (key, value) in env {
        match expand_shell(&value) {
            Some(shell) => s.exports.push((key, shell)),
            None => s.env.push((key, value)),
        }
    }
    let mut args = None;
    for e in entries {
        let value = expand(&e.value);
        let mut skip = |why: &str| out.skip(file, e.line, &e.text, why);
        if value.contains("$(circus.") || value.contains("$(CIRCUS.") {
            skip("a $(circus.…) variable berth has no equivalent of");
            continue;
        }
        match e.key.as_str() {
            "cmd" => s.command = value,
            "args" => args = Some(value),
            "working_dir" => s.cwd = Some(value),
            "numprocesses" => match value.parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => s.instances = n,
                _ => skip("berth runs 1 to 64 instances of a service"),
            },
            "uid" => s.user = Some(value),
            "copy_env" => match ini::boolean(&value) {
                Some(true) => s
                    .notes
                    .push("copy_env = true: services get berth's environment".into()),
                _ => skip("services always get berth's environment (and `env` on top)"),
            },
            "copy_path" => s
                .notes
                .push(format!("{}: services get berth's PATH", e.text)),
            "respawn" => {
                if ini::boolean(&value) == Some(false) {
                    s.restart = Some("never");
                }
            }
            "autostart" => match ini::boolean(&value) {
                Some(true) => {}
                _ => skip("berth up starts every service; stop this one with `berth stop NAME`"),
            },
            "stop_signal" => s.stop_signal = Some(value.to_ascii_uppercase()),
            "graceful_timeout" => match value.parse::<f64>() {
                Ok(n) if n >= 0.0 => s.stop_grace = Some(format!("{}s", n.round() as u64)),
                _ => skip("expected a number of seconds"),
            },
            "singleton" => {}
            "max_retry" => skip("berth's crash_loop = { max_exits, window } stops restarts"),
            "priority" => skip("berth orders starts with depends_on = [\"other\"]"),
            "warmup_delay" => skip("berth starts the next instance once this one is ready"),
            "use_sockets" => skip("berth does not pass sockets: the command binds {port}"),
            k if k.starts_with("stdout_stream") || k.starts_with("stderr_stream") => {
                skip(&format!(
                    "berth writes each instance's output to DATA_DIR/logs/{}.N.log \
                     (`berth logs {}`)",
                    crate::name(name),
                    crate::name(name)
                ))
            }
            _ => skip("berth has no such setting for a service"),
        }
    }
    if let Some(args) = args {
        s.command = format!("{} {args}", s.command);
    }
    if s.command.trim().is_empty() {
        out.skip(
            file,
            line,
            &format!("[watcher:{name}]"),
            "a watcher without cmd",
        );
        return;
    }
    s.use_port();
    out.add_service(s);
}

/// `$(circus.env.NAME)` (any case) as `${NAME}`; other `$(circus.…)` variables are left
/// as they are, and the line is reported.
fn expand(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find(')') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &rest[start + 2..start + len];
        let lower = inner.to_ascii_lowercase();
        if let Some(var) = lower.strip_prefix("circus.env.") {
            out.push_str(&format!("${{{}}}", var.to_ascii_uppercase()));
        } else {
            out.push_str(&rest[start..start + len + 1]);
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// A value with `$(circus.env.X)` as the text between double quotes of a shell export
/// (`${X}` there, everything else literal); None if it reads no variable.
fn expand_shell(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    let mut any = false;
    while let Some(start) = rest.find("$(") {
        out.push_str(&crate::shell::dquote_literal(&rest[..start]));
        let Some(len) = rest[start..].find(')') else {
            break;
        };
        let inner = rest[start + 2..start + len].to_ascii_lowercase();
        match inner.strip_prefix("circus.env.") {
            Some(var) => {
                out.push_str(&format!("${{{}}}", var.to_ascii_uppercase()));
                any = true;
            }
            None => out.push_str(&crate::shell::dquote_literal(&rest[start..start + len + 1])),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(&crate::shell::dquote_literal(rest));
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn circus_environment_variables_become_the_shells() {
        assert_eq!(
            super::expand("amqp://$(CIRCUS.ENV.RABBITMQ_USER):$(circus.env.rabbitmq_password)@h"),
            "amqp://${RABBITMQ_USER}:${RABBITMQ_PASSWORD}@h"
        );
        assert_eq!(super::expand("x $(circus.wid)"), "x $(circus.wid)");
    }
}
