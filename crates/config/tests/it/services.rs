//! `[service.NAME]` tables: defaults, every key, and each error with its location.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_config::{
    CheckConfig, CrashLoopConfig, PortRange, Restart, ServiceBackoff, ServiceConfig,
};

use crate::{diagnostics, one_error, valid, with_app};

const SERVICE_KEYS: &str = "command, cwd, env, env_file, instances, port, ports, user, ready, \
                            start_timeout, live, restart, stop_signal, \
                            stop_grace, backoff, crash_loop, depends_on, log_max_size, log_keep";

const MIB: u64 = 1024 * 1024;

#[test]
fn defaults() {
    let config = valid(&with_app("[service.web]\ncommand = \"./serve\"\n"));
    assert_eq!(
        config.services,
        BTreeMap::from([(
            "web".to_owned(),
            ServiceConfig {
                name: "web".into(),
                command: "./serve".into(),
                cwd: None,
                env: BTreeMap::new(),
                env_file: None,
                instances: 1,
                ports: None,
                user: None,
                ready: None,
                start_timeout: Duration::from_secs(60),
                live: None,
                restart: Restart::Always,
                stop_signal: "SIGTERM".into(),
                stop_grace: Duration::from_secs(10),
                backoff: ServiceBackoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(30),
                    factor: 2.0,
                },
                crash_loop: CrashLoopConfig {
                    max_exits: 5,
                    window: Duration::from_secs(60),
                },
                depends_on: Vec::new(),
                log_max_size: 10 * MIB,
                log_keep: 5,
            }
        )])
    );
    assert_eq!(config.services["web"], ServiceConfig::new("web", "./serve"));
    assert_eq!(ServiceBackoff::default(), config.services["web"].backoff);
    assert_eq!(
        CrashLoopConfig::default(),
        config.services["web"].crash_loop
    );
    assert_eq!(Restart::default(), Restart::Always);
}

#[test]
fn configs_without_services_still_parse() {
    let config = valid(&with_app("[queue.default]\nhandler = { run = \"true\" }\n"));
    assert!(config.services.is_empty());
    assert_eq!(config.queues.len(), 1);
    assert!(valid("[app]\nname = \"x\"\n").services.is_empty());
}

