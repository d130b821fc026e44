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
    let mut max_body = None;
    collect(
        out,
        file,
        &tree,
        &mut upstreams,
        &mut servers,
        &mut max_body,
    );
    // One `host` per route only where the servers differ in their names.
    let mut name_sets: Vec<Vec<String>> = servers
        .iter()
        .map(|s| server_names(s))
        .filter(|n| !n.is_empty())
        .collect();
    name_sets.dedup();
    let with_hosts = name_sets.len() > 1;
    let mut gw = out.gateway.take().unwrap_or_default();
    if max_body.is_some() {
        gw.max_body = max_body;
    }
    // TLS first: whether a plain listener serves content or only redirects to HTTPS
    // depends on whether any server has TLS, whatever the order of the blocks.
    for server in &servers {
        tls_of(out, &mut gw, file, server);
    }
    for server in &servers {
        read_server(out, &mut gw, file, server, &upstreams, with_hosts);
    }
    if gw.routes.is_empty() {
        if let Some(first) = servers.first() {
            out.skip(
                file,
                first.line,
                &first.text(),
                "no route could be kept from this file's servers, so it gives no [gateway]",
            );
        }
        return Ok(());
    }
    if gw.listen.is_empty() {
        // Every listener became the redirect to HTTPS: the routes need one of their own.
        gw.listen.push("0.0.0.0:443".into());
        gw.notes
            .push("listen on 443: every server's listener was plain HTTP".into());
    }
    out.gateway = Some(gw);
    Ok(())
}

