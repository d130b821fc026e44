//! The `berth` command: `berth up` runs the daemon; every other subcommand is a client of
//! its API or works on the config file.
//!
//! # Layout
//! One file per subcommand in `commands/`; [`exit`] maps errors to exit codes; [`output`]
//! prints tables for people and JSON for scripts.

/// `println!` for the CLI: a closed pipe (`berth job list | head -3`) ends berth
/// quietly, as Unix tools do, instead of panicking.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` for the CLI: nothing is left to report to when standard error is gone.
macro_rules! errln {
    () => { $crate::output::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` for the CLI (see [`errln!`]).
macro_rules! err {
    ($($arg:tt)*) => { $crate::output::write_err(format_args!($($arg)*)) };
}

mod commands;
mod exit;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the gateway's request path allocates a little
/// per request, and glibc's allocator showed as 8% of a proxied request's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The one foreign function berth's binary calls itself, from the allocator it links.
#[allow(unsafe_code)]
unsafe extern "C" {
    /// mimalloc's: frees the calling thread's empty pages and returns them to the system.
    fn mi_collect(force: bool);
}

/// Gives the memory this thread freed back to the system now, rather than keeping it for
/// later allocations: after a start or a reload, whose transient allocations (the API's
/// OpenAPI operations, generated while its routes are registered; the config's parse)
/// would otherwise stay resident while berth idles (1.0-1.2 MiB with an empty config).
#[allow(unsafe_code)]
pub(crate) fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called at any time from any thread.
    unsafe { mi_collect(true) }
}

/// berth runs your app's back office: durable job queues with retries, handlers that run
/// commands or POST to your app, and an API to watch and steer them.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file (default: ./berth.toml).
    #[arg(short, long, global = true, value_name = "FILE", env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented starter berth.toml in the current directory.
    Init(commands::init::Args),
    /// Validate the config and report every problem with its line and column.
    Check,
    /// Write a berth.toml from supervisor, circus, Procfile, crontab, nginx and
    /// docker-compose files, listing every line it could not translate.
    Import(commands::import::Args),
    /// Run berth in the foreground: every queue's executor and the API.
    Up,
    /// Show this berth's queues and their counts.
    Status,
    /// Show the services' instances: pid, state, uptime, restarts, port, CPU, memory.
    Ps,
    /// Show the gateway's listeners and each route's requests, by status class.
    Gateway,
    /// Print a service's output from its log files (-f to follow).
    Logs(commands::logs::Args),
    /// Start a service's instances that are not running (also ends a crash loop).
    Start {
        /// The service.
        name: String,
    },
    /// Stop a service: its stop signal, the grace period, then SIGKILL.
    Stop {
        /// The service.
        name: String,
    },
    /// Rolling restart: one instance at a time, each new process ready before going on.
    Restart {
        /// The service.
        name: String,
    },
    /// Send a signal (HUP, USR1, …) to every running instance of a service.
    Signal {
        /// The service.
        name: String,
        /// The signal: HUP, INT, QUIT, TERM, KILL, USR1, USR2, CONT, STOP, TSTP, TTIN,
        /// TTOU, WINCH or ALRM, with or without SIG.
        signal: String,
    },
    /// Re-read berth.toml and restart only the services whose definition changed.
    Reload,
    /// The services' recorded events: starts, exits, restarts, crash loops, health.
    Events(commands::service::EventsArgs),
    /// Push, list, inspect and steer jobs.
    #[command(subcommand)]
    Job(commands::job::JobCommand),
    /// List queues; pause, resume or purge one.
    #[command(subcommand)]
    Queue(commands::queue::QueueCommand),
    /// List schedules; run one now, pause or resume one.
    #[command(subcommand)]
    Schedule(commands::schedule::ScheduleCommand),
    /// Run items as a batch of jobs; list, show, cancel, retry failed items.
    #[command(subcommand)]
    Batch(commands::batch::BatchCommand),
    /// Ingested messages and dead letters: list, show, replay.
    #[command(subcommand)]
    Messages(commands::messages::MessagesCommand),
    /// Final jobs kept aside, outside the live table and its pruning: add, list, show,
    /// export as JSON lines.
    #[command(subcommand)]
    Archive(commands::archive::ArchiveCommand),
    /// Backups of the store and the included directories: save, list, verify, restore,
    /// prune.
    #[command(subcommand)]
    Backup(commands::backup::BackupCommand),
    /// Notifications by email and webhook: what waits and what was sent; test a channel.
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
    /// Start, list, show, cancel and retry workflows.
    #[command(subcommand)]
    Workflow(commands::workflow::WorkflowCommand),
    /// Move the embedded store to PostgreSQL.
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
    /// The users who can log in to the gateway's routes with `auth`.
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// API tokens for the gateway's routes with `auth = "token"`.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// The gateway's budgets: what they spent this period; start one over.
    #[command(subcommand)]
    Budget(commands::budget::BudgetCommand),
    /// Maintenance mode: a 503 page for everyone but admins, on every node.
    #[command(subcommand)]
    Maintenance(commands::maintenance::MaintenanceCommand),
    /// Ship a release: fetch, build, back up, migrate, switch, health gate; rolled back
    /// by itself if a step after the build fails.
    Deploy(commands::deploy::DeployArgs),
    /// Go back to an earlier release, without a build.
    Rollback(commands::deploy::RollbackArgs),
    /// The releases: state, source, who, when, the backup taken for each.
    Releases(commands::deploy::ReleasesArgs),
    /// Measure enqueue, burn-down and pickup latency on this machine.
    Bench(commands::bench::Args),
    /// Print (or --write) the systemd unit that starts `berth up` for this app at boot.
    SystemdUnit(commands::systemd::UnitArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print berth's man page (roff), or write one page per command into a directory.
    Man {
        /// Write `berth.1` and `berth-COMMAND.1` … into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => exit::report(&e, json),
    }
}
