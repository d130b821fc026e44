//! nginx: `server` blocks become the `[gateway]` and its routes.
//!
//! - `listen` → `listen` (IPv4 addresses; berth's socket for `0.0.0.0` does not take
//!   IPv6), with `ssl` and `ssl_certificate`/`ssl_certificate_key` → `tls`;
//! - a server that only answers `return 301 https://…` → `http`, berth's redirect
//!   listener;
//! - `location` blocks: `root`/`alias` (or the server's `root`) → a static route, with
//!   `try_files … /index.html` → `spa`; `proxy_pass` → a route to the service that listens
//!   there (a unix socket becomes `{port}` on 127.0.0.1, since berth proxies over TCP),
//!   else a `proxy`; `return 30x URL` → a redirect; `client_max_body_size` → `max_body`;
//!   `proxy_read_timeout` → `timeout`.
//!
//! berth serves every route on every listen address, so two servers with the same host
//! and path cannot both be kept: the later one is listed.

use crate::{Gateway, Import, ImportError, Origin, Route, Target, Tls, shell};

/// A directive: `name args;` or `name args { block }`.
#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<String>,
    line: usize,
    block: Option<Vec<Directive>>,
}

impl Directive {
    fn text(&self) -> String {
        let mut t = self.name.clone();
        for a in &self.args {
            t.push(' ');
            t.push_str(a);
        }
        t.push_str(if self.block.is_some() {
            " { … }"
        } else {
            ";"
        });
        t
    }

    fn arg(&self, i: usize) -> &str {
        self.args.get(i).map_or("", String::as_str)
    }
}

/// Reads an nginx file into `out`.
pub fn read(out: &mut Import, file: &str, text: &str) -> Result<(), ImportError> {
    let tree = parse(file, text)?;
    let mut upstreams = Vec::new();
    let mut servers = Vec::new();
    collect(out, file, &tree, &mut upstreams, &mut servers);
    // One `host` per route only where the servers differ in their names.
    let mut name_sets: Vec<Vec<String>> = servers
        .iter()
        .map(|s| server_names(s))
        .filter(|n| !n.is_empty())
        .collect();
    name_sets.dedup();
    let with_hosts = name_sets.len() > 1;
    let mut gw = out.gateway.take().unwrap_or_default();
    for server in servers {
        read_server(out, &mut gw, file, server, &upstreams, with_hosts);
    }
    if !gw.listen.is_empty() || !gw.routes.is_empty() || gw.http.is_some() {
        if gw.listen.is_empty() {
            // Only a redirect server: berth's gateway needs a listener of its own.
            gw.listen.push("0.0.0.0:443".into());
            gw.notes
                .push("no server served content; listen on 443".into());
        }
        if gw.routes.is_empty() {
            gw.routes.push(Route {
                host: None,
                path: "/".into(),
                target: Target::Redirect("/".into()),
                strip_prefix: None,
                index: None,
                spa: false,
                status: Some(302),
                max_body: None,
                timeout: None,
                notes: vec!["a placeholder: nginx served nothing berth could route".into()],
                from: gw.from.clone().unwrap_or_else(|| Origin::new(file, 1)),
            });
        }
        out.gateway = Some(gw);
    }
    Ok(())
}

/// Servers (in `http { }` or at the top of a sites file) and upstreams; everything else
/// at these levels is nginx's own.
fn collect<'a>(
    out: &mut Import,
    file: &str,
    list: &'a [Directive],
    upstreams: &mut Vec<(String, Vec<String>)>,
    servers: &mut Vec<&'a Directive>,
) {
    for d in list {
        match (d.name.as_str(), &d.block) {
            ("http", Some(block)) => collect(out, file, block, upstreams, servers),
            ("server", Some(_)) => servers.push(d),
            ("upstream", Some(block)) => {
                let members = block
                    .iter()
                    .filter(|m| m.name == "server")
                    .map(|m| m.arg(0).to_string())
                    .collect();
                upstreams.push((d.arg(0).to_string(), members));
            }
            ("include", None) => out.skip(
                file,
                d.line,
                &d.text(),
                "not followed: import that file too (`berth import FILE…`)",
            ),
            ("events" | "stream" | "mail", Some(_)) => out.skip(
                file,
                d.line,
                &d.text(),
                "nginx's own settings; berth has none such",
            ),
            _ => out.skip(
                file,
                d.line,
                &d.text(),
                "nginx's own setting; berth has none such",
            ),
        }
    }
}

