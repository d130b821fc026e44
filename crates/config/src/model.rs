//! The validated configuration: typed values that can no longer be wrong.
//!
//! Nothing here parses text; [`crate::validate`] builds these from the TOML
//! document. The `Default` impls are the documented defaults of `berth.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A validated `berth.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file this was read from.
    pub path: PathBuf,
    /// The `[app]` table.
    pub app: App,
    /// The `[api]` table (defaults when absent).
    pub api: Api,
    /// One entry per `[queue.NAME]` table, keyed by NAME.
    pub queues: BTreeMap<String, QueueConfig>,
    /// One entry per `[service.NAME]` table, keyed by NAME.
    pub services: BTreeMap<String, ServiceConfig>,
    /// One entry per `[schedule.NAME]` table, keyed by NAME.
    pub schedules: BTreeMap<String, crate::schedule::ScheduleConfig>,
    /// One entry per `[workflow.NAME]` table, keyed by NAME.
    pub workflows: BTreeMap<String, crate::workflow::WorkflowConfig>,
    /// The `[gateway]` table, if any.
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// One entry per `[budget.NAME]` table, keyed by NAME.
    pub budgets: BTreeMap<String, crate::budget::BudgetConfig>,
    /// One entry per `[ingest.NAME]` table, keyed by NAME.
    pub ingests: BTreeMap<String, crate::ingest::IngestConfig>,
    /// The `[backup]` table, if any.
    pub backup: Option<crate::backup::BackupConfig>,
    /// One entry per `[notify.NAME]` table, keyed by NAME.
    pub notify: BTreeMap<String, crate::notify::NotifyConfig>,
    /// The `[deploy]` table, if any.
    pub deploy: Option<crate::deploy::DeployConfig>,
}

/// The `[app]` table: what the application is called and where its state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// `name`: required, letters, digits, `_` and `-`.
    pub name: String,
    /// `data_dir` (default `.berth`), resolved against the config file's directory.
    pub data_dir: PathBuf,
    /// `durability`: how hard the store works to keep a commit across a power cut.
    pub durability: Durability,
    /// `shutdown_grace` (default 30s): how long in-flight work may run on after a stop request.
    pub shutdown_grace: Duration,
    /// `store`: `"sqlite"` (the default: a file in `data_dir`) or a `postgres://` URL
    /// shared by several nodes. `BERTH_STORE` in the environment overrides it (see
    /// [`parse_store`]), so that a password need not sit in the file.
    pub store: StoreChoice,
    /// `leader_ttl` (default 15s): how long the leader lease lasts unless renewed; a dead
    /// leader is replaced within it.
    pub leader_ttl: Duration,
    /// `lease_ttl` (default 60s): how long a running job's lease lasts without a
    /// heartbeat (executors renew at a third of it); a node that dies has its jobs rescued
    /// by the leader within about this long.
    pub lease_ttl: Duration,
}

/// Where berth keeps its state.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreChoice {
    /// The embedded SQLite file in the data dir.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every node.
    Postgres {
        /// The `postgres://` URL (may hold a password: never print it; see
        /// [`StoreChoice::redacted`]).
        url: String,
    },
}

impl StoreChoice {
    /// A description safe to print: the URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            StoreChoice::Sqlite => "sqlite".into(),
            StoreChoice::Postgres { url } => redact(url),
        }
    }
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreChoice({})", self.redacted())
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://{userinfo}@{host}"),
        },
        None => url.to_string(),
    }
}

/// Parses a `store` value (from the file or `BERTH_STORE`). Errors never repeat the
/// value, which may hold a password.
pub fn parse_store(value: &str) -> Result<StoreChoice, String> {
    let value = value.trim();
    if value == "sqlite" {
        return Ok(StoreChoice::Sqlite);
    }
    let Some(rest) = value
        .strip_prefix("postgres://")
        .or_else(|| value.strip_prefix("postgresql://"))
    else {
        return Err(
            "invalid `store`: expected \"sqlite\" or a URL such as \"postgres://USER:PASSWORD@HOST:5432/DATABASE\""
                .into(),
        );
    };
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    if host.is_empty() || host.starts_with('/') || host.starts_with('?') {
        return Err(
            "invalid `store`: the PostgreSQL URL names no host; expected \"postgres://USER:PASSWORD@HOST:5432/DATABASE\""
                .into(),
        );
    }
    Ok(StoreChoice::Postgres {
        url: value.to_string(),
    })
}

/// `durability = "full" | "normal"`: the SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives a power cut (the default).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a crash of berth, but the last
    /// few may be lost on a power cut; faster on slow disks.
    Normal,
}