#[test]
fn every_key() {
    let text = r#"
[app]
name = "chat"

[service.api]
command = "gunicorn main:app -b 127.0.0.1:{port}"
cwd = "backend"
env = { DJANGO_SETTINGS_MODULE = "chat.settings", _X1 = "", PORT = "override" }
env_file = "/etc/chat/secrets.env"
instances = 4
port = 8000
restart = "on-failure"
stop_signal = "int"
stop_grace = "0s"
backoff = { initial = "1s", max = "1m", factor = 3 }
crash_loop = { max_exits = 1, window = "5m" }
depends_on = ["db", "queue-consumer"]
log_max_size = "500KB"
log_keep = 0

[service.db]
command = "postgres -D data"
restart = "never"
stop_signal = "SIGQUIT"
log_max_size = 4096
log_keep = 100
instances = 64

[service.queue-consumer]
command = "python3 consume.py"
depends_on = ["db"]
port = 65472
instances = 64
log_max_size = "1 GiB"

[service.queue-consumer.backoff]
factor = 1.0

[service.queue-consumer.env]
A = "1"
"#;
    let config = crate::parse_at(text, "/srv/chat/berth.toml");
    assert_eq!(
        config.services.keys().collect::<Vec<_>>(),
        ["api", "db", "queue-consumer"]
    );
    assert_eq!(
        config.services["api"],
        ServiceConfig {
            name: "api".into(),
            command: "gunicorn main:app -b 127.0.0.1:{port}".into(),
            cwd: Some(PathBuf::from("/srv/chat/backend")),
            env: BTreeMap::from([
                ("DJANGO_SETTINGS_MODULE".into(), "chat.settings".into()),
                ("_X1".into(), String::new()),
                ("PORT".into(), "override".into()),
            ]),
            env_file: Some(PathBuf::from("/etc/chat/secrets.env")),
            instances: 4,
            ports: Some(PortRange {
                first: 8000,
                last: 8003
            }),
            user: None,
            ready: None,
            start_timeout: Duration::from_secs(60),
            live: None,
            restart: Restart::OnFailure,
            stop_signal: "SIGINT".into(),
            stop_grace: Duration::ZERO,
            backoff: ServiceBackoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(60),
                factor: 3.0,
            },
            crash_loop: CrashLoopConfig {
                max_exits: 1,
                window: Duration::from_secs(300),
            },
            depends_on: vec!["db".into(), "queue-consumer".into()],
            log_max_size: 500_000,
            log_keep: 0,
        }
    );
    let db = &config.services["db"];
    assert_eq!(db.restart, Restart::Never);
    assert_eq!(db.stop_signal, "SIGQUIT");
    assert_eq!(
        (db.log_max_size, db.log_keep, db.instances),
        (4096, 100, 64)
    );
    let consumer = &config.services["queue-consumer"];
    assert_eq!(consumer.depends_on, ["db"]);
    // 65472 + 63 = 65535: the last instance gets the last port.
    assert_eq!(
        consumer.ports,
        Some(PortRange {
            first: 65472,
            last: 65535
        })
    );
    assert_eq!(consumer.log_max_size, 1024 * MIB);
    assert_eq!(consumer.backoff.factor, 1.0);
    assert_eq!(consumer.env["A"], "1");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let text = with_app("[service.w]\ncommand = \"x\"\ncwd = \"a/b\"\nenv_file = \".env\"\n");
    let config = crate::parse_at(&text, "/srv/x/berth.toml");
    let w = &config.services["w"];
    assert_eq!(w.cwd.as_deref(), Some(std::path::Path::new("/srv/x/a/b")));
    assert_eq!(
        w.env_file.as_deref(),
        Some(std::path::Path::new("/srv/x/.env"))
    );
    // The env file is not read: it need not exist.
    let config = valid(&text);
    assert_eq!(
        config.services["w"].env_file.as_deref(),
        Some(std::path::Path::new(".env"))
    );
}

#[test]
fn every_signal_spelling() {
    for (written, stored) in [
        ("TERM", "SIGTERM"),
        ("sigterm", "SIGTERM"),
        ("INT", "SIGINT"),
        ("Quit", "SIGQUIT"),
        ("HUP", "SIGHUP"),
        ("usr1", "SIGUSR1"),
        ("SIGUSR2", "SIGUSR2"),
        ("KILL", "SIGKILL"),
    ] {
        let text = with_app(&format!(
            "[service.w]\ncommand = \"x\"\nstop_signal = \"{written}\"\n"
        ));
        assert_eq!(valid(&text).services["w"].stop_signal, stored, "{written}");
    }
}

#[test]
fn missing_command() {
    let text = with_app("[service.web]\nport = 8000\n");
    assert_eq!(
        one_error(&text),
        (
            4,
            1,
            "missing `command` in [service.web]: expected a line such as \
             `command = \"gunicorn app:app -b 127.0.0.1:{port}\"`"
                .into()
        )
    );
    let (line, column, message) = one_error(&with_app("[service.web]\ncommand = \"  \"\n"));
    assert_eq!((line, column), (5, 11));
    assert_eq!(
        message,
        "invalid command \"  \" for `command` in [service.web]: expected a shell command such \
         as \"gunicorn app:app -b 127.0.0.1:{port}\""
    );
}

#[test]
fn port_placeholder_without_port() {
    let text = with_app("[service.web]\ninstances = 2\ncommand = \"serve --port {port}\"\n");
    assert_eq!(
        one_error(&text),
        (
            6,
            11,
            "`command` uses {port} but no `port` is set in [service.web]; add e.g. port = 8000 \
             (instance i gets port + i)"
                .into()
        )
    );
}

