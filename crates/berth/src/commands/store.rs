//! `berth store migrate --to postgres://…`: moves an embedded install to PostgreSQL.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_config::StoreChoice;
use berth_store::{PostgresOptions, PostgresStore, Store, Timestamp};
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;

/// Store subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every job and queue state of this config's SQLite store into a PostgreSQL
    /// database, and check the counts. berth must be stopped.
    Migrate {
        /// The target, e.g. postgres://berth:PASSWORD@db.example.org/berth (or set
        /// BERTH_MIGRATE_TO, to keep the password off the command line).
        #[arg(long, env = "BERTH_MIGRATE_TO", hide_env_values = true)]
        to: String,
        /// Copy even if the target already holds jobs.
        #[arg(long)]
        force: bool,
    },
}

/// Runs a store subcommand.
pub async fn run(ctx: &Ctx, cmd: StoreCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand::Migrate { to, force } = cmd;
    let config = ctx.config()?;
    if config.app.store != StoreChoice::Sqlite {
        bail!(UsageError(format!(
            "this config's store is already {}; `store migrate` copies from the embedded SQLite store",
            config.app.store.redacted()
        )));
    }
    let target = berth_config::parse_store(&to).map_err(UsageError)?;
    let StoreChoice::Postgres { url } = target else {
        bail!(UsageError("--to must be a postgres:// URL".to_string()));
    };
    let db = config.app.data_dir.join(berth_server::DB_FILE);
    if !db.exists() {
        bail!(
            "there is no embedded store to migrate at {}; nothing to do",
            db.display()
        );
    }
    // Holding the data dir lock proves berth is not writing meanwhile.
    let _lock = berth_server::lock::DataDirLock::acquire(&config.app.data_dir)
        .map(berth_server::lock::DataDirLock::for_a_while)
        .context("stop berth before migrating its store")?;
    let source = berth_server::open_store(&config).await?;
    let target = PostgresStore::open(&url, PostgresOptions::default()).await?;
    let describe = target.describe().to_string();
    let show = !ctx.json;
    let report = berth_store::transfer::copy_all(
        source.as_ref(),
        &target as &dyn Store,
        force,
        Timestamp::now(),
        |done, total| {
            if show {
                err!("\rcopying jobs: {done} of {total}");
                let _ = std::io::stderr().flush();
            }
        },
    )
    .await;
    if show {
        errln!();
    }
    let report = report?;
    if ctx.json {
        output::json(&json!({
            "jobs": report.jobs,
            "paused_queues": report.paused_queues,
            "events": report.events,
            "schedules_batches_workflows": report.flows,
            "users": report.users,
            "messages": report.messages,
            "target": describe,
        }));
    } else {
        outln!(
            "copied {} jobs, {} paused queue(s), {} schedule(s), batch(es) and workflow(s), {} user(s) with their tokens, {} event(s) and {} ingested message(s) to {describe}; the counts match.",
            report.jobs,
            report.paused_queues.len(),
            report.flows,
            report.users,
            report.events,
            report.messages
        );
        outln!(
            "Next: set `store = \"postgres://…\"` in [app] (or BERTH_STORE) and start berth. The SQLite file is left as it was."
        );
    }
    Ok(ExitCode::SUCCESS)
}
