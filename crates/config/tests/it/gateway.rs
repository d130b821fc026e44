//! `[gateway]` and `[[gateway.route]]`: what is accepted, and every mistake refused with its
//! place and what would be right.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_config::{
    AccessLogFormat, AcmeChallenge, AuthKind, BudgetPeriod, RouteTarget, TlsConfig,
};

use crate::{diagnostics, one_error, valid, with_app};

#[test]
fn a_full_gateway_reads_with_its_defaults() {
    let config = valid(&with_app(
        r#"
[service.api]
command = "gunicorn -b 127.0.0.1:{port} app:app"
port = 8000
instances = 2

[gateway]
listen = ["0.0.0.0:8443", "[::1]:8443"]
tls = { cert = "certs/fullchain.pem", key = "/etc/berth/privkey.pem" }
http = "0.0.0.0:8080"

[[gateway.route]]
path = "/"
static = "dist"
spa = true

[[gateway.route]]
host = "API.example.org"
path = "/api/"
service = "api"
timeout = "5s"
max_body = "1MiB"

[[gateway.route]]
path = "/old"
redirect = "https://example.org/new/"
status = 301

[[gateway.route]]
path = "/legacy"
proxy = "http://127.0.0.1:9000"
strip_prefix = true
"#,
    ));
    let g = config.gateway.expect("a gateway");
    assert_eq!(
        g.listen,
        [
            "0.0.0.0:8443".parse::<SocketAddr>().unwrap(),
            "[::1]:8443".parse().unwrap()
        ]
    );
    assert_eq!(
        g.tls,
        Some(TlsConfig::Files {
            cert: PathBuf::from("certs/fullchain.pem"),
            key: PathBuf::from("/etc/berth/privkey.pem"),
        })
    );
    assert_eq!(g.http, Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(g.access_log, AccessLogFormat::Combined);
    assert_eq!((g.access_log_max_size, g.access_log_keep), (100 << 20, 5));
    assert_eq!(g.max_body, 10 << 20);
    assert_eq!(g.timeout, Duration::from_secs(60));
    assert_eq!(g.connect_timeout, Duration::from_secs(5));
    assert_eq!(g.routes.len(), 4);
    assert_eq!(
        g.routes[0].target,
        RouteTarget::Static {
            dir: PathBuf::from("dist"),
            index: "index.html".into(),
            spa: true,
            strip_prefix: true,
        }
    );
    assert_eq!(g.routes[1].host.as_deref(), Some("api.example.org"));
    assert_eq!(g.routes[1].path, "/api");
    assert_eq!(
        g.routes[1].target,
        RouteTarget::Service {
            name: "api".into(),
            strip_prefix: false
        }
    );
    assert_eq!(g.routes[1].timeout, Some(Duration::from_secs(5)));
    assert_eq!(g.routes[1].max_body, Some(1 << 20));
    assert_eq!(
        g.routes[2].target,
        RouteTarget::Redirect {
            to: "https://example.org/new/".into(),
            status: 301
        }
    );
    assert_eq!(
        g.routes[3].target,
        RouteTarget::Proxy {
            authority: "127.0.0.1:9000".into(),
            strip_prefix: true
        }
    );
}

#[test]
fn acme_and_self_signed_tls() {
    let config = valid(&with_app(
        r#"
[gateway]
listen = "0.0.0.0:443"
tls = { acme = "ops@example.org", domains = ["example.org", "www.example.org"], challenge = "tls-alpn-01", directory = "https://localhost:14000/dir", ca = "pebble.pem" }
access_log = "json"

[[gateway.route]]
proxy = "http://localhost:9000/"
"#,
    ));
    let g = config.gateway.unwrap();
    let Some(TlsConfig::Acme(acme)) = g.tls else {
        panic!("expected ACME, got {:?}", g.tls);
    };
    assert_eq!(acme.email, "ops@example.org");
    assert_eq!(acme.domains, ["example.org", "www.example.org"]);
    assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!(acme.directory, "https://localhost:14000/dir");
    assert_eq!(acme.ca, Some(PathBuf::from("pebble.pem")));
    assert_eq!(acme.renew_before, Duration::from_secs(30 * 86_400));
    assert_eq!(g.access_log, AccessLogFormat::Json);
    assert_eq!(g.routes[0].path, "/");

    let config = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:8443\"\ntls = \"self-signed\"\n\n[[gateway.route]]\nredirect = \"/elsewhere\"\n",
    ));
    assert_eq!(config.gateway.unwrap().tls, Some(TlsConfig::SelfSigned));
}