#[test]
fn ports_past_65535() {
    let text = with_app("[service.web]\ncommand = \"x\"\nport = 65530\ninstances = 10\n");
    assert_eq!(
        one_error(&text),
        (
            6,
            8,
            "ports 65530 to 65539 for the 10 instances in [service.web] go past 65535: \
             expected `port` to be at most 65526"
                .into()
        )
    );
    let (line, column, message) =
        one_error(&with_app("[service.web]\ncommand = \"x\"\nport = 70000\n"));
    assert_eq!((line, column), (6, 8));
    assert_eq!(
        message,
        "invalid value 70000 for `port` in [service.web]: expected an integer from 1 to 65535"
    );
    // A port that is itself bad is not reported again for {port}.
    let (_, _, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x {port}\"\nport = 0\n",
    ));
    assert!(
        message.starts_with("invalid value 0 for `port`"),
        "{message}"
    );
}

#[test]
fn bad_restart() {
    let text = with_app("[service.web]\ncommand = \"x\"\nrestart = \"on_failure\"\n");
    assert_eq!(
        one_error(&text),
        (
            6,
            11,
            "invalid value \"on_failure\" for `restart` in [service.web]: expected \"always\", \
             \"on-failure\" or \"never\""
                .into()
        )
    );
}

#[test]
fn bad_signal() {
    let text = with_app("[service.web]\ncommand = \"x\"\nstop_signal = \"SIGSTOP\"\n");
    assert_eq!(
        one_error(&text),
        (
            6,
            15,
            "invalid signal \"SIGSTOP\" for `stop_signal` in [service.web]: expected one of \
             \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\", \"SIGUSR1\", \"SIGUSR2\" or \
             \"SIGKILL\" (the SIG prefix is optional)"
                .into()
        )
    );
    let (line, column, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\nstop_signal = 15\n",
    ));
    assert_eq!((line, column), (6, 15));
    assert_eq!(
        message,
        "wrong type for `stop_signal` in [service.web]: found an integer, expected a string"
    );
}

#[test]
fn unknown_dependency_with_did_you_mean() {
    let text = with_app(
        "[service.web]\ncommand = \"x\"\ndepends_on = [\"postgress\"]\n\n\
         [service.postgres]\ncommand = \"y\"\n\n[service.redis]\ncommand = \"z\"\n",
    );
    assert_eq!(
        one_error(&text),
        (
            6,
            15,
            "unknown service `postgress` in `depends_on` in [service.web]; did you mean \
             `postgres`? expected one of: postgres, redis"
                .into()
        )
    );
    // Nothing close: the list alone. No other service: say what is expected.
    let text = with_app("[service.web]\ncommand = \"x\"\ndepends_on = [\"db\", \"cache\"]\n");
    let found = diagnostics(&text);
    let found: Vec<_> = found
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                6,
                15,
                "unknown service `db` in `depends_on` in [service.web]; expected the name of \
                 another [service.NAME] in this file"
            ),
            (
                6,
                21,
                "unknown service `cache` in `depends_on` in [service.web]; expected the name of \
                 another [service.NAME] in this file"
            ),
        ]
    );
}

#[test]
fn bad_depends_on_shapes() {
    let (line, column, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\ndepends_on = \"db\"\n[service.db]\ncommand = \"y\"\n",
    ));
    assert_eq!((line, column), (6, 14));
    assert_eq!(
        message,
        "wrong type for `depends_on` in [service.web]: found a string, expected an array of \
         service names such as [\"db\"]"
    );
    let (line, column, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\ndepends_on = [\"db\", 1]\n[service.db]\ncommand = \"y\"\n",
    ));
    assert_eq!((line, column), (6, 21));
    assert!(
        message.starts_with("wrong type for `depends_on`"),
        "{message}"
    );
    let found = diagnostics(&with_app(
        "[service.web]\ncommand = \"x\"\ndepends_on = [\"db\", \"db\"]\n[service.db]\ncommand = \"y\"\n",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].line, found[0].column), (6, 21));
    assert_eq!(
        found[0].message,
        "`db` appears twice in `depends_on` in [service.web]: expected each service once"
    );
}

