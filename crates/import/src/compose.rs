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
    let Some(mut command) = command else {
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
    if let Some(entrypoint) = entrypoint {
        command = format!("{entrypoint} {command}");
    }
    let mut s = Service {
        name: name.to_string(),
        command,
        instances: 1,
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
                Some(vars) => s.env.extend(vars),
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
            "restart" => {
                s.restart = match value.as_scalar().map(|v| v.as_str()) {
                    Some("always" | "unless-stopped") => None,
                    Some("on-failure") => Some("on-failure"),
                    Some("no") | Some("\"no\"") => Some("never"),
                    _ => {
                        skip("expected always, unless-stopped, on-failure or no");
                        None
                    }
                }
            }
            "stop_signal" => {
                s.stop_signal = value.as_scalar().map(|v| v.as_str().to_ascii_uppercase())
            }
            "stop_grace_period" => s.stop_grace = value.as_scalar().map(|v| v.as_str().to_string()),
            "deploy" => {
                let replicas = value
                    .as_mapping()
                    .and_then(|m| m.get_scalar("replicas"))
                    .and_then(|r| r.as_str().parse::<u32>().ok());
                match replicas {
                    Some(n) if (1..=64).contains(&n) => s.instances = n,
                    _ => skip("berth reads deploy.replicas (1 to 64) only"),
                }
            }
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
    if s.command.contains("crond") || s.command.starts_with("cron ") {
        s.notes.push(
            "berth's [schedule.NAME] tables replace crond: `berth import` the crontab too".into(),
        );
    }
    s.use_port();
    out.add_service(s);
}

fn environment(node: &Node) -> Option<Vec<(String, String)>> {
    match node {
        Node::Mapping(m) => m
            .iter()
            .map(|(k, v)| Some((k.as_str().to_string(), v.as_scalar()?.as_str().to_string())))
            .collect(),
        Node::Sequence(seq) => seq
            .iter()
            .map(|n| {
                let (k, v) = n.as_scalar()?.as_str().split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        Node::Scalar(_) => None,
    }
}