#[test]
fn mistakes_are_refused_at_their_place() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "[gateway]\nlisten = \"8443\"\n[[gateway.route]]\nstatic = \"d\"\n",
            (5, 10),
            "invalid address \"8443\" for `listen` in [gateway]: expected an IP address and port",
        ),
        (
            "[gateway]\n[[gateway.route]]\nstatic = \"d\"\n",
            (4, 1),
            "missing `listen` in [gateway]",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n",
            (4, 1),
            "[gateway] has no routes",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\npath = \"/x\"\n",
            (6, 1),
            "a route for `/x` in [gateway.route#1] needs exactly one of",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nstatic = \"d\"\nproxy = \"http://h:1\"\n",
            (6, 1),
            "found `static` and `proxy`",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nservice = \"apj\"\n",
            (7, 11),
            "unknown service `apj` in [gateway.route#1]; expected the name of a [service.NAME]",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://h:1/api\"\n",
            (7, 9),
            "without a path",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"https://h:1\"\n",
            (7, 9),
            "https upstreams are not supported",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\npath = \"api\"\nstatic = \"d\"\n",
            (7, 8),
            "expected a path prefix starting with `/`",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nredirect = \"/x\"\nstatus = 200\n",
            (8, 10),
            "expected an integer from 300 to 399",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nstatic = \"d\"\nstatus = 301\n",
            (8, 1),
            "`status` applies to `redirect` routes only",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\ntls = \"selfsigned\"\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 7),
            "expected \"self-signed\", { cert",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\ntls = { cert = \"c.pem\" }\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 7),
            "missing `key` in `tls`",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\nhttp = \"0.0.0.0:80\"\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 1),
            "has no `tls`",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\ntls = { acme = \"a@b.org\", domains = [\"b.org\"] }\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 1),
            "no `http` listener",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\ntls = { acme = \"a@b.org\", domains = [\"10.0.0.1\"], challenge = \"tls-alpn-01\" }\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 38),
            "no certificates for IP addresses",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\naccess_log = \"short\"\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 14),
            "expected \"combined\", \"json\" or \"off\"",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\naccess_log_keep = 101\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 19),
            "access_log_keep",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\naccess_log_max_size = \"big\"\n[[gateway.route]]\nstatic = \"d\"\n",
            (6, 23),
            "access_log_max_size",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nstatic = \"d\"\n[[gateway.route]]\npath = \"/\"\nstatic = \"e\"\n",
            (8, 1),
            "a second route for path `/`",
        ),
        (
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nstatic = \"d\"\nspa = \"yes\"\n",
            (8, 7),
            "wrong type for `spa` in [gateway.route#1]: found a string, expected true or false",
        ),
    ];
    let mut wrong = Vec::new();
    for (rest, at, part) in cases {
        let found = diagnostics(&with_app(rest));
        let ok = found.len() == 1
            && found[0].message.contains(part)
            && (found[0].line, found[0].column) == *at;
        if !ok {
            wrong.push(format!("{rest}\n  want {at:?} {part}\n  got {found:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn auth_roles_and_login_settings() {
    let config = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\nsession = \"8h\"\nlockout_after = 3\nlockout_for = \"1h\"\n\n\
         [[gateway.route]]\npath = \"/admin\"\nproxy = \"http://127.0.0.1:9\"\nauth = \"login\"\nroles = [\"admin\", \"ops\"]\n\n\
         [[gateway.route]]\npath = \"/api\"\nproxy = \"http://127.0.0.1:9\"\nauth = \"token\"\n",
    ));
    let g = config.gateway.unwrap();
    assert_eq!(g.session, Duration::from_secs(8 * 3600));
    assert_eq!(
        (g.lockout_after, g.lockout_for),
        (3, Duration::from_secs(3600))
    );
    assert_eq!(g.routes[0].auth, Some(AuthKind::Login));
    assert_eq!(g.routes[0].roles, ["admin", "ops"]);
    assert_eq!(g.routes[1].auth, Some(AuthKind::Token));
    assert!(g.routes[1].roles.is_empty());

    let cases: &[(&str, &str)] = &[
        (
            "auth = \"basic\"",
            "expected \"login\" (a login form and a session cookie) or \"token\"",
        ),
        (
            "roles = [\"admin\"]",
            "`roles` needs `auth` on the same route",
        ),
        (
            "auth = \"login\"\nroles = [\"ad min\"]",
            "invalid role \"ad min\"",
        ),
    ];
    for (keys, part) in cases {
        let found = diagnostics(&with_app(&format!(
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://127.0.0.1:9\"\n{keys}\n"
        )));
        assert!(
            found.len() == 1 && found[0].message.contains(part),
            "{keys}: {found:#?}"
        );
    }
    let found = diagnostics(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nredirect = \"/x\"\nauth = \"login\"\n",
    ));
    assert!(found[0].message.contains("`auth` applies to"), "{found:#?}");
}

#[test]
fn a_service_without_a_port_cannot_be_routed_to() {
    let found = diagnostics(&with_app(
        "[service.worker]\ncommand = \"sleep 1000\"\n\n[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nservice = \"worker\"\n",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains("service `worker` has no port"),
        "{}",
        found[0].message
    );
}

#[test]
fn budgets_and_the_routes_that_spend_them() {
    let config = valid(&with_app(
        "[budget.nlu]\nlimit = 10.0\nperiod = \"day\"\ntimezone = \"Europe/Berlin\"\ncost_per_request = 0.002\n\n\
         [budget.metered]\nlimit = 5\ncost_header = \"X-Cost\"\nstatus = 429\n\n\
         [gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://127.0.0.1:9\"\nbudget = \"nlu\"\n",
    ));
    let nlu = &config.budgets["nlu"];
    assert_eq!(
        (nlu.limit, nlu.period, nlu.timezone.as_str()),
        (10.0, BudgetPeriod::Day, "Europe/Berlin")
    );
    assert_eq!(
        (nlu.cost_per_request, nlu.cost_header.as_deref(), nlu.status),
        (0.002, None, 402)
    );
    let metered = &config.budgets["metered"];
    assert_eq!(
        (
            metered.period,
            metered.cost_header.as_deref(),
            metered.status
        ),
        (BudgetPeriod::Month, Some("x-cost"), 429)
    );
    assert_eq!(
        config.gateway.unwrap().routes[0].budget.as_deref(),
        Some("nlu")
    );

    let cases: &[(&str, &str)] = &[
        (
            "[budget.b]\ncost_per_request = 1\n",
            "missing `limit` in [budget.b]",
        ),
        (
            "[budget.b]\nlimit = 0\ncost_per_request = 1\n",
            "expected a number greater than zero",
        ),
        ("[budget.b]\nlimit = 1\n", "[budget.b] charges nothing"),
        (
            "[budget.b]\nlimit = 1\ncost_per_request = 1\nperiod = \"week\"\n",
            "expected \"day\" or \"month\"",
        ),
        (
            "[budget.b]\nlimit = 1\ncost_per_request = 1\nstatus = 403\n",
            "expected 402 or 429",
        ),
        (
            "[budget.b]\nlimit = 1\ncost_per_request = 1\ntimezone = \"Mars/Base\"\n",
            "Mars/Base",
        ),
        (
            "[budget.b]\nlimit = 1\ncost_per_request = 1\n[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://h:1\"\nbudget = \"c\"\n",
            "unknown budget `c`",
        ),
        (
            "[budget.b]\nlimit = 1\ncost_per_request = 1\n[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nstatic = \"d\"\nbudget = \"b\"\n",
            "`budget` applies to `service` and `proxy` routes only",
        ),
    ];
    for (text, part) in cases {
        let found = diagnostics(&with_app(text));
        assert!(
            found.len() == 1 && found[0].message.contains(part),
            "{text}: {found:#?}"
        );
    }
}

#[test]
fn rate_limits() {
    let config = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://127.0.0.1:9\"\nauth = \"token\"\n\
         rate_limit = { per_address = \"10/s\", per_user = \"600/min\", burst = 20 }\n",
    ));
    let limit = config.gateway.unwrap().routes[0].rate_limit.unwrap();
    assert_eq!(
        (limit.per_address, limit.per_user, limit.burst),
        (Some(10.0), Some(10.0), Some(20))
    );
    let cases: &[(&str, &str)] = &[
        (
            "rate_limit = { per_address = \"ten/s\" }",
            "expected requests per unit of time",
        ),
        (
            "rate_limit = { per_address = \"10/week\" }",
            "expected requests per unit of time",
        ),
        (
            "rate_limit = { per_user = \"1/s\" }",
            "`per_user` limits the callers a route knows",
        ),
        ("rate_limit = { burst = 5 }", "`rate_limit` limits nothing"),
        (
            "rate_limit = { per_adress = \"1/s\" }",
            "did you mean `per_address`",
        ),
    ];
    for (keys, part) in cases {
        let found = diagnostics(&with_app(&format!(
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\nproxy = \"http://127.0.0.1:9\"\n{keys}\n"
        )));
        assert!(
            found.iter().any(|d| d.message.contains(part)),
            "{keys}: {found:#?}"
        );
    }
}

/// An `api` route exposes read scopes only, and only behind `auth`.
#[test]
fn an_api_route_exposes_reads_behind_auth() {
    let ok = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\npath = \"/stand-api\"\napi = [\"messages:read\", \"jobs:read\"]\nauth = \"login\"\nroles = [\"stands\"]\n",
    ));
    assert_eq!(
        ok.gateway.unwrap().routes[0].target,
        RouteTarget::Api {
            scopes: vec!["messages:read".into(), "jobs:read".into()]
        }
    );
    let write = diagnostics(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\napi = [\"jobs:push:imports\"]\nauth = \"token\"\n",
    ));
    assert_eq!(write.len(), 1, "{write:#?}");
    assert!(
        write[0].message.contains("a route never exposes writes"),
        "{}",
        write[0].message
    );
    let open = diagnostics(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\napi = [\"messages:read\"]\n",
    ));
    assert_eq!(open.len(), 1, "{open:#?}");
    assert!(open[0].message.contains("add `auth"), "{}", open[0].message);
}

