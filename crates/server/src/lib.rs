//! Builds every berth component from a [`Config`], runs them, and stops them in order.
//!
//! # Layout
//! - [`Daemon`] (this file): start (lock, store, queues, executors, API listeners), wait,
//!   graceful stop;
//! - [`backup`]: `[backup]` → scheduled archives (a leader task), shared with `berth backup`;
//! - [`lock`]: one berth per data dir;
//! - [`notify`]: `[notify.NAME]` → the notifier, a leader task;
//! - [`orphans`]: job processes a killed berth left behind;
//! - [`services`]: `[service.NAME]` → the supervisor's specs;
//! - `events`: the supervisor's events → the store and the log;
//! - [`gateway`]: `[gateway]` → the gateway's spec, and the services' ready instances;
//! - `reload`: SIGHUP and `berth reload` — the changed services, applied;
//! - [`specs`]: config → queue settings.

pub mod backup;
mod concurrency;
pub mod deploy;
mod events;
pub mod gateway;
pub mod ingest;
pub mod lock;
pub mod notify;
pub mod orphans;
pub mod reload;
pub mod services;
pub mod specs;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use berth_api::AppState;
use berth_config::{Config, Durability, StoreChoice};
use berth_queue::{Clock, Handler, Queues, Runtime, RuntimeOptions, SystemClock};
use berth_store::{PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use lock::DataDirLock;

/// The database file inside the data dir.
pub const DB_FILE: &str = "berth.db";
/// The API socket inside the data dir.
pub const SOCKET_FILE: &str = "berth.sock";

/// The socket path for a config.
pub fn socket_path(config: &Config) -> PathBuf {
    config.app.data_dir.join(SOCKET_FILE)
}

/// Options that tests and benchmarks set; `berth up` uses the defaults.
pub struct Options {
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// In-process handlers replacing configured ones, by queue name.
    pub handlers: HashMap<String, Arc<dyn Handler>>,
    /// Overrides `[api] listen` (use port 0 in tests).
    pub tcp_listen: Option<SocketAddr>,
    /// The TCP bearer token, instead of reading it from the environment.
    pub tcp_token: Option<String>,
    /// Overrides `[app] leader_ttl`.
    pub leader_ttl: Option<std::time::Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            handlers: HashMap::new(),
            tcp_listen: None,
            tcp_token: None,
            leader_ttl: None,
        }
    }
}

/// A running berth.
pub struct Daemon {
    queues: Queues,
    runtime: Runtime,
    stop_api: CancellationToken,
    /// Ends the dashboard's live streams at the start of a stop.
    stop_pages: CancellationToken,
    api_tasks: Vec<JoinHandle<()>>,
    socket: PathBuf,
    tcp_addr: Option<SocketAddr>,
    grace: std::time::Duration,
    supervisor: Arc<berth_supervise::Supervisor>,
    reloader: Arc<reload::Reloader>,
    stop_events: CancellationToken,
    recorder: JoinHandle<()>,
    gateway: Option<Arc<berth_gateway::Gateway>>,
    ingests: Arc<berth_ingest::Ingests>,
    _lock: DataDirLock,
}

