//! A Procfile (Heroku, foreman, honcho): each `NAME: command` becomes a
//! `[service.NAME]`. A command that reads `$PORT` gets a port as foreman gives them
//! (5000, 5100, … by line); berth sets `PORT` for each instance.

use crate::{Import, Origin, Service};

/// `NAME: command`, or None.
pub fn entry(line: &str) -> Option<(&str, &str)> {
    let (name, command) = line.split_once(':')?;
    let name = name.trim();
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (ok && !command.trim().is_empty()).then(|| (name, command.trim()))
}

/// Reads a Procfile into `out`.
pub fn read(out: &mut Import, file: &str, text: &str) {
    let mut next_port = 5000u16;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = entry(trimmed) else {
            out.skip(file, line, trimmed, "expected `NAME: command`");
            continue;
        };
        if name == "release" {
            out.skip(
                file,
                line,
                trimmed,
                "a release phase runs once per deploy: in berth it is [deploy] migrate",
            );
            continue;
        }
        let mut s = Service {
            name: name.to_string(),
            command: command.to_string(),
            instances: 1,
            from: Some(Origin::new(file, line)),
            ..Service::default()
        };
        if command.contains("$PORT") || command.contains("${PORT}") {
            s.port = Some(next_port);
            s.ready_tcp = true;
            s.notes.push(
                "berth sets PORT for each instance (5000, 5001, … with more instances)".into(),
            );
        } else {
            s.use_port();
        }
        next_port = next_port.saturating_add(100);
        out.add_service(s);
    }
}
