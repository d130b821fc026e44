//! The `berth.toml` text: each table with a comment saying where it came from and what
//! berth does by itself, and at the end every line that was not translated.

use std::fmt::Write;

use crate::{Import, Route, Target, Tls};

/// Renders `import` as TOML.
pub fn render(import: &Import) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by `berth import` from {}.",
        import.files.join(", ")
    );
    let _ = writeln!(
        t,
        "# Check it with `berth check`, then start it with `berth up`."
    );
    if !import.skipped.is_empty() {
        let _ = writeln!(
            t,
            "# {} line{} could not be translated: see the end of this file.",
            import.skipped.len(),
            if import.skipped.len() == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(t, "\n[app]\nname = {}", string(&import.app));
    let routed: Vec<&str> = import
        .gateway
        .iter()
        .flat_map(|g| &g.routes)
        .filter_map(|r| match &r.target {
            Target::Service(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();

    for s in &import.services {
        let _ = writeln!(t);
        if let Some(from) = &s.from {
            let _ = writeln!(t, "# from {from}");
        }
        notes(&mut t, &s.notes);
        let _ = writeln!(t, "[service.{}]", s.name);
        let _ = writeln!(t, "command = {}", string(&s.command));
        if let Some(cwd) = &s.cwd {
            let _ = writeln!(t, "cwd = {}", string(cwd));
        }
        if !s.env.is_empty() {
            let pairs: Vec<String> = s
                .env
                .iter()
                .map(|(k, v)| format!("{k} = {}", string(v)))
                .collect();
            let _ = writeln!(t, "env = {{ {} }}", pairs.join(", "));
        }
        if let Some(f) = &s.env_file {
            let _ = writeln!(t, "env_file = {}", string(f));
        }
        if s.instances > 1 {
            let _ = writeln!(t, "instances = {}", s.instances);
        }
        if let Some(port) = s.port {
            // A service behind the gateway gets a spare port: a rolling restart starts
            // the new process beside the old, and the gateway follows it. Others keep
            // their ports, which their clients know.
            let spare = u32::from(port) + s.instances;
            if routed.contains(&s.name.as_str()) && spare <= 65535 {
                let _ = writeln!(t, "ports = \"{port}-{spare}\"");
            } else {
                let _ = writeln!(t, "port = {port}");
            }
        }
        if s.ready_tcp {
            let _ = writeln!(t, "ready = {{ tcp = true }}");
        }
        if let Some(user) = &s.user {
            let _ = writeln!(t, "user = {}", string(user));
        }
        if let Some(restart) = s.restart {
            let _ = writeln!(t, "restart = \"{restart}\"");
        }
        if let Some(sig) = &s.stop_signal {
            let _ = writeln!(t, "stop_signal = {}", string(sig));
        }
        if let Some(grace) = &s.stop_grace {
            let _ = writeln!(t, "stop_grace = {}", string(grace));
        }
        if !s.depends_on.is_empty() {
            let names: Vec<String> = s.depends_on.iter().map(|n| string(n)).collect();
            let _ = writeln!(t, "depends_on = [{}]", names.join(", "));
        }
        if let Some(size) = &s.log_max_size {
            let _ = writeln!(t, "log_max_size = {}", string(size));
        }
        if let Some(keep) = s.log_keep {
            let _ = writeln!(t, "log_keep = {keep}");
        }
    }

    for s in &import.schedules {
        let _ = writeln!(t, "\n# from {}", s.from);
        notes(&mut t, &s.notes);
        let _ = writeln!(t, "[schedule.{}]", s.name);
        let _ = writeln!(t, "cron = {}", string(&s.cron));
        if let Some(tz) = &s.timezone {
            let _ = writeln!(t, "timezone = {}", string(tz));
        }
        let _ = writeln!(t, "command = {}", string(&s.command));
    }

    if let Some(gw) = &import.gateway {
        let _ = writeln!(t);
        if let Some(from) = &gw.from {
            let _ = writeln!(t, "# from {from}");
        }
        notes(&mut t, &gw.notes);
        let _ = writeln!(t, "[gateway]");
        let listen: Vec<String> = gw.listen.iter().map(|a| string(a)).collect();
        if listen.len() == 1 {
            let _ = writeln!(t, "listen = {}", listen[0]);
        } else {
            let _ = writeln!(t, "listen = [{}]", listen.join(", "));
        }
        match &gw.tls {
            Some(Tls::Files { cert, key }) => {
                let _ = writeln!(
                    t,
                    "tls = {{ cert = {}, key = {} }}",
                    string(cert),
                    string(key)
                );
            }
            Some(Tls::SelfSigned) => {
                let _ = writeln!(t, "tls = \"self-signed\"");
            }
            None => {}
        }
        if let Some(http) = &gw.http {
            let _ = writeln!(t, "http = {}", string(http));
        }
        if let Some(mb) = &gw.max_body {
            let _ = writeln!(t, "max_body = {}", string(mb));
        }
        if let Some(ct) = &gw.connect_timeout {
            let _ = writeln!(t, "connect_timeout = {}", string(ct));
        }
        for r in &gw.routes {
            route(&mut t, r);
        }
    }

    if !import.skipped.is_empty() {
        let _ = writeln!(t, "\n# Not translated:");
        for s in &import.skipped {
            let _ = writeln!(t, "#   {}: {}", s.at, one_line(&s.text));
            let _ = writeln!(t, "#     {}", s.why);
        }
    }
    t
}

fn route(t: &mut String, r: &Route) {
    let _ = writeln!(t, "\n# from {}", r.from);
    notes(t, &r.notes);
    let _ = writeln!(t, "[[gateway.route]]");
    if let Some(host) = &r.host {
        let _ = writeln!(t, "host = {}", string(host));
    }
    let _ = writeln!(t, "path = {}", string(&r.path));
    match &r.target {
        Target::Static(dir) => {
            let _ = writeln!(t, "static = {}", string(dir));
        }
        Target::Service(name) => {
            let _ = writeln!(t, "service = {}", string(name));
        }
        Target::Proxy(url) => {
            let _ = writeln!(t, "proxy = {}", string(url));
        }
        Target::Redirect(url) => {
            let _ = writeln!(t, "redirect = {}", string(url));
        }
    }
    if let Some(status) = r.status {
        let _ = writeln!(t, "status = {status}");
    }
    if let Some(strip) = r.strip_prefix {
        let _ = writeln!(t, "strip_prefix = {strip}");
    }
    if let Some(index) = &r.index {
        let _ = writeln!(t, "index = {}", string(index));
    }
    if r.spa {
        let _ = writeln!(t, "spa = true");
    }
    if let Some(mb) = &r.max_body {
        let _ = writeln!(t, "max_body = {}", string(mb));
    }
    if let Some(timeout) = &r.timeout {
        let _ = writeln!(t, "timeout = {}", string(timeout));
    }
}

fn notes(t: &mut String, notes: &[String]) {
    for n in notes {
        let _ = writeln!(t, "# {}", one_line(n));
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A TOML string: literal (`'…'`) where that reads better and is possible, else basic
/// with escapes.
pub fn string(s: &str) -> String {
    let plain = !s.chars().any(|c| c.is_control());
    if plain && !s.contains('\'') && (s.contains('"') || s.contains('\\')) {
        return format!("'{s}'");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