impl Daemon {
    /// Starts everything the config describes. Fails, before anything runs, if the data
    /// dir is held by another berth, the database cannot be used, or a listener cannot
    /// bind.
    pub async fn start(config: &Config, options: Options) -> anyhow::Result<Daemon> {
        let data_dir = &config.app.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
        let lock = DataDirLock::acquire(data_dir)?;
        let marker = data_dir.join(berth_backup::RESTORE_MARKER);
        if let Ok(said) = std::fs::read_to_string(&marker) {
            bail!(
                "a restore did not finish: {}; check the data, put back what is missing, \
                 then remove {} (or run the restore again)",
                said.trim(),
                marker.display()
            );
        }
        let store = open_store(config).await?;
        let node_name = node_name(data_dir)?;
        claim_node_name(
            store.as_ref(),
            &node_name,
            lock.previous_pid,
            config.app.leader_ttl,
        )
        .await?;
        let queues = Queues::for_node(
            store,
            options.clock.clone(),
            specs::queue_specs(config),
            &node_name,
        )
        .with_lease_ttl(config.app.lease_ttl);
        for name in options.handlers.keys() {
            queues.spec(name)?;
        }
        // A deploy this node's previous run left half-done is ended first (the link put
        // back on one whole release), so that the services start on one release.
        let release = berth_queue::ReleaseDir::default();
        let deploy_spec = deploy::deploy_spec(config, &node_name);
        if let Some(spec) = &deploy_spec {
            let target = Arc::new(deploy::AppTarget::stopped(
                queues.store().clone(),
                &node_name,
                config,
            ));
            let recovering =
                berth_deploy::Deployer::new(spec.clone(), queues.store().clone(), target);
            for line in recovering.recover().await {
                tracing::warn!("{line}");
            }
            release.set(recovering.releases().current_path());
        }
        // Services are checked (env files, free ports) before anything starts. With
        // [deploy] and no release yet, they start with the first deploy.
        let service_specs = match (&deploy_spec, release.get()) {
            (Some(spec), None) => {
                if !config.services.is_empty() {
                    tracing::warn!(
                        releases = %spec.dir.display(),
                        "no release is deployed yet: the services start with the first `berth deploy`"
                    );
                }
                Vec::new()
            }
            (_, current) => services::service_specs(config, current.as_deref())?,
        };
        let gateway_clock = {
            let clock = options.clock.clone();
            berth_gateway::Clock(Arc::new(move || clock.now()))
        };
        let webhooks = Arc::new(ingest::Webhooks::default());
        let gateway_spec = gateway::gateway_spec(
            config,
            gateway_clock,
            &node_name,
            berth_gateway::HookSink(webhooks.clone()),
        )?;
        for s in config.services.values() {
            services::check_ports(s)?;
        }
        let supervisor = Arc::new(berth_supervise::Supervisor::new());
        let stop_events = CancellationToken::new();
        let recorder = events::record(
            queues.store().clone(),
            node_name.clone(),
            supervisor.subscribe(),
            stop_events.clone(),
        );
        let workflows =
            berth_workflow::Workflows::new(queues.clone(), specs::workflow_defs(config));
        let scheduler = berth_schedule::Scheduler::new(
            queues.clone(),
            workflows.clone(),
            specs::schedule_defs(config).map_err(anyhow::Error::msg)?,
        );
        let ingest_specs =
            ingest::ingest_specs(config, &queues, &workflows, options.clock.clone())?;
        let notifier = notify::notifier(config, queues.store().clone())?;
        let notify_task = Arc::new(notify::NotifyTask(berth_queue::Live::new(notifier)));
        let backup_task = Arc::new(backup::BackupTask::new(
            queues.store().clone(),
            backup::backups(config)?,
            &node_name,
        ));
        let leader_tasks: Vec<Arc<dyn berth_queue::LeaderTask>> = vec![
            Arc::new(scheduler.clone()),
            Arc::new(berth_workflow::Deadlines(workflows.clone())),
            notify_task.clone(),
            backup_task.clone(),
        ];
        // The gateway binds before the API: a taken port stops the start early.
        let gateway = match gateway_spec {
            Some(spec) => {
                let backends =
                    gateway::ServiceBackends::follow(supervisor.clone(), stop_events.clone());
                Some(Arc::new(
                    berth_gateway::Gateway::start(spec, backends, Some(queues.store().clone()))
                        .await?,
                ))
            }
            None => None,
        };
        let ingests = ingest::start(ingest_specs, &queues, options.clock.clone()).await?;
        webhooks.serve(ingests.clone());
        let reloader = Arc::new(reload::Reloader::new(
            config.clone(),
            supervisor.clone(),
            reload::Parts {
                queues: queues.clone(),
                queue_control: std::sync::OnceLock::new(),
                workflows: workflows.clone(),
                scheduler: scheduler.clone(),
                gateway: gateway.clone(),
                ingests: ingests.clone(),
                notify: notify_task,
                backup: backup_task.clone(),
                clock: options.clock.clone(),
                node: node_name.clone(),
                hooks: berth_gateway::HookSink(webhooks.clone()),
                release: release.clone(),
            },
        ));
        let deploys = deploy_spec.map(|spec| {
            let target = Arc::new(deploy::AppTarget::running(
                queues.store().clone(),
                &node_name,
                config,
                release.clone(),
                reloader.clone(),
                supervisor.clone(),
            ));
            let deployer = Arc::new(berth_deploy::Deployer::new(
                spec,
                queues.store().clone(),
                target,
            ));
            Arc::new(deploy::Deploys::new(deployer)) as Arc<dyn berth_api::Deploys>
        });
        let state = AppState {
            ingests: Some(ingests.clone()),
            gateway: gateway.clone(),
            workflows: workflows.clone(),
            scheduler: scheduler.clone(),
            queues: queues.clone(),
            app: config.app.name.clone(),
            started: Instant::now(),
            services: supervisor.clone(),
            reload: Some(reloader.clone()),
            deploys,
            backups: Some(backup_task.clone()),
        };
        let tcp_listen = options.tcp_listen.or(config.api.listen);
        let mut tcp = None;
        if let Some(addr) = tcp_listen {
            let token = match options.tcp_token {
                Some(t) => t,
                None => match std::env::var(&config.api.token_env) {
                    Ok(t) if t.len() >= 16 => t,
                    Ok(_) => bail!(
                        "the API token in ${} is too short; use at least 16 random characters (e.g. `openssl rand -hex 24`)",
                        config.api.token_env
                    ),
                    Err(_) => bail!(
                        "[api] listen = \"{addr}\" needs a bearer token in the environment variable ${}; set it, or remove `listen` to use only the unix socket",
                        config.api.token_env
                    ),
                },
            };
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the API"))?;
            tcp = Some((listener, token));
        }
        let socket = socket_path(config);
        // The lock proves no other berth uses this socket: a leftover file is stale.
        let _ = std::fs::remove_file(&socket);
        let unix = UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on the socket {}", socket.display()))?;
        // The socket is the whole admin API without a token: only berth's own user may
        // connect, whatever the umask berth was started with.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make the socket {} private", socket.display()))?;
        }