fn server_names(server: &Directive) -> Vec<String> {
    let mut names: Vec<String> = server
        .block
        .iter()
        .flatten()
        .filter(|d| d.name == "server_name")
        .flat_map(|d| d.args.clone())
        .filter(|n| n != "_" && !n.is_empty() && n != "\"\"")
        .collect();
    names.sort();
    names
}

/// An nginx `listen` address as berth writes it; None for unix sockets, names and IPv6
/// (berth's `0.0.0.0` socket does not take IPv6, and a second socket on `[::]` would
/// collide with it on Linux).
fn address(arg: &str) -> Result<String, &'static str> {
    if arg.starts_with("unix:") {
        return Err("berth's gateway listens on TCP");
    }
    if arg.starts_with('[') {
        return Err(
            "berth listens on IPv4 here; `listen = \"[::]:PORT\"` alone would take both on Linux",
        );
    }
    let (host, port) = match arg.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None if arg.chars().all(|c| c.is_ascii_digit()) => ("*", arg),
        None => (arg, "80"),
    };
    let port: u16 = port.parse().map_err(|_| "expected a port")?;
    let host = match host {
        "*" | "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h if h.parse::<std::net::Ipv4Addr>().is_ok() => h,
        _ => return Err("berth listens on an IP address, not a host name"),
    };
    Ok(format!("{host}:{port}"))
}

struct ServerIn<'a> {
    listens: Vec<(String, bool, &'a Directive)>,
    names: Vec<String>,
    root: Option<String>,
    index: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    max_body: Option<String>,
}