/// A `dashboard` route is for the gateway's admins unless it says otherwise.
#[test]
fn a_dashboard_route_defaults_to_the_admins_login() {
    let ok = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\npath = \"/admin/\"\ndashboard = true\n",
    ));
    let route = &ok.gateway.unwrap().routes[0];
    assert_eq!(route.target, RouteTarget::Dashboard);
    assert_eq!(route.path, "/admin");
    assert_eq!(route.auth, Some(berth_config::AuthKind::Login));
    assert_eq!(route.roles, vec!["admin".to_owned()]);
    let ops = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\npath = \"/ops\"\ndashboard = true\nauth = \"token\"\nroles = [\"ops\"]\n",
    ));
    let route = &ops.gateway.unwrap().routes[0];
    assert_eq!(route.auth, Some(berth_config::AuthKind::Token));
    assert_eq!(route.roles, vec!["ops".to_owned()]);
    for (keys, part) in [
        ("dashboard = false", "`dashboard = false` serves nothing"),
        (
            "dashboard = true\nroles = []",
            "an empty list would let every user in",
        ),
        ("dashboard = true\ntimeout = \"5s\"", "`timeout` applies to"),
        (
            "dashboard = true\nspa = true",
            "`spa` applies to `static` routes only",
        ),
        (
            "dashboard = true\nproxy = \"http://127.0.0.1:9\"",
            "found `proxy` and `dashboard`",
        ),
    ] {
        let found = diagnostics(&with_app(&format!(
            "[gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\n{keys}\n"
        )));
        assert!(
            found.iter().any(|d| d.message.contains(part)),
            "{keys}: {found:#?}"
        );
    }
}