/// The `[api]` table: how the admin and worker API is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// `listen`: a TCP address for the API; `None` means the unix socket only.
    pub listen: Option<SocketAddr>,
    /// `token_env` (default `BERTH_API_TOKEN`): the environment variable that
    /// holds the bearer token required on TCP. The token never sits in the file.
    pub token_env: String,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            listen: None,
            token_env: "BERTH_API_TOKEN".to_owned(),
        }
    }
}

/// One `[queue.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The table key: lowercase letters, digits, `_` and `-`, at most 64 characters.
    pub name: String,
    /// `concurrency` (default 10, 1..=10000): jobs of this queue running at once on one node.
    pub concurrency: u32,
    /// `handler` (default pull): how a job reaches the application's code.
    pub handler: Handler,
    /// `max_attempts` (default 25, 1..=1000): attempts before a job is discarded.
    pub max_attempts: u32,
    /// `backoff`: the delay between attempts.
    pub backoff: Backoff,
    /// `timeout` (default 30m): how long one attempt may run.
    pub timeout: Duration,
    /// `retention`: how long finished jobs are kept before they are pruned.
    pub retention: Retention,
}

impl QueueConfig {
    /// A queue called `name` with every option at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 10,
            handler: Handler::Pull,
            max_attempts: 25,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(30 * 60),
            retention: Retention::default(),
        }
    }
}

/// `handler`: how a job reaches the application's code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Handler {
    /// `handler = { run = "python3 manage.py import {args.file}" }`: one process
    /// per job, started with `sh -c`.
    Run {
        /// The shell command, non-empty.
        command: String,
    },
    /// `handler = { post = "http://127.0.0.1:8000/jobs" }`: an HTTP POST per job.
    Post {
        /// An `http://` URL with a host, kept as written.
        url: String,
    },
    /// `handler = "pull"` or no handler: long-lived workers lease jobs over the API.
    #[default]
    Pull,
}

/// `backoff = { initial = "1s", max = "1h", factor = 2.0, jitter = 0.1 }`:
/// exponential delay between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure (default 1s, > 0).
    pub initial: Duration,
    /// Longest delay (default 1h, >= `initial`).
    pub max: Duration,
    /// Growth per further failure (default 2.0, finite and >= 1.0).
    pub factor: f64,
    /// Fraction of the delay randomly added or removed (default 0.1, 0.0..=1.0),
    /// so that jobs that failed together do not all retry together.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60 * 60),
            factor: 2.0,
            jitter: 0.1,
        }
    }
}

/// `retention = { completed = "1d", discarded = "7d", cancelled = "7d" }`:
/// how long finished jobs are kept before they are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs (default 24h).
    pub completed: Duration,
    /// Discarded jobs, that ran out of attempts (default 7 days).
    pub discarded: Duration,
    /// Cancelled jobs (default 7 days).
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            completed: Duration::from_secs(DAY),
            discarded: Duration::from_secs(7 * DAY),
            cancelled: Duration::from_secs(7 * DAY),
        }
    }
}

/// One `[service.NAME]` table: a long-running command of the application, run as
/// one or more supervised processes.
///
/// Validation guarantees: `command` is not blank; `port` is set whenever `command`
/// contains `{port}`, and `port + instances - 1` fits in a `u16`; every name in
/// `depends_on` is another service of the same config, and the dependencies form
/// no cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The table key: lowercase letters, digits, `_` and `-`, at most 64 characters.
    pub name: String,
    /// `command` (required, not blank): run with `sh -c`. `{port}` in it stands for
    /// the instance's port.
    pub command: String,
    /// `cwd`: the working directory, resolved against the config file's directory.
    /// `None`: berth's own.
    pub cwd: Option<PathBuf>,
    /// `env = { KEY = "value" }`: added to the environment of every instance. Keys
    /// are environment variable names (`[A-Za-z_][A-Za-z0-9_]*`).
    pub env: BTreeMap<String, String>,
    /// `env_file`: a file of `KEY=value` lines, resolved against the config file's
    /// directory. The config crate never reads it (it may hold secrets); whoever
    /// starts the service does.
    pub env_file: Option<PathBuf>,
    /// `instances` (default 1, 1..=64): how many processes run the command.
    pub instances: u32,
    /// The instances' ports, from `port = 8000` (exactly one port per instance:
    /// instance `i` gets `port + i`) or `ports = "8000-8009"` (instance `i` prefers
    /// `first + i`; the rest are spare, so that a rolling restart can start the new
    /// process beside the old one). Required when `command` contains `{port}`.
    pub ports: Option<PortRange>,
    /// `user`: the user the processes run as; berth must run as root to switch.
    /// `None`: berth's own user.
    pub user: Option<String>,
    /// `ready`: when a started process counts as ready. `None`: once spawned.
    pub ready: Option<ProbeConfig>,
    /// `start_timeout` (default 60s, > 0): how long a started process may take to
    /// become ready before it is killed and counted as a failed start.
    pub start_timeout: Duration,
    /// `live`: a check repeated while an instance runs; `failures` failed checks in a
    /// row restart it.
    pub live: Option<LiveConfig>,
    /// `restart` (default `"always"`): when an exited instance is started again.
    pub restart: Restart,
    /// `stop_signal` (default `"SIGTERM"`): sent to an instance's process group to
    /// stop it, stored in its `SIG…` form: one of `SIGTERM`, `SIGINT`, `SIGQUIT`,
    /// `SIGHUP`, `SIGUSR1`, `SIGUSR2`, `SIGKILL`.
    pub stop_signal: String,
    /// `stop_grace` (default 10s): how long a stopping instance may take before its
    /// process group is killed with SIGKILL.
    pub stop_grace: Duration,
    /// `backoff`: the delay between restarts.
    pub backoff: ServiceBackoff,
    /// `crash_loop`: when restarting gives up.
    pub crash_loop: CrashLoopConfig,
    /// `depends_on` (default none): services started before this one and stopped
    /// after it.
    pub depends_on: Vec<String>,
    /// `log_max_size` (default 10 MiB, > 0): an instance's log file of this many
    /// bytes is rotated.
    pub log_max_size: u64,
    /// `log_keep` (default 5, 0..=100): how many rotated log files are kept.
    pub log_keep: u32,
}