fn read_server(
    out: &mut Import,
    gw: &mut Gateway,
    file: &str,
    server: &Directive,
    upstreams: &[(String, Vec<String>)],
    with_hosts: bool,
) {
    let body = server.block.as_deref().unwrap_or_default();
    let mut s = ServerIn {
        listens: Vec::new(),
        names: server_names(server),
        root: None,
        index: None,
        cert: None,
        key: None,
        max_body: None,
    };
    let mut redirect_all = None;
    let mut locations = Vec::new();
    for d in body {
        let mut skip = |why: &str| out.skip(file, d.line, &d.text(), why);
        match d.name.as_str() {
            "listen" => match address(d.arg(0)) {
                Ok(a) => s.listens.push((a, d.args.iter().any(|x| x == "ssl"), d)),
                Err(why) => skip(why),
            },
            "server_name" => {}
            "root" => s.root = Some(d.arg(0).to_string()),
            "index" => s.index = Some(d.arg(0).to_string()),
            "ssl_certificate" => s.cert = Some(d.arg(0).to_string()),
            "ssl_certificate_key" => s.key = Some(d.arg(0).to_string()),
            "client_max_body_size" => match size(d.arg(0)) {
                Some(v) => s.max_body = Some(v),
                None => skip("berth's max_body is a size > 0"),
            },
            "return" => match redirect(d) {
                Some(r) => redirect_all = Some((r, d)),
                None => skip("berth's redirect routes answer 301, 302, 303, 307 or 308 with a URL"),
            },
            "location" => locations.push(d),
            "include" if d.arg(0).contains("letsencrypt") => skip(
                "certbot's TLS options: berth's TLS (rustls) allows TLS 1.2 and 1.3 only, \
                 with safe ciphers",
            ),
            n if n.starts_with("ssl_") => skip(
                "berth's TLS (rustls) chooses protocols, ciphers and key exchange itself: \
                 TLS 1.2 and 1.3 only",
            ),
            "access_log" | "error_log" => {
                skip("berth writes DATA_DIR/logs/access.log ([gateway] access_log) and its own log")
            }
            "gzip" => skip("berth does not compress responses"),
            _ => skip("berth has no such setting for the gateway"),
        }
    }
    let any_ssl = s.listens.iter().any(|(_, ssl, _)| *ssl);
    // A server that only redirects plain HTTP to HTTPS is berth's `http` listener.
    if let Some(((url, status), d)) = &redirect_all {
        let to_https = url.starts_with("https://$") && url.ends_with("$request_uri");
        if to_https && !any_ssl && locations.is_empty() {
            for (addr, _, l) in &s.listens {
                if gw.http.is_none() {
                    gw.http = Some(addr.clone());
                    gw.notes.push(format!(
                        "http = \"{addr}\": {} (redirects every request to HTTPS)",
                        l.text().trim_end_matches(';')
                    ));
                } else {
                    out.skip(
                        file,
                        l.line,
                        &l.text(),
                        "berth's `http` redirect listener takes one address",
                    );
                }
            }
            return;
        }
        if !url.contains('$') {
            add_route(
                out,
                gw,
                file,
                &s,
                with_hosts,
                d,
                "/",
                Target::Redirect(url.clone()),
                |r| r.status = Some(*status),
            );
        } else {
            out.skip(
                file,
                d.line,
                &d.text(),
                "berth's redirect targets are fixed URLs, without $variables",
            );
        }
    }
    // TLS: the first server that names a certificate sets it for the gateway.
    if any_ssl {
        let tls = match (&s.cert, &s.key) {
            (Some(cert), Some(key)) => Tls::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => Tls::SelfSigned,
        };
        match &gw.tls {
            None => {
                if let Tls::Files { cert, .. } = &tls
                    && cert.contains("/letsencrypt/")
                {
                    gw.notes.push(
                        "certbot's certificate: berth can get and renew it itself, \
                         tls = { acme = \"you@example.org\", domains = [\"…\"] }"
                            .into(),
                    );
                }
                gw.tls = Some(tls);
            }
            Some(existing) if *existing == tls => {}
            Some(_) => out.skip(
                file,
                server.line,
                &server.text(),
                "berth's gateway has one certificate; this server's other one is not used",
            ),
        }
    }
    let plain_with_tls = |gw: &Gateway, ssl: bool| gw.tls.is_some() && !ssl;
    let routes_before = gw.routes.len();
    for loc in &locations {
        location(out, gw, file, &s, with_hosts, loc, upstreams);
    }
    if redirect_all.is_none()
        && locations.is_empty()
        && let Some(root) = &s.root
    {
        let target = Target::Static(root.clone());
        add_route(out, gw, file, &s, with_hosts, server, "/", target, |r| {
            r.index = s.index.clone().filter(|i| i != "index.html");
        });
    }
    let kept = gw.routes.len() > routes_before || redirect_all.is_some();
    for (addr, ssl, l) in &s.listens {
        if !kept {
            out.skip(
                file,
                l.line,
                &l.text(),
                "none of this server's locations could be kept",
            );
        } else if plain_with_tls(gw, *ssl) {
            if gw.http.is_none() {
                gw.http = Some(addr.clone());
                gw.notes.push(format!(
                    "http = \"{addr}\": {}; berth answers plain HTTP with a redirect to HTTPS",
                    l.text().trim_end_matches(';')
                ));
            } else if gw.http.as_deref() != Some(addr) {
                out.skip(
                    file,
                    l.line,
                    &l.text(),
                    "berth serves plain HTTP on one address, as a redirect to HTTPS",
                );
            }
        } else if !gw.listen.contains(addr) {
            gw.listen.push(addr.clone());
        }
    }
    if gw.from.is_none() {
        gw.from = Some(Origin::new(file, server.line));
    }
    if let Some(mb) = &s.max_body
        && gw.max_body.is_none()
    {
        gw.max_body = Some(mb.clone());
    }
}

