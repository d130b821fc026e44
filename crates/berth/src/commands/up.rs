//! `berth up`: runs berth in the foreground until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::process::ExitCode;

use berth_server::{Daemon, Options, Received, Signals};
use tracing_subscriber::EnvFilter;

use super::{Ctx, systemd};

/// Starts the daemon and stops it gracefully on a signal.
pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let config = ctx.config()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let mut signals = Signals::install()?;
    let daemon = Daemon::start(&config, Options::default()).await?;
    crate::release_freed_memory();
    // Started by systemd (`Type=notify`): ready only now that every component is up.
    let notifier = systemd::Notifier::from_env().map(std::sync::Arc::new);
    let status = format!(
        "up: app {}, {} queues, {} services",
        config.app.name,
        config.queues.len(),
        config.services.len()
    );
    if let Some(n) = &notifier {
        n.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
        // The watchdog is fed by the event loop itself: a stuck loop stops feeding it.
        if let Some(every) = systemd::watchdog_every() {
            let n = n.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    n.send("WATCHDOG=1");
                }
            });
        }
    }
    let signal = loop {
        match signals.recv().await {
            Received::Stop(name) => break name,
            Received::Reload => {
                tracing::info!("SIGHUP received: reloading {}", config.path.display());
                if let Some(n) = &notifier {
                    n.send("STATUS=reloading the config");
                }
                let said = match daemon.reload().await {
                    Ok(report) => {
                        tracing::info!(report = ?report, "reloaded");
                        format!("{status}; reloaded")
                    }
                    Err(e) => {
                        tracing::error!("reload refused, nothing changed:\n{e}");
                        format!("{status}; the last reload was refused (see the log)")
                    }
                };
                if let Some(n) = &notifier {
                    n.send(&format!("STATUS={said}"));
                }
                // A reload parses and builds anew, as a start does.
                crate::release_freed_memory();
            }
        }
    };
    tracing::info!("{signal} received");
    if let Some(n) = &notifier {
        n.send("STOPPING=1\nSTATUS=stopping: running jobs finish, services stop");
    }
    // A second signal while draining stops at once; what runs is rescued on the next start.
    tokio::select! {
        _ = daemon.stop() => {}
        s = signals.stop() => {
            tracing::warn!("{s} received again; stopping now — running jobs will run again on the next start");
        }
    }
    Ok(ExitCode::SUCCESS)
}