#[test]
fn a_cycle_is_reported_once() {
    let text = with_app(
        "[service.c]\ncommand = \"x\"\ndepends_on = [\"a\"]\n\n\
         [service.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n\n\
         [service.b]\ncommand = \"x\"\ndepends_on = [\"c\"]\n\n\
         [service.d]\ncommand = \"x\"\ndepends_on = [\"a\"]\n",
    );
    assert_eq!(
        one_error(&text),
        (
            10,
            1,
            "dependency cycle in `depends_on` in [service.a]: a → b → c → a; expected services \
             that do not depend on each other in a loop (remove one of these dependencies)"
                .into()
        )
    );
}

#[test]
fn a_service_depending_on_itself_is_a_cycle() {
    let text = with_app("[service.web]\ncommand = \"x\"\ndepends_on = [\"web\"]\n");
    let (line, column, message) = one_error(&text);
    assert_eq!((line, column), (6, 1));
    assert!(
        message.starts_with("dependency cycle in `depends_on` in [service.web]: web → web;"),
        "{message}"
    );
}

#[test]
fn dependencies_without_cycles_are_accepted() {
    // A diamond: two paths to one service are not a cycle.
    let text = with_app(
        "[service.web]\ncommand = \"x\"\ndepends_on = [\"api\", \"db\"]\n\
         [service.api]\ncommand = \"x\"\ndepends_on = [\"db\"]\n\
         [service.db]\ncommand = \"x\"\n",
    );
    let config = valid(&text);
    assert_eq!(config.services["web"].depends_on, ["api", "db"]);
}

#[test]
fn bad_env_var_names() {
    let text = with_app(
        "[service.web]\ncommand = \"x\"\nenv = { \"MY-VAR\" = \"1\", OK = \"2\", 1ST = \"3\" }\n",
    );
    let found = diagnostics(&text);
    let found: Vec<_> = found
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                6,
                9,
                "invalid environment variable name `MY-VAR` in [service.web.env]: expected \
                 ASCII letters, digits and `_`, not starting with a digit, such as \
                 DJANGO_SETTINGS_MODULE"
            ),
            (
                6,
                35,
                "invalid environment variable name `1ST` in [service.web.env]: expected ASCII \
                 letters, digits and `_`, not starting with a digit, such as \
                 DJANGO_SETTINGS_MODULE"
            ),
        ]
    );
}