#[allow(clippy::too_many_arguments)]
fn add_route(
    out: &mut Import,
    gw: &mut Gateway,
    file: &str,
    s: &ServerIn,
    with_hosts: bool,
    at: &Directive,
    path: &str,
    target: Target,
    edit: impl Fn(&mut Route),
) {
    let hosts: Vec<Option<String>> = if with_hosts && !s.names.is_empty() {
        s.names.iter().map(|n| Some(n.clone())).collect()
    } else {
        vec![None]
    };
    for host in hosts {
        let path = normalize(path);
        if let Some(other) = gw.routes.iter().find(|r| r.host == host && r.path == path) {
            out.skip(
                file,
                at.line,
                &at.text(),
                format!(
                    "berth serves every route on every listen address, and {path} is already \
                     the route from {}; give this one its own path or host",
                    other.from
                ),
            );
            continue;
        }
        let mut route = Route {
            host,
            path,
            target: target.clone(),
            strip_prefix: None,
            index: None,
            spa: false,
            status: None,
            max_body: None,
            timeout: None,
            notes: Vec::new(),
            from: Origin::new(file, at.line),
        };
        if !with_hosts && !s.names.is_empty() && gw.routes.is_empty() {
            route.notes.push(format!(
                "server_name {}: this route answers any host; add host = \"…\" to limit it",
                s.names.join(" ")
            ));
        }
        edit(&mut route);
        gw.routes.push(route);
    }
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

/// `return CODE URL` (or `return URL`, a 302) as a redirect.
fn redirect(d: &Directive) -> Option<(String, u16)> {
    let (code, url) = match d.args.as_slice() {
        [url] if url.starts_with("http") => (302, url.clone()),
        [code, url] => (code.parse().ok()?, url.clone()),
        _ => return None,
    };
    [301, 302, 303, 307, 308]
        .contains(&code)
        .then_some((url, code))
}

/// nginx sizes (`24m`: powers of 1024) as berth writes them; None for 0 (no limit).
fn size(value: &str) -> Option<String> {
    let v = value.to_ascii_lowercase();
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().ok()?;
    if n == 0 {
        return None;
    }
    let unit = match unit {
        "" => "",
        "k" => "KiB",
        "m" => "MiB",
        "g" => "GiB",
        _ => return None,
    };
    Some(format!("{n}{unit}"))
}

/// nginx times (`60`, `60s`, `5m`) as berth writes them.
fn time(value: &str) -> Option<String> {
    if value.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{value}s"));
    }
    let ok = value
        .strip_suffix(['s', 'm', 'h', 'd'])
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    ok.then(|| value.to_string())
}

/// Headers nginx was told to send that berth sends (or passes) by itself.
const BERTH_SETS: &[(&str, &str)] = &[
    ("host", "berth passes the client's Host"),
    (
        "x-forwarded-for",
        "berth appends the client's address to X-Forwarded-For",
    ),
    ("x-forwarded-proto", "berth sets X-Forwarded-Proto"),
    ("x-forwarded-host", "berth sets X-Forwarded-Host"),
    ("upgrade", "berth passes WebSocket upgrades"),
    ("connection", "berth passes WebSocket upgrades"),
];

