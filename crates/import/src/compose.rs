//! docker-compose: each service that runs a `command` becomes a `[service.NAME]` that
//! runs it on this machine. A service that only runs its image's own program (a
//! database, a broker, nginx) is listed with what to do instead: berth runs commands,
//! not containers.

use marked_yaml::{LoadError, Node};

use crate::{Import, ImportError, Origin, Service, shell};

/// What to do about an image-only service, by the image's name.
const IMAGES: &[(&str, &str)] = &[
    (
        "postgres",
        "run PostgreSQL from the system's packages; berth backs it up with [backup.database.NAME]",
    ),
    (
        "mysql",
        "run MySQL from the system's packages; berth backs it up with [backup.database.NAME]",
    ),
    (
        "mariadb",
        "run MariaDB from the system's packages; berth backs it up with [backup.database.NAME]",
    ),
    (
        "redis",
        "berth's queues replace Redis as a job broker ([queue.NAME])",
    ),
    (
        "rabbitmq",
        "berth's queues replace RabbitMQ as a job broker ([queue.NAME])",
    ),
    (
        "mosquitto",
        "berth's embedded MQTT broker replaces Mosquitto ([ingest.NAME] with mqtt, docs/ingest.md)",
    ),
    (
        "eclipse-mosquitto",
        "berth's embedded MQTT broker replaces Mosquitto ([ingest.NAME] with mqtt, docs/ingest.md)",
    ),
    (
        "nginx",
        "berth's [gateway] replaces nginx: `berth import` its nginx.conf too",
    ),
    ("caddy", "berth's [gateway] replaces Caddy"),
    ("traefik", "berth's [gateway] replaces Traefik"),
];

/// Reads a docker-compose file into `out`.
pub fn read(out: &mut Import, file: &str, text: &str) -> Result<(), ImportError> {
    let root = marked_yaml::parse_yaml(0, text).map_err(|e| syntax(file, &e))?;
    let root = root
        .as_mapping()
        .expect("parse_yaml reads a mapping at the top");
    for (key, value) in root.iter() {
        let line = key.span().start().map_or(1, |m| m.line());
        match key.as_str() {
            "services" => {}
            "version" | "name" => {
                out.skip(
                    file,
                    line,
                    &format!("{}: …", key.as_str()),
                    "compose's own; nothing to translate",
                );
                continue;
            }
            other => {
                out.skip(
                    file,
                    line,
                    &format!("{other}:"),
                    "berth runs processes on this machine: no networks, volumes or configs",
                );
                continue;
            }
        }
        let Some(services) = value.as_mapping() else {
            out.skip(file, line, "services:", "expected a mapping of services");
            continue;
        };
        for (name, body) in services.iter() {
            let line = name.span().start().map_or(1, |m| m.line());
            match body.as_mapping() {
                Some(body) => service(out, file, name.as_str(), line, body),
                None => out.skip(
                    file,
                    line,
                    &format!("{}:", name.as_str()),
                    "expected a mapping",
                ),
            }
        }
    }
    Ok(())
}

fn syntax(file: &str, e: &LoadError) -> ImportError {
    let line = match e {
        LoadError::TopLevelMustBeMapping(m)
        | LoadError::TopLevelMustBeSequence(m)
        | LoadError::UnexpectedAnchor(m)
        | LoadError::MappingKeyMustBeScalar(m)
        | LoadError::UnexpectedTag(m)
        | LoadError::ScanError(m, _) => m.line(),
        _ => 1,
    };
    let message = match e {
        LoadError::UnexpectedAnchor(_) => {
            "YAML anchors and aliases (&name, *name, <<:) are not read; write the values out"
                .to_string()
        }
        other => format!("not a docker-compose file: {other}"),
    };
    ImportError::Syntax {
        file: file.to_string(),
        line,
        message,
    }
}

fn line_of(node: &Node) -> usize {
    node.span().start().map_or(1, |m| m.line())
}

