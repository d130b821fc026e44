//! From the spanned TOML document to a [`Config`]: every key checked, every
//! problem reported with its location.
//!
//! Each check reports into [`Diagnostics`] and falls back to the default so
//! that the following checks still run; the caller only hands out the
//! `Config` when nothing was reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

use crate::diagnostic::Diagnostics;
use crate::model::{Api, App, Config, Durability, StoreChoice};
use crate::queue::queues;
use crate::section::{Invalid, Section};

/// Builds the config from the parsed document. The result is only
/// meaningful when `d` stayed empty.
pub(crate) fn config(document: &DeTable<'_>, path: &Path, d: &mut Diagnostics<'_>) -> Config {
    let root = Section::root(document);
    let config_dir = path.parent().unwrap_or(Path::new(""));
    // The top-level tables, asked for in the order they are documented (and listed
    // when one is unknown); each is checked below once what it refers to is known.
    let app = app(&root, path, d);
    let api_table = root.table("api", "a table such as [api]", d);
    let queue_table = root.table("queue", "tables such as [queue.default]", d);
    let service_table = root.table("service", "tables such as [service.web]", d);
    let schedule_table = root.table("schedule", "tables such as [schedule.cleanup]", d);
    let workflow_table = root.table("workflow", "tables such as [workflow.publish]", d);
    let gateway_table = root.table("gateway", "a table such as [gateway]", d);
    let budget_table = root.table("budget", "tables such as [budget.nlu]", d);
    let ingest_table = root.table("ingest", "tables such as [ingest.stands]", d);
    let backup_table = root.table("backup", "a table such as [backup]", d);
    let notify_table = root.table("notify", "tables such as [notify.admins]", d);
    let deploy_table = root.table("deploy", "a table such as [deploy]", d);
    root.finish(d);

    let api = api_table.map_or_else(Api::default, |section| api(&section, d));
    let queues = queue_table.map_or_else(BTreeMap::new, |section| queues(&section, d));
    let services = service_table.map_or_else(BTreeMap::new, |section| {
        crate::service::services(&section, path, d)
    });
    let workflows = workflow_table.map_or_else(BTreeMap::new, |section| {
        crate::workflow::workflows(&section, d)
    });
    let schedules = schedule_table.map_or_else(BTreeMap::new, |section| {
        crate::schedule::schedules(&section, &queues, &workflows, d)
    });
    let budgets =
        budget_table.map_or_else(BTreeMap::new, |section| crate::budget::budgets(&section, d));
    let gateway = gateway_table
        .and_then(|section| crate::gateway::gateway(&section, config_dir, &services, &budgets, d));
    let ingests = ingest_table.map_or_else(BTreeMap::new, |section| {
        crate::ingest::ingests(&section, config_dir, &queues, &workflows, d)
    });
    webhooks_need_the_gateway(&root, &ingests, gateway.as_ref(), d);
    let backup =
        backup_table.map(|section| crate::backup::backup(&section, config_dir, &app.data_dir, d));
    let notify = notify_table.map_or_else(BTreeMap::new, |section| {
        crate::notify::notifies(&section, config_dir, d)
    });
    let deploy =
        deploy_table.map(|section| crate::deploy::deploy(&section, config_dir, &app.data_dir, d));
    if root.get("deploy").is_none() {
        for top in ["service", "queue", "workflow"] {
            if let Some(v) = root.get(top) {
                release_needs_deploy(v, top, d);
            }
        }
    }
    Config {
        backup,
        deploy,
        notify,
        path: path.to_path_buf(),
        gateway,
        ingests,
        budgets,
        app,
        api,
        queues,
        services,
        schedules,
        workflows,
    }
}

fn app(root: &Section<'_, '_>, path: &Path, d: &mut Diagnostics<'_>) -> App {
    let config_dir = path.parent().unwrap_or(Path::new(""));
    let mut app = App {
        name: String::new(),
        data_dir: config_dir.join(".berth"),
        durability: Durability::default(),
        shutdown_grace: Duration::from_secs(30),
        store: StoreChoice::Sqlite,
        store_connections: 16,
        leader_ttl: Duration::from_secs(15),
        lease_ttl: Duration::from_secs(60),
    };
    if root.get("app").is_none() {
        d.error(
            0..0,
            "missing [app] table: expected an [app] table with at least `name = \"myapp\"`",
        );
        return app;
    }
    let Some(section) = root.table("app", "a table such as [app]", d) else {
        return app;
    };

    if section.get("name").is_none() {
        d.error(
            section.span(),
            "missing `name` in [app]: expected a line such as `name = \"myapp\"`",
        );
    }
    if let Some(name) = section.string("name", "app name", d, |name| {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        valid.then(|| name.to_owned()).ok_or_else(|| {
            Invalid::Expected("expected letters, digits, `_` and `-`, such as \"myapp\"".into())
        })
    }) {
        app.name = name;
    }
    if let Some(dir) = section.string("data_dir", "directory", d, |dir| {
        if dir.is_empty() {
            Err(Invalid::Expected(
                "expected a directory path such as \".berth\"".into(),
            ))
        } else {
            Ok(PathBuf::from(dir))
        }
    }) {
        // `join` keeps an absolute `data_dir` as it is.
        app.data_dir = config_dir.join(dir);
    }
    if let Some(durability) = section.string("durability", "value", d, |value| match value {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err(Invalid::Expected("expected \"full\" or \"normal\"".into())),
    }) {
        app.durability = durability;
    }
    if let Some(grace) = section.duration("shutdown_grace", true, d) {
        app.shutdown_grace = grace;
    }
    if let Some(store) = section.string("store", "store", d, |store| {
        crate::model::parse_store(store).map_err(Invalid::Message)
    }) {
        app.store = store;
    }
    if let Some(n) = section.integer("store_connections", 2..=1000, d) {
        app.store_connections = n as u32;
    }
    if let Some(ttl) = section.duration("leader_ttl", false, d) {
        app.leader_ttl = ttl;
    }
    if let Some(ttl) = section.duration("lease_ttl", false, d) {
        app.lease_ttl = ttl;
    }
    section.finish(d);
    app
}

