//! `berth messages list|dead|show|replay`.

use std::process::ExitCode;

use berth_api::types::{MessageCounts, MessagePage, MessageView};
use clap::{Args, Subcommand};

use super::{Ctx, encode};
use crate::output;
use crate::output::{opt, time};
use berth_api::types::NoBody;

/// Message subcommands.
#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// Stored messages, newest first.
    List(Filter),
    /// Dead letters (messages that failed their checks), newest first, with why.
    Dead(Filter),
    /// How many messages per device and kind (most first), over the filters' time
    /// range; `--dead` counts dead letters.
    Count {
        #[command(flatten)]
        filter: Filter,
        /// Count dead letters instead.
        #[arg(long)]
        dead: bool,
    },
    /// One message or dead letter, with its payload.
    Show {
        /// The message id.
        id: i64,
    },
    /// Check a dead letter again with its ingest's current schema (after a fix): valid,
    /// it is stored and starts its job; still invalid, its reasons are updated.
    Replay {
        /// The dead letter's id.
        id: i64,
    },
}

/// Which messages.
#[derive(Debug, Args)]
pub struct Filter {
    /// Only of this ingest.
    #[arg(long)]
    ingest: Option<String>,
    /// Only from this device.
    #[arg(long)]
    device: Option<String>,
    /// Only of this kind.
    #[arg(long)]
    kind: Option<String>,
    /// Received since: a duration before now ("1h") or a time ("2026-11-22T10:00:00Z").
    #[arg(long)]
    since: Option<String>,
    /// Received before: a duration before now or a time.
    #[arg(long)]
    until: Option<String>,
    /// Only ids below this (the next page, as the listing's last line says).
    #[arg(long)]
    before: Option<i64>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

impl Filter {
    /// `&ingest=…&device=…`: the filters given, for a query string.
    fn query(&self) -> String {
        [
            ("ingest", &self.ingest),
            ("device", &self.device),
            ("kind", &self.kind),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("&{key}={}", encode(v))))
        .collect()
    }
}

/// Runs a messages subcommand.
pub async fn run(ctx: &Ctx, cmd: MessagesCommand) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let (filter, dead) = match cmd {
        MessagesCommand::List(f) => (f, false),
        MessagesCommand::Dead(f) => (f, true),
        MessagesCommand::Count { filter, dead } => {
            let path = format!("/v1/messages/counts?dead={dead}{}", filter.query());
            let v: MessageCounts = client.get(&path).await?;
            if ctx.json {
                output::json(&v);
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = v
                .counts
                .iter()
                .map(|c| {
                    vec![
                        c.device.as_deref().unwrap_or("-").to_owned(),
                        c.kind.as_deref().unwrap_or("-").to_owned(),
                        c.count.to_string(),
                    ]
                })
                .collect();
            output::table(&["DEVICE", "KIND", "COUNT"], &rows);
            outln!("{} in all", v.total);
            return Ok(ExitCode::SUCCESS);
        }
        MessagesCommand::Show { id } => {
            let v: MessageView = client.get(&format!("/v1/messages/{id}")).await?;
            show(ctx, &v);
            return Ok(ExitCode::SUCCESS);
        }
        MessagesCommand::Replay { id } => {
            let v: MessageView = client
                .post(&format!("/v1/messages/{id}/replay"), &NoBody {})
                .await?;
            show(ctx, &v);
            return Ok(if !v.dead {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    };
    let mut path = format!(
        "/v1/messages?limit={}&dead={dead}{}",
        filter.limit,
        filter.query()
    );
    if let Some(b) = filter.before {
        path.push_str(&format!("&before={b}"));
    }
    let v: MessagePage = client.get(&path).await?;
    if ctx.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v
        .messages
        .iter()
        .map(|m| {
            let mut row = vec![
                m.id.to_string(),
                time(m.received_at),
                m.ingest.clone(),
                opt(m.device.as_deref()),
                m.topic.clone(),
            ];
            if dead {
                row.push(m.errors.first().map_or("-", String::as_str).to_owned());
            } else {
                row.push(opt(m.kind.as_deref()));
                row.push(m.size.to_string());
            }
            row
        })
        .collect();
    if dead {
        output::table(
            &["ID", "RECEIVED", "INGEST", "DEVICE", "TOPIC", "FIRST ERROR"],
            &rows,
        );
    } else {
        output::table(
            &[
                "ID", "RECEIVED", "INGEST", "DEVICE", "TOPIC", "KIND", "BYTES",
            ],
            &rows,
        );
    }
    if let Some(next) = v.next_before {
        outln!("(more: --before {next})");
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, v: &MessageView) {
    if ctx.json {
        output::json(v);
        return;
    }
    outln!(
        "message {} ({}): {} from {} on {}, {} at {}",
        v.id,
        v.ingest,
        if v.dead { "dead letter" } else { "stored" },
        opt(v.device.as_deref()),
        v.topic,
        opt(v.kind.as_deref()),
        time(v.received_at),
    );
    for e in &v.errors {
        outln!("  error: {e}");
    }
    if let Some(id) = v.job_id {
        outln!("  job: {id}");
    }
    if let Some(id) = v.workflow_id {
        outln!("  workflow: {id}");
    }
    if v.duplicates > 0 {
        outln!(
            "  duplicates: {} resent with the same key, acknowledged and dropped",
            v.duplicates
        );
    }
    // The bytes as they arrived.
    let payload = match &v.payload_text {
        Some(t) => t.clone(),
        None => format!("(hex) {}", v.payload_hex.as_deref().unwrap_or_default()),
    };
    outln!("  payload: {payload}");
}
