//! berth's persistent state. The only crate that contains SQL.
//!
//! # Layout
//! - [`flows`]: schedules, batches and workflows, and the rules for advancing them;
//!   `flows/engine.rs` writes once, for both backends, everything a write of a job, a
//!   batch or a workflow decides (the `rules` checks first, then what a final state does
//!   to its batch or workflow), over the small set of primitives each backend implements
//!   (`FlowDb` in the backends' `flows.rs`, `JobDb` in their `jobs.rs`: `Lite` on SQLite,
//!   `Pg` on PostgreSQL).
//! - [`messages`]: what ingests took in, and dead letters.
//! - [`notices`]: the notification outbox: routes, deliveries, kinds.
//! - [`model`]: jobs, states, timestamps and the other values crossing the boundary.
//! - [`store`]: the [`Store`] trait every backend implements: the sum of one trait per
//!   concern ([`JobStore`], [`FlowStore`], [`NodeStore`], [`AuthStore`], [`BudgetStore`],
//!   [`SettingStore`], [`MessageStore`], [`NotifyStore`]), so that a crate asks only for what it uses.
//! - [`sqlite`]: the embedded default: one writer thread with group commit, WAL, durable
//!   commits, `BEGIN IMMEDIATE`; readers on their own connections; versioned migrations;
//!   one file per concern (`jobs`, `flows`, `nodes`, `events`, `auth`, `notify`,
//!   `counts`: the kept per-state counts, `snapshot`: online copies for backups).
//! - [`postgres`]: the shared store for several nodes: `FOR UPDATE SKIP LOCKED` fetch,
//!   batched completions, `LISTEN/NOTIFY` wake-ups, a connection pool, the leader lease;
//!   the same concerns per file, and `dump` (the store's copy for backups).
//! - [`auth`]: users, tokens, sessions, lockouts.
//! - [`budgets`]: budgets' stored spending, and the store's settings.
//! - [`archive`]: failed jobs kept aside for good.
//! - [`external`]: an application's own databases (PostgreSQL, MySQL, SQLite) dumped and
//!   loaded for backups.
//! - [`transfer`]: copying a whole store into another (`berth store migrate`).
//! - [`error`]: the store's error type, [`StoreError`].
//! - `conformance/` (feature `conformance`): the cases every backend must pass, one file
//!   per concern beside the job cases in `mod.rs`.

pub mod archive;
pub mod auth;
pub mod budgets;
pub mod error;
pub mod external;
pub mod flows;
pub mod messages;
pub mod model;
pub mod notices;
pub mod postgres;
mod rules;
pub mod sqlite;
pub mod store;
pub mod transfer;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use archive::{ArchiveFilter, ArchiveSelect, ArchivedJob};
pub use auth::*;
pub use budgets::*;
pub use error::{Result, StoreError};
pub use flows::*;
pub use messages::{
    Message, MessageCount, MessageFilter, MessageKey, MessageStored, MessageTotals, NewMessage,
    Replay,
};
pub use model::*;
pub use notices::{Delivery, DeliveryFilter, NotifyRoute, tail};
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{
    AuthStore, BudgetStore, FetchRequest, FlowStore, JobStore, MessageStore, NodeStore,
    NotifyStore, SettingStore, SnapshotFormat, Store,
};