fn api(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Api {
    let listen = section.string("listen", "address", d, |listen| {
        listen.parse::<SocketAddr>().map_err(|_| {
            Invalid::Expected(
                "expected an IP address and port such as \"127.0.0.1:7070\" or \"0.0.0.0:7070\""
                    .into(),
            )
        })
    });
    let token_env = section.string("token_env", "variable name", d, |name| {
        valid_env_name(name)
            .then(|| name.to_owned())
            .ok_or_else(|| {
                Invalid::Expected(
                    "expected the name of an environment variable such as \"BERTH_API_TOKEN\" \
                 (the token itself never goes in this file)"
                        .into(),
                )
            })
    });
    section.finish(d);
    Api {
        listen,
        token_env: token_env.unwrap_or_else(|| Api::default().token_env),
    }
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: a name that a shell accepts for a variable.
pub(crate) fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`: queue and service names.
pub(crate) fn valid_queue_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 64
}

/// A webhook is a path on the gateway: there must be one, and no route may have the same
/// path. A gateway needs a route or a webhook.
fn webhooks_need_the_gateway(
    root: &Section<'_, '_>,
    ingests: &BTreeMap<String, crate::IngestConfig>,
    gateway: Option<&crate::GatewayConfig>,
    d: &mut Diagnostics<'_>,
) {
    let span = root
        .get("ingest")
        .map(|v| v.span())
        .unwrap_or_else(|| root.span());
    if let (Some(g), Some(table)) = (gateway, root.get("gateway"))
        && g.routes.is_empty()
        && root
            .child("gateway", table, "a table such as [gateway]", d)
            .is_some_and(|s| s.get("route").is_none())
        && !ingests.values().any(|i| i.webhook.is_some())
    {
        d.error(
            table.span(),
            "[gateway] has no routes: expected at least one [[gateway.route]] with `path` and \
             one of `static`, `service`, `proxy` or `redirect`, or an ingest's `webhook`",
        );
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for i in ingests.values() {
        let Some(hook) = &i.webhook else { continue };
        match gateway {
            None => d.error(
                span.clone(),
                format!(
                    "[ingest.{}] has a `webhook`, which the gateway answers, but there is no \
                     [gateway]: add one, such as [gateway] listen = \"0.0.0.0:8080\"",
                    i.name
                ),
            ),
            Some(g) => {
                if g.routes
                    .iter()
                    .any(|r| r.host.is_none() && r.path == hook.path)
                {
                    d.error(
                        span.clone(),
                        format!(
                            "the `webhook` path {} of [ingest.{}] is also a [[gateway.route]] \
                             path: expected a path of its own, such as \"/hooks/{}\"",
                            hook.path, i.name, i.name
                        ),
                    );
                }
            }
        }
        if let Some(other) = seen.insert(&hook.path, &i.name) {
            d.error(
                span.clone(),
                format!(
                    "[ingest.{other}] and [ingest.{}] have the same `webhook` path {}: expected \
                     one path each",
                    i.name, hook.path
                ),
            );
        }
    }
}

/// `{release}` is the live release's directory, which only `[deploy]` makes.
fn release_needs_deploy(v: &crate::section::Value<'_>, path: &str, d: &mut Diagnostics<'_>) {
    use toml::de::DeValue;
    match v.get_ref() {
        DeValue::String(s) if s.contains("{release}") => d.error(
            v.span(),
            format!(
                "`{{release}}` in {path} is the live release's directory, which only a \
                 [deploy] table makes: add [deploy] (see docs/deploy.md), or write the path"
            ),
        ),
        DeValue::Table(t) => {
            for (k, v) in t.iter() {
                let key: &str = k.get_ref().as_ref();
                release_needs_deploy(v, &format!("{path}.{key}"), d);
            }
        }
        DeValue::Array(items) => {
            for v in items {
                release_needs_deploy(v, path, d);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::valid_queue_name;
    use crate::queue::check_post_url;

    #[test]
    fn queue_names() {
        for good in ["default", "e", "0", "bulk-import_2", &"a".repeat(64)] {
            assert!(valid_queue_name(good), "{good}");
        }
        for bad in ["", "Emails", "-x", "_x", "a b", "ü", &"a".repeat(65)] {
            assert!(!valid_queue_name(bad), "{bad}");
        }
    }

    #[test]
    fn post_urls() {
        for good in [
            "http://127.0.0.1:8000/jobs",
            "http://localhost/jobs",
            "http://app",
            "http://[::1]:8000/x",
            "http://user:pw@host:80/",
        ] {
            assert!(check_post_url(good).is_ok(), "{good}");
        }
        for bad in [
            "https://example.org/jobs",
            "ftp://x",
            "http://",
            "http:///jobs",
            "http://host:99999/",
            "http://host:port/",
            "http://[::1/",
            "127.0.0.1:8000/jobs",
        ] {
            assert!(check_post_url(bad).is_err(), "{bad}");
        }
    }
}