#[allow(clippy::too_many_arguments)]
fn location(
    out: &mut Import,
    gw: &mut Gateway,
    file: &str,
    s: &ServerIn,
    with_hosts: bool,
    loc: &Directive,
    upstreams: &[(String, Vec<String>)],
) {
    let (modifier, path) = match loc.args.as_slice() {
        [path] => ("", path.as_str()),
        [m, path] => (m.as_str(), path.as_str()),
        _ => ("?", ""),
    };
    if !matches!(modifier, "" | "^~") || !path.starts_with('/') {
        out.skip(
            file,
            loc.line,
            &loc.text(),
            "berth's routes match path prefixes; regular expressions and exact matches are not read",
        );
        for d in loc.block.iter().flatten() {
            out.skip(
                file,
                d.line,
                &d.text(),
                "inside a location that is not read",
            );
        }
        return;
    }
    let mut root = None;
    let mut alias = None;
    let mut index = None;
    let mut spa = false;
    let mut proxy = None;
    let mut ret = None;
    let mut max_body = None;
    let mut timeout = None;
    let mut notes = Vec::new();
    for d in loc.block.iter().flatten() {
        let mut skip = |why: &str| out.skip(file, d.line, &d.text(), why);
        match d.name.as_str() {
            "root" => root = Some(d.arg(0).to_string()),
            "alias" => alias = Some(d.arg(0).to_string()),
            "index" => index = Some(d.arg(0).to_string()),
            "try_files" => {
                let last = d.args.last().map_or("", String::as_str);
                if last.ends_with("index.html") || last == "/index.html" {
                    spa = true;
                } else if last == "=404" {
                } else {
                    skip(
                        "berth's static routes try the file, then the directory's index (spa = true: the root index)",
                    );
                }
            }
            "proxy_pass" => proxy = Some((d.arg(0).to_string(), d)),
            "return" => match redirect(d) {
                Some(r) if !r.0.contains('$') => ret = Some(r),
                _ => skip("berth's redirect targets are fixed URLs with 301, 302, 303, 307 or 308"),
            },
            "client_max_body_size" => match size(d.arg(0)) {
                Some(v) => max_body = Some(v),
                None => skip("berth's max_body is a size > 0"),
            },
            "proxy_read_timeout" | "proxy_send_timeout" => match time(d.arg(0)) {
                Some(t) => timeout = Some(t),
                None => skip("expected a time such as 60s"),
            },
            "proxy_connect_timeout" => match time(d.arg(0)) {
                Some(t) if gw.connect_timeout.is_none() => gw.connect_timeout = Some(t),
                _ => skip("berth's connect_timeout is one for the whole gateway"),
            },
            "proxy_http_version" => notes.push(format!(
                "{}: berth speaks HTTP/1.1 to upstreams",
                d.text().trim_end_matches(';')
            )),
            "proxy_set_header" => {
                let header = d.arg(0).to_ascii_lowercase();
                match BERTH_SETS.iter().find(|(h, _)| *h == header) {
                    Some((_, what)) => {
                        notes.push(format!("{}: {what}", d.text().trim_end_matches(';')))
                    }
                    None if header == "x-real-ip" => skip(
                        "berth does not set X-Real-IP: the client's address is the last one in X-Forwarded-For",
                    ),
                    None => skip("berth does not add request headers"),
                }
            }
            "auth_basic" | "auth_basic_user_file" => skip(
                "berth's routes log users in themselves: auth = \"login\" with `berth user add`",
            ),
            "location" => skip("nested locations are not read; write each as its own route"),
            _ => skip("berth has no such setting for a route"),
        }
    }
    if let Some((url, status)) = ret {
        add_route(
            out,
            gw,
            file,
            s,
            with_hosts,
            loc,
            path,
            Target::Redirect(url),
            |r| {
                r.status = Some(status);
                r.notes.extend(notes.clone());
            },
        );
        return;
    }
    if let Some((url, at)) = proxy {
        let target = match upstream(out, url.as_str(), upstreams) {
            Ok(t) => t,
            Err(why) => {
                out.skip(file, at.line, &at.text(), why);
                return;
            }
        };
        let (target, strip) = target;
        add_route(out, gw, file, s, with_hosts, loc, path, target, |r| {
            r.max_body = max_body.clone().filter(|m| Some(m) != s.max_body.as_ref());
            r.timeout = timeout.clone();
            r.strip_prefix = strip.then_some(true);
            r.notes.extend(notes.clone());
        });
        return;
    }
    // A static location: nginx looks for ROOT + URI, so the directory is ROOT + PATH.
    let dir = match (alias, root.or_else(|| s.root.clone())) {
        (Some(alias), _) => alias,
        (None, Some(root)) => {
            if path == "/" {
                root
            } else {
                format!("{}/{}", root.trim_end_matches('/'), path.trim_matches('/'))
            }
        }
        (None, None) => {
            out.skip(
                file,
                loc.line,
                &loc.text(),
                "a location without root, alias, proxy_pass or return",
            );
            return;
        }
    };
    add_route(
        out,
        gw,
        file,
        s,
        with_hosts,
        loc,
        path,
        Target::Static(dir),
        |r| {
            r.index = index
                .clone()
                .or(s.index.clone())
                .filter(|i| i != "index.html");
            r.spa = spa;
            r.notes.extend(notes.clone());
        },
    );
}

