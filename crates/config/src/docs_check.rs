//! `docs/config.md` is checked against the keys the validators take: each table's
//! section must name every key its `*_KEYS` list accepts, so that a key added to a
//! table and left out of the docs fails the build.

#[cfg(test)]
mod tests {
    use crate::{
        backup, budget, deploy, gateway, ingest, notify, queue, schedule, service, validate,
        workflow,
    };

    /// Each section of docs/config.md (its `## ` heading's start) and the key lists of
    /// the tables it documents.
    fn sections() -> Vec<(&'static str, Vec<&'static [&'static str]>)> {
        vec![
            ("## `[app]`", vec![validate::APP_KEYS]),
            ("## `[api]`", vec![validate::API_KEYS]),
            (
                "## `[queue.NAME]`",
                vec![
                    queue::QUEUE_KEYS,
                    queue::HANDLER_KEYS,
                    queue::BACKOFF_KEYS,
                    queue::RETENTION_KEYS,
                ],
            ),
            (
                "## `[service.NAME]`",
                vec![
                    service::SERVICE_KEYS,
                    service::SERVICE_BACKOFF_KEYS,
                    service::CRASH_LOOP_KEYS,
                    service::READY_KEYS,
                    service::LIVE_KEYS,
                ],
            ),
            (
                "## `[schedule.NAME]`",
                vec![
                    schedule::SCHEDULE_KEYS,
                    schedule::JOB_KEYS,
                    schedule::WORKFLOW_KEYS,
                ],
            ),
            (
                "## `[workflow.NAME]`",
                vec![workflow::WORKFLOW_KEYS, workflow::STEP_EXTRA_KEYS],
            ),
            (
                "## `[gateway]`",
                vec![
                    gateway::GATEWAY_KEYS,
                    gateway::ROUTE_KEYS,
                    gateway::RATE_LIMIT_KEYS,
                    gateway::TLS_FILE_KEYS,
                    gateway::ACME_KEYS,
                ],
            ),
            ("## `[budget.NAME]`", vec![budget::BUDGET_KEYS]),
            (
                "## `[ingest.NAME]`",
                vec![
                    ingest::INGEST_KEYS,
                    ingest::MQTT_KEYS,
                    ingest::TLS_KEYS,
                    ingest::DIR_KEYS,
                    ingest::WEBHOOK_KEYS,
                    ingest::BROKER_KEYS,
                    ingest::JOB_KEYS,
                    ingest::ALLOW_KEYS,
                    ingest::CREDENTIAL_KEYS,
                ],
            ),
            (
                "## `[backup]`",
                vec![
                    backup::BACKUP_KEYS,
                    backup::KEEP_KEYS,
                    backup::DATABASE_KEYS,
                ],
            ),
            ("## `[deploy]`", vec![deploy::DEPLOY_KEYS]),
            ("## `[notify.NAME]`", vec![notify::NOTIFY_KEYS]),
        ]
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
    fn docs_config_md_names_every_key_of_every_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
        let doc = std::fs::read_to_string(path).expect("docs/config.md");
        let mut missing = Vec::new();
        for (heading, lists) in sections() {
            let Some(start) = doc.find(heading) else {
                missing.push(format!("no section `{heading}`"));
                continue;
            };
            let rest = &doc[start + heading.len()..];
            let text = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
            for key in lists.into_iter().flatten() {
                if !names(text, key) {
                    missing.push(format!("`{key}` in {heading}"));
                }
            }
        }
        for top in validate::TOP_KEYS {
            if !doc.contains(&format!("## `[{top}")) {
                missing.push(format!("a section for [{top}]"));
            }
        }
        assert!(
            missing.is_empty(),
            "docs/config.md leaves out:\n  {}",
            missing.join("\n  ")
        );
    }
}
