//! `berth import` against the configuration snippets of the five runbooks (and a
//! Procfile): each folder of `tests/fixtures` holds the files a team had, read in name
//! order, and `expected.toml`, the berth.toml they must give. The result must also be a
//! config berth reads (the files it names need not exist here: `berth check` on real
//! paths is the CLI's test).
//!
//! `BLESS=1 cargo test -p berth-import` rewrites the expected files after a deliberate
//! change; read the diff before committing it.

use std::path::{Path, PathBuf};

use berth_import::{Format, Input, Options, import};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn inputs(dir: &Path) -> Vec<Input> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "expected.toml")
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|p| Input {
            file: p.file_name().unwrap().to_string_lossy().into_owned(),
            text: std::fs::read_to_string(&p).unwrap(),
            format: None,
        })
        .collect()
}

fn check(team: &str) -> berth_import::Import {
    let dir = fixtures().join(team);
    let options = Options {
        app: team.to_string(),
        time_zone: None,
    };
    let out = import(&inputs(&dir), &options).unwrap();
    let toml = out.to_toml();
    let expected_path = dir.join("expected.toml");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, &toml).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        toml == expected,
        "{team}: the import changed; BLESS=1 rewrites tests/fixtures/{team}/expected.toml\n\
         --- got ---\n{toml}"
    );
    if let Err(e) = berth_config::parse(&toml, &dir.join("berth.toml")) {
        panic!("{team}: berth does not read the import:\n{e}\n{toml}");
    }
    out
}

fn skipped(out: &berth_import::Import) -> Vec<String> {
    out.skipped
        .iter()
        .map(|s| format!("{}: {}", s.at, s.text))
        .collect()
}

#[test]
fn joyce_supervisor_and_nginx() {
    let out = check("joyce");
    let s = &out.services[0];
    assert_eq!(s.name, "joyce");
    assert_eq!(
        s.command,
        "/opt/miniconda3/envs/joyce/bin/gunicorn main:application -b 0.0.0.0:{port} -w 4"
    );
    assert_eq!(s.port, Some(5000));
    let gw = out.gateway.as_ref().unwrap();
    assert_eq!(gw.listen, ["0.0.0.0:443"]);
    assert_eq!(gw.http.as_deref(), Some("0.0.0.0:80"));
    assert_eq!(
        gw.routes.len(),
        1,
        "the static front end; the :8080 route collides"
    );
    let skipped = skipped(&out);
    for line in [
        "1-joyce.conf:7: stderr_logfile=/var/log/joyce/joyce.err.log",
        "2-joyce.mi.hdm-stuttgart.de:5: listen [::]:80;",
        "2-joyce.mi.hdm-stuttgart.de:36: location / { … }",
        "2-joyce.mi.hdm-stuttgart.de:29: listen *:8080 ssl;",
        "2-joyce.mi.hdm-stuttgart.de:22: include /etc/letsencrypt/options-ssl-nginx.conf;",
    ] {
        assert!(skipped.iter().any(|s| s == line), "{line} in {skipped:#?}");
    }
}

#[test]
fn cloop_circus_and_nginx_with_a_unix_socket() {
    let out = check("cloop");
    let names: Vec<&str> = out.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gunicorn", "celeryd", "celerybeat"]);
    assert!(
        out.services[1]
            .command
            .contains("amqp://${RABBITMQ_USER}:${RABBITMQ_PASSWORD}@")
    );
    // nginx proxied to gunicorn's socket: gunicorn now listens on a port berth routes to.
    assert_eq!(
        out.services[0].command,
        "/home/loop/.venv/unimelb-cloop/bin/gunicorn --workers 4 -b 127.0.0.1:{port} wsgi:application"
    );
    let gw = out.gateway.as_ref().unwrap();
    let routes: Vec<(&str, String)> = gw
        .routes
        .iter()
        .map(|r| (r.path.as_str(), format!("{:?}", r.target)))
        .collect();
    assert_eq!(
        routes,
        [
            (
                "/static",
                "Static(\"/home/loop/website/static\")".to_string()
            ),
            ("/media", "Static(\"/home/loop/website/media\")".to_string()),
            ("/", "Service(\"gunicorn\")".to_string()),
        ]
    );
    assert_eq!(gw.max_body, None);
    assert_eq!(gw.routes[2].max_body.as_deref(), Some("24MiB"));
    let skipped = skipped(&out);
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("1-circus.conf:2: endpoint=")),
        "{skipped:#?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s == "2-loop:14: proxy_set_header X-Real-IP $remote_addr;"),
        "{skipped:#?}"
    );
}

