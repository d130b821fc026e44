//! `berth init`: writes a commented starter config.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::Ctx;

/// `berth init` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Overwrite an existing berth.toml.
    #[arg(long)]
    force: bool,
}

/// Writes the starter config.
pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let path = match &ctx.config_path {
        Some(p) => p.clone(),
        None => std::env::current_dir()?.join(berth_config::FILE_NAME),
    };
    if path.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    std::fs::write(&path, berth_config::STARTER)
        .with_context(|| format!("cannot write {}", path.display()))?;
    outln!(
        "wrote {}; check it with `berth check`, then run `berth up`",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
