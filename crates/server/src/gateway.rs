//! `[gateway]` → the gateway's spec, and the supervisor's ready instances as the
//! gateway's [`Backends`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use berth_config::{
    AccessLogFormat, AuthKind, BudgetConfig, BudgetPeriod, Config, RouteTarget, TlsConfig,
};
use berth_gateway::{
    AccessLog, AuthMethod, Backends, BudgetSpec, Clock, GatewaySpec, HookSink, LoginSpec, Period,
    RouteAuth, RouteSpec, StaticSpec, Target, TlsSpec, Upstream,
};
use berth_supervise::{InstanceState, Supervisor};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How often certificate files are checked for changes.
const TLS_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// The gateway's spec, if the config has a `[gateway]`.
///
/// `clock` and `node` serve the budgets (their periods, and the events they record);
/// `hooks` takes the requests of the ingests' webhooks.
pub fn gateway_spec(
    config: &Config,
    clock: Clock,
    node: &str,
    hooks: HookSink,
) -> anyhow::Result<Option<GatewaySpec>> {
    let Some(g) = &config.gateway else {
        return Ok(None);
    };
    let tls = match &g.tls {
        None => None,
        Some(TlsConfig::Files { cert, key }) => Some(TlsSpec::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        Some(TlsConfig::SelfSigned) => Some(TlsSpec::SelfSigned),
        Some(TlsConfig::Acme(a)) => Some(TlsSpec::Acme(berth_gateway::AcmeSpec {
            email: a.email.clone(),
            domains: a.domains.clone(),
            directory: a.directory.clone(),
            challenge: match a.challenge {
                berth_config::AcmeChallenge::Http01 => berth_gateway::Challenge::Http01,
                berth_config::AcmeChallenge::TlsAlpn01 => berth_gateway::Challenge::TlsAlpn01,
            },
            ca: a.ca.clone(),
            renew_before: a.renew_before,
        })),
    };
    let auth = |kind: AuthKind, roles: &[String]| RouteAuth {
        method: match kind {
            AuthKind::Login => AuthMethod::Login,
            AuthKind::Token => AuthMethod::Token,
        },
        roles: roles.to_vec(),
    };
    let mut routes: Vec<RouteSpec> = g
        .routes
        .iter()
        .map(|r| {
            let proxy = |upstream, strip_prefix| Target::Proxy {
                upstream,
                strip_prefix,
                max_body: r.max_body.unwrap_or(g.max_body),
                timeout: r.timeout.unwrap_or(g.timeout),
                connect_timeout: g.connect_timeout,
                upgrade_idle: g.websocket_idle,
            };
            RouteSpec {
                host: r.host.clone(),
                path: r.path.clone(),
                target: match &r.target {
                    RouteTarget::Static {
                        dir,
                        index,
                        spa,
                        strip_prefix,
                    } => Target::Static(StaticSpec {
                        dir: dir.clone(),
                        index: index.clone(),
                        spa: *spa,
                        strip_prefix: *strip_prefix,
                    }),
                    RouteTarget::Service { name, strip_prefix } => {
                        proxy(Upstream::Service(name.clone()), *strip_prefix)
                    }
                    RouteTarget::Proxy {
                        authority,
                        strip_prefix,
                    } => proxy(Upstream::Fixed(authority.clone()), *strip_prefix),
                    RouteTarget::Redirect { to, status } => Target::Redirect {
                        to: to.clone(),
                        status: *status,
                    },
                    RouteTarget::Api { scopes } => Target::Api {
                        scopes: scopes.clone(),
                        sink: hooks.clone(),
                    },
                    RouteTarget::Dashboard => Target::Dashboard {
                        sink: hooks.clone(),
                        max_body: r.max_body.unwrap_or(g.max_body),
                    },
                },
                budget: r.budget.clone(),
                rate_limit: r.rate_limit.map(|l| berth_gateway::RateLimitSpec {
                    per_address: l.per_address,
                    per_user: l.per_user,
                    burst: l.burst,
                }),
                auth: r.auth.map(|kind| auth(kind, &r.roles)),
                // The config checked each name and value: these parse.
                headers: r
                    .headers
                    .iter()
                    .filter_map(|(name, value)| {
                        Some((
                            hyper::header::HeaderName::from_bytes(name.as_bytes()).ok()?,
                            hyper::header::HeaderValue::from_str(value).ok()?,
                        ))
                    })
                    .collect(),
            }
        })
        .collect();
    // Each webhook is a route of its own, whose requests the ingest takes.
    for i in config.ingests.values() {
        let Some(hook) = &i.webhook else { continue };
        routes.push(RouteSpec {
            host: None,
            path: hook.path.clone(),
            target: Target::Hook {
                ingest: i.name.clone(),
                sink: hooks.clone(),
                max_body: i.max_payload,
                body_timeout: g.timeout,
            },
            budget: None,
            rate_limit: None,
            auth: hook.auth.map(|kind| auth(kind, &hook.roles)),
            headers: Vec::new(),
        });
    }
    let access_log = match g.access_log {
        AccessLogFormat::Off => None,
        format => Some(AccessLog {
            path: crate::services::log_dir(config).join("access.log"),
            format: match format {
                AccessLogFormat::Json => berth_gateway::AccessLogFormat::Json,
                _ => berth_gateway::AccessLogFormat::Combined,
            },
            max_bytes: g.access_log_max_size,
            keep: g.access_log_keep,
        }),
    };
    Ok(Some(GatewaySpec {
        listen: g.listen.clone(),
        tls,
        http: g.http,
        routes,
        access_log,
        tls_dir: config.app.data_dir.join("tls"),
        tls_reload_every: TLS_RELOAD_EVERY,
        login: LoginSpec {
            session_ttl: g.session,
            lockout: berth_store::Lockout {
                after: g.lockout_after,
                lasts: g.lockout_for,
            },
        },
        budgets: config
            .budgets
            .values()
            .map(budget_spec)
            .collect::<anyhow::Result<_>>()?,
        clock,
        node: node.to_owned(),
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        connections: berth_gateway::ConnectionLimits {
            total: g.max_connections as usize,
            per_address: g.max_connections_per_address as usize,
        },
    }))
}

/// Millionths of a budget's unit.
fn micros(amount: f64) -> i64 {
    (amount * 1_000_000.0).round() as i64
}

/// A `[budget.NAME]` as the gateway enforces it.
pub fn budget_spec(b: &BudgetConfig) -> anyhow::Result<BudgetSpec> {
    Ok(BudgetSpec {
        name: b.name.clone(),
        limit: micros(b.limit),
        period: match b.period {
            BudgetPeriod::Day => Period::Day,
            BudgetPeriod::Month => Period::Month,
        },
        tz: berth_cron::time_zone(&b.timezone)?,
        cost_per_request: micros(b.cost_per_request),
        cost_header: b
            .cost_header
            .as_deref()
            .map(hyper::header::HeaderName::try_from)
            .transpose()
            .with_context(|| format!("budget `{}`: a bad `cost_header`", b.name))?,
        status: hyper::StatusCode::from_u16(b.status)?,
    })
}

/// The ready instances of every service, refreshed on each supervisor event (and once a
/// second, in case an event was missed).
pub struct ServiceBackends {
    ready: RwLock<HashMap<String, Arc<[SocketAddr]>>>,
    empty: Arc<[SocketAddr]>,
}

impl ServiceBackends {
    /// Starts following `supervisor` until `stop`.
    pub fn follow(supervisor: Arc<Supervisor>, stop: CancellationToken) -> Arc<Self> {
        let this = Arc::new(Self {
            ready: RwLock::new(HashMap::new()),
            empty: Arc::from(Vec::new()),
        });
        this.refresh(&supervisor);
        let mut events = supervisor.subscribe();
        let me = this.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    event = events.recv() => {
                        if let Err(RecvError::Closed) = event {
                            return;
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                me.refresh(&supervisor);
            }
        });
        this
    }

    fn refresh(&self, supervisor: &Supervisor) {
        let mut map: HashMap<String, Vec<SocketAddr>> = HashMap::new();
        for s in supervisor.status() {
            let entry = map.entry(s.service.clone()).or_default();
            if let (InstanceState::Running, Some(port)) = (s.state, s.port) {
                entry.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
            }
        }
        let map = map
            .into_iter()
            .map(|(name, addrs)| (name, Arc::from(addrs)))
            .collect();
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = map;
    }
}

impl Backends for ServiceBackends {
    fn ready(&self, service: &str) -> Arc<[SocketAddr]> {
        self.ready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .cloned()
            .unwrap_or_else(|| self.empty.clone())
    }
}
