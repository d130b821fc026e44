//! The `[notify.NAME]` tables: where notifications go (email over SMTP, or a webhook) and
//! which events they tell of, one at a time or as a periodic digest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section, unknown_name};
use crate::validate::valid_env_name;

/// Every event kind a channel can take, by source.
pub const NOTICE_KINDS: &[&str] = &[
    "job.discarded",
    "batch.completed",
    "batch.failed",
    "batch.cancelled",
    "workflow.completed",
    "workflow.failed",
    "workflow.cancelled",
    "service.started",
    "service.ready",
    "service.unhealthy",
    "service.exited",
    "service.restarting",
    "service.crashloop",
    "service.stopped",
    "budget.80",
    "budget.100",
    "backup.completed",
    "backup.failed",
    "ingest.dead_letter",
    "ingest.file_failed",
    "deploy.started",
    "deploy.completed",
    "deploy.failed",
    "deploy.rolled_back",
];

/// One `[notify.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// The table key.
    pub name: String,
    /// Where notifications go.
    pub target: NotifyTarget,
    /// `on`: the event kinds it takes: exact kinds, `SOURCE.*` or `*`.
    pub on: Vec<String>,
    /// `digest = "every 4h"`: one summary per period instead of one notification per event.
    pub digest: Option<Duration>,
}

/// Email or webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    /// `email = [...]` with `smtp`.
    Email(EmailConfig),
    /// `webhook = "https://…"`: a JSON POST per notification.
    Webhook(WebhookTarget),
}

/// Mail over SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// `email`: the recipients.
    pub to: Vec<String>,
    /// `smtp`: the server.
    pub smtp: SmtpServer,
    /// `from` (default `berth@HOSTNAME`).
    pub from: Option<String>,
    /// `user`: the login, if the server wants one.
    pub user: Option<String>,
    /// `password_env`: the environment variable holding the password.
    pub password_env: Option<String>,
    /// `ca`: a PEM file of a certificate authority to trust besides the usual ones.
    pub ca: Option<PathBuf>,
}

/// `smtp = "smtp://HOST:PORT"`, `"smtp+starttls://HOST:587"` or `"smtps://HOST:465"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// The host name (also checked against the server's certificate).
    pub host: String,
    /// The port.
    pub port: u16,
}

/// The scheme of `smtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: no encryption (a relay on the same machine or network).
    Plain,
    /// `smtp+starttls://`: plain, then STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
}

/// A webhook target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// `webhook`: an `http://` or `https://` URL.
    pub url: String,
    /// `secret_env`: the environment variable holding a secret; each body is then signed
    /// (`X-Berth-Signature: sha256=HEX`, an HMAC-SHA256 of the body).
    pub secret_env: Option<String>,
    /// `ca`: a PEM file of a certificate authority to trust besides the usual ones.
    pub ca: Option<PathBuf>,
}

