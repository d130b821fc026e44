//! `berth notify list|test`.

use std::process::ExitCode;

use anyhow::bail;
use berth_api::types::NotificationList;
use clap::Subcommand;
use serde::Serialize;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;
use crate::output::time;

/// Notification subcommands.
#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Notifications, newest first: waiting (with their tries and last error) and sent.
    List {
        /// Only of this channel.
        #[arg(long)]
        channel: Option<String>,
        /// Only those still waiting.
        #[arg(long, conflicts_with = "sent")]
        pending: bool,
        /// Only those sent.
        #[arg(long)]
        sent: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send a test notification through a channel now, with the config's settings; berth
    /// need not be running. Exits non-zero, saying why, if it cannot be sent.
    Test {
        /// The channel (`[notify.NAME]`).
        name: String,
    },
}

/// Runs a notify subcommand.
pub async fn run(ctx: &Ctx, cmd: NotifyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCommand::Test { name } => test(ctx, &name).await,
        NotifyCommand::List {
            channel,
            pending,
            sent,
            limit,
        } => {
            // Read from the store itself, as `user` and `budget` do: berth need not run.
            if !(1..=10_000).contains(&limit) {
                bail!(UsageError(format!(
                    "--limit {limit} is out of range; expected 1 to 10000"
                )));
            }
            let store = super::user::store(ctx).await?;
            let notifications = store
                .notify_deliveries(berth_store::DeliveryFilter {
                    channel,
                    pending: (pending || sent).then_some(pending),
                    limit,
                })
                .await?;
            // As `GET /v1/notifications` answers.
            let v = NotificationList { notifications };
            if ctx.json {
                output::json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v
                .notifications
                .iter()
                .map(|d| {
                    let state = match (d.sent_at, &d.last_error) {
                        (Some(at), _) => format!("sent {}", time(at)),
                        (None, Some(e)) => format!("waiting ({} tries: {e})", d.attempts),
                        (None, None) => "waiting".into(),
                    };
                    vec![
                        d.id.to_string(),
                        d.channel.clone(),
                        time(d.at),
                        d.kind.clone(),
                        d.subject.clone(),
                        state,
                    ]
                })
                .collect();
            output::table(&["ID", "CHANNEL", "AT", "KIND", "SUBJECT", "STATE"], &rows);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn test(ctx: &Ctx, name: &str) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    if !config.notify.contains_key(name) {
        let known: Vec<&str> = config.notify.keys().map(String::as_str).collect();
        bail!(UsageError(format!(
            "no [notify.{name}] in the config; {}",
            if known.is_empty() {
                "it has no notification channels".to_owned()
            } else {
                format!("expected one of: {}", known.join(", "))
            }
        )));
    }
    let specs = berth_server::notify::channel_specs(&config, Some(name))?;
    let spec = specs
        .iter()
        .find(|s| s.name == name)
        .expect("every channel of the config has a spec");
    berth_notify::send_test(&config.app.name, &berth_server::node_of(&config), spec).await?;
    if ctx.json {
        output::json(&TestSent {
            channel: name,
            sent: true,
        });
    } else {
        outln!("sent a test notification through [notify.{name}]");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `berth notify test --json` prints.
#[derive(Debug, Serialize)]
struct TestSent<'a> {
    channel: &'a str,
    sent: bool,
}
