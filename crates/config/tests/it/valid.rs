//! Configs that must be accepted, and the values they produce.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_config::{
    Api, App, Backoff, CheckConfig, Config, Durability, Handler, PortRange, ProbeConfig,
    QueueConfig, Retention, STARTER, ServiceConfig, StoreChoice,
};

use crate::{valid, with_app};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

#[test]
fn starter_parses_and_validates() {
    let config = valid(STARTER);
    assert_eq!(config.app.name, "myapp");
    assert_eq!(
        config.queues.keys().collect::<Vec<_>>(),
        ["default", "emails"]
    );
    let default = &config.queues["default"];
    assert!(
        matches!(&default.handler, Handler::Run { command } if command.contains("BERTH_JOB_ID"))
    );
    assert_eq!(config.queues["emails"].concurrency, 2);
    // The example service is commented out.
    assert!(config.services.is_empty());
}

#[test]
fn starter_commands_run_with_sh() {
    let config = valid(STARTER);
    let Handler::Run { command } = &config.queues["default"].handler else {
        panic!("the default queue should have a run handler");
    };
    let output = Command::new("sh")
        .args(["-c", command])
        .env("BERTH_JOB_ID", "42")
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "job 42\n");
}

/// Uncommenting the option lines of the starter (except those that pick an
/// alternative) must change nothing: the comments show the defaults.
#[test]
fn starter_comments_show_the_defaults() {
    let uncommented: String = STARTER
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if is_option_line(rest) => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(
        uncommented, STARTER,
        "the starter should show options in comments"
    );
    let mut uncommented = valid(&uncommented);
    // `listen` shows an example address: there is no TCP listener by default.
    assert_eq!(
        uncommented.api.listen,
        Some("127.0.0.1:7070".parse().unwrap())
    );
    uncommented.api.listen = None;
    // `store = "sqlite"` names the default store explicitly.
    assert_eq!(uncommented.app.store, StoreChoice::Sqlite);
    // The example service exists once uncommented: its command and port are
    // examples, every other line shows a default.
    let web = uncommented
        .services
        .remove("web")
        .expect("the example service");
    assert_eq!(
        web,
        ServiceConfig {
            ports: Some(PortRange {
                first: 8000,
                last: 8000
            }),
            ready: Some(ProbeConfig {
                check: CheckConfig::Http("/".into()),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(2),
            }),
            ..ServiceConfig::new("web", "python3 -m http.server {port} --bind 127.0.0.1")
        }
    );
    // The example schedule and workflow exist once uncommented, with the default
    // policies; their expressions and steps are examples.
    let cleanup = uncommented
        .schedules
        .remove("cleanup")
        .expect("the example schedule");
    assert_eq!(
        (cleanup.overlap, cleanup.catch_up, cleanup.timezone.as_str()),
        (
            berth_config::Overlap::Skip,
            berth_config::CatchUp::Once,
            "UTC"
        )
    );
    let publish = uncommented
        .workflows
        .remove("publish")
        .expect("the example workflow");
    assert_eq!(publish.steps["render"].parents, vec!["fetch"]);
    assert_eq!(publish.steps["render"].queue.max_attempts, 3);
    // The example gateway serves a static dir and the web service behind a login and
    // a budget.
    let gateway = uncommented.gateway.take().expect("the example gateway");
    assert_eq!(gateway.tls, Some(berth_config::TlsConfig::SelfSigned));
    assert_eq!(gateway.routes.len(), 2);
    assert_eq!(gateway.routes[1].budget.as_deref(), Some("nlu"));
    let nlu = uncommented
        .budgets
        .remove("nlu")
        .expect("the example budget");
    assert_eq!((nlu.limit, nlu.cost_per_request), (10.0, 0.002));
    assert_eq!(uncommented, valid(STARTER));
}

/// `key = value` or a `[table]` header, but not the handler alternatives.
fn is_option_line(line: &str) -> bool {
    if line.starts_with('[') {
        return true;
    }
    match line.split_once(" = ") {
        Some((key, _)) => {
            key != "handler" && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        }
        None => false,
    }
}

#[test]
fn defaults() {
    let config = crate::parse_at("[app]\nname = \"shop\"\n", "/srv/shop/berth.toml");
    assert_eq!(
        config,
        Config {
            path: PathBuf::from("/srv/shop/berth.toml"),
            app: App {
                name: "shop".into(),
                data_dir: PathBuf::from("/srv/shop/.berth"),
                durability: Durability::Full,
                shutdown_grace: 30 * SECOND,
                store: StoreChoice::Sqlite,
                store_connections: 16,
                leader_ttl: 15 * SECOND,
                lease_ttl: 60 * SECOND,
            },
            api: Api {
                listen: None,
                token_env: "BERTH_API_TOKEN".into(),
            },
            queues: BTreeMap::new(),
            services: BTreeMap::new(),
            schedules: BTreeMap::new(),
            workflows: BTreeMap::new(),
            gateway: None,
            budgets: BTreeMap::new(),
            ingests: BTreeMap::new(),
            backup: None,
            notify: BTreeMap::new(),
            deploy: None,
        }
    );
}