/// The route target of a `proxy_pass` URL, and whether the route strips its path (a URL
/// ending in `/` replaces the location's prefix).
fn upstream(
    out: &mut Import,
    url: &str,
    upstreams: &[(String, Vec<String>)],
) -> Result<(Target, bool), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err("berth proxies to http:// upstreams".into());
    };
    if let Some(socket) = rest.strip_prefix("unix:") {
        let socket = socket.split(':').next().unwrap_or(socket);
        return unix_service(out, socket)
            .map(|name| (Target::Service(name), false))
            .ok_or_else(|| {
                format!(
                    "berth proxies over TCP; no imported service binds unix:{socket}: make the \
                     app listen on {{port}} and route to its service"
                )
            });
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err("berth's proxy routes pass the path on as it is (strip_prefix), not rewritten to another path".into());
    }
    let strip = path == "/";
    let members: Vec<String> = match upstreams.iter().find(|(n, _)| n == authority) {
        Some((_, members)) => members.clone(),
        None => vec![authority.to_string()],
    };
    let mut targets = Vec::new();
    for member in &members {
        if let Some(socket) = member.strip_prefix("unix:") {
            match unix_service(out, socket) {
                Some(name) => targets.push(Target::Service(name)),
                None => return Err(format!("no imported service binds unix:{socket}")),
            }
            continue;
        }
        let (host, port) = match member.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("cannot read the port of {member}"))?,
            ),
            None => (member.as_str(), 80),
        };
        let host = match host {
            "0.0.0.0" | "localhost" | "*" => "127.0.0.1",
            h => h,
        };
        let service = out
            .services
            .iter()
            .find(|s| {
                s.port
                    .is_some_and(|p| p <= port && port < p + s.instances as u16)
            })
            .map(|s| s.name.clone());
        targets.push(match service {
            Some(name) => Target::Service(name),
            None => Target::Proxy(format!("http://{host}:{port}")),
        });
    }
    targets.dedup();
    match targets.as_slice() {
        [one] => Ok((one.clone(), strip)),
        _ => Err(format!(
            "the upstream {authority} has {} servers; berth balances over the instances of one \
             service (instances = N)",
            members.len()
        )),
    }
}

/// The service that binds `unix:SOCKET`, now made to listen on `127.0.0.1:{port}`.
fn unix_service(out: &mut Import, socket: &str) -> Option<String> {
    let used: Vec<u16> = out.services.iter().filter_map(|s| s.port).collect();
    let service = out.services.iter_mut().find(|s| {
        matches!(shell::listen(&s.command), Some(shell::Listen::Unix { ref path, .. }) if path == socket)
    })?;
    let Some(shell::Listen::Unix { at, .. }) = shell::listen(&service.command) else {
        return None;
    };
    let mut port = 8000u16;
    while used.contains(&port) {
        port += 10;
    }
    service.command = shell::splice(&service.command, at, "127.0.0.1:{port}");
    service.port = Some(port);
    service.ready_tcp = true;
    service.notes.push(format!(
        "bound unix:{socket}, which nginx proxied to; berth's gateway proxies over TCP, so \
         it listens on 127.0.0.1:{{port}}"
    ));
    Some(service.name.clone())
}