pub(crate) fn notifies(
    section: &Section<'_, '_>,
    config_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, NotifyConfig> {
    let mut out = BTreeMap::new();
    for (name, table) in section.named_tables("notify", "admins", d) {
        if let Some(n) = notify(name, &table, config_dir, d) {
            out.insert(name.to_owned(), n);
        }
    }
    out
}

fn notify(
    name: &str,
    t: &Section<'_, '_>,
    config_dir: &Path,
    d: &mut Diagnostics<'_>,
) -> Option<NotifyConfig> {
    let on = t.string_list(
        "on",
        "event kind",
        "an event kind such as \"job.discarded\"",
        d,
        |k| {
            valid_pattern(k).then(|| k.to_owned()).ok_or_else(|| {
                Invalid::Message(unknown_name(
                    format!("unknown event kind `{k}` in `on`"),
                    k,
                    NOTICE_KINDS,
                    "",
                ))
            })
        },
    );
    if t.get("on").is_none() {
        d.error(
            t.span(),
            format!(
                "missing `on` in [notify.{name}]: expected the events it tells of, such as \
                 `on = [\"job.discarded\", \"service.crashloop\", \"backup.failed\"]` (or [\"*\"] for all)"
            ),
        );
    } else if on.as_ref().is_some_and(|on| on.is_empty()) {
        d.error(
            t.get("on").map(|v| v.span()).unwrap_or_else(|| t.span()),
            format!("`on` of [notify.{name}] is empty: expected at least one event kind"),
        );
    }
    let digest = t.string("digest", "digest period", d, |text| {
        let period = text.strip_prefix("every ").unwrap_or(text);
        match humantime::parse_duration(period) {
            Ok(p) if p >= Duration::from_secs(1) => Ok(p),
            _ => Err(Invalid::Expected(
                "expected a period of a second or more such as \"every 4h\" or \"every 30m\""
                    .into(),
            )),
        }
    });
    let ca = t.path("ca", "\"certs/ca.pem\"", config_dir, d);
    let target = target(name, t, ca, d);
    t.finish(d);
    Some(NotifyConfig {
        name: name.to_owned(),
        target: target?,
        on: on?,
        digest,
    })
}

fn target(
    name: &str,
    t: &Section<'_, '_>,
    ca: Option<PathBuf>,
    d: &mut Diagnostics<'_>,
) -> Option<NotifyTarget> {
    let has_email = t.get("email").is_some();
    let has_webhook = t.get("webhook").is_some();
    // Every key is read, and checked on its own, before the kinds are compared: one run
    // reports all that is wrong.
    let url = t.string("webhook", "URL", d, |u| {
        valid_http_url(u).then(|| u.to_owned()).ok_or_else(|| {
            Invalid::Expected(
                "expected an http:// or https:// URL such as \"https://hooks.example.org/berth\""
                    .into(),
            )
        })
    });
    let secret_env = env_name(t, "secret_env", "WEBHOOK_SECRET", d);
    let to = t.string_list(
        "email",
        "address",
        "an address such as \"ops@example.org\"",
        d,
        |a| {
            valid_address(a).then(|| a.to_owned()).ok_or_else(|| {
                Invalid::Expected("expected an address such as \"ops@example.org\"".into())
            })
        },
    );
    let smtp = t.string("smtp", "mail server", d, |u| {
        parse_smtp(u).ok_or_else(|| {
            Invalid::Expected(
                "expected smtp://HOST[:PORT] (no encryption), smtp+starttls://HOST[:PORT] or \
                 smtps://HOST[:PORT], such as \"smtp+starttls://mail.example.org:587\" (the \
                 login goes in `user` and `password_env`, not in the URL)"
                    .into(),
            )
        })
    });
    let from = t.string("from", "address", d, |a| {
        valid_address(a).then(|| a.to_owned()).ok_or_else(|| {
            Invalid::Expected("expected an address such as \"berth@example.org\"".into())
        })
    });
    let user = t.string("user", "user name", d, |u| {
        if u.is_empty() {
            Err(Invalid::Expected(
                "expected the mail server's login name".into(),
            ))
        } else {
            Ok(u.to_owned())
        }
    });
    let password_env = env_name(t, "password_env", "SMTP_PASSWORD", d);
    if has_email == has_webhook {
        d.error(
            t.span(),
            format!(
                "[notify.{name}] needs exactly one of `email` (with `smtp`) or `webhook`: \
                 expected `email = [\"ops@example.org\"]` and `smtp = \"smtp://127.0.0.1:25\"`, \
                 or `webhook = \"https://hooks.example.org/berth\"`"
            ),
        );
        return None;
    }
    if has_webhook {
        let email_keys = ["email", "smtp", "from", "user", "password_env"];
        for key in email_keys.iter().filter(|k| t.get(k).is_some()) {
            d.error(
                t.key_span(key).unwrap_or_else(|| t.span()),
                format!("`{key}` is for email; [notify.{name}] sends to a webhook"),
            );
        }
        return Some(NotifyTarget::Webhook(WebhookTarget {
            url: url?,
            secret_env,
            ca,
        }));
    }
    if t.get("secret_env").is_some() {
        d.error(
            t.key_span("secret_env").unwrap_or_else(|| t.span()),
            format!("`secret_env` signs webhooks; [notify.{name}] sends email"),
        );
    }
    if to.as_ref().is_some_and(|to| to.is_empty()) {
        d.error(
            t.get("email").map(|v| v.span()).unwrap_or_else(|| t.span()),
            format!("`email` of [notify.{name}] is empty: expected at least one address"),
        );
    }
    if t.get("smtp").is_none() {
        d.error(
            t.span(),
            format!(
                "missing `smtp` in [notify.{name}]: expected the mail server, such as \
                 `smtp = \"smtp://127.0.0.1:25\"`, \"smtp+starttls://mail.example.org:587\" or \
                 \"smtps://mail.example.org:465\""
            ),
        );
    }
    if let Some(server) = &smtp
        && server.security == SmtpSecurity::Plain
        && password_env.is_some()
        && !matches!(server.host.as_str(), "localhost" | "127.0.0.1" | "::1")
    {
        d.error(
            t.get("smtp").map(|v| v.span()).unwrap_or_else(|| t.span()),
            format!(
                "[notify.{name}] would send its password in clear text to {}: expected \
                 smtp+starttls:// or smtps:// for a login to a server off this machine",
                server.host
            ),
        );
    }
    if password_env.is_some() != (t.get("user").is_some()) {
        d.error(
            t.span(),
            format!(
                "[notify.{name}] has one of `user` and `password_env`: expected both or neither"
            ),
        );
    }
    Some(NotifyTarget::Email(EmailConfig {
        to: to?,
        smtp: smtp?,
        from,
        user,
        password_env,
        ca,
    }))
}

fn env_name(
    t: &Section<'_, '_>,
    key: &str,
    example: &str,
    d: &mut Diagnostics<'_>,
) -> Option<String> {
    t.string(key, "variable name", d, |v| {
        if valid_env_name(v) {
            Ok(v.to_owned())
        } else {
            Err(Invalid::Expected(format!(
                "expected the name of an environment variable, such as \"{example}\""
            )))
        }
    })
}

/// `*`, a known kind, or `SOURCE.*` of a known source.
fn valid_pattern(p: &str) -> bool {
    p == "*"
        || NOTICE_KINDS.contains(&p)
        || p.strip_suffix(".*").is_some_and(|source| {
            NOTICE_KINDS
                .iter()
                .any(|k| k.split_once('.').is_some_and(|(s, _)| s == source))
        })
}

fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c == ',' || c == '<' || c == '>')
}

fn valid_http_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split('/').next().unwrap_or("");
        !host.is_empty() && !host.contains('@') && !r.chars().any(char::is_whitespace)
    })
}

fn parse_smtp(u: &str) -> Option<SmtpServer> {
    let (security, rest, default_port) = if let Some(r) = u.strip_prefix("smtp+starttls://") {
        (SmtpSecurity::StartTls, r, 587)
    } else if let Some(r) = u.strip_prefix("smtps://") {
        (SmtpSecurity::Tls, r, 465)
    } else if let Some(r) = u.strip_prefix("smtp://") {
        (SmtpSecurity::Plain, r, 25)
    } else {
        return None;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['@', '/', '?']) {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse().ok()?),
        _ => (rest, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty() && port > 0).then(|| SmtpServer {
        security,
        host: host.to_owned(),
        port,
    })
}
