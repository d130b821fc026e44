//! supervisor: each `[program:NAME]` becomes a `[service.NAME]`.

use crate::ini::{self, Entry};
use crate::{Import, Origin, Service};

/// Sections that configure supervisord itself, which `berth up` replaces.
const DAEMON_SECTIONS: &[(&str, &str)] = &[
    (
        "supervisord",
        "`berth up` is the supervisor; its own settings are in [app]",
    ),
    (
        "supervisorctl",
        "the berth CLI talks to `berth up` over DATA_DIR/berth.sock",
    ),
    (
        "unix_http_server",
        "the berth CLI talks to `berth up` over DATA_DIR/berth.sock",
    ),
    (
        "inet_http_server",
        "berth's API on TCP is [api] listen, with a token",
    ),
    ("rpcinterface:", "berth's API is built in"),
    (
        "include",
        "not followed: import those files too (`berth import FILE…`)",
    ),
    (
        "group:",
        "berth has no process groups: `berth restart NAME` per service",
    ),
    (
        "eventlistener:",
        "berth sends events to [notify.NAME] targets (mail, webhooks)",
    ),
    (
        "fcgi-program:",
        "berth's gateway speaks HTTP to services, not FastCGI",
    ),
];

/// Reads a supervisor file into `out`.
pub fn read(out: &mut Import, file: &str, text: &str) {
    let (sections, stray) = ini::parse(text, true);
    for (line, text) in stray {
        out.skip(file, line, &text, "not inside a [program:NAME] section");
    }
    let here = file.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
    for section in sections {
        if let Some(name) = section.name.strip_prefix("program:") {
            program(out, file, here, name.trim(), section.line, &section.entries);
            continue;
        }
        let why = DAEMON_SECTIONS
            .iter()
            .find(|(prefix, _)| {
                section.name == *prefix
                    || (prefix.ends_with(':') && section.name.starts_with(prefix))
            })
            .map(|(_, why)| why.to_string())
            .unwrap_or_else(|| format!("berth has no [{}] section", section.name));
        out.skip(file, section.line, &format!("[{}]", section.name), &why);
        for entry in &section.entries {
            out.skip(
                file,
                entry.line,
                &entry.text,
                format!("in [{}]: {why}", section.name),
            );
        }
    }
}

