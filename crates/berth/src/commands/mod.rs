//! One module per subcommand.

pub mod archive;
pub mod backup;
pub mod batch;
pub mod bench;
pub mod budget;
pub mod check;
pub mod deploy;
pub mod gateway;
pub mod import;
pub mod init;
pub mod job;
pub mod logs;
pub mod maintenance;
pub mod messages;
pub mod notify;
pub mod ps;
pub mod queue;
pub mod schedule;
pub mod service;
pub mod status;
pub mod store;
pub mod systemd;
pub mod token;
pub mod up;
pub mod user;
pub mod workflow;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use berth_api::client::Client;
use berth_config::Config;

use crate::{Cli, Command};
use service::Action;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Ctx {
        config_path: cli.config,
        json: cli.json,
    };
    match cli.command {
        Command::Init(args) => init::run(&ctx, args),
        Command::Check => check::run(&ctx),
        Command::Import(args) => import::run(&ctx, args),
        Command::Up => runtime()?.block_on(up::run(&ctx)),
        Command::SystemdUnit(a) => systemd::unit(&ctx, &a),
        Command::Completions { shell } => {
            let mut cli = <crate::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "berth", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Status => runtime()?.block_on(status::run(&ctx)),
        Command::Ps => runtime()?.block_on(ps::run(&ctx)),
        Command::Gateway => runtime()?.block_on(gateway::run(&ctx)),
        Command::Logs(args) => runtime()?.block_on(logs::run(&ctx, args)),
        Command::Start { name } => runtime()?.block_on(service::act(&ctx, &name, Action::Start)),
        Command::Stop { name } => runtime()?.block_on(service::act(&ctx, &name, Action::Stop)),
        Command::Restart { name } => {
            runtime()?.block_on(service::act(&ctx, &name, Action::Restart))
        }
        Command::Signal { name, signal } => {
            runtime()?.block_on(service::signal(&ctx, &name, &signal))
        }
        Command::Reload => runtime()?.block_on(service::reload(&ctx)),
        Command::Events(args) => runtime()?.block_on(service::events(&ctx, args)),
        Command::Job(c) => runtime()?.block_on(job::run(&ctx, c)),
        Command::Queue(c) => runtime()?.block_on(queue::run(&ctx, c)),
        Command::Schedule(c) => runtime()?.block_on(schedule::run(&ctx, c)),
        Command::Batch(c) => runtime()?.block_on(batch::run(&ctx, c)),
        Command::Workflow(c) => runtime()?.block_on(workflow::run(&ctx, c)),
        Command::Messages(c) => runtime()?.block_on(messages::run(&ctx, c)),
        Command::Archive(c) => runtime()?.block_on(archive::run(&ctx, c)),
        Command::Notify(c) => runtime()?.block_on(notify::run(&ctx, c)),
        Command::Backup(c) => runtime()?.block_on(backup::run(&ctx, c)),
        Command::Bench(args) => runtime()?.block_on(bench::run(&ctx, args)),
        Command::Store(c) => runtime()?.block_on(store::run(&ctx, c)),
        Command::User(c) => runtime()?.block_on(user::run(&ctx, c)),
        Command::Token(c) => runtime()?.block_on(token::run(&ctx, c)),
        Command::Budget(c) => runtime()?.block_on(budget::run(&ctx, c)),
        Command::Maintenance(c) => runtime()?.block_on(maintenance::run(&ctx, c)),
        Command::Deploy(a) => runtime()?.block_on(deploy::deploy(&ctx, a)),
        Command::Rollback(a) => runtime()?.block_on(deploy::rollback(&ctx, a)),
        Command::Releases(a) => runtime()?.block_on(deploy::releases(&ctx, a)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// What every subcommand gets.
pub struct Ctx {
    /// `-c FILE`, if given.
    pub config_path: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// The config file: `-c`, or berth.toml in the current directory.
    pub fn config_file(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.config_path {
            return Ok(p.clone());
        }
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        berth_config::find(&cwd).ok_or_else(|| {
            anyhow::anyhow!(
                "no {} in {}; run `berth init` to write one, or pass `-c FILE`",
                berth_config::FILE_NAME,
                cwd.display()
            )
        })
    }

    /// The loaded, validated config, with `BERTH_STORE` from the environment in place
    /// of `[app] store` when it is set.
    pub fn config(&self) -> anyhow::Result<Config> {
        let path = self.config_file()?;
        let mut config = berth_config::load(&path)?;
        berth_config::store_from_env(&mut config).map_err(crate::exit::UsageError)?;
        Ok(config)
    }

    /// A client of the running berth for this config.
    pub fn client(&self) -> anyhow::Result<Client> {
        let config = self.config()?;
        Ok(Client::unix(&berth_server::socket_path(&config)))
    }
}

/// Reads a file for a subcommand, naming it in the error.
pub fn read_file(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `s` percent-encoded for a URL path segment or query value (`,` kept, for lists).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `berth man`: the man page from the CLI's own definitions, to stdout or, with a
/// directory, one page per command (`berth.1`, `berth-job.1`, `berth-job-list.1`, …).
fn man(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let cli = <crate::Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cli).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cli, dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
            let n = std::fs::read_dir(dir)?.count();
            errln!("wrote {n} man pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An answer with the sentence said about it: `--json` prints the answer's fields and
/// `message`, people see the sentence.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Said<T> {
    /// The API's answer.
    #[serde(flatten)]
    pub answer: T,
    /// What was done, for people.
    pub message: String,
}

impl<T: serde::Serialize> Said<T> {
    /// Prints the answer with its sentence for `--json`, else the sentence.
    pub fn print(&self, ctx: &Ctx) {
        if ctx.json {
            crate::output::json(self);
        } else {
            outln!("{}", self.message);
        }
    }
}