/// The text of a scalar, or of a list of scalars joined as `sh` would read them back.
fn command_text(node: &Node) -> Option<String> {
    match node {
        Node::Scalar(s) => Some(s.as_str().to_string()),
        Node::Sequence(seq) => {
            let words: Option<Vec<String>> = seq
                .iter()
                .map(|n| n.as_scalar().map(|s| shell::quote(s.as_str())))
                .collect();
            words.map(|w| w.join(" "))
        }
        Node::Mapping(_) => None,
    }
}

fn service(
    out: &mut Import,
    file: &str,
    name: &str,
    line: usize,
    body: &marked_yaml::types::MarkedMappingNode,
) {
    let get = |k: &str| body.get_node(k);
    let image = get("image")
        .and_then(Node::as_scalar)
        .map(|s| s.as_str().to_string());
    let command = get("command").and_then(command_text);
    let entrypoint = get("entrypoint").and_then(command_text);
    // An entrypoint alone is the command; with both, the command is its arguments.
    let command = match (entrypoint, command) {
        (Some(e), Some(c)) => Some(format!("{e} {c}")),
        (e, c) => c.or(e),
    };
    let Some(command) = command else {
        let base = image
            .as_deref()
            .map(|i| i.rsplit('/').next().unwrap_or(i))
            .map(|i| i.split([':', '@']).next().unwrap_or(i))
            .unwrap_or_default();
        let why = IMAGES
            .iter()
            .find(|(n, _)| *n == base)
            .map(|(_, why)| why.to_string())
            .unwrap_or_else(|| {
                "no `command`: it runs its image's own program, and berth runs commands on \
                 this machine, not containers"
                    .to_string()
            });
        out.skip(file, line, &format!("{name}:"), why);
        return;
    };
    let mut s = Service {
        name: name.to_string(),
        // compose's `$$` is a `$` for the shell.
        command: command.replace("$$", "$"),
        instances: 1,
        // compose restarts nothing unless told to.
        restart: Some("never"),
        from: Some(Origin::new(file, line)),
        ..Service::default()
    };
    for (key, value) in body.iter() {
        let at = line_of(&Node::Scalar(key.clone()));
        let text = |v: &Node| match v {
            Node::Scalar(s) => format!("{}: {}", key.as_str(), s.as_str()),
            _ => format!("{}: …", key.as_str()),
        };
        let mut skip = |why: &str| out.skip(file, at, &text(value), why);
        match key.as_str() {
            "command" | "entrypoint" => {}
            "image" | "build" => skip(
                "berth runs the command on this machine: install what the image held here \
                 (a deploy's build step can do it, docs/deploy.md)",
            ),
            "working_dir" => s.cwd = value.as_scalar().map(|v| v.as_str().to_string()),
            "user" => match value.as_scalar().map(|v| v.as_str()) {
                Some(u) if !u.contains(':') && !u.starts_with(|c: char| c.is_ascii_digit()) => {
                    s.user = Some(u.to_string())
                }
                _ => skip("berth's `user` is a user name"),
            },
            "environment" => match environment(value) {
                Some(vars) => {
                    for (k, v) in vars {
                        match v {
                            _ if !crate::env_name(&k) => out.skip(
                                file,
                                at,
                                &format!("environment: {k}"),
                                "not a variable name berth's `env` takes ([A-Za-z_][A-Za-z0-9_]*)",
                            ),
                            // compose passes the variable on from its own environment;
                            // berth passes its environment to services as well.
                            None => s.notes.push(format!(
                                "{k}: passed on from berth's environment, as compose passed \
                                 it from its own"
                            )),
                            // Read at compose time from its environment; here by
                            // the command's shell.
                            Some(v) if reads_variables(&v) => s.exports.push((k, shell_value(&v))),
                            Some(v) => s.env.push((k, v.replace("$$", "$"))),
                        }
                    }
                }
                None => skip("expected a mapping or a list of KEY=value"),
            },
            "env_file" => match value {
                Node::Scalar(v) => s.env_file = Some(v.as_str().to_string()),
                Node::Sequence(seq) if seq.len() == 1 => {
                    s.env_file = seq[0].as_scalar().map(|v| v.as_str().to_string())
                }
                _ => skip("berth reads one env_file per service"),
            },
            "depends_on" => {
                let names: Vec<String> = match value {
                    Node::Sequence(seq) => seq
                        .iter()
                        .filter_map(|n| n.as_scalar().map(|v| v.as_str().to_string()))
                        .collect(),
                    Node::Mapping(m) => m.keys().map(|k| k.as_str().to_string()).collect(),
                    Node::Scalar(_) => Vec::new(),
                };
                s.depends_on = names;
            }
            "restart" => match value.as_scalar().map(|v| v.as_str()) {
                Some("always" | "unless-stopped") => s.restart = None,
                Some(v) if v.starts_with("on-failure") => s.restart = Some("on-failure"),
                Some("no") => {}
                _ => skip("expected always, unless-stopped, on-failure or no"),
            },
            "stop_signal" => {
                s.stop_signal = value.as_scalar().map(|v| v.as_str().to_ascii_uppercase())
            }
            "stop_grace_period" => s.stop_grace = value.as_scalar().map(|v| v.as_str().to_string()),
            "deploy" => match value.as_mapping() {
                Some(deploy) => {
                    for (k, v) in deploy.iter() {
                        let at = k.span().start().map_or(at, |m| m.line());
                        match (k.as_str(), v.as_scalar().map(|r| r.as_str().parse::<u32>())) {
                            ("replicas", Some(Ok(n))) if (1..=64).contains(&n) => s.instances = n,
                            ("replicas", _) => out.skip(
                                file,
                                at,
                                "deploy.replicas",
                                "berth runs 1 to 64 instances of a service",
                            ),
                            (other, _) => out.skip(
                                file,
                                at,
                                &format!("deploy.{other}"),
                                "berth reads deploy.replicas only",
                            ),
                        }
                    }
                }
                None => skip("expected a mapping"),
            },
            "ports" | "expose" => skip(
                "the command listens on this machine itself; a [[gateway.route]] with \
                 service = NAME publishes it",
            ),
            "healthcheck" => skip(
                "berth's ready and live checks: ready = { http = \"/health\" } or \
                 { command = \"…\" }",
            ),
            "volumes" => skip("the command reads this machine's files directly"),
            "logging" => skip("berth writes each instance's output to DATA_DIR/logs"),
            _ => skip("berth has no such setting for a service"),
        }
    }
    if body.get_node("restart").is_none() {
        s.notes.push(
            "restart = \"never\": compose's default; berth's (\"always\") restarts a process \
             that ends"
                .into(),
        );
    }
    if s.command.contains("crond") || s.command.starts_with("cron ") {
        s.notes.push(
            "berth's [schedule.NAME] tables replace crond: `berth import` the crontab too".into(),
        );
    }
    s.use_port();
    out.add_service(s);
}

