//! A crontab: each entry becomes a `[schedule.NAME]` that runs its command (with
//! `cd … && …` kept, since berth runs it with `sh -c`), variables set on lines before it
//! are exported in front of the command, `CRON_TZ` becomes `timezone`, and
//! `@reboot` becomes a service that runs once per `berth up`. A system crontab
//! (`/etc/crontab`, `/etc/cron.d/*`) has a user field after the times.

use crate::{Import, Origin, Schedule, Service, shell};

const NICKNAMES: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

/// Whether `line` looks like a cron entry: a nickname, or five time fields.
pub fn looks_like_entry(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return false;
    };
    if first.starts_with('@') {
        return first == "@reboot" || NICKNAMES.contains(&first);
    }
    let time = |w: &str| {
        w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "*/,-?".contains(c))
    };
    time(first) && words.clone().take(4).filter(|w| time(w)).count() == 4 && words.nth(4).is_some()
}

/// A `NAME=value` line (spaces around `=` allowed, the value perhaps quoted).
pub fn assignment(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let name = name.trim();
    if !shell::is_assignment(&format!("{name}=")) {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((name.to_string(), value.to_string()))
}

/// Reads a crontab into `out`. `zone`: the machine's time zone, which cron used.
pub fn read(out: &mut Import, file: &str, text: &str, zone: Option<&str>) {
    let system = file == "/etc/crontab" || file.contains("/cron.d/");
    let mut exports: Vec<(String, String)> = Vec::new();
    let mut timezone = zone.map(str::to_string);
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !looks_like_entry(trimmed)
            && let Some((name, value)) = assignment(trimmed)
        {
            match name.as_str() {
                "MAILTO" => out.skip(
                    file,
                    line,
                    trimmed,
                    "cron mailed each run's output; berth keeps it with the job (`berth job \
                     show`) and mails failures through a [notify.NAME] target (docs/notify.md)",
                ),
                "SHELL" => out.skip(file, line, trimmed, "berth runs commands with `sh -c`"),
                // cron reads the times in CRON_TZ; TZ is only passed to the commands.
                "CRON_TZ" => timezone = Some(value),
                _ => {
                    exports.retain(|(n, _)| *n != name);
                    exports.push((name, value));
                }
            }
            continue;
        }
        let (when, rest) = match split_times(trimmed) {
            Some(parts) => parts,
            None => {
                out.skip(
                    file,
                    line,
                    trimmed,
                    "expected five time fields (minute hour day month weekday) or @daily \
                     and the like, then a command",
                );
                continue;
            }
        };
        let command = if system {
            match rest.split_once(char::is_whitespace) {
                Some((user, command)) => {
                    if user != "root" {
                        out.skip(
                            file,
                            line,
                            user,
                            format!(
                                "ran as {user}: berth runs schedules as its own user; run \
                                 berth as {user}, or `runuser -u {user} -- …` as root"
                            ),
                        );
                    }
                    command.trim()
                }
                None => "",
            }
        } else {
            rest
        };
        let command = match unescape_percent(command) {
            Some(c) if !c.trim().is_empty() => c,
            Some(_) => {
                out.skip(file, line, trimmed, "an entry without a command");
                continue;
            }
            None => {
                out.skip(
                    file,
                    line,
                    trimmed,
                    "cron turns an unescaped % into a newline and feeds the rest to the \
                     command; put that in a script",
                );
                continue;
            }
        };
        let mut full = String::new();
        for (name, value) in &exports {
            full.push_str(&format!("export {name}={}; ", shell::quote(value)));
        }
        full.push_str(&command);
        let name = schedule_name(&command);
        if when == "@reboot" {
            out.add_service(Service {
                name,
                command: full,
                instances: 1,
                restart: Some("never"),
                notes: vec!["@reboot: runs once each time berth up starts".into()],
                from: Some(Origin::new(file, line)),
                ..Service::default()
            });
            continue;
        }
        if let Err(e) = berth_cron::Cron::parse(&when) {
            out.skip(file, line, trimmed, e.to_string());
            continue;
        }
        let mut notes = Vec::new();
        if first {
            notes.push(
                "cron started a run even while the previous one ran; berth skips it \
                 (overlap = \"skip\"); overlap = \"allow\" is cron's way"
                    .to_string(),
            );
            if zone.is_some() {
                notes.push("timezone: this machine's, in which cron read the times".into());
            }
            first = false;
        }
        if command.contains("/dev/null") {
            notes.push(
                "berth keeps a run's output with its job (`berth job show`); the \
                 redirection to /dev/null throws it away"
                    .into(),
            );
        }
        out.add_schedule(Schedule {
            name,
            cron: when,
            command: full,
            timezone: timezone.clone(),
            notes,
            from: Origin::new(file, line),
        });
    }
}

/// The times of an entry and the rest of the line.
fn split_times(line: &str) -> Option<(String, &str)> {
    let words = shell::words(line);
    let first = words.first()?.1;
    let count = if first.starts_with('@') { 1 } else { 5 };
    let last = words.get(count - 1)?;
    let rest = line[last.0 + last.1.len()..].trim();
    let when = words[..count]
        .iter()
        .map(|(_, w)| *w)
        .collect::<Vec<_>>()
        .join(" ");
    Some((when, rest))
}

/// cron's `\%` as `%`; None if an unescaped `%` is there.
fn unescape_percent(command: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'%') => {
                out.push('%');
                chars.next();
            }
            '%' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// `backup save` → `backup-save`; `python cron.py -e live` → `cron`.
fn schedule_name(command: &str) -> String {
    let program = shell::program_name(command);
    let tail = command.rsplit("&&").next().unwrap_or(command);
    let words: Vec<&str> = tail
        .split_whitespace()
        .filter(|w| !shell::is_assignment(w))
        .collect();
    let at = words.iter().position(|w| shell::program_name(w) == program);
    let next = at.and_then(|i| words.get(i + 1));
    match next {
        Some(w)
            if w.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                && w.len() <= 20
                && !w.is_empty() =>
        {
            format!("{program}-{w}")
        }
        _ => program,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_names() {
        assert!(looks_like_entry("*/5 * * * * cd /srv && python cron.py"));
        assert!(looks_like_entry("@daily /usr/bin/backup"));
        assert!(!looks_like_entry("<min> <h> * * * USER=x /backup save"));
        assert_eq!(
            split_times("*/5  * * * *   cd /srv && x"),
            Some(("*/5 * * * *".to_string(), "cd /srv && x"))
        );
        assert_eq!(schedule_name("USER=u /opt/coog/backup save"), "backup-save");
        assert_eq!(
            schedule_name("cd /x && python /x/cron.py -e live > /dev/null"),
            "cron"
        );
        assert_eq!(unescape_percent(r"date +\%F").as_deref(), Some("date +%F"));
        assert_eq!(unescape_percent("date +%F"), None);
    }
}
