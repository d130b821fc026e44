//! `[notify.NAME]` → the notifier, run by the leader.

use std::sync::Arc;

use anyhow::Context;
use berth_config::{Config, NotifyTarget, SmtpSecurity};
use berth_notify::{ChannelSpec, EmailSpec, Notifier, Security, TargetSpec, WebhookSpec};
use berth_queue::{LeaderTask, Live, TickFuture};
use berth_store::{Store, Timestamp};

/// The channels of the config (or only the one named `only`), with their secrets read
/// from the environment and their certificate files loaded. Fails, naming the channel,
/// if a secret is missing.
pub fn channel_specs(config: &Config, only: Option<&str>) -> anyhow::Result<Vec<ChannelSpec>> {
    let secret = |name: &str, var: &str| {
        std::env::var(var).with_context(|| {
            format!("[notify.{name}] reads its secret from ${var}, which is not set; set it, or remove the line")
        })
    };
    let ca = |name: &str, path: &Option<std::path::PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        path.as_ref()
            .map(|p| {
                std::fs::read(p).with_context(|| {
                    format!("[notify.{name}]: cannot read the `ca` file {}", p.display())
                })
            })
            .transpose()
    };
    let mut out = Vec::new();
    for (name, n) in config
        .notify
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == *n))
    {
        let target = match &n.target {
            NotifyTarget::Email(e) => {
                let login = match (&e.user, &e.password_env) {
                    (Some(user), Some(var)) => Some((user.clone(), secret(name, var)?)),
                    _ => None,
                };
                TargetSpec::Email(EmailSpec {
                    to: e.to.clone(),
                    from: e
                        .from
                        .clone()
                        .unwrap_or_else(|| format!("berth@{}", berth_queue::queues::hostname())),
                    host: e.smtp.host.clone(),
                    port: e.smtp.port,
                    security: match e.smtp.security {
                        SmtpSecurity::Plain => Security::Plain,
                        SmtpSecurity::StartTls => Security::StartTls,
                        SmtpSecurity::Tls => Security::Tls,
                    },
                    login,
                    ca_pem: ca(name, &e.ca)?,
                })
            }
            NotifyTarget::Webhook(w) => TargetSpec::Webhook(WebhookSpec {
                url: w.url.clone(),
                secret: w
                    .secret_env
                    .as_deref()
                    .map(|var| secret(name, var).map(String::into_bytes))
                    .transpose()?,
                ca_pem: ca(name, &w.ca)?,
            }),
        };
        out.push(ChannelSpec {
            name: name.clone(),
            on: n.on.clone(),
            digest: n.digest,
            target,
        });
    }
    Ok(out)
}

/// The notifier of a config.
pub fn notifier(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Notifier> {
    Ok(Notifier::new(
        store,
        &config.app.name,
        channel_specs(config, None)?,
    )?)
}

/// Routes and sends notifications while this node leads; a reload replaces the notifier.
pub struct NotifyTask(pub Live<Notifier>);

impl LeaderTask for NotifyTask {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn tick(&self, now: Timestamp) -> TickFuture<'_> {
        Box::pin(async move {
            let notifier = self.0.get();
            notifier.tick(now).await.map_err(|e| e.to_string())?;
            Ok(None)
        })
    }
}