#[test]
fn elife_crontab_with_cd_lines() {
    let out = check("elife");
    let names: Vec<&str> = out.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cron", "cron-2"]);
    assert_eq!(out.schedules[0].cron, "*/5 * * * *");
    assert_eq!(
        out.schedules[1].command,
        "cd /home/localgit/elife-bot && python /home/localgit/elife-bot/cron.py -e live > /dev/null"
    );
    assert!(out.skipped.is_empty());
}

#[test]
fn coog_crontab_placeholders_are_listed_and_filled_lines_translated() {
    let out = check("coog");
    let names: Vec<&str> = out.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["backup-save", "backup-clean"]);
    let skipped = skipped(&out);
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(skipped[0].starts_with("crontab:1: <min> <h>"));
    assert!(
        out.skipped[0].why.contains("invalid cron expression"),
        "{:?}",
        out.skipped[0]
    );
}

#[test]
fn teststand_docker_compose() {
    let out = check("teststand");
    let names: Vec<&str> = out.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["webinterface", "messagehandler", "cron", "videostream"]
    );
    assert_eq!(
        out.services[0].command,
        "python manage.py runserver 0.0.0.0:{port}"
    );
    assert_eq!(
        out.services[1].command,
        "python manage.py start_messagehandler"
    );
    assert_eq!(out.services[3].port, Some(5555));
    let skipped = skipped(&out);
    for line in [
        "docker-compose.yml:7: nginx:",
        "docker-compose.yml:41: mosquitto:",
        "docker-compose.yml:49: db:",
    ] {
        assert!(skipped.iter().any(|s| s == line), "{line} in {skipped:#?}");
    }
}

#[test]
fn procfile_processes_with_port() {
    let out = check("procfile");
    let names: Vec<&str> = out.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "worker", "clock"]);
    assert_eq!(out.services[0].port, Some(5000));
    assert_eq!(out.services[1].port, None);
    assert!(skipped(&out)[0].starts_with("Procfile:4: release:"));
}

