//! `berth.toml`, parsed and validated into a typed [`Config`].
//!
//! A bad config is refused before anything starts, with every problem listed
//! as `file:line:column: what is wrong; what is expected`.
//!
//! # Layout
//!
//! - `lib.rs`: the entry points ([`find`], [`load`], [`parse`]) and [`ConfigError`].
//! - `section.rs`: the raw layer. toml's spanned document ([`toml::de::DeTable`])
//!   seen one table at a time, with typed getters that report wrong types and
//!   bad values at their exact location.
//! - `validate.rs`: the document: its top-level tables, `[app]`, `[api]`, and the
//!   rules across tables, collecting all problems rather than the first.
//! - `backup.rs`: the `[backup]` table.
//! - `budget.rs`: the `[budget.NAME]` tables.
//! - `notify.rs`: the `[notify.NAME]` tables.
//! - `gateway.rs`: the `[gateway]` table and its `[[gateway.route]]`s.
//! - `ingest.rs`: the `[ingest.NAME]` tables: MQTT (embedded or external), webhooks,
//!   dropped files, the schema, devices and what a message starts.
//! - `schedule.rs`: the `[schedule.NAME]` tables: cron, time zone, target, policies.
//! - `workflow.rs`: the `[workflow.NAME]` tables and their steps, checked for unknown
//!   parents and cycles.
//! - `deploy.rs`: the `[deploy]` table.
//! - `queue.rs`: the `[queue.NAME]` tables.
//! - `service.rs`: the `[service.NAME]` tables, and `depends_on` checked across
//!   them (unknown names, cycles).
//! - `model.rs`: the validated document ([`Config`]) and its `[app]` and `[api]`
//!   tables ([`App`], [`Api`]).
//!
//! Each table's file holds its validated types with their defaults, and its
//! validator. A table's keys are defined by the getters its validator calls: each asks
//! its `Section` (`section.rs`) for a key, and `finish` reports the keys no getter asked
//! for as unknown. `docs_check.rs` holds the docs to the same keys.
//! - `diagnostic.rs`: [`Diagnostic`], and byte spans turned into line and column.
//! - `starter.rs`: [`STARTER`], the commented config written by `berth init`.

mod backup;
mod budget;
mod deploy;
mod diagnostic;
mod docs_check;
mod gateway;
mod ingest;
mod model;
mod notify;
mod queue;
mod schedule;
mod section;
mod service;
mod starter;
mod validate;
mod workflow;

use std::path::{Path, PathBuf};

pub use backup::{BackupConfig, DatabaseConfig, DatabaseKind, Keep};
pub use budget::{BudgetConfig, BudgetPeriod};
pub use deploy::DeployConfig;
pub use diagnostic::Diagnostic;
pub use gateway::{
    AccessLogFormat, AcmeChallenge, AcmeConfig, AuthKind, GatewayConfig, LETS_ENCRYPT,
    RateLimitConfig, RouteConfig, RouteTarget, TlsConfig, valid_role,
};
pub use ingest::{
    Allow, BrokerConfig, Credential, DirConfig, IngestConfig, IngestStart, MqttConfig, Pick,
    TlsFiles, WebhookConfig, topic_filter_error, valid_user_name,
};
pub use model::{Api, App, Config, Durability, StoreChoice, parse_store};
pub use notify::{
    EmailConfig, NOTICE_KINDS, NotifyConfig, NotifyTarget, SmtpSecurity, SmtpServer, WebhookTarget,
};
pub use queue::{Backoff, Handler, QueueConfig, Retention};
pub use schedule::{CatchUp, Overlap, ScheduleConfig, ScheduleTarget};
pub use service::{
    CheckConfig, CrashLoopConfig, LiveConfig, PortRange, ProbeConfig, Restart, ServiceBackoff,
    ServiceConfig,
};
pub use starter::STARTER;
pub use workflow::{StepConfig, WorkflowConfig};

use diagnostic::Diagnostics;

/// The name of the config file, looked for in the application's directory.
pub const FILE_NAME: &str = "berth.toml";

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid config. Displays one diagnostic per line.
    #[error("{}", render(diagnostics))]
    Invalid {
        /// Every problem found, in the order it appears in the file.
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Looks for `berth.toml` in `dir`; `Some(path)` if it exists.
pub fn find(dir: &Path) -> Option<PathBuf> {
    let path = dir.join(FILE_NAME);
    path.is_file().then_some(path)
}

/// Reads and validates a config file. Relative paths in it (`data_dir`, a
/// service's `cwd` and `env_file`) resolve against the file's directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text as if it had been read from `path`.
///
/// `path` names the file in diagnostics and anchors relative paths; it is not read.
///
/// ```
/// use std::path::Path;
///
/// let config = berth_config::parse("[app]\nname = \"shop\"\n", Path::new("/srv/shop/berth.toml"))
///     .expect("valid config");
/// assert_eq!(config.app.data_dir, Path::new("/srv/shop/.berth"));
///
/// let error = berth_config::parse("[app]\nname = \"shop\"\ncolour = 1\n", Path::new("berth.toml"))
///     .unwrap_err();
/// assert!(error.to_string().starts_with("berth.toml:3:1: unknown key `colour` in [app]"));
/// ```
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut diagnostics = Diagnostics::new(path, text);
    let document = match toml::de::DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            // Only the first syntax error: after one, toml's recovery guesses
            // and the later errors are often echoes of the first.
            let span = error.span().unwrap_or(0..0);
            diagnostics.error(span, format!("invalid TOML: {}", error.message()));
            return Err(diagnostics.into_error());
        }
    };
    let config = validate::config(document.get_ref(), path, &mut diagnostics);
    diagnostics.finish(config)
}

/// Puts `BERTH_STORE` from the environment, when set, in place of `[app] store`, so that
/// a password need not sit in the file. `Err` says what is wrong with the variable.
pub fn store_from_env(config: &mut Config) -> Result<(), String> {
    if let Ok(store) = std::env::var("BERTH_STORE")
        && !store.trim().is_empty()
    {
        config.app.store = parse_store(&store).map_err(|e| format!("BERTH_STORE: {e}"))?;
    }
    Ok(())
}
