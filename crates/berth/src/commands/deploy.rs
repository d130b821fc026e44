//! `berth deploy [REF|PATH]`, `berth rollback [RELEASE]`, `berth releases [RELEASE]`.
//!
//! With berth running, the deploy runs inside it (the services roll onto the release)
//! and this command follows it step by step. With berth down, this command runs it
//! itself, holding the data dir so that `berth up` waits for it: the switch then only
//! moves `current`, and `berth up` starts the services there.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use berth_api::types::{DeployBody, ReleaseView, RollbackBody, Status};
use berth_config::Config;
use berth_deploy::{DeployError, Deployer, Release, ReleaseState, Releases, Source};
use berth_server::deploy::{AppTarget, deploy_spec, release_json, releases_json};
use berth_server::lock::DataDirLock;
use clap::Args;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;
use crate::output::time;

/// `berth deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A git ref of `[deploy] repo` (branch, tag, commit), or a directory or archive
    /// (.tar, .tar.gz, .tar.zst) to deploy; the configured `ref` without it.
    pub source: Option<String>,
}

/// `berth rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to go back to (`berth releases` lists them); the one live before
    /// the current one without it.
    pub release: Option<String>,
    /// Leave the databases as they are, even with `restore_on_rollback`.
    #[arg(long)]
    pub no_restore: bool,
}

/// `berth releases`.
#[derive(Debug, Args)]
pub struct ReleasesArgs {
    /// Show this release's steps, with their timing and output.
    pub release: Option<String>,
}

fn deploying(ctx: &Ctx) -> anyhow::Result<(Config, berth_deploy::DeploySpec)> {
    let config = ctx.config()?;
    let node = berth_server::node_of(&config);
    let Some(spec) = deploy_spec(&config, &node) else {
        bail!(UsageError(format!(
            "{} has no [deploy] table: add one to say where releases come from and live (see docs/deploy.md)",
            config.path.display()
        )));
    };
    Ok((config, spec))
}

fn who() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The data dir's lock, if berth is not running (then this command does the work).
fn lock_if_down(config: &Config) -> Option<DataDirLock> {
    std::fs::create_dir_all(&config.app.data_dir).ok()?;
    DataDirLock::acquire(&config.app.data_dir)
        .ok()
        .map(DataDirLock::for_a_while)
}

/// A client of the running berth; if the data dir is held but no berth answers, another
/// berth command holds it (a deploy, a restore).
async fn running(ctx: &Ctx, config: &Config) -> anyhow::Result<berth_api::client::Client> {
    let client = ctx.client()?;
    if let Err(berth_api::client::ClientError::Unreachable { .. }) =
        client.get::<Status>("/v1/status").await
    {
        let pid =
            std::fs::read_to_string(config.app.data_dir.join("berth.lock")).unwrap_or_default();
        bail!(
            "the data dir {} is held by another berth command (pid {}): a deploy, a rollback or a restore; wait for it to end",
            config.app.data_dir.display(),
            pid.trim()
        );
    }
    Ok(client)
}

/// The deployer this command runs itself while berth is down (it holds the data dir),
/// after ending what a killed deploy of this node left, as `berth up` does.
async fn here(config: &Config, mut spec: berth_deploy::DeploySpec) -> anyhow::Result<Deployer> {
    // The name `berth up` will use: a lock or record left by this command is then known
    // as this node's own.
    spec.node = berth_server::node_name(&config.app.data_dir)?;
    let store = berth_server::open_store(config).await?;
    let target = Arc::new(AppTarget::stopped(store.clone(), &spec.node, config));
    let deployer = Deployer::new(spec, store, target);
    for line in deployer.recover().await {
        errln!("{line}");
    }
    Ok(deployer)
}

