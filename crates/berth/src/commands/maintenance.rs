//! `berth maintenance on|off|status`: a 503 page for everyone but admins, on every node.
//! The setting lives in the store, so it works with or without a running berth; running
//! gateways see a change within a second.

use std::process::ExitCode;

use berth_store::Timestamp;
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::user::store;
use crate::output;

/// Maintenance subcommands.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Answer every request with a 503 page (users with the admin role pass).
    On {
        /// What the page says.
        #[arg(long)]
        message: Option<String>,
    },
    /// Serve normally again.
    Off,
    /// Whether maintenance mode is on, and its message.
    Status,
}

/// Runs a maintenance subcommand.
pub async fn run(ctx: &Ctx, cmd: MaintenanceCommand) -> anyhow::Result<ExitCode> {
    let store = store(ctx).await?;
    let now = Timestamp::now();
    let key = berth_gateway::MAINTENANCE_KEY;
    match cmd {
        MaintenanceCommand::On { message } => {
            let value = json!({"message": message, "since": now.to_string()});
            store.set_setting(key, Some(value.clone()), now).await?;
            if ctx.json {
                output::json(&json!({"maintenance": true, "setting": value}));
            } else {
                outln!(
                    "maintenance mode is on: every request gets a 503 page, but for users with the `{}` role; gateways follow within a second",
                    berth_gateway::ADMIN_ROLE
                );
            }
        }
        MaintenanceCommand::Off => {
            store.set_setting(key, None, now).await?;
            if ctx.json {
                output::json(&json!({"maintenance": false}));
            } else {
                outln!("maintenance mode is off");
            }
        }
        MaintenanceCommand::Status => {
            let value = store.setting(key).await?;
            if ctx.json {
                output::json(&json!({"maintenance": value.is_some(), "setting": value}));
            } else {
                match value {
                    Some(v) => outln!(
                        "on since {}{}",
                        output::cell(&v["since"]),
                        v["message"]
                            .as_str()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    None => outln!("off"),
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