        let stop_api = CancellationToken::new();
        let api_router = berth_api::router(state.clone());
        webhooks.serve_api(api_router.clone());
        let stop_pages = CancellationToken::new();
        webhooks.serve_dashboard(berth_api::dashboard::Dashboard::new(
            state.clone(),
            api_router.clone(),
            stop_pages.clone(),
        ));
        let mut api_tasks = vec![serve(unix, api_router, stop_api.clone())];
        let mut tcp_addr = None;
        if let Some((listener, token)) = tcp {
            tcp_addr = Some(listener.local_addr()?);
            api_tasks.push(serve(
                listener,
                berth_api::router_with_token(state, token),
                stop_api.clone(),
            ));
        }
        // Jobs start only once every listener is bound, so a failed start leaves no attempt
        // behind. Job processes a killed berth left behind would run beside their own retries.
        let marker = orphans::marker(data_dir);
        let killed = orphans::kill_leftovers(&marker);
        if killed > 0 {
            tracing::warn!(
                killed,
                "killed job processes left running by a previous berth"
            );
        }
        // Services before jobs: a `post` handler may need them. Each starts once the
        // services it depends on are ready.
        for spec in service_specs {
            tracing::info!(service = %spec.name, instances = spec.instances, "starting service");
            supervisor.add(spec)?;
        }
        let runtime = Runtime::start(
            queues.clone(),
            RuntimeOptions {
                handlers: options.handlers,
                job_env: vec![marker],
                release: config.deploy.is_some().then(|| release.clone()),
                grace: config.app.shutdown_grace,
                leader_ttl: options.leader_ttl.unwrap_or(config.app.leader_ttl),
                leader_tasks,
                previous_pid: lock.previous_pid,
            },
        )
        .await?;
        reloader.set_queue_control(runtime.queue_control());
        tokio::spawn(concurrency::follow(
            queues.store().clone(),
            runtime.queue_control(),
            stop_api.clone(),
        ));
        tracing::info!(
            app = %config.app.name,
            node = %node_name,
            store = %config.app.store.redacted(),
            data_dir = %data_dir.display(),
            socket = %socket.display(),
            tcp = ?tcp_addr,
            queues = queues.specs().len(),
            "berth is up"
        );
        Ok(Daemon {
            queues,
            runtime,
            stop_api,
            stop_pages,
            api_tasks,
            socket,
            tcp_addr,
            grace: config.app.shutdown_grace,
            supervisor,
            reloader,
            stop_events,
            recorder,
            gateway,
            ingests,
            _lock: lock,
        })
    }

    /// Re-reads the config file and applies its service changes (SIGHUP, `berth
    /// reload`): what changed, or the errors that kept anything from changing.
    pub async fn reload(&self) -> Result<berth_api::types::ReloadReport, String> {
        self.reloader.apply().await
    }

    /// The queues (for in-process use by tests and the benchmark).
    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// The API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The TCP API address, if listening.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The bound MQTT addresses of ingest `name` (TCP, then WebSocket).
    pub fn mqtt_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.ingests.mqtt_addrs(name)
    }

    /// The gateway's bound addresses (the real ports when 0 was asked), if it runs.
    pub fn gateway_addrs(&self) -> Vec<SocketAddr> {
        self.gateway
            .as_ref()
            .map(|g| g.local_addrs().to_vec())
            .unwrap_or_default()
    }

    /// Stops gracefully: the gateway takes no new connections and finishes its requests;
    /// no new jobs are fetched, running ones get the grace period, the
    /// rest are released to run again on the next start; then the API closes.
    pub async fn stop(self) {
        tracing::info!(grace = ?self.grace, "stopping: no new jobs; waiting for running ones");
        // Workers waiting in a long poll get an empty answer now, and no new leases; open
        // dashboard pages lose their live stream (the browser shows it disconnected).
        self.queues.close();
        self.stop_pages.cancel();
        // The gateway's requests and the running jobs finish side by side, within one
        // grace period, before the services they may need stop.
        let gateway = async {
            if let Some(gateway) = &self.gateway {
                gateway.stop(self.grace).await;
            }
        };
        // The brokers close their connections and store what they took in.
        let ingests = async {
            self.ingests.stop().await;
        };
        tokio::join!(gateway, ingests, self.runtime.stop());
        // Jobs first (their handlers may post to services), then services in reverse
        // dependency order.
        self.supervisor.stop().await;
        // The stops just reported are recorded before the store closes.
        self.stop_events.cancel();
        let _ = self.recorder.await;
        self.stop_api.cancel();
        for t in self.api_tasks {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!("berth stopped");
    }
}

