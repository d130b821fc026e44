//! The `[workflow.NAME]` tables: a time limit and steps (`[workflow.NAME.step.STEP]`),
//! each a queue of its own with `parents`, checked across the workflow for unknown
//! parents and cycles.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::de::DeValue;

use crate::diagnostic::Diagnostics;
use crate::queue::QueueConfig;
use crate::queue::queue_settings;
use crate::section::{Section, unknown_name};

/// Attempts a step gets unless it says: a workflow should not wait a day on a broken step.
pub const STEP_MAX_ATTEMPTS: u32 = 3;

/// One `[workflow.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowConfig {
    /// The table key.
    pub name: String,
    /// `timeout`: the whole workflow fails if it has not finished this long after it
    /// started (none by default).
    pub timeout: Option<Duration>,
    /// Its steps, keyed by name.
    pub steps: BTreeMap<String, StepConfig>,
}

/// One `[workflow.NAME.step.STEP]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    /// The table key.
    pub name: String,
    /// The step's queue settings: `handler`, `concurrency`, `max_attempts` (default 3),
    /// `backoff`, `timeout`, `retention`. Its `name` is the step's.
    pub queue: QueueConfig,
    /// `parents`: the steps that must finish first (none: it starts with the workflow).
    pub parents: Vec<String>,
    /// `optional` (default false): its failure lets its children run.
    pub optional: bool,
    /// `heartbeat_timeout`: a step whose worker stops heartbeating for this long runs
    /// again (default: the node's `lease_ttl`).
    pub heartbeat_timeout: Option<Duration>,
}

pub(crate) fn workflows(
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, WorkflowConfig> {
    let mut out = BTreeMap::new();
    for (name, table) in section.named_tables("workflow", "publish", d) {
        out.insert(name.to_owned(), workflow(name, &table, d));
    }
    out
}

fn workflow(name: &str, section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> WorkflowConfig {
    let mut wf = WorkflowConfig {
        name: name.to_owned(),
        timeout: section.duration("timeout", false, d),
        steps: BTreeMap::new(),
    };
    let steps = section.table("step", "tables such as [workflow.NAME.step.fetch]", d);
    section.finish(d);
    let Some(steps) = steps else {
        d.error(
            section.span(),
            format!(
                "[workflow.{name}] has no steps: expected at least one table such as [workflow.{name}.step.fetch]"
            ),
        );
        return wf;
    };
    let tables = steps.named_tables("step", "fetch", d);
    let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
    let mut parents_at: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (step_name, table) in &tables {
        let mut queue = QueueConfig::new(*step_name);
        queue.max_attempts = STEP_MAX_ATTEMPTS;
        let queue = queue_settings(queue, table, d);
        let parents = parents(step_name, table, &names, d);
        if let Some(span) = table.key_span("parents") {
            parents_at.insert((*step_name).to_owned(), span);
        }
        let optional = table.boolean("optional", d).unwrap_or(false);
        let heartbeat_timeout = table.duration("heartbeat_timeout", false, d);
        table.finish(d);
        wf.steps.insert(
            (*step_name).to_owned(),
            StepConfig {
                name: (*step_name).to_owned(),
                queue,
                parents,
                optional,
                heartbeat_timeout,
            },
        );
    }
    report_cycle(name, &wf.steps, &parents_at, d);
    wf
}

/// `parents = ["fetch", …]`: other steps of this workflow, each once.
fn parents(
    step: &str,
    section: &Section<'_, '_>,
    names: &[&str],
    d: &mut Diagnostics<'_>,
) -> Vec<String> {
    const EXPECTED: &str = "an array of step names such as [\"fetch\"]";
    let Some(value) = section.get("parents") else {
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        section.wrong_type("parents", value, EXPECTED, d);
        return Vec::new();
    };
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != step).collect();
    let mut out: Vec<String> = Vec::new();
    for item in items.iter() {
        let DeValue::String(target) = item.get_ref() else {
            section.wrong_type("parents", item, "a step name such as \"fetch\"", d);
            continue;
        };
        let target: &str = target;
        if target == step {
            d.error(
                item.span(),
                format!(
                    "step `{step}` lists itself in `parents` {}: a step cannot wait for itself",
                    section.place()
                ),
            );
        } else if !names.contains(&target) {
            let message = unknown_name(
                format!("unknown step `{target}` in `parents` {}", section.place()),
                target,
                &others,
                "expected the name of another step of this workflow",
            );
            d.error(item.span(), message);
        } else if out.iter().any(|t| t == target) {
            d.error(
                item.span(),
                format!(
                    "`{target}` appears twice in `parents` {}: expected each step once",
                    section.place()
                ),
            );
        } else {
            out.push(target.to_owned());
        }
    }
    out
}

/// Reports the steps that wait on each other in a circle (Kahn's algorithm: whatever
/// cannot be ordered sits on a cycle or behind one).
fn report_cycle(
    workflow: &str,
    steps: &BTreeMap<String, StepConfig>,
    parents_at: &BTreeMap<String, Range<usize>>,
    d: &mut Diagnostics<'_>,
) {
    let mut left: Vec<&StepConfig> = steps.values().collect();
    let mut done: Vec<&str> = Vec::new();
    loop {
        let before = left.len();
        left.retain(|s| {
            let ready = s.parents.iter().all(|p| done.contains(&p.as_str()));
            if ready {
                done.push(&s.name);
            }
            !ready
        });
        if left.is_empty() {
            return;
        }
        if left.len() == before {
            break;
        }
    }
    let names: Vec<&str> = left.iter().map(|s| s.name.as_str()).collect();
    let at = parents_at.get(names[0]).cloned().unwrap_or(0..0);
    d.error(
        at,
        format!(
            "the steps {} of [workflow.{workflow}] wait on each other in a cycle: expected the steps to form a graph without cycles (a DAG)",
            names.join(", ")
        ),
    );
}
