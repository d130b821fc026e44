//! `berth user add|passwd|roles|remove|list`: the people who can log in to routes with
//! `auth`. These work on the store directly, with or without a running berth.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_store::{Store, Timestamp};
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use crate::exit::UsageError;
use crate::output;

/// User subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; asks for the password (or reads one line with --password-stdin).
    Add {
        /// The login name: letters, digits, `.`, `_`, `-` and `@`.
        name: String,
        /// A role (repeat for several), matched against a route's `roles`.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password; ends their sessions and any lockout.
    Passwd {
        /// The user.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Replace a user's roles (none given: no roles).
    Roles {
        /// The user.
        name: String,
        /// A role (repeat for several).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Remove a user with their tokens and sessions.
    Remove {
        /// The user.
        name: String,
    },
    /// List the users.
    List,
}

/// Opens this config's store, creating the data dir of an embedded store if needed.
pub(crate) async fn store(ctx: &Ctx) -> anyhow::Result<Arc<dyn Store>> {
    let config = ctx.config()?;
    std::fs::create_dir_all(&config.app.data_dir).with_context(|| {
        format!(
            "cannot create the data dir {}",
            config.app.data_dir.display()
        )
    })?;
    berth_server::open_store(&config).await
}

/// Runs a user subcommand.
pub async fn run(ctx: &Ctx, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let store = store(ctx).await?;
    let now = Timestamp::now();
    match cmd {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
        } => {
            check_name(&name)?;
            check_roles(&roles)?;
            let password = read_password(&name, password_stdin)?;
            let hash = berth_gateway::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            let user = store.user_create(&name, &hash, roles, now).await?;
            say(
                ctx,
                &json!({"added": user.name, "roles": user.roles}),
                || format!("added user `{}`{}", user.name, roles_suffix(&user.roles)),
            );
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            if store.user(&name).await?.is_none() {
                return Err(
                    berth_store::StoreError::NotFound(format!("no user named `{name}`")).into(),
                );
            }
            let password = read_password(&name, password_stdin)?;
            let hash = berth_gateway::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            store.user_update(&name, Some(hash), None, now).await?;
            say(ctx, &json!({"password_changed": name}), || {
                format!("changed the password of `{name}`; their sessions are ended")
            });
        }
        UserCommand::Roles { name, roles } => {
            check_roles(&roles)?;
            let user = store.user_update(&name, None, Some(roles), now).await?;
            say(
                ctx,
                &json!({"user": user.name, "roles": user.roles}),
                || format!("`{}` now has {}", user.name, describe_roles(&user.roles)),
            );
        }
        UserCommand::Remove { name } => {
            store.user_remove(&name).await?;
            say(ctx, &json!({"removed": name}), || {
                format!("removed user `{name}` with their tokens and sessions")
            });
        }
        UserCommand::List => {
            let users = store.users().await?;
            if ctx.json {
                output::json(&json!(users
                    .iter()
                    .map(|u| json!({
                        "name": u.name,
                        "roles": u.roles,
                        "locked_until": u.locked_until.filter(|t| *t > now).map(|t| t.to_string()),
                        "failed_logins": u.failed_logins,
                        "created_at": u.created_at.to_string(),
                    }))
                    .collect::<Vec<_>>()));
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.clone(),
                            if u.roles.is_empty() {
                                "-".into()
                            } else {
                                u.roles.join(",")
                            },
                            match u.locked_until.filter(|t| *t > now) {
                                Some(t) => format!("locked until {t}"),
                                None => "-".into(),
                            },
                            u.created_at.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "ROLES", "LOCKED", "CREATED"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn say(ctx: &Ctx, json: &serde_json::Value, text: impl FnOnce() -> String) {
    if ctx.json {
        output::json(json);
    } else {
        outln!("{}", text());
    }
}

fn roles_suffix(roles: &[String]) -> String {
    if roles.is_empty() {
        String::new()
    } else {
        format!(" with {}", describe_roles(roles))
    }
}

fn describe_roles(roles: &[String]) -> String {
    match roles.len() {
        0 => "no roles".into(),
        1 => format!("the role `{}`", roles[0]),
        _ => format!(
            "the roles {}",
            roles
                .iter()
                .map(|r| format!("`{r}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !berth_config::valid_user_name(name) {
        bail!(UsageError(format!(
            "invalid user name {name:?}: expected 1 to 128 letters, digits, `.`, `_`, `-` or `@`, such as \"alice\""
        )));
    }
    Ok(())
}

fn check_roles(roles: &[String]) -> anyhow::Result<()> {
    for role in roles {
        if !berth_config::valid_role(role) {
            bail!(UsageError(format!(
                "invalid role {role:?}: expected letters, digits, `_` and `-`, such as \"admin\""
            )));
        }
    }
    Ok(())
}

/// The password: asked twice without echo on a terminal, or the first line of stdin.
fn read_password(name: &str, from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let password = if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = prompt(&format!("Password for {name}: "))?;
        let second = prompt("Again: ")?;
        if first != second {
            bail!(UsageError(
                "the two passwords differ; nothing was changed".into()
            ));
        }
        first
    };
    if password.chars().count() < berth_gateway::auth::MIN_PASSWORD {
        bail!(UsageError(format!(
            "the password is too short: expected at least {} characters",
            berth_gateway::auth::MIN_PASSWORD
        )));
    }
    Ok(password)
}

/// Reads a line from the terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    err!("{text}");
    std::io::stderr().flush().ok();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn the terminal's echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    errln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