#[test]
fn queue_defaults() {
    let config = valid(&with_app("[queue.default]\n"));
    assert_eq!(
        config.queues["default"],
        QueueConfig {
            name: "default".into(),
            concurrency: 10,
            handler: Handler::Pull,
            max_attempts: 25,
            backoff: Backoff {
                initial: SECOND,
                max: HOUR,
                factor: 2.0,
                jitter: 0.1,
            },
            timeout: 30 * MINUTE,
            retention: Retention {
                completed: DAY,
                discarded: 7 * DAY,
                cancelled: 7 * DAY,
            },
        }
    );
    assert_eq!(config.queues["default"], QueueConfig::new("default"));
}

#[test]
fn relative_config_path_keeps_data_dir_relative() {
    let config = valid("[app]\nname = \"x\"\n");
    assert_eq!(config.path, Path::new("berth.toml"));
    assert_eq!(config.app.data_dir, Path::new(".berth"));
}

#[test]
fn every_key() {
    let text = r#"
[app]
name = "Chat_bot-2"
data_dir = "state"
durability = "normal"
shutdown_grace = "1m 30s"
store = "postgres://berth:s3cret@db.internal:5433/chat"
store_connections = 40
leader_ttl = "5s"

[api]
listen = "0.0.0.0:7070"
token_env = "CHAT_TOKEN"

[queue.imports]
concurrency = 4
handler = { run = "python3 manage.py import {args.file}" }
max_attempts = 3
backoff = { initial = "500ms", max = "10m", factor = 3, jitter = 0.5 }
timeout = "2h"
retention = { completed = "12h", discarded = "30days", cancelled = "0s" }

[queue.hooks]
handler = { post = "http://127.0.0.1:8000/jobs" }
concurrency = 10000
max_attempts = 1000

[queue.workers]
handler = "pull"
concurrency = 1
max_attempts = 1
backoff.jitter = 0
backoff.factor = 1.0

[queue.workers.retention]
completed = "1h"
"#;
    let config = crate::parse_at(text, "/srv/chat/berth.toml");
    assert_eq!(
        config.app,
        App {
            name: "Chat_bot-2".into(),
            data_dir: PathBuf::from("/srv/chat/state"),
            durability: Durability::Normal,
            shutdown_grace: 90 * SECOND,
            store: StoreChoice::Postgres {
                url: "postgres://berth:s3cret@db.internal:5433/chat".into()
            },
            store_connections: 40,
            leader_ttl: 5 * SECOND,
            lease_ttl: 60 * SECOND,
        }
    );
    assert_eq!(
        config.app.store.redacted(),
        "postgres://berth:***@db.internal:5433/chat"
    );
    assert!(!format!("{:?}", config.app.store).contains("s3cret"));
    assert_eq!(
        config.api,
        Api {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 7070))),
            token_env: "CHAT_TOKEN".into(),
        }
    );
    assert_eq!(
        config.queues["imports"],
        QueueConfig {
            name: "imports".into(),
            concurrency: 4,
            handler: Handler::Run {
                command: "python3 manage.py import {args.file}".into()
            },
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_millis(500),
                max: 10 * MINUTE,
                factor: 3.0,
                jitter: 0.5,
            },
            timeout: 2 * HOUR,
            retention: Retention {
                completed: 12 * HOUR,
                discarded: 30 * DAY,
                cancelled: Duration::ZERO,
            },
        }
    );
    let hooks = &config.queues["hooks"];
    assert_eq!(
        hooks.handler,
        Handler::Post {
            url: "http://127.0.0.1:8000/jobs".into()
        }
    );
    assert_eq!((hooks.concurrency, hooks.max_attempts), (10_000, 1_000));
    let workers = &config.queues["workers"];
    assert_eq!(workers.handler, Handler::Pull);
    assert_eq!((workers.concurrency, workers.max_attempts), (1, 1));
    assert_eq!((workers.backoff.factor, workers.backoff.jitter), (1.0, 0.0));
    assert_eq!(workers.retention.completed, HOUR);
    assert_eq!(workers.retention.discarded, 7 * DAY);
}

#[test]
fn absolute_data_dir_is_kept() {
    let text = "[app]\nname = \"x\"\ndata_dir = \"/var/lib/berth\"\n";
    let config = crate::parse_at(text, "/srv/x/berth.toml");
    assert_eq!(config.app.data_dir, Path::new("/var/lib/berth"));
}

#[test]
fn dotted_keys_and_zero_queues() {
    let config = valid("app.name = \"x\"\napp.durability = \"full\"\n");
    assert_eq!(config.app.name, "x");
    assert!(config.queues.is_empty());
    let config = valid("app = { name = \"x\" }\n");
    assert_eq!(config.app.name, "x");
}

#[test]
fn post_urls_are_kept_as_written() {
    for url in [
        "http://localhost/jobs",
        "http://[::1]:8000/x?y=1",
        "http://app",
    ] {
        let config = valid(&with_app(&format!(
            "[queue.q]\nhandler = {{ post = \"{url}\" }}\n"
        )));
        assert_eq!(
            config.queues["q"].handler,
            Handler::Post { url: url.into() }
        );
    }
}