#[test]
fn env_values_must_be_strings_and_are_never_echoed() {
    let (line, column, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\nenv = { DEBUG = 1 }\n",
    ));
    assert_eq!((line, column), (6, 17));
    assert_eq!(
        message,
        "wrong type for `DEBUG` in [service.web.env]: found an integer, expected a string \
         (quote numbers: \"1\")"
    );
    let (_, _, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\nenv = { TOKEN = \"s3cret\\u0000\" }\n",
    ));
    assert!(message.contains("NUL character"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
    let (_, _, message) = one_error(&with_app("[service.web]\ncommand = \"x\"\nenv = \"A=1\"\n"));
    assert!(
        message.starts_with("wrong type for `env` in [service.web]: found a string"),
        "{message}"
    );
}

#[test]
fn bad_log_sizes() {
    for (value, column) in [
        ("\"10 parsecs\"", 16),
        ("\"0MiB\"", 16),
        ("0", 16),
        ("-1", 16),
        ("\"1.5MiB\"", 16),
    ] {
        let text = with_app(&format!(
            "[service.web]\ncommand = \"x\"\nlog_max_size = {value}\n"
        ));
        let (line, col, message) = one_error(&text);
        assert_eq!((line, col), (6, column), "{value}");
        assert_eq!(
            message,
            format!(
                "invalid size {value} for `log_max_size` in [service.web]: expected a size \
                 greater than zero: a number of bytes, or a string such as \"10MiB\", \"500KB\" \
                 or \"1GiB\" (units B, KB, MB, GB, KiB, MiB, GiB)"
            ),
            "{value}"
        );
    }
    let (_, _, message) = one_error(&with_app(
        "[service.web]\ncommand = \"x\"\nlog_max_size = 1.5\n",
    ));
    assert_eq!(
        message,
        "wrong type for `log_max_size` in [service.web]: found a float, expected a size such as \
         \"10MiB\" or a number of bytes"
    );
}

#[test]
fn other_bad_values() {
    for (line, expected) in [
        (
            "instances = 0",
            "invalid value 0 for `instances` in [service.web]: expected an integer from 1 to 64",
        ),
        (
            "instances = 65",
            "invalid value 65 for `instances` in [service.web]: expected an integer from 1 to 64",
        ),
        (
            "log_keep = 101",
            "invalid value 101 for `log_keep` in [service.web]: expected an integer from 0 to 100",
        ),
        (
            "stop_grace = 10",
            "invalid duration 10 for `stop_grace` in [service.web]: a bare number has no unit",
        ),
        (
            "cwd = \"\"",
            "invalid path \"\" for `cwd` in [service.web]: expected a path such as \"backend\"",
        ),
        (
            "env_file = \"\"",
            "invalid path \"\" for `env_file` in [service.web]: expected a path such as \".env\"",
        ),
        (
            "backoff = { initial = \"0s\" }",
            "invalid duration \"0s\" for `initial` in [service.web.backoff]: expected a \
             duration greater than zero",
        ),
        (
            "backoff = { initial = \"1m\" }",
            "invalid backoff in [service.web.backoff]: `max` (30s) is shorter than `initial` \
             (1m); expected `max` to be at least `initial`",
        ),
        (
            "backoff = { factor = 0.5 }",
            "invalid value 0.5 for `factor` in [service.web.backoff]: expected a number of at \
             least 1.0",
        ),
        (
            "backoff = { jitter = 0.1 }",
            "unknown key `jitter` in [service.web.backoff]; expected one of: initial, max, factor",
        ),
        (
            "crash_loop = { max_exits = 0 }",
            "invalid value 0 for `max_exits` in [service.web.crash_loop]: expected an integer \
             from 1 to 1000",
        ),
        (
            "crash_loop = { window = \"0s\" }",
            "invalid duration \"0s\" for `window` in [service.web.crash_loop]: expected a \
             duration greater than zero",
        ),
        (
            "crash_loop = 5",
            "wrong type for `crash_loop` in [service.web]: found an integer, expected a table \
             such as crash_loop = { max_exits = 5, window = \"60s\" }",
        ),
    ] {
        let text = with_app(&format!("[service.web]\ncommand = \"x\"\n{line}\n"));
        let (found_line, _, message) = one_error(&text);
        assert_eq!(found_line, 6, "{line}");
        assert!(message.starts_with(expected), "{line}: {message}");
    }
}

#[test]
fn unknown_key_with_did_you_mean() {
    let text = with_app("[service.web]\ncommand = \"x\"\ninstance = 2\n");
    assert_eq!(
        one_error(&text),
        (
            6,
            1,
            format!(
                "unknown key `instance` in [service.web]; did you mean `instances`? expected one \
                 of: {SERVICE_KEYS}"
            )
        )
    );
}

#[test]
fn bad_service_names_and_shapes() {
    let (line, column, message) = one_error(&with_app("[service.Web]\ncommand = \"x\"\n"));
    assert_eq!((line, column), (4, 10));
    assert_eq!(
        message,
        "invalid service name `Web`: expected 1 to 64 lowercase letters, digits, `_` or `-`, \
         starting with a letter or digit, such as [service.web]"
    );
    let (line, column, message) = one_error("service = \"web\"\n[app]\nname = \"x\"\n");
    assert_eq!((line, column), (1, 11));
    assert_eq!(
        message,
        "wrong type for `service` at the top level: found a string, expected tables such as \
         [service.web]"
    );
    let (_, _, message) = one_error(&with_app("[service]\nweb = \"gunicorn\"\n"));
    assert_eq!(
        message,
        "wrong type for `web` in [service]: found a string, expected a table such as [service.web]"
    );
}

#[test]
fn port_ranges_checks_and_user() {
    let text = with_app(
        "[service.web]\ncommand = \"serve {port}\"\nports = \"8000-8004\"\ninstances = 4\n\
         user = \"www-data\"\nready = { http = \"/healthz\", interval = \"250ms\" }\n\
         start_timeout = \"5s\"\nlive = { tcp = true, failures = 2 }\n\n\
         [service.db]\ncommand = \"db\"\nready = { command = \"pg_isready\", timeout = \"1s\" }\n",
    );
    let config = valid(&text);
    let web = &config.services["web"];
    assert_eq!(
        web.ports,
        Some(PortRange {
            first: 8000,
            last: 8004
        })
    );
    assert_eq!(web.user.as_deref(), Some("www-data"));
    let ready = web.ready.as_ref().unwrap();
    assert_eq!(ready.check, CheckConfig::Http("/healthz".into()));
    assert_eq!(
        (ready.interval, ready.timeout),
        (Duration::from_millis(250), Duration::from_secs(2))
    );
    assert_eq!(web.start_timeout, Duration::from_secs(5));
    let live = web.live.as_ref().unwrap();
    assert_eq!(
        (&live.probe.check, live.probe.interval, live.failures),
        (&CheckConfig::Tcp, Duration::from_secs(10), 2)
    );
    let db = config.services["db"].ready.as_ref().unwrap();
    assert_eq!(db.check, CheckConfig::Command("pg_isready".into()));
    assert_eq!(db.timeout, Duration::from_secs(1));
}

#[test]
fn bad_ports_checks_and_users_are_explained() {
    let cases = [
        (
            "port = 8000\nports = \"8000-8001\"\n",
            "both `port` and `ports` are set in [service.web]: expected one of them",
        ),
        (
            "instances = 3\nports = \"8000-8001\"\n",
            "invalid port range \"8000-8001\" for `ports` in [service.web]: expected a range \
             \"FIRST-LAST\" of ports from 1 to 65535 with room for the 3 instance(s)",
        ),
        (
            "ports = \"8000\"\n",
            "invalid port range \"8000\" for `ports`",
        ),
        (
            "ready = { }\n",
            "no check given in [service.web.ready]: expected exactly one of `http = \"/healthz\"`, \
             `tcp = true` or `command = \"…\"`",
        ),
        (
            "port = 8000\nready = { tcp = true, http = \"/\" }\n",
            "2 checks given (http, tcp) in [service.web.ready]",
        ),
        (
            "ready = { http = \"/healthz\" }\n",
            "the `http` check in [service.web.ready] connects to the instance's port, but the \
             service has none: set `port` (or `ports`), or check with `command = \"…\"`",
        ),
        (
            "port = 8000\nready = { http = \"healthz\" }\n",
            "expected a URL path starting with `/`",
        ),
        (
            "port = 8000\nready = { tcp = \"yes\" }\n",
            "wrong type for `tcp` in [service.web.ready]: found a string, expected `true`",
        ),
        (
            "live = { command = \"true\", failures = 0 }\n",
            "invalid value 0 for `failures` in [service.web.live]: expected an integer from 1 to 100",
        ),
        (
            "live = { command = \"true\", every = \"1s\" }\n",
            "unknown key `every` in [service.web.live]",
        ),
        (
            "user = \"root; rm\"\n",
            "invalid user name \"root; rm\" for `user` in [service.web]",
        ),
        (
            "start_timeout = \"0s\"\n",
            "expected a duration greater than zero",
        ),
    ];
    for (keys, expected) in cases {
        let text = with_app(&format!("[service.web]\ncommand = \"x\"\n{keys}"));
        let (_, _, message) = one_error(&text);
        assert!(message.contains(expected), "{keys}: {message}");
    }
}