fn program(out: &mut Import, file: &str, here: &str, name: &str, line: usize, entries: &[Entry]) {
    let mut s = Service {
        name: name.to_string(),
        instances: 1,
        // supervisor's default, `unexpected`: restarted after an exit other than 0.
        restart: Some("on-failure"),
        from: Some(Origin::new(file, line)),
        ..Service::default()
    };
    // Values may name the program, the file's directory and the environment.
    let expand = |value: &str, in_command: bool| -> Option<String> {
        let mut v = value
            .replace("%(program_name)s", name)
            .replace("%(here)s", here)
            .replace("%%", "%");
        if in_command {
            v = v
                .replace("%(process_num)d", "$BERTH_INSTANCE")
                .replace("%(process_num)02d", "$BERTH_INSTANCE");
            while let Some(start) = v.find("%(ENV_") {
                let end = v[start..].find(")s")? + start;
                let var = v[start + 6..end].to_string();
                v.replace_range(start..end + 2, &format!("${{{var}}}"));
            }
        }
        (!v.contains("%(")).then_some(v)
    };
    let mut command_at = None;
    for e in entries {
        let mut skip = |why: &str| out.skip(file, e.line, &e.text, why);
        let Some(value) = expand(&e.value, e.key == "command") else {
            skip("a %(…)s expansion berth cannot make here; write the value out");
            continue;
        };
        match e.key.as_str() {
            "command" => {
                s.command = value;
                command_at = Some(e.line);
            }
            "directory" => s.cwd = Some(value),
            "numprocs" => match value.parse::<u32>() {
                Ok(n) if (1..=64).contains(&n) => s.instances = n,
                _ => skip("berth runs 1 to 64 instances of a service"),
            },
            "numprocs_start" => skip("berth numbers instances from 0 (BERTH_INSTANCE)"),
            "user" => s.user = Some(value),
            "environment" => match environment(&value) {
                Some(vars) => s.env.extend(vars),
                None => skip("expected KEY=\"value\" pairs separated by commas"),
            },
            "autostart" => match ini::boolean(&value) {
                Some(true) => s
                    .notes
                    .push("autostart=true: berth up starts every service".into()),
                _ => skip("berth up starts every service; stop this one with `berth stop NAME`"),
            },
            "autorestart" => {
                s.restart = match value.to_ascii_lowercase().as_str() {
                    "true" => None,
                    "false" => Some("never"),
                    _ => Some("on-failure"),
                }
            }
            "stopsignal" => s.stop_signal = Some(value.to_ascii_uppercase()),
            "stopwaitsecs" => match value.parse::<u64>() {
                Ok(n) => s.stop_grace = Some(format!("{n}s")),
                Err(_) => skip("expected a number of seconds"),
            },
            "stopasgroup" | "killasgroup" => s.notes.push(format!(
                "{}: berth always signals the whole process group",
                e.text
            )),
            "redirect_stderr" => s.notes.push(format!(
                "{}: berth writes stdout and stderr to one log",
                e.text
            )),
            "stdout_logfile" | "stderr_logfile" | "logfile" => skip(&format!(
                "berth writes each instance's output to DATA_DIR/logs/{}.N.log \
                 (`berth logs {}`)",
                crate::name(name),
                crate::name(name)
            )),
            "stdout_logfile_maxbytes" | "stderr_logfile_maxbytes" | "logfile_maxbytes" => {
                match size(&value) {
                    Some(size) => s.log_max_size = Some(size),
                    None => skip("expected a size such as 50MB"),
                }
            }
            "stdout_logfile_backups" | "stderr_logfile_backups" | "logfile_backups" => {
                match value.parse::<u32>() {
                    Ok(n) if n <= 100 => s.log_keep = Some(n),
                    _ => skip("berth keeps 0 to 100 rotated logs"),
                }
            }
            "startsecs" => skip(
                "berth counts a start as good once its `ready` check passes \
                 (ready = { tcp = true } or { http = \"/health\" })",
            ),
            "startretries" => skip("berth's crash_loop = { max_exits, window } stops restarts"),
            "priority" => skip("berth orders starts with depends_on = [\"other\"]"),
            _ => skip("berth has no such setting for a service"),
        }
    }
    if s.command.trim().is_empty() {
        out.skip(
            file,
            command_at.unwrap_or(line),
            &format!("[program:{name}]"),
            "a program without a command",
        );
        return;
    }
    s.use_port();
    out.add_service(s);
}

/// supervisor's `environment`: `KEY="value",KEY2=value2`.
fn environment(value: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_string();
        let after = after.trim_start();
        let (val, tail) = if let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'')
        {
            let end = after[1..].find(q)? + 1;
            (&after[1..end], after[end + 1..].trim_start())
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        if !crate::shell::is_assignment(&format!("{key}=")) {
            return None;
        }
        out.push((key, val.trim().to_string()));
        rest = tail.trim_start_matches(',').trim_start();
    }
    Some(out)
}

/// supervisor's byte sizes (`50MB`: powers of 1024) as berth writes them.
fn size(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_uppercase();
    let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v.as_str(), ""),
    };
    let n: u64 = digits.parse().ok()?;
    if n == 0 {
        return None;
    }
    let unit = match unit.trim() {
        "" => "",
        "KB" => "KiB",
        "MB" => "MiB",
        "GB" => "GiB",
        _ => return None,
    };
    Some(format!("{n}{unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_environment_and_sizes() {
        assert_eq!(
            environment(r#"A="1, 2",B=x, C='y'"#).unwrap(),
            [
                ("A".into(), "1, 2".into()),
                ("B".into(), "x".into()),
                ("C".into(), "y".into())
            ]
        );
        assert_eq!(size("50MB").as_deref(), Some("50MiB"));
        assert_eq!(size("1024").as_deref(), Some("1024"));
        assert_eq!(size("0"), None);
    }
}