/// Runs `berth deploy`.
pub async fn deploy(ctx: &Ctx, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let (config, spec) = deploying(ctx)?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let source = match &args.source {
        Some(a) => Source::from_arg(a, &cwd),
        None => Source::Git(spec.git_ref.clone()),
    };
    let printer = Arc::new(Printer::new(ctx.json));
    let done = match lock_if_down(&config) {
        Some(_lock) => {
            let deployer = here(&config, spec).await?;
            let pending = deployer.begin(source, &who()).await.map_err(usage)?;
            if !ctx.json {
                outln!(
                    "berth is not running: deploying release {} here; `berth up` starts the services on it",
                    pending.release().id
                );
            }
            let p = printer.clone();
            deployer
                .run(pending, Arc::new(move |r: &Release| p.show(r)))
                .await
        }
        None => {
            let client = running(ctx, &config).await?;
            let body = DeployBody {
                source: Some(match &source {
                    Source::Git(r) => r.clone(),
                    Source::Dir(p) | Source::Archive(p) => p.display().to_string(),
                }),
                by: Some(who()),
            };
            let started: Release = client.post("/v1/deploys", &body).await?;
            let id = started.id;
            loop {
                let v: ReleaseView = client.get(&format!("/v1/releases/{id}")).await?;
                let r = v.release;
                printer.show(&r);
                if !r.state.unfinished() {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    printer.show(&done);
    if ctx.json {
        output::json(&done);
    } else {
        summary(&done);
    }
    Ok(if done.state == ReleaseState::Deployed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn usage(e: DeployError) -> anyhow::Error {
    match e {
        DeployError::Busy(m) => anyhow::Error::new(berth_api::client::ClientError::Api {
            status: hyper::StatusCode::CONFLICT,
            code: "deploy_running".into(),
            message: m,
        }),
        DeployError::Refused(m) => UsageError(m).into(),
        other => other.into(),
    }
}

fn summary(r: &Release) {
    let took = r
        .finished_at
        .map(|f| berth_deploy::humanize(f.since(r.created_at)))
        .unwrap_or_default();
    match r.state {
        ReleaseState::Deployed => outln!(
            "release {} ({}) is live, deployed in {took}",
            r.id,
            r.source.describe()
        ),
        ReleaseState::Failed => errln!(
            "deploy of release {} failed: {}; nothing that runs was changed",
            r.id,
            r.error.as_deref().unwrap_or("?")
        ),
        _ => errln!(
            "deploy of release {} failed: {}; rolled back: {}",
            r.id,
            r.error.as_deref().unwrap_or("?"),
            r.rollback.as_deref().unwrap_or("?")
        ),
    }
}

/// Prints each step on one line: its name and what it runs as it begins, its outcome
/// and time as it ends (a step seen only once it ended gets its whole line at once).
struct Printer {
    json: bool,
    line: Mutex<Line>,
}

/// Where the printer is.
#[derive(Default)]
struct Line {
    /// Steps whose line is complete.
    done: usize,
    /// The detail printed on the open line, if one is open.
    open: Option<String>,
    /// Whether the open line shows that the step runs.
    dots: bool,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self {
            json,
            line: Mutex::new(Line::default()),
        }
    }

    fn show(&self, r: &Release) {
        if self.json {
            return;
        }
        let mut line = self.line.lock().expect("not poisoned");
        while let Some(s) = r.steps.get(line.done) {
            if line.open.is_none() {
                output::write_part(format_args!("  {:<16} {}", s.name, s.detail));
                line.open = Some(s.detail.clone());
            }
            if s.state == "running" {
                if !line.dots {
                    output::write_part(format_args!(" ..."));
                    line.dots = true;
                }
                return;
            }
            let secs = s.seconds.map(|x| format!(" ({x:.1}s)")).unwrap_or_default();
            let found = if line.open.as_deref() == Some(s.detail.as_str()) {
                String::new()
            } else {
                format!(": {}", s.detail)
            };
            outln!(" -> {}{secs}{found}", s.state);
            if let Some(tail) = &s.output_tail {
                for l in tail.lines() {
                    outln!("      | {l}");
                }
                if let Some(log) = &s.log {
                    outln!(
                        "      (its whole output: {log}, shown by `berth releases {}`)",
                        r.id
                    );
                }
            }
            *line = Line {
                done: line.done + 1,
                ..Line::default()
            };
        }
    }
}

/// Runs `berth rollback`.
pub async fn rollback(ctx: &Ctx, args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let (config, spec) = deploying(ctx)?;
    let r: Release = match lock_if_down(&config) {
        Some(_lock) => here(&config, spec)
            .await?
            .rollback(args.release.as_deref(), &who(), !args.no_restore)
            .await
            .map_err(usage)?,
        None => {
            running(ctx, &config)
                .await?
                .post(
                    "/v1/rollback",
                    &RollbackBody {
                        to: args.release,
                        by: Some(who()),
                        restore: Some(!args.no_restore),
                    },
                )
                .await?
        }
    };
    if ctx.json {
        output::json(&r);
    } else {
        outln!(
            "release {} rolled back: {}",
            r.id,
            r.rollback.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `berth releases`: read from the releases directory, so it works with berth up
/// or down.
pub async fn releases(ctx: &Ctx, args: ReleasesArgs) -> anyhow::Result<ExitCode> {
    let (_, spec) = deploying(ctx)?;
    let releases = Releases::new(spec.dir.clone());
    if let Some(id) = &args.release {
        let r = releases.load(id).map_err(usage)?;
        let current = releases.current();
        let previous = current
            .as_deref()
            .and_then(|c| releases.load(c).ok())
            .and_then(|c| c.previous);
        let v = release_json(&r, current.as_deref(), previous.as_deref());
        if ctx.json {
            output::json(&v);
            return Ok(ExitCode::SUCCESS);
        }
        show_one(&releases, &r, &v);
        return Ok(ExitCode::SUCCESS);
    }
    let v = releases_json(&releases).map_err(usage)?;
    if ctx.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v
        .releases
        .iter()
        .map(|view| {
            let r = &view.release;
            vec![
                r.id.clone(),
                shown_state(view),
                r.source.describe(),
                r.by.clone(),
                time(r.created_at),
                r.backup.as_deref().unwrap_or("-").to_owned(),
                r.error.as_deref().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    if rows.is_empty() {
        outln!(
            "no releases in {} yet; `berth deploy` makes the first",
            spec.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    output::table(
        &["ID", "STATE", "SOURCE", "BY", "WHEN", "BACKUP", "ERROR"],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

/// A release's state as shown ("-" if the view has none).
fn shown_state(v: &ReleaseView) -> String {
    v.shown_state.as_deref().unwrap_or("-").to_owned()
}

fn show_one(releases: &Releases, r: &Release, v: &ReleaseView) {
    outln!("release {}: {}", r.id, shown_state(v));
    outln!("  source:   {}", r.source.describe());
    outln!("  by:       {} on node {}", r.by, r.node);
    outln!("  began:    {}", r.created_at);
    if let Some(f) = r.finished_at {
        outln!(
            "  ended:    {f} ({})",
            berth_deploy::humanize(f.since(r.created_at))
        );
    }
    if let Some(p) = &r.previous {
        outln!("  previous: {p}");
    }
    if let Some(b) = &r.backup {
        outln!("  backup:   {b}");
    }
    if let Some(e) = &r.error {
        outln!("  error:    {e}");
    }
    if let Some(rb) = &r.rollback {
        outln!("  rollback: {rb}");
    }
    outln!("  steps:");
    for s in &r.steps {
        let secs = s.seconds.map(|x| format!("{x:.1}s")).unwrap_or_default();
        outln!(
            "    {:<8} {:<16} {:>7}  {}",
            s.state,
            s.name,
            secs,
            s.detail
        );
        if let Some(log) = &s.log {
            outln!(
                "             output: {}",
                releases.meta(&r.id).join(log).display()
            );
        }
        if let Some(tail) = &s.output_tail {
            for line in tail.lines() {
                outln!("             | {line}");
            }
        }
    }
}