/// Which keys each kind of route takes, written out as a matrix: a key a kind does not
/// take is an error on that key ("applies to … routes only"); one it takes is not.
#[test]
fn each_route_kind_takes_its_own_keys() {
    let kinds = [
        ("static", "static = \"dist\""),
        ("service", "service = \"web\""),
        ("proxy", "proxy = \"http://127.0.0.1:9000\""),
        ("redirect", "redirect = \"https://example.org/\""),
        ("api", "api = [\"jobs:read\"]"),
        ("dashboard", "dashboard = true"),
    ];
    // key = value, then the kinds that take it.
    let keys: [(&str, &[&str]); 9] = [
        ("status = 301", &["redirect"]),
        ("index = \"start.html\"", &["static"]),
        ("spa = true", &["static"]),
        ("strip_prefix = true", &["static", "service", "proxy"]),
        ("max_body = \"1MiB\"", &["service", "proxy", "dashboard"]),
        ("timeout = \"5s\"", &["service", "proxy", "api"]),
        (
            "auth = \"token\"",
            &["static", "service", "proxy", "api", "dashboard"],
        ),
        ("budget = \"nlu\"", &["service", "proxy"]),
        (
            "rate_limit = { per_address = \"10/s\" }",
            &["static", "service", "proxy", "api", "dashboard"],
        ),
    ];
    for (kind, target) in kinds {
        for (line, takes) in keys {
            let key = line.split(' ').next().unwrap();
            // An api route needs auth; it is given unless the key under test is auth.
            let auth = if kind == "api" && key != "auth" {
                "auth = \"token\"\n"
            } else {
                ""
            };
            let text = with_app(&format!(
                "[service.web]\ncommand = \"true\"\nport = 9001\n\n\
                 [budget.nlu]\nlimit = 1.0\nperiod = \"month\"\ncost_per_request = 0.1\n\n\
                 [gateway]\nlisten = \"127.0.0.1:1\"\n[[gateway.route]]\n{target}\n{auth}{line}\n"
            ));
            let refused = match berth_config::parse(&text, Path::new("berth.toml")) {
                Ok(_) => false,
                Err(berth_config::ConfigError::Invalid { diagnostics }) => diagnostics
                    .iter()
                    .any(|d| d.message.contains(&format!("`{key}` applies to"))),
                Err(e) => panic!("{kind} route with {line}: {e}"),
            };
            assert_eq!(
                refused,
                !takes.contains(&kind),
                "a {kind} route with {line}"
            );
        }
    }
}