/// The certificate a server's `ssl` listeners use: the first sets the gateway's.
fn tls_of(out: &mut Import, gw: &mut Gateway, file: &str, server: &Directive) {
    let body = server.block.as_deref().unwrap_or_default();
    let ssl = body
        .iter()
        .any(|d| d.name == "listen" && d.args.iter().any(|a| a == "ssl"));
    if !ssl {
        return;
    }
    let arg = |name: &str| {
        body.iter()
            .find(|d| d.name == name)
            .map(|d| d.arg(0).to_string())
    };
    let tls = match (arg("ssl_certificate"), arg("ssl_certificate_key")) {
        (Some(cert), Some(key)) => Tls::Files { cert, key },
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

/// Whether `url` sends a request to the same URL over HTTPS.
fn to_https(url: &str) -> bool {
    url.starts_with("https://$") && url.ends_with("$request_uri")
}

/// Why certbot's HTTP challenge location is not carried over.
const ACME_CHALLENGE: &str =
    "certbot's HTTP challenge: berth's own ACME (tls = { acme = … }) answers it";

/// Whether a location is certbot's HTTP challenge, which berth's ACME answers itself.
fn acme_challenge(d: &Directive) -> bool {
    d.args
        .iter()
        .any(|a| a.starts_with("/.well-known/acme-challenge"))
}

/// Servers (in `http { }` or at the top of a sites file) and upstreams; everything else
/// at these levels is nginx's own.
fn collect<'a>(
    out: &mut Import,
    file: &str,
    list: &'a [Directive],
    upstreams: &mut Vec<(String, Vec<String>)>,
    servers: &mut Vec<&'a Directive>,
    max_body: &mut Option<String>,
) {
    for d in list {
        match (d.name.as_str(), &d.block) {
            ("http", Some(block)) => collect(out, file, block, upstreams, servers, max_body),
            // The limit every server inherits: the gateway's.
            ("client_max_body_size", None) => match size(d.arg(0)) {
                Some(v) => *max_body = Some(v),
                None => out.skip(file, d.line, &d.text(), "berth's max_body is a size > 0"),
            },
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
        .flat_map(|d| d.args.iter().filter_map(|n| host_name(n).ok()).flatten())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A `server_name` as berth's route hosts: `.example.org` is the name and its
/// subdomains; `_` and `""` are none; regular expressions, IP addresses and wildcards
/// other than a leading `*.` have no equivalent.
fn host_name(name: &str) -> Result<Vec<String>, &'static str> {
    if name == "_" || name.is_empty() || name == "\"\"" {
        return Ok(Vec::new());
    }
    if name.starts_with('~') {
        return Err("a regular expression: berth's route hosts are names or *.NAME");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address: berth's route hosts are names");
    }
    if let Some(base) = name.strip_prefix('.') {
        return Ok(vec![
            base.to_ascii_lowercase(),
            format!("*.{}", base.to_ascii_lowercase()),
        ]);
    }
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.contains('*') || rest.is_empty() {
        return Err("berth's route hosts take a wildcard only as a leading `*.`");
    }
    Ok(vec![name.to_ascii_lowercase()])
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
        max_body: None,
    };
    let mut returns = None;
    let mut locations = Vec::new();
    for d in body {
        let mut skip = |why: &str| out.skip(file, d.line, &d.text(), why);
        match d.name.as_str() {
            "listen" => match address(d.arg(0)) {
                Ok(a) => s.listens.push((a, d.args.iter().any(|x| x == "ssl"), d)),
                Err(why) => skip(why),
            },
            "server_name" => {
                for n in &d.args {
                    if let Err(why) = host_name(n) {
                        out.skip(file, d.line, &format!("server_name {n}"), why);
                    }
                }
            }
            // Read before, by tls_of.
            "ssl_certificate" | "ssl_certificate_key" => {}
            "root" => s.root = Some(d.arg(0).to_string()),
            "index" => s.index = Some(d.arg(0).to_string()),
            "client_max_body_size" => match size(d.arg(0)) {
                Some(v) => s.max_body = Some(v),
                None => skip("berth's max_body is a size > 0"),
            },
            "return" => returns = Some(d),
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
    // A plain server that only sends everything to HTTPS (at the server or in
    // `location /`, perhaps beside certbot's challenge) is berth's `http` listener.
    let https_redirect = |d: &Directive| redirect(d).is_some_and(|(url, _)| to_https(&url));
    let root_return = locations.iter().find_map(|l| {
        let only_return = l.arg(0) == "/"
            && l.block
                .as_deref()
                .is_some_and(|b| b.len() == 1 && b[0].name == "return");
        only_return.then(|| &l.block.as_deref().unwrap_or_default()[0])
    });
    let redirect_only = !any_ssl
        && match (returns, root_return) {
            (Some(r), _) => https_redirect(r) && locations.iter().all(|l| acme_challenge(l)),
            (None, Some(r)) => {
                https_redirect(r)
                    && locations
                        .iter()
                        .all(|l| acme_challenge(l) || l.arg(0) == "/")
            }
            (None, None) => false,
        };
    if redirect_only {
        for l in locations.iter().filter(|l| acme_challenge(l)) {
            out.skip(file, l.line, &l.text(), ACME_CHALLENGE);
        }
        if gw.tls.is_none() {
            for (_, _, l) in &s.listens {
                out.skip(
                    file,
                    l.line,
                    &l.text(),
                    "it redirects to HTTPS, which no server here serves: import the HTTPS \
                     server's file with this one",
                );
            }
            return;
        }
        for (addr, _, l) in &s.listens {
            if gw.http.is_none() {
                gw.http = Some(addr.clone());
                gw.notes.push(format!(
                    "http = \"{addr}\": {} (redirects every request to HTTPS)",
                    l.text().trim_end_matches(';')
                ));
            } else if gw.http.as_deref() != Some(addr) {
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
    let routes_before = gw.routes.len();
    if let Some(d) = returns {
        match redirect_target(d) {
            Ok((url, status)) => add_route(
                out,
                gw,
                file,
                &s,
                with_hosts,
                d,
                "/",
                Target::Redirect(url),
                |r| r.status = Some(status),
            ),
            Err(why) => out.skip(file, d.line, &d.text(), why),
        }
    }
    for loc in &locations {
        if acme_challenge(loc) {
            out.skip(file, loc.line, &loc.text(), ACME_CHALLENGE);
            continue;
        }
        location(out, gw, file, &s, with_hosts, loc, upstreams);
    }
    // nginx serves what no location matches from the server's root.
    let has_root_location = locations.iter().any(|l| {
        matches!(l.args.as_slice(), [p] if p == "/")
            || matches!(l.args.as_slice(), [m, p] if m == "^~" && p == "/")
    });
    if returns.is_none()
        && !has_root_location
        && let Some(root) = &s.root
    {
        let target = Target::Static(root.clone());
        add_route(out, gw, file, &s, with_hosts, server, "/", target, |r| {
            r.index = s.index.clone().filter(|i| i != "index.html");
        });
    }
    let kept = gw.routes.len() > routes_before;
    for (addr, ssl, l) in &s.listens {
        if !kept {
            out.skip(
                file,
                l.line,
                &l.text(),
                "none of this server's routes could be kept",
            );
        } else if gw.tls.is_some() && !ssl {
            // The gateway has TLS: its listeners all speak it, and plain HTTP only
            // redirects there.
            out.skip(
                file,
                l.line,
                &l.text(),
                "berth serves plain HTTP only as a redirect to HTTPS once the gateway has \
                 TLS: this server's routes are served over HTTPS",
            );
            if gw.http.is_none() {
                gw.http = Some(addr.clone());
            }
        } else if !gw.listen.contains(addr) {
            gw.listen.push(addr.clone());
        }
    }
    if gw.from.is_none() {
        gw.from = Some(Origin::new(file, server.line));
    }
}

/// A `return` as a redirect route's target and status: `$request_uri` at the end becomes
/// berth's appending of the path and query (a target ending in `/`); a fixed target
/// ending in `/` would get the path appended, which nginx does not do.
fn redirect_target(d: &Directive) -> Result<(String, u16), &'static str> {
    let Some((url, status)) = redirect(d) else {
        return Err("berth's redirect routes answer 301, 302, 303, 307 or 308 with a URL");
    };
    if let Some(base) = url.strip_suffix("$request_uri")
        && !base.contains('$')
        && !base.is_empty()
    {
        return Ok((format!("{}/", base.trim_end_matches('/')), status));
    }
    if url.contains('$') {
        return Err(
            "berth's redirect targets are fixed URLs; $variables other than a \
                    final $request_uri are not read",
        );
    }
    if let Some(bare) = url.strip_suffix('/') {
        // `https://example.org/`: the same target without the slash is not appended to.
        if bare.matches('/').count() == 2 {
            return Ok((bare.to_string(), status));
        }
        return Err(
            "berth appends the rest of the path to a target ending in `/`, which \
                    nginx did not: write the target without the final `/`",
        );
    }
    Ok((url, status))
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
            "return" => match redirect_target(d) {
                Ok(r) => ret = Some(r),
                Err(why) => skip(why),
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
            // nginx's limit of the location, else the server's (berth's default is 10 MiB
            // and nginx's 1 MiB: the imported route keeps what nginx allowed).
            r.max_body = max_body.clone().or(s.max_body.clone());
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
                    .is_some_and(|p| p <= port && u32::from(port) < u32::from(p) + s.instances)
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