impl ServiceConfig {
    /// A service called `name` that runs `command`, with every other option at its
    /// default.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            command: command.into(),
            cwd: None,
            env: BTreeMap::new(),
            env_file: None,
            instances: 1,
            ports: None,
            user: None,
            ready: None,
            start_timeout: Duration::from_secs(60),
            live: None,
            restart: Restart::default(),
            stop_signal: "SIGTERM".to_owned(),
            stop_grace: Duration::from_secs(10),
            backoff: ServiceBackoff::default(),
            crash_loop: CrashLoopConfig::default(),
            depends_on: Vec::new(),
            log_max_size: 10 * 1024 * 1024,
            log_keep: 5,
        }
    }
}

/// A service's port range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// The first port; instance `i` prefers `first + i`.
    pub first: u16,
    /// The last port, at least `first + instances - 1`.
    pub last: u16,
}

/// `ready = { http = "/healthz" }`, `{ tcp = true }` or `{ command = "…" }`, with
/// optional `interval` and `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeConfig {
    /// What is checked.
    pub check: CheckConfig,
    /// Between two checks (default 1s for `ready`, 10s for `live`).
    pub interval: Duration,
    /// How long one check may take (default 2s).
    pub timeout: Duration,
}

/// The kind of a [`ProbeConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckConfig {
    /// `http = "/path"`: `GET /path` on `127.0.0.1:PORT` answers 2xx or 3xx.
    Http(String),
    /// `tcp = true`: `127.0.0.1:PORT` accepts a connection.
    Tcp,
    /// `command = "…"`: the shell command exits 0 (`{port}` is replaced).
    Command(String),
}

/// `live = { …a probe…, failures = 3 }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveConfig {
    /// The check and its timing.
    pub probe: ProbeConfig,
    /// Failed checks in a row that restart the instance (default 3, 1..=100).
    pub failures: u32,
}

/// `restart = "always" | "on-failure" | "never"`: when an exited instance is
/// started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Restart {
    /// `"always"` (the default): after every exit, successful or not.
    #[default]
    Always,
    /// `"on-failure"`: after an exit with a non-zero code or by a signal.
    OnFailure,
    /// `"never"`: an exited instance stays down until it is started again.
    Never,
}

/// `backoff = { initial = "100ms", max = "30s", factor = 2.0 }`: exponential delay
/// between restarts of a service's instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceBackoff {
    /// The first delay (default 100ms, > 0).
    pub initial: Duration,
    /// The longest delay (default 30s, >= `initial`).
    pub max: Duration,
    /// Growth per further restart (default 2.0, finite and >= 1.0).
    pub factor: f64,
}

impl Default for ServiceBackoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            factor: 2.0,
        }
    }
}

/// `crash_loop = { max_exits = 5, window = "60s" }`: an instance that exits more
/// than `max_exits` times within `window` is not restarted any more and shows as
/// crash-looping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashLoopConfig {
    /// Exits tolerated within the window (default 5, 1..=1000).
    pub max_exits: u32,
    /// The window (default 60s, > 0).
    pub window: Duration,
}

impl Default for CrashLoopConfig {
    fn default() -> Self {
        Self {
            max_exits: 5,
            window: Duration::from_secs(60),
        }
    }
}
