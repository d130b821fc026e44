//! `berth up`: runs berth in the foreground until SIGTERM or SIGINT.

use std::io::IsTerminal;
use std::process::ExitCode;

use berth_server::{Daemon, Options, Received, Signals};
use tracing_subscriber::EnvFilter;

use super::Ctx;

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
    let signal = loop {
        match signals.recv().await {
            Received::Stop(name) => break name,
            Received::Reload => {
                tracing::info!("SIGHUP received: reloading {}", config.path.display());
                match daemon.reload().await {
                    Ok(report) => tracing::info!(report = ?report, "reloaded"),
                    Err(e) => tracing::error!("reload refused, nothing changed:\n{e}"),
                }
            }
        }
    };
    tracing::info!("{signal} received");
    // A second signal while draining stops at once; what runs is rescued on the next start.
    tokio::select! {
        _ = daemon.stop() => {}
        s = signals.stop() => {
            tracing::warn!("{s} received again; stopping now — running jobs will run again on the next start");
        }
    }
    Ok(ExitCode::SUCCESS)
}
