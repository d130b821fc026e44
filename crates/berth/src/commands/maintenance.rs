//! `berth maintenance on|off|status`: a 503 page for everyone but admins, on every node.
//! The setting lives in the store, so it works with or without a running berth; running
//! gateways see a change within a second.

use std::process::ExitCode;

use berth_api::types::{Maintenance, MaintenanceSetting, Timestamp};
use clap::Subcommand;
use serde::Serialize;

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
            let setting = MaintenanceSetting {
                message,
                since: Some(now.to_string()),
            };
            // The store keeps settings as JSON; the gateways read this shape.
            let value = serde_json::to_value(&setting)?;
            store.set_setting(key, Some(value), now).await?;
            if ctx.json {
                output::json(&Maintenance {
                    maintenance: true,
                    setting: Some(setting),
                });
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
                output::json(&Maintenance {
                    maintenance: false,
                    setting: None,
                });
            } else {
                outln!("maintenance mode is off");
            }
        }
        MaintenanceCommand::Status => {
            // Written by `berth maintenance on`, the API or a deploy, in this shape (read
            // as the API's `GET /v1/maintenance` reads it).
            let setting: Option<MaintenanceSetting> = store
                .setting(key)
                .await?
                .map(|v| serde_json::from_value(v).unwrap_or_default());
            if ctx.json {
                output::json(&Status {
                    maintenance: setting.is_some(),
                    setting,
                });
            } else {
                match setting {
                    Some(s) => outln!(
                        "on since {}{}",
                        s.since.as_deref().unwrap_or("-"),
                        s.message
                            .as_deref()
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

/// What `berth maintenance status --json` prints: as [`Maintenance`], but with
/// `"setting": null` while off, as it always has.
#[derive(Debug, Serialize)]
struct Status {
    maintenance: bool,
    setting: Option<MaintenanceSetting>,
}
