//! Commands: what a server command listens on, and quoting words for `sh -c`.

/// An address a command binds, found in its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `HOST:PORT` or `--port PORT`; `at` is the byte range of the port digits.
    Tcp {
        /// The host, empty if none was given.
        host: String,
        /// The port.
        port: u16,
        /// Where the port's digits are in the command.
        at: (usize, usize),
    },
    /// `unix:PATH`; `at` is the byte range of `unix:PATH`.
    Unix {
        /// The socket's path.
        path: String,
        /// Where `unix:PATH` is in the command.
        at: (usize, usize),
    },
}

/// The address of the first `-b`/`--bind`/`--listen` (gunicorn, uvicorn, waitress,
/// hypercorn), `--port` or `runserver ADDR` (Django) argument of `command`.
pub fn listen(command: &str) -> Option<Listen> {
    let words = words(command);
    for (i, &(start, word)) in words.iter().enumerate() {
        let next = words.get(i + 1).copied();
        let value = |flags: &[&str]| -> Option<(usize, &str)> {
            for flag in flags {
                if word == *flag {
                    return next;
                }
                if let Some(rest) = word.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                    return Some((start + flag.len() + 1, rest));
                }
            }
            None
        };
        if let Some((at, addr)) = value(&["-b", "--bind", "--listen"]) {
            return address(at, addr);
        }
        if let Some((at, port)) = value(&["--port"])
            && let Ok(n) = port.parse::<u16>()
        {
            return Some(Listen::Tcp {
                host: String::new(),
                port: n,
                at: (at, at + port.len()),
            });
        }
        if word == "runserver"
            && let Some((at, addr)) = next
            && !addr.starts_with('-')
        {
            return address(at, addr);
        }
    }
    None
}

fn address(at: usize, addr: &str) -> Option<Listen> {
    let addr_trimmed = addr.trim_matches(['"', '\'']);
    // A broker's URL (celery's `-b amqp://user:pass@host:5672`) is not where the
    // command listens.
    if addr_trimmed.contains("://") || addr_trimmed.contains('@') {
        return None;
    }
    let at = at + addr.find(addr_trimmed).unwrap_or(0);
    if let Some(path) = addr_trimmed.strip_prefix("unix:") {
        return Some(Listen::Unix {
            path: path.to_string(),
            at: (at, at + addr_trimmed.len()),
        });
    }
    let (host, port) = match addr_trimmed.rsplit_once(':') {
        Some((host, port)) => (host, port),
        None => ("", addr_trimmed),
    };
    let n = port.parse::<u16>().ok()?;
    let from = at + addr_trimmed.len() - port.len();
    Some(Listen::Tcp {
        host: host.to_string(),
        port: n,
        at: (from, from + port.len()),
    })
}

/// `command` with the bytes `at` replaced by `with`.
pub fn splice(command: &str, at: (usize, usize), with: &str) -> String {
    format!("{}{with}{}", &command[..at.0], &command[at.1..])
}

/// The words of `command` split at whitespace, each with its byte offset. Quotes are not
/// interpreted: good enough to find flags, which are never quoted in these files.
pub fn words(command: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in command.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &command[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &command[s..]));
    }
    out
}

/// `text` to stand between double quotes in `sh` for itself: `\`, `"`, `` ` `` and `$`
/// escaped.
pub fn dquote_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '`' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `word` as `sh` reads it back: as is if it holds only safe characters, else in single
/// quotes.
pub fn quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,{}$".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A name for what `command` runs: the script an interpreter runs, or the program, by
/// its file name without extension (`python /srv/bot/cron.py -e live` → `cron`), after
/// `cd … &&` and `VAR=value` prefixes.
pub fn program_name(command: &str) -> String {
    let tail = command.rsplit("&&").next().unwrap_or(command);
    let mut words = tail
        .split_whitespace()
        .filter(|w| !is_assignment(w) && *w != "exec" && *w != "nice" && *w != "nohup");
    let mut program = words.next().unwrap_or("job");
    let base = |w: &str| w.rsplit('/').next().unwrap_or(w).to_string();
    let interpreters = [
        "python", "python3", "python2", "sh", "bash", "node", "ruby", "perl", "php",
    ];
    if interpreters.contains(&base(program).as_str()) {
        let script = words.find(|w| !w.starts_with('-'));
        if let Some(script) = script {
            program = script;
        }
    }
    let file = base(program);
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => file,
    }
}

/// Whether `word` is a shell assignment, `NAME=value`.
pub fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_a_command_listens_on() {
        let c = "gunicorn main:application -b 0.0.0.0:5000 -w 4";
        let Some(Listen::Tcp { host, port, at }) = listen(c) else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("0.0.0.0", 5000));
        assert_eq!(
            splice(c, at, "{port}"),
            "gunicorn main:application -b 0.0.0.0:{port} -w 4"
        );
        let c = "gunicorn --workers 4 -b unix:/home/loop/run/gunicorn.socket wsgi:application";
        let Some(Listen::Unix { path, at }) = listen(c) else {
            panic!()
        };
        assert_eq!(path, "/home/loop/run/gunicorn.socket");
        assert_eq!(
            splice(c, at, "127.0.0.1:{port}"),
            "gunicorn --workers 4 -b 127.0.0.1:{port} wsgi:application"
        );
        assert!(matches!(
            listen("python manage.py runserver 0.0.0.0:8001"),
            Some(Listen::Tcp { port: 8001, .. })
        ));
        assert!(matches!(
            listen("uvicorn app:app --port=8000"),
            Some(Listen::Tcp { port: 8000, .. })
        ));
        assert_eq!(listen("celery worker -A site"), None);
        assert_eq!(
            listen("celery worker -b amqp://guest:guest@localhost:5672//"),
            None
        );
    }

    #[test]
    fn names_what_a_command_runs() {
        assert_eq!(
            program_name(
                "cd /home/localgit/elife-bot && python /home/localgit/elife-bot/cron.py -e live > /dev/null"
            ),
            "cron"
        );
        assert_eq!(
            program_name("USER=u DB_NAME=d /opt/coog-admin/backup save"),
            "backup"
        );
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("-b"), "-b");
    }
}