#[test]
fn formats_are_told_by_name_and_contents() {
    let cases = [
        ("Procfile", "web: x", Format::Procfile),
        ("docker-compose.yml", "services:\n", Format::Compose),
        ("crontab", "* * * * * x", Format::Crontab),
        ("jobs", "MAILTO=x\n0 5 * * * backup\n", Format::Crontab),
        ("app.conf", "[program:x]\ncommand=y\n", Format::Supervisor),
        ("circus.ini", "[watcher:x]\ncmd=y\n", Format::Circus),
        ("site", "server {\n listen 80;\n}\n", Format::Nginx),
        (
            "stack.yml",
            "version: '3'\nservices:\n  a: {}\n",
            Format::Compose,
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(Format::detect(name, text), Some(want), "{name}");
    }
    assert_eq!(Format::detect("notes.txt", "hello world"), None);
    let err = import(
        &[Input {
            file: "notes.txt".into(),
            text: "hello world".into(),
            format: None,
        }],
        &Options {
            app: "x".into(),
            time_zone: None,
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("notes.txt: cannot tell what kind of file"),
        "{err}"
    );
}

#[test]
fn broken_files_say_where() {
    let opts = Options {
        app: "x".into(),
        time_zone: None,
    };
    let nginx = |text: &str| {
        import(
            &[Input {
                file: "site".into(),
                text: text.into(),
                format: Some(Format::Nginx),
            }],
            &opts,
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        nginx("server {\n listen 80;\n"),
        "site:2: a `{` block is never closed with `}`"
    );
    assert_eq!(
        nginx("server {\n listen 80\n}\n"),
        "site:2: `listen` is not ended with `;`"
    );
    let compose = import(
        &[Input {
            file: "c.yml".into(),
            text: "x-base: &base\n  a: 1\nservices:\n  w:\n    <<: *base\n".into(),
            format: Some(Format::Compose),
        }],
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        compose.starts_with("c.yml:") && compose.contains("YAML anchors and aliases"),
        "{compose}"
    );
}

#[test]
fn a_time_zone_and_variables_carry_over_to_schedules() {
    let out = import(
        &[Input {
            file: "crontab".into(),
            text: "MAILTO=ops@example.org\nPATH=/usr/local/bin:/usr/bin\n\
                   0 3 * * * /srv/bin/report --daily\n@reboot /srv/bin/warm\n\
                   0 4 * * * date +%F\n"
                .into(),
            format: None,
        }],
        &Options {
            app: "x".into(),
            time_zone: Some("Europe/Berlin".into()),
        },
    )
    .unwrap();
    assert_eq!(out.schedules.len(), 1);
    let s = &out.schedules[0];
    assert_eq!(s.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        s.command,
        "export PATH=/usr/local/bin:/usr/bin; /srv/bin/report --daily"
    );
    assert_eq!(
        out.services[0].restart,
        Some("never"),
        "@reboot runs once per berth up"
    );
    let skipped = skipped(&out);
    assert_eq!(
        skipped,
        [
            "crontab:1: MAILTO=ops@example.org",
            "crontab:5: 0 4 * * * date +%F"
        ]
    );
    berth_config::parse(&out.to_toml(), Path::new("berth.toml")).unwrap();
}

/// Imports one file and checks that berth reads the result.
fn one(file: &str, text: &str) -> (berth_import::Import, String) {
    let out = import(
        &[Input {
            file: file.into(),
            text: text.into(),
            format: None,
        }],
        &Options {
            app: "x".into(),
            time_zone: None,
        },
    )
    .unwrap();
    let toml = out.to_toml();
    if let Err(e) = berth_config::parse(&toml, Path::new("berth.toml")) {
        panic!("berth does not read the import of {file}:\n{e}\n{toml}");
    }
    (out, toml)
}

#[test]
fn nginx_servers_are_read_the_same_in_any_order() {
    let plain = "server {\n listen 8080;\n location / { proxy_pass http://127.0.0.1:9000; }\n}\n";
    let tls = "server {\n listen 443 ssl;\n ssl_certificate /c.pem;\n ssl_certificate_key /k.pem;\n \
               location /app/ { root /srv; }\n}\n";
    for text in [format!("{plain}{tls}"), format!("{tls}{plain}")] {
        let (out, _) = one("site", &text);
        let gw = out.gateway.unwrap();
        assert_eq!(gw.listen, ["0.0.0.0:443"], "{text}");
        assert_eq!(gw.http.as_deref(), Some("0.0.0.0:8080"));
        assert!(
            out.skipped
                .iter()
                .any(|s| s.text == "listen 8080;" && s.why.contains("only as a redirect to HTTPS")),
            "{:?}",
            out.skipped
        );
    }
}

#[test]
fn nginx_redirects_and_roots_keep_their_meaning() {
    // certbot's pattern: the challenge and a redirect on :80, the site on :443.
    let (out, _) = one(
        "site",
        "server {\n listen 80;\n location /.well-known/acme-challenge/ { root /var/www/certbot; }\n \
         location / { return 301 https://$host$request_uri; }\n}\n\
         server {\n listen 443 ssl;\n ssl_certificate /c.pem;\n ssl_certificate_key /k.pem;\n root /srv/site;\n \
         location /api/ { proxy_pass http://127.0.0.1:9000/; client_max_body_size 5m; }\n}\n\
         server {\n listen 443 ssl;\n server_name .example.org ~^www\\d+$;\n client_max_body_size 100m;\n \
         location /upload { proxy_pass http://127.0.0.1:9001; }\n}\n",
    );
    let gw = out.gateway.unwrap();
    assert_eq!(gw.http.as_deref(), Some("0.0.0.0:80"));
    let routes: Vec<String> = gw
        .routes
        .iter()
        .map(|r| format!("{:?} {} {:?} {:?}", r.host, r.path, r.target, r.max_body))
        .collect();
    assert_eq!(
        routes,
        [
            "None /api Proxy(\"http://127.0.0.1:9000\") Some(\"5MiB\")",
            "None / Static(\"/srv/site\") None",
            "None /upload Proxy(\"http://127.0.0.1:9001\") Some(\"100MiB\")",
        ],
        "the server's root serves what no location matches; each server's limit stays with its routes"
    );
    let skipped: Vec<&str> = out.skipped.iter().map(|s| s.text.as_str()).collect();
    assert!(
        skipped.contains(&"location /.well-known/acme-challenge/ { … }"),
        "{skipped:?}"
    );
    assert!(skipped.contains(&"server_name ~^www\\d+$"), "{skipped:?}");

    let (out, _) = one(
        "moved",
        "server {\n listen 8080;\n location /old { return 301 https://new.example.org$request_uri; }\n \
         location /home { return 302 https://new.example.org/; }\n \
         location /deep { return 301 https://new.example.org/a/; }\n}\n",
    );
    let gw = out.gateway.unwrap();
    let targets: Vec<String> = gw
        .routes
        .iter()
        .map(|r| format!("{:?}", r.target))
        .collect();
    assert_eq!(
        targets,
        [
            "Redirect(\"https://new.example.org/\")",
            "Redirect(\"https://new.example.org\")"
        ],
        "berth appends the path to a target ending in /, as $request_uri did; not to a fixed one"
    );
    assert!(
        out.skipped
            .iter()
            .any(|s| s.text.starts_with("return 301 https://new.example.org/a/"))
    );

    // Only a redirect to an HTTPS server that is not here: no gateway, and it is said.
    let (out, toml) = one(
        "redirect",
        "server {\n listen 80;\n return 301 https://$host$request_uri;\n}\n",
    );
    assert!(out.gateway.is_none(), "{toml}");
    assert!(
        out.skipped
            .iter()
            .any(|s| s.why.contains("which no server here serves"))
    );
}

#[test]
fn commands_names_and_values_stay_what_they_were() {
    let (out, _) = one(
        "apps.conf",
        "[program:celery]\ncommand=celery worker -b amqp://guest:guest@localhost:5672//\n\
         [program:redis]\ncommand=redis-server --port 6379\nautorestart=true\n\
         [program:edge]\ncommand=server --port 65535\n[program:zero]\ncommand=server -b 0.0.0.0:0\n",
    );
    let by = |n: &str| out.services.iter().find(|s| s.name == n).unwrap();
    assert_eq!(
        by("celery").port,
        None,
        "a broker's URL is not where it listens"
    );
    assert_eq!(
        by("celery").restart,
        Some("on-failure"),
        "supervisor's default: unexpected"
    );
    assert_eq!(by("redis").port, Some(6379));
    assert_eq!(by("redis").restart, None);
    assert_eq!(by("edge").port, Some(65535));
    assert_eq!(by("zero").port, None);
    let toml = out.to_toml();
    assert!(
        toml.contains("port = 6379\n"),
        "a fixed port stays fixed:\n{toml}"
    );

    let (out, toml) = one(
        "circus.ini",
        "[watcher:web]\ncmd=web\n[env:web]\nPATH=$(circus.env.PATH):/opt/bin\nmy-var=1\nMODE=prod\n",
    );
    assert_eq!(
        out.services[0].command,
        "export PATH=\"${PATH}:/opt/bin\"; web"
    );
    assert_eq!(
        out.services[0].env,
        [("MODE".to_string(), "prod".to_string())]
    );
    assert!(out.skipped.iter().any(|s| s.text == "my-var=1"), "{toml}");

    let (out, toml) = one(
        "docker-compose.yml",
        "services:\n  app:\n    entrypoint: [\"python\", \"app.py\"]\n    environment:\n      \
         spring.profiles.active: dev\n      FROM_HOST:\n      COST: \"$$5\"\n      \
         HOME_BIN: ${HOME}/bin\n    \
         deploy:\n      replicas: 2\n      resources:\n        limits: {cpus: '0.5'}\n",
    );
    let s = &out.services[0];
    assert_eq!(
        s.command, "export HOME_BIN=\"${HOME}/bin\"; python app.py",
        "the entrypoint alone is the command; a value reading a variable is the shell's"
    );
    assert_eq!(s.env, [("COST".to_string(), "$5".to_string())]);
    assert_eq!(s.instances, 2);
    assert_eq!(s.restart, Some("never"), "compose's default");
    let skipped: Vec<&str> = out.skipped.iter().map(|s| s.text.as_str()).collect();
    assert!(
        skipped.contains(&"environment: spring.profiles.active"),
        "{toml}"
    );
    assert!(skipped.contains(&"deploy.resources"), "{toml}");

    let (out, _) = one(
        "crontab",
        "TZ=Europe/Berlin\nCRON_TZ=America/New_York\n0 3 * * * date\n",
    );
    assert_eq!(
        out.schedules[0].timezone.as_deref(),
        Some("America/New_York")
    );
    assert_eq!(out.schedules[0].command, "export TZ=Europe/Berlin; date");
}

#[test]
fn an_http_blocks_body_limit_is_the_gateways() {
    let (out, toml) = one(
        "nginx.conf",
        "http {\n client_max_body_size 50m;\n server {\n  listen 8080;\n  \
         location / { proxy_pass http://127.0.0.1:9000; }\n }\n}\n",
    );
    assert_eq!(
        out.gateway.unwrap().max_body.as_deref(),
        Some("50MiB"),
        "{toml}"
    );
    assert!(out.skipped.is_empty(), "{:?}", out.skipped);
}
