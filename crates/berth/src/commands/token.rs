//! `berth token create|list|revoke`: API tokens for routes with `auth = "token"`. The
//! secret is shown once, at creation; the store keeps only its hash.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use berth_store::{NewToken, Timestamp, TokenRecord};
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use super::user::store;
use crate::exit::UsageError;
use crate::output;

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token that acts as USER, and print it (once).
    Create {
        /// The user the token acts as (with their roles).
        user: String,
        /// What it is for, shown in `berth token list`.
        #[arg(long, default_value = "")]
        label: String,
        /// It stops working after this long, e.g. 90d (default: never).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// What it may do on the admin API over TCP (repeatable): status:read,
        /// jobs:read, messages:read, jobs:push:QUEUE, jobs:work:QUEUE (QUEUE may be *).
        /// Without any, it only logs in on gateway routes.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List the tokens (not their secrets).
    List,
    /// Revoke a token by its id (tok_…).
    Revoke {
        /// The token's id.
        id: String,
    },
}

/// Runs a token subcommand.
pub async fn run(ctx: &Ctx, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let store = store(ctx).await?;
    let now = Timestamp::now();
    match cmd {
        TokenCommand::Create {
            user,
            label,
            expires,
            scopes,
        } => {
            let lifetime = expires.as_deref().map(parse_lifetime).transpose()?;
            for s in &scopes {
                berth_api::scopes::Scope::parse(s).map_err(UsageError)?;
            }
            let (id, secret, hash) =
                berth_gateway::auth::new_token().map_err(anyhow::Error::msg)?;
            let token = TokenRecord {
                id: id.clone(),
                user: user.clone(),
                label,
                created_at: now,
                expires_at: lifetime.map(|d| now.plus(d)),
                scopes,
            };
            store
                .token_create(NewToken {
                    token: token.clone(),
                    hash,
                })
                .await?;
            if ctx.json {
                output::json(&json!({
                    "id": id,
                    "user": user,
                    "token": secret,
                    "expires_at": token.expires_at.map(|t| t.to_string()),
                }));
            } else {
                outln!("{secret}");
                errln!(
                    "token {id} acts as `{user}`{}{}; it is shown only now. Send it as `Authorization: Bearer …`.",
                    token
                        .expires_at
                        .map(|t| format!(" until {t}"))
                        .unwrap_or_default(),
                    if token.scopes.is_empty() {
                        String::new()
                    } else {
                        format!(" with scopes {}", token.scopes.join(", "))
                    }
                );
            }
        }
        TokenCommand::List => {
            let tokens = store.tokens().await?;
            if ctx.json {
                output::json(&json!(
                    tokens
                        .iter()
                        .map(|t| json!({
                            "id": t.id,
                            "user": t.user,
                            "label": t.label,
                            "created_at": t.created_at.to_string(),
                            "expires_at": t.expires_at.map(|e| e.to_string()),
                            "scopes": t.scopes,
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.user.clone(),
                            if t.label.is_empty() {
                                "-".into()
                            } else {
                                t.label.clone()
                            },
                            t.created_at.to_string(),
                            match t.expires_at {
                                Some(e) if e <= now => format!("expired {e}"),
                                Some(e) => e.to_string(),
                                None => "never".into(),
                            },
                            if t.scopes.is_empty() {
                                "-".into()
                            } else {
                                t.scopes.join(",")
                            },
                        ]
                    })
                    .collect();
                output::table(
                    &["ID", "USER", "LABEL", "CREATED", "EXPIRES", "SCOPES"],
                    &rows,
                );
            }
        }
        TokenCommand::Revoke { id } => {
            store.token_revoke(&id).await?;
            if ctx.json {
                output::json(&json!({"revoked": id}));
            } else {
                outln!("revoked {id}; gateways stop accepting it within 5 seconds");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_lifetime(text: &str) -> anyhow::Result<Duration> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => bail!(UsageError(format!(
            "invalid --expires {text:?}: expected a duration such as \"90d\" or \"12h\""
        ))),
    }
}
