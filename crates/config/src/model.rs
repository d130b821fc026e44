//! The validated document, and its `[app]` and `[api]` tables: typed values that can
//! no longer be wrong. Every other table's types live with its keys and its validator,
//! in the table's own file (`queue.rs`, `service.rs`, `gateway.rs`, …).
//!
//! Nothing here parses text; [`crate::validate`] builds these from the TOML
//! document. The `Default` impls are the documented defaults of `berth.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::queue::QueueConfig;
use crate::service::ServiceConfig;

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
    /// `store_connections` (default 16): the most connections this node opens to a
    /// PostgreSQL store (besides the one that listens for wake-ups). SQLite has one
    /// writer and ignores it.
    pub store_connections: u32,
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