/// Whether a compose value reads a variable (`$X`, `${X}`), not counting `$$`.
fn reads_variables(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            match b.get(i + 1) {
                Some(b'$') => i += 1,
                Some(c) if *c == b'{' || *c == b'_' || c.is_ascii_alphabetic() => return true,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

/// A compose value as the text between double quotes of a shell export: its variables
/// read by the shell, `$$` a literal `$`.
fn shell_value(value: &str) -> String {
    value
        .split("$$")
        .map(|part| {
            let mut out = String::new();
            for c in part.chars() {
                if matches!(c, '\\' | '"' | '`') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("\\$")
}

/// `environment` as pairs; a value of None (`FOO:`, `FOO: null`, or `FOO` in a list)
/// passes the variable on from the environment.
fn environment(node: &Node) -> Option<Vec<(String, Option<String>)>> {
    let null = |v: &str| matches!(v, "" | "~" | "null" | "Null" | "NULL");
    match node {
        Node::Mapping(m) => m
            .iter()
            .map(|(k, v)| {
                let v = v.as_scalar()?;
                let value = (!(null(v.as_str()) && v.may_coerce())).then(|| v.as_str().to_string());
                Some((k.as_str().to_string(), value))
            })
            .collect(),
        Node::Sequence(seq) => seq
            .iter()
            .map(|n| {
                let item = n.as_scalar()?.as_str();
                Some(match item.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (item.to_string(), None),
                })
            })
            .collect(),
        Node::Scalar(_) => None,
    }
}