/// nginx's syntax: directives end with `;` or a `{ … }` block; `#` starts a comment;
/// quotes group words.
fn parse(file: &str, text: &str) -> Result<Vec<Directive>, ImportError> {
    let tokens = tokenize(file, text)?;
    let mut pos = 0;
    let list = block(file, &tokens, &mut pos, false)?;
    Ok(list)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

fn tokenize(file: &str, text: &str) -> Result<Vec<(Tok, usize)>, ImportError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let mut word_line = 1;
    let flush = |word: &mut String, out: &mut Vec<(Tok, usize)>, at: usize| {
        if !word.is_empty() {
            out.push((Tok::Word(std::mem::take(word)), at));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                flush(&mut word, &mut out, word_line);
                line += 1;
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, word_line),
            '#' if word.is_empty() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            ';' | '{' | '}' => {
                flush(&mut word, &mut out, word_line);
                out.push((
                    match c {
                        ';' => Tok::Semi,
                        '{' => Tok::Open,
                        _ => Tok::Close,
                    },
                    line,
                ));
            }
            '"' | '\'' => {
                if word.is_empty() {
                    word_line = line;
                }
                let start = line;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    if q == c {
                        closed = true;
                        break;
                    }
                    if q == '\\'
                        && let Some(n) = chars.next()
                    {
                        word.push(n);
                        continue;
                    }
                    if q == '\n' {
                        line += 1;
                    }
                    word.push(q);
                }
                if !closed {
                    return Err(ImportError::Syntax {
                        file: file.into(),
                        line: start,
                        message: format!("a quote {c} is never closed"),
                    });
                }
                if word.is_empty() {
                    word.push_str("\"\"");
                }
            }
            c => {
                if word.is_empty() {
                    word_line = line;
                }
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut out, word_line);
    Ok(out)
}

fn block(
    file: &str,
    tokens: &[(Tok, usize)],
    pos: &mut usize,
    nested: bool,
) -> Result<Vec<Directive>, ImportError> {
    let mut list = Vec::new();
    let mut words: Vec<(String, usize)> = Vec::new();
    while *pos < tokens.len() {
        let (tok, line) = &tokens[*pos];
        *pos += 1;
        match tok {
            Tok::Word(w) => words.push((w.clone(), *line)),
            Tok::Semi | Tok::Open => {
                let Some(((name, at), args)) = words.split_first() else {
                    return Err(ImportError::Syntax {
                        file: file.into(),
                        line: *line,
                        message: format!(
                            "a `{}` without a directive before it",
                            if *tok == Tok::Semi { ";" } else { "{" }
                        ),
                    });
                };
                let inner = if *tok == Tok::Open {
                    Some(block(file, tokens, pos, true)?)
                } else {
                    None
                };
                list.push(Directive {
                    name: name.clone(),
                    args: args.iter().map(|(w, _)| w.clone()).collect(),
                    line: *at,
                    block: inner,
                });
                words.clear();
            }
            Tok::Close => {
                if !nested {
                    return Err(ImportError::Syntax {
                        file: file.into(),
                        line: *line,
                        message: "a `}` that closes no block".into(),
                    });
                }
                if let Some((w, at)) = words.first() {
                    return Err(ImportError::Syntax {
                        file: file.into(),
                        line: *at,
                        message: format!("`{w}` is not ended with `;`"),
                    });
                }
                return Ok(list);
            }
        }
    }
    if nested {
        return Err(ImportError::Syntax {
            file: file.into(),
            line: tokens.last().map_or(1, |t| t.1),
            message: "a `{` block is never closed with `}`".into(),
        });
    }
    if let Some((w, at)) = words.first() {
        return Err(ImportError::Syntax {
            file: file.into(),
            line: *at,
            message: format!("`{w}` is not ended with `;`"),
        });
    }
    Ok(list)
}
