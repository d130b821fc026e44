//! Gateway integration tests: a real gateway on loopback, driven by curl (a real HTTP
//! client, over HTTP/1.1, HTTP/2 and TLS) and by hyper, in front of real upstream
//! servers started by the tests.

mod acme;
mod auth;
mod budget;
mod limits;
mod plain;
mod proxy;
mod refusals;
mod statics;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_gateway::{
    Backends, Gateway, GatewaySpec, RouteSpec, StaticSpec, Target, TlsSpec, Upstream,
};

/// Backends the test sets by hand.
#[derive(Default)]
pub struct FixedBackends {
    /// The ready addresses, by service.
    pub ready: Mutex<HashMap<String, Vec<SocketAddr>>>,
}

impl FixedBackends {
    /// Sets the ready addresses of `service`.
    pub fn set(&self, service: &str, addrs: Vec<SocketAddr>) {
        self.ready.lock().unwrap().insert(service.into(), addrs);
    }
}

impl Backends for FixedBackends {
    fn ready(&self, service: &str) -> Arc<[SocketAddr]> {
        Arc::from(
            self.ready
                .lock()
                .unwrap()
                .get(service)
                .cloned()
                .unwrap_or_default(),
        )
    }
}

/// A spec listening on a free loopback port with these routes.
pub fn spec(routes: Vec<RouteSpec>, tls_dir: &Path) -> GatewaySpec {
    GatewaySpec {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: None,
        http: None,
        routes,
        access_log: None,
        tls_dir: tls_dir.to_path_buf(),
        tls_reload_every: Duration::from_millis(100),
        login: berth_gateway::LoginSpec::default(),
        budgets: Vec::new(),
        clock: berth_gateway::Clock::system(),
        node: "test".into(),
        workers: 2,
        connections: Default::default(),
    }
}

/// Starts the gateway; returns it and its base URL.
pub async fn start(spec: GatewaySpec, backends: Arc<FixedBackends>) -> (Gateway, String) {
    let tls = spec.tls.is_some();
    let gateway = Gateway::start(spec, backends, None)
        .await
        .expect("gateway starts");
    let addr = gateway.local_addrs()[0];
    let base = if tls {
        format!("https://localhost:{}", addr.port())
    } else {
        format!("http://{addr}")
    };
    (gateway, base)
}

/// A static route serving `dir` (prefix stripped, `index.html`).
pub fn static_route(path: &str, dir: &Path, spa: bool) -> RouteSpec {
    RouteSpec {
        host: None,
        path: path.into(),
        target: Target::Static(StaticSpec {
            dir: dir.to_path_buf(),
            index: "index.html".into(),
            spa,
            strip_prefix: true,
        }),
        auth: None,
        budget: None,
        rate_limit: None,
        headers: Vec::new(),
    }
}

/// A proxy route to `upstream`.
pub fn proxy_route(path: &str, upstream: Upstream, strip_prefix: bool) -> RouteSpec {
    RouteSpec {
        host: None,
        path: path.into(),
        target: Target::Proxy {
            upstream,
            strip_prefix,
            max_body: 1024,
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            upgrade_idle: Duration::from_secs(600),
        },
        auth: None,
        budget: None,
        rate_limit: None,
        headers: Vec::new(),
    }
}

/// The output of curl with `args`: (status code from `-w`, body).
pub async fn curl(args: &[&str]) -> (String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        if !out.status.success() {
            return (
                format!("curl failed: {}", String::from_utf8_lossy(&out.stderr)),
                body.to_owned(),
            );
        }
        (code.to_owned(), body.to_owned())
    })
    .await
    .unwrap()
}

/// Just the response headers of curl with `args`, all lowercase.
pub async fn curl_head(args: &[&str]) -> String {
    curl_head_raw(args).await.to_ascii_lowercase()
}

/// Just the response headers of curl with `args`, as sent.
pub async fn curl_head_raw(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "/dev/null", "-D", "-"])
            .args(&args)
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// Makes `tls` of `spec` the given source.
pub fn with_tls(mut spec: GatewaySpec, tls: TlsSpec) -> GatewaySpec {
    spec.tls = Some(tls);
    spec
}