#[test]
fn tls_with_acme_and_a_certificate_file_says_they_clash() {
    let (line, column, message) = one_error(&with_app(
        "[gateway]\nlisten = \"0.0.0.0:443\"\n\
         tls = { acme = \"ops@example.org\", domains = [\"example.org\"], challenge = \"tls-alpn-01\", cert = \"c.pem\" }\n\
         [[gateway.route]]\nproxy = \"http://127.0.0.1:9000\"\n",
    ));
    assert_eq!((line, column), (6, 89));
    assert!(
        message.starts_with(
            "`cert` in `tls` names a file, and this `tls` has `acme`, which fetches its \
             certificate: expected"
        ),
        "{message}"
    );
}

#[test]
fn a_route_sets_response_headers_checked_by_name_and_value() {
    let config = valid(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n[[gateway.route]]\n\
         proxy = \"http://127.0.0.1:9000\"\n\
         headers = { Strict-Transport-Security = \"max-age=31536000; includeSubDomains\", \
         X-Frame-Options = \"DENY\" }\n",
    ));
    assert_eq!(
        config.gateway.unwrap().routes[0].headers,
        [
            (
                "Strict-Transport-Security".to_owned(),
                "max-age=31536000; includeSubDomains".to_owned()
            ),
            ("X-Frame-Options".to_owned(), "DENY".to_owned()),
        ]
    );
    let messages: Vec<String> = diagnostics(&with_app(
        "[gateway]\nlisten = \"127.0.0.1:8080\"\n[[gateway.route]]\n\
         proxy = \"http://127.0.0.1:9000\"\n\
         headers = { \"Bad Name\" = \"x\", Content-Length = \"5\", a = \"1\", A = \"2\", \
         b = \"two\\nlines\", c = 3, d = \"  \" }\n",
    ))
    .into_iter()
    .map(|d| d.message)
    .collect();
    let want = [
        "invalid header name `Bad Name` in `headers` in [gateway.route#1]: expected letters",
        "`Content-Length` in `headers` in [gateway.route#1] describes the connection or frames the body",
        "`a` is in `headers` in [gateway.route#1] twice",
        "invalid value for `b` in `headers` in [gateway.route#1]: expected 1 to 8192 printable ASCII",
        "wrong type for `c` in [gateway.route#1.headers]: found an integer, expected a string",
        "invalid value for `d` in `headers`",
    ];
    for w in want {
        assert!(
            messages.iter().any(|m| m.starts_with(w)),
            "{w}\nin {messages:#?}"
        );
    }
    assert_eq!(messages.len(), want.len(), "{messages:#?}");
}
