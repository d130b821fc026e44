//! `docs/config.md` is checked against the keys the validators ask for. There is no list
//! of keys besides the getters: a validator asks its `Section`
//! for each key it takes, and `finish` reports the rest as unknown. The tests here
//! validate configs that visit every table and every form of one, record what was asked,
//! and require the docs to name each such key, so that a key added to a validator and
//! left out of the docs fails the build.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::diagnostic::Diagnostics;
    use crate::{ConfigError, validate};

    /// Valid configs that between them visit every table of berth.toml in each of its
    /// forms (a route of each kind, each ingest source, each notify target, …). A table
    /// left out here would have its keys go unchecked against the docs; the test
    /// `the_fixtures_visit_every_top_level_table` catches a missing top-level one.
    const FIXTURES: &[&str] = &[
        r##"
[app]
name = "shop"
[api]
listen = "127.0.0.1:7070"

[queue.mail]
handler = { run = "python3 send.py" }
backoff = { initial = "1s" }
retention = { completed = "1d" }
[queue.pulled]
handler = "pull"

[service.web]
command = "gunicorn app:app -b 127.0.0.1:{port}"
port = 8000
ready = { http = "/healthz" }
live = { tcp = true }
backoff = { initial = "100ms" }
crash_loop = { max_exits = 5 }
env = { MODE = "prod" }
[service.worker]
command = "python3 worker.py"
depends_on = ["web"]
ready = { command = "true" }

[workflow.publish]
[workflow.publish.step.fetch]
handler = { run = "python3 fetch.py" }
[workflow.publish.step.send]
handler = { run = "python3 send.py" }
parents = ["fetch"]

[schedule.digest]
cron = "0 8 * * *"
job = { queue = "mail", kind = "digest", args = { days = 1 } }
[schedule.nightly]
cron = "@daily"
workflow = { name = "publish", args = { channel = "web" } }
[schedule.cleanup]
cron = "@hourly"
command = "python3 cleanup.py"

[budget.nlu]
limit = 10.0
cost_per_request = 0.002

[gateway]
listen = "0.0.0.0:8443"
tls = { cert = "fullchain.pem", key = "privkey.pem" }
[[gateway.route]]
path = "/"
static = "dist"
[[gateway.route]]
path = "/app"
service = "web"
budget = "nlu"
auth = "login"
rate_limit = { per_address = "10/s", per_user = "600/min" }
[[gateway.route]]
path = "/other"
proxy = "http://127.0.0.1:9000"
[[gateway.route]]
path = "/old"
redirect = "/new"
[[gateway.route]]
path = "/v1"
api = ["jobs:read"]
auth = "token"
[[gateway.route]]
path = "/berth"
dashboard = true

[ingest.stands]
mqtt = { listen = "0.0.0.0:1883", tls = { cert = "c.pem", key = "k.pem" } }
topics = ["+/inbound"]
job = { queue = "mail", kind = "reading" }
credentials = { stand01 = { password_env = "STAND01_PASSWORD", roles = ["stands"] } }
[[ingest.stands.allow]]
role = "stands"
publish = ["+/inbound"]
[ingest.drops]
dir = { watch = "import" }
job = { queue = "mail" }
[ingest.hooks]
webhook = { path = "/hooks/stands" }
workflow = "publish"
[ingest.relay]
broker = { url = "mqtt://127.0.0.1:1883" }
topics = ["#"]
job = { queue = "mail" }

[backup]
keep = { daily = 7 }
[backup.database.app]
postgres = "postgres://app@127.0.0.1:5432/app"
[backup.database.legacy]
mysql = "mysql://app@127.0.0.1:3306/app"
[backup.database.files]
sqlite = "data/app.sqlite3"

[notify.ops]
on = ["job.discarded"]
email = ["ops@example.org"]
smtp = "smtp://127.0.0.1:25"
[notify.hook]
on = ["*"]
webhook = "https://hooks.example.org/berth"

[deploy]
repo = "../shop"
"##,
        r##"
[app]
name = "shop"
[gateway]
listen = "0.0.0.0:443"
http = "0.0.0.0:80"
tls = { acme = "ops@example.org", domains = ["example.org"] }
[[gateway.route]]
proxy = "http://127.0.0.1:9000"
"##,
    ];

    /// The keys each top-level table's finished sections asked for (`""`: the top level),
    /// and what validating `text` reported.
    fn asked(text: &str) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
        let path = Path::new("/srv/shop/berth.toml");
        let mut d = Diagnostics::new(path, text);
        d.keys = Some(BTreeMap::new());
        let document = toml::de::DeTable::parse(text).expect("a fixture is TOML");
        validate::config(document.get_ref(), path, &mut d);
        let keys = d.keys.take().unwrap_or_default();
        let found = match d.finish(()) {
            Ok(()) => Vec::new(),
            Err(ConfigError::Invalid { diagnostics }) => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
            Err(other) => vec![other.to_string()],
        };
        (keys, found)
    }

    /// Every fixture's keys, by top-level table (`""`: the top level itself).
    fn all_asked() -> BTreeMap<String, Vec<String>> {
        let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for fixture in FIXTURES {
            let (keys, found) = asked(fixture);
            assert!(
                found.is_empty(),
                "a fixture is invalid:\n{}",
                found.join("\n")
            );
            for (path, keys) in keys {
                let top = path.split(['.', '#']).next().unwrap_or_default();
                let entry = all.entry(top.to_owned()).or_default();
                for key in keys {
                    if !entry.contains(&key) {
                        entry.push(key);
                    }
                }
            }
        }
        all
    }

    /// The section of docs/config.md on the top-level table `top`, from its heading
    /// (`` ## `[queue.NAME]` ``) to the next.
    fn doc_section<'d>(doc: &'d str, top: &str) -> Option<&'d str> {
        let start = [format!("## `[{top}]`"), format!("## `[{top}.")]
            .iter()
            .find_map(|heading| doc.find(heading.as_str()))?;
        let rest = &doc[start + 3..];
        Some(&rest[..rest.find("\n## ").unwrap_or(rest.len())])
    }

    /// Whether `text` names `key`: in a table's row or prose (`` `key` ``), in an example
    /// (`key = …`, also inline `{ key = … }`), or as a table in a header (`.key.`).
    fn names(text: &str, key: &str) -> bool {
        if text.contains(&format!("`{key}`")) || text.contains(&format!(".{key}.")) {
            return true;
        }
        let assign = format!("{key} =");
        text.match_indices(&assign).any(|(at, _)| {
            text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| matches!(c, ' ' | '\n' | '{' | ',' | '#' | '['))
        })
    }

    #[test]
    fn the_fixtures_visit_every_top_level_table() {
        let all = all_asked();
        let tops = all.get("").expect("the top level is finished");
        let unvisited: Vec<&String> = tops.iter().filter(|t| !all.contains_key(*t)).collect();
        assert!(
            unvisited.is_empty(),
            "no fixture has a table under {unvisited:?}"
        );
    }

    #[test]
    fn docs_config_md_names_every_key_of_every_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
        let doc = std::fs::read_to_string(path).expect("docs/config.md");
        let mut missing = Vec::new();
        for (top, keys) in all_asked() {
            if top.is_empty() {
                for table in &keys {
                    if doc_section(&doc, table).is_none() {
                        missing.push(format!("a section for [{table}]"));
                    }
                }
                continue;
            }
            let Some(text) = doc_section(&doc, &top) else {
                missing.push(format!("a section for [{top}]"));
                continue;
            };
            for key in keys {
                if !names(text, &key) {
                    missing.push(format!("`{key}` in the section on [{top}]"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/config.md leaves out:\n  {}",
            missing.join("\n  ")
        );
    }

    /// A validator must ask for every key before it gives up on a table, and must
    /// finish the table whatever its values: else a valid key next to a wrong one would
    /// be called unknown, or a typo go unreported until the other errors are fixed.
    ///
    /// Each fixture is validated again with each value that is not a table swapped for
    /// one of the wrong type: every table must still be finished. And once more with,
    /// besides, every key its tables take present (routes then have every kind at once,
    /// notify tables both targets, ingests every source): no key may be called unknown,
    /// and every table is still finished.
    #[test]
    fn every_key_is_asked_for_even_when_every_value_is_wrong() {
        for fixture in FIXTURES {
            let (takes, found) = asked(fixture);
            assert!(
                found.is_empty(),
                "a fixture is invalid:\n{}",
                found.join("\n")
            );
            let table: toml::Table = toml::from_str(fixture).expect("a fixture is TOML");
            for all_keys in [false, true] {
                let add = if all_keys {
                    takes.clone()
                } else {
                    BTreeMap::new()
                };
                let text = wrong_table(&table, "", &add);
                let (finished, found) = asked(&text);
                assert!(
                    !found.is_empty(),
                    "every value is wrong, so something is reported"
                );
                let unknown: Vec<&str> = found
                    .iter()
                    .filter(|m| m.contains("unknown key"))
                    .map(String::as_str)
                    .collect();
                assert!(
                    unknown.is_empty(),
                    "keys called unknown once other values are wrong:\n{}\nin:\n{text}",
                    unknown.join("\n")
                );
                let unfinished: Vec<&String> = takes
                    .keys()
                    .filter(|path| !finished.contains_key(*path))
                    .collect();
                assert!(
                    unfinished.is_empty(),
                    "tables not finished once values are wrong: {unfinished:?}\nin:\n{text}"
                );
            }
        }
    }

    /// The table at `path` as TOML (inline below the top level), with every key `takes`
    /// lists for it added, and each value that is not a table (or an array of tables)
    /// swapped for one of another type.
    fn wrong_table(
        table: &toml::Table,
        path: &str,
        takes: &BTreeMap<String, Vec<String>>,
    ) -> String {
        let child = |key: &str| {
            if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            }
        };
        let mut entries: Vec<String> = Vec::new();
        for (key, value) in table {
            let shown = match value {
                toml::Value::Table(inner) => wrong_table(inner, &child(key), takes),
                toml::Value::Array(items)
                    if !items.is_empty() && items.iter().all(toml::Value::is_table) =>
                {
                    let items: Vec<String> = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| item.as_table().map(|t| (i, t)))
                        .map(|(i, t)| wrong_table(t, &format!("{}#{}", child(key), i + 1), takes))
                        .collect();
                    format!("[{}]", items.join(", "))
                }
                toml::Value::Boolean(_) => "\"?\"".to_owned(),
                _ => "true".to_owned(),
            };
            entries.push(format!("{} = {shown}", quoted(key)));
        }
        for key in takes.get(path).into_iter().flatten() {
            if !table.contains_key(key) {
                entries.push(format!("{} = true", quoted(key)));
            }
        }
        if path.is_empty() {
            entries.join("\n")
        } else {
            format!("{{ {} }}", entries.join(", "))
        }
    }

    fn quoted(key: &str) -> String {
        serde_json::to_string(key).expect("a string serializes")
    }
}