/// The node's name as `berth up` records it in the data dir, or, before it first ran,
/// this machine's name: what the CLI's own events (a manual backup) are recorded under.
pub fn node_of(config: &Config) -> String {
    std::fs::read_to_string(config.app.data_dir.join("node"))
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(berth_queue::queues::hostname)
}

/// The node's name: kept in the data dir so it survives restarts (the next run then
/// knows which running attempts were its own), made from the host name and a random
/// suffix the first time so that two nodes on one host differ.
pub fn node_name(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node");
    match std::fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => Ok(name.trim().to_string()),
        _ => {
            let name = format!(
                "{}-{:04x}",
                berth_queue::queues::hostname(),
                fastrand::u16(..)
            );
            std::fs::write(&path, format!("{name}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(name)
        }
    }
}

/// Refuses to start when another live process reports under this node's name (a copied
/// data dir), then reports this process under it at once — before the API answers — so
/// that a twin started after this one sees it.
async fn claim_node_name(
    store: &dyn Store,
    name: &str,
    previous_pid: Option<u32>,
    leader_ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let now = berth_store::Timestamp::now();
    let host = berth_queue::queues::hostname();
    for n in store.nodes().await? {
        let fresh = now.since(n.heartbeat_at) < leader_ttl;
        // This data dir's previous run (killed, its lock released; or the run a restore
        // stopped, whose row came back with the restored store) is no twin. Anything
        // else reporting fresh under this name is, even on this host: a process in
        // another container shares the host's name but not its pids.
        let previous_run = n.host == host && Some(n.pid) == previous_pid;
        let twin = (n.host != host || n.pid != std::process::id()) && !previous_run;
        if n.id == name && fresh && twin {
            bail!(
                "another berth (pid {} on {}) runs as node `{name}` on this store; was this data dir copied? Delete its `node` file to give this node a name of its own",
                n.pid,
                n.host
            );
        }
    }
    store
        .node_heartbeat(berth_store::NodeInfo {
            id: name.to_string(),
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: now,
            heartbeat_at: now,
        })
        .await?;
    Ok(())
}

/// Opens the store the config names: the SQLite file in the data dir, or the shared
/// PostgreSQL database (migrated once, even when several nodes start together).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &config.app.store {
        StoreChoice::Sqlite => {
            if config.app.store_connections != 16 {
                tracing::warn!(
                    store_connections = config.app.store_connections,
                    "`store_connections` in [app] sizes a PostgreSQL store's pool; the SQLite \
                     store has one writer and does not use it"
                );
            }
            let path = config.app.data_dir.join(DB_FILE);
            Arc::new(SqliteStore::open(
                &path,
                SqliteOptions {
                    durable: config.app.durability == Durability::Full,
                    ..Default::default()
                },
            )?)
        }
        StoreChoice::Postgres { url } => {
            let options = PostgresOptions {
                max_connections: config.app.store_connections as usize,
            };
            Arc::new(PostgresStore::open(url, options).await?)
        }
    })
}

fn serve<L>(listener: L, router: axum::Router, stop: CancellationToken) -> JoinHandle<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    tokio::spawn(async move {
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the API listener failed");
        }
    })
}

/// What `berth up` listens for: SIGTERM and SIGINT stop it, SIGHUP reloads the config.
/// Installed before anything starts, so that a signal arriving during the start is
/// never met by its default action (which would kill berth without a graceful stop).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// A signal [`Signals`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM or SIGINT (named): stop.
    Stop(&'static str),
    /// SIGHUP: reload.
    Reload,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// The next signal.
    pub async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.term.recv() => Received::Stop("SIGTERM"),
            _ = self.int.recv() => Received::Stop("SIGINT"),
            _ = self.hup.recv() => Received::Reload,
        }
    }

    /// The next SIGTERM or SIGINT; a SIGHUP meanwhile is ignored.
    pub async fn stop(&mut self) -> &'static str {
        loop {
            if let Received::Stop(name) = self.recv().await {
                return name;
            }
        }
    }
}
