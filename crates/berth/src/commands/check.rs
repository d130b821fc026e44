//! `berth check`: validates the config.

use std::process::ExitCode;

use serde_json::json;

use super::Ctx;
use crate::output;

/// Validates the config and summarises it.
pub fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    files(&config)?;
    if ctx.json {
        output::json(&json!({
            "ok": true,
            "file": config.path,
            "app": config.app.name,
            "data_dir": config.app.data_dir,
            "queues": config.queues.keys().collect::<Vec<_>>(),
            "services": config.services.keys().collect::<Vec<_>>(),
            "gateway": config.gateway.as_ref().map(|g| json!({
                "listen": g.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "routes": g.routes.len(),
            })),
        }));
    } else {
        let gateway = match &config.gateway {
            Some(g) => format!(
                ", gateway on {} with {} route{}",
                g.listen
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                g.routes.len(),
                if g.routes.len() == 1 { "" } else { "s" }
            ),
            None => String::new(),
        };
        outln!(
            "{}: ok (app `{}`, {}, {}{gateway})",
            config.path.display(),
            config.app.name,
            count("queue", config.queues.keys()),
            count("service", config.services.keys()),
        );
        for (section, line) in sections(&config) {
            outln!("  {section:<10} {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What the config names on this machine: the gateway's static directories and its
/// certificate files.
pub fn files(config: &berth_config::Config) -> anyhow::Result<()> {
    if let Some(spec) = berth_server::gateway::gateway_spec(
        config,
        berth_gateway::Clock::system(),
        "check",
        berth_gateway::HookSink(std::sync::Arc::new(
            berth_server::ingest::Webhooks::default(),
        )),
    )? {
        berth_gateway::check(&spec)?;
    }
    Ok(())
}

/// One line for each other section the file has, with what berth took from it.
fn sections(config: &berth_config::Config) -> Vec<(&'static str, String)> {
    use berth_config::{BudgetPeriod, NotifyTarget, ScheduleTarget, StoreChoice};
    let mut out = Vec::new();
    out.push((
        "store",
        match &config.app.store {
            StoreChoice::Sqlite => format!(
                "SQLite in {}",
                config.app.data_dir.join(berth_server::DB_FILE).display()
            ),
            other => format!("PostgreSQL at {}", other.redacted()),
        },
    ));
    let list = |items: Vec<String>| items.join("; ");
    if !config.schedules.is_empty() {
        out.push((
            "schedules",
            list(
                config
                    .schedules
                    .values()
                    .map(|s| {
                        let what = match &s.target {
                            ScheduleTarget::Job { queue, kind, .. } => {
                                format!("job {kind} on {queue}")
                            }
                            ScheduleTarget::Command { .. } => "a command".to_owned(),
                            ScheduleTarget::Workflow { name, .. } => format!("workflow {name}"),
                        };
                        format!("{} (\"{}\" {}: {what})", s.name, s.cron, s.timezone)
                    })
                    .collect(),
            ),
        ));
    }
    if !config.workflows.is_empty() {
        out.push((
            "workflows",
            list(
                config
                    .workflows
                    .values()
                    .map(|w| format!("{} ({} steps)", w.name, w.steps.len()))
                    .collect(),
            ),
        ));
    }
    if !config.budgets.is_empty() {
        out.push((
            "budgets",
            list(
                config
                    .budgets
                    .values()
                    .map(|b| {
                        let period = match b.period {
                            BudgetPeriod::Day => "a day",
                            BudgetPeriod::Month => "a month",
                        };
                        format!("{} ({} {period})", b.name, b.limit)
                    })
                    .collect(),
            ),
        ));
    }
    if !config.ingests.is_empty() {
        out.push((
            "ingests",
            list(
                config
                    .ingests
                    .values()
                    .map(|i| {
                        let websocket = i.mqtt.as_ref().and_then(|m| m.websocket);
                        let from = match (i.mqtt.as_ref().and_then(|m| m.listen), websocket) {
                            (Some(addr), Some(ws)) => {
                                format!("MQTT on {addr}, over WebSocket on {ws}")
                            }
                            (Some(addr), None) => format!("MQTT on {addr}"),
                            (None, Some(ws)) => format!("MQTT over WebSocket on {ws}"),
                            (None, None) if !i.topics.is_empty() => {
                                format!("topics {}", i.topics.join(", "))
                            }
                            (None, None) => "files or webhooks".to_owned(),
                        };
                        format!("{} ({from})", i.name)
                    })
                    .collect(),
            ),
        ));
    }
    if !config.notify.is_empty() {
        out.push((
            "notify",
            list(
                config
                    .notify
                    .values()
                    .map(|n| {
                        let how = match &n.target {
                            NotifyTarget::Email(e) => format!("email to {}", e.to.join(", ")),
                            NotifyTarget::Webhook(_) => "webhook".to_owned(),
                        };
                        format!("{} ({how}, on {})", n.name, n.on.join(", "))
                    })
                    .collect(),
            ),
        ));
    }
    if let Some(b) = &config.backup {
        let mut parts = vec![format!("into {}", b.dir.display())];
        parts.push(match &b.schedule {
            Some(c) => format!("\"{c}\" {}", b.timezone),
            None => "by hand only".to_owned(),
        });
        if !b.include.is_empty() {
            parts.push(match b.include.len() {
                1 => "1 included dir".to_owned(),
                n => format!("{n} included dirs"),
            });
        }
        if !b.databases.is_empty() {
            parts.push(format!(
                "databases {}",
                b.databases
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push(("backup", parts.join(", ")));
    }
    if let Some(d) = &config.deploy {
        let mut parts = vec![match &d.repo {
            Some(r) => format!("{} @ {}", r, d.git_ref),
            None => "directories or archives".to_owned(),
        }];
        parts.push(format!("into {}", d.dir.display()));
        parts.push(match d.build.len() {
            1 => "1 build step".to_owned(),
            n => format!("{n} build steps"),
        });
        if d.migrate.is_some() {
            parts.push("a migration".into());
        }
        parts.push(format!("health {}", berth_deploy::humanize(d.health)));
        out.push(("deploy", parts.join(", ")));
    }
    out
}

/// `2 queues (default, emails)`, `1 service (web)`, `0 services`.
fn count<'a>(noun: &str, names: impl ExactSizeIterator<Item = &'a String>) -> String {
    let n = names.len();
    let plural = if n == 1 { "" } else { "s" };
    if n == 0 {
        return format!("0 {noun}s");
    }
    let names: Vec<&str> = names.map(String::as_str).collect();
    format!("{n} {noun}{plural} ({})", names.join(", "))
}
