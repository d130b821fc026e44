//! The `[schedule.NAME]` tables: a cron expression in a time zone, what it starts (a
//! job, a command, or a workflow), and the overlap and catch-up policies.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_cron::Cron;
use serde_json::Value as Json;
use toml::de::DeValue;

use crate::diagnostic::Diagnostics;
use crate::queue::QueueConfig;
use crate::section::{Invalid, Section, Value, closest};
use crate::workflow::WorkflowConfig;

const TARGETS: &str = "exactly one of `job = { queue = \"default\", kind = \"cleanup\" }`, \
    `command = \"python3 manage.py cleanup\"` or `workflow = \"publish\"`";

/// One `[schedule.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleConfig {
    /// The table key.
    pub name: String,
    /// `cron`: 5 fields, 6 with seconds first, or a nickname such as `@hourly`.
    pub cron: Cron,
    /// `timezone` (default `"UTC"`): the IANA zone the expression is read in.
    pub timezone: String,
    /// What a run starts.
    pub target: ScheduleTarget,
    /// `overlap` (default `"skip"`).
    pub overlap: Overlap,
    /// `catch_up` (default `"once"`), with `catch_up_limit` (default 10) for `"all"`.
    pub catch_up: CatchUp,
    /// `jitter` (default none): each run starts up to this much after its planned time.
    pub jitter: Duration,
    /// `max_attempts`: attempts of the job (default: the queue's; 1 for a `command`).
    pub max_attempts: Option<u32>,
}

/// What a schedule's run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleTarget {
    /// `job = { queue, kind, args }`: a job on a configured queue.
    Job {
        /// The queue.
        queue: String,
        /// The job's kind.
        kind: String,
        /// Its args (default `{}`).
        args: Json,
    },
    /// `command = "…"`: a shell command, run as a job on the schedule's own queue
    /// (`schedule.NAME`, one at a time).
    Command {
        /// The command line.
        command: String,
    },
    /// `workflow = "NAME"` or `{ name, args }`: a workflow of this file.
    Workflow {
        /// Its name.
        name: String,
        /// Its input (default `{}`).
        args: Json,
    },
}

/// `overlap`: a run due while the previous one has not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// `"skip"`: skip it.
    #[default]
    Skip,
    /// `"allow"`: start it anyway.
    Allow,
    /// `"queue"`: start it once the previous one finished.
    Queue,
}

/// `catch_up`: planned times missed while berth was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// `"skip"`: none of them.
    Skip,
    /// `"once"`: one run for all of them.
    Once,
    /// `"all"`: each, at most the latest `catch_up_limit`.
    All(u32),
}

pub(crate) fn schedules(
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, ScheduleConfig> {
    let mut out = BTreeMap::new();
    for (name, table) in section.named_tables("schedule", "cleanup", d) {
        if let Some(s) = schedule(name, &table, queues, workflows, d) {
            out.insert(name.to_owned(), s);
        }
    }
    out
}

fn schedule(
    name: &str,
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<ScheduleConfig> {
    if section.get("cron").is_none() {
        d.error(
            section.span(),
            format!("missing `cron` in [schedule.{name}]: expected a line such as `cron = \"*/5 * * * *\"`"),
        );
    }
    let cron = section.string("cron", "cron expression", d, |text| {
        Cron::parse(text).map_err(|e| {
            Invalid::Message(format!(
                "{e}; expected 5 fields (minute hour day-of-month month day-of-week) such as \"*/5 * * * *\", 6 with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly"
            ))
        })
    });
    let timezone = section.time_zone(d);
    let target = target(name, section, queues, workflows, d);
    let overlap = section
        .string("overlap", "overlap policy", d, |v| match v {
            "skip" => Ok(Overlap::Skip),
            "allow" => Ok(Overlap::Allow),
            "queue" => Ok(Overlap::Queue),
            _ => Err(Invalid::Expected(
                "expected \"skip\", \"allow\" or \"queue\"".into(),
            )),
        })
        .unwrap_or_default();
    let catch_up = section
        .string("catch_up", "catch-up policy", d, |v| match v {
            "skip" => Ok(CatchUp::Skip),
            "once" => Ok(CatchUp::Once),
            "all" => Ok(CatchUp::All(0)),
            _ => Err(Invalid::Expected(
                "expected \"skip\", \"once\" or \"all\"".into(),
            )),
        })
        .unwrap_or(CatchUp::Once);
    let limit = section
        .integer("catch_up_limit", 1..=1000, d)
        .map_or(10, |n| n as u32);
    let catch_up = match catch_up {
        CatchUp::All(_) => CatchUp::All(limit),
        other => other,
    };
    let jitter = section
        .duration("jitter", true, d)
        .unwrap_or(Duration::ZERO);
    let max_attempts = section
        .integer("max_attempts", 1..=1000, d)
        .map(|n| n as u32);
    section.finish(d);
    let target = target?;
    Some(ScheduleConfig {
        name: name.to_owned(),
        cron: cron?,
        timezone,
        target,
        overlap,
        catch_up,
        jitter,
        max_attempts,
    })
}

fn target(
    name: &str,
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<ScheduleTarget> {
    let given: Vec<&str> = ["job", "command", "workflow"]
        .into_iter()
        .filter(|k| section.get(k).is_some())
        .collect();
    // Each one given is checked, even when there are several: every mistake at once.
    let mut targets: Vec<Option<ScheduleTarget>> = given
        .iter()
        .map(|kind| one_target(kind, name, section, queues, workflows, d))
        .collect();
    if given.len() != 1 {
        let what = if given.is_empty() {
            "nothing to start".to_owned()
        } else {
            format!("both {}", given.join(" and "))
        };
        d.error(
            section.span(),
            format!("[schedule.{name}] has {what}: expected {TARGETS}"),
        );
        return None;
    }
    targets.pop().flatten()
}

/// The target `kind` (`job`, `command` or `workflow`) of a schedule names.
fn one_target(
    kind: &str,
    name: &str,
    section: &Section<'_, '_>,
    queues: &BTreeMap<String, QueueConfig>,
    workflows: &BTreeMap<String, WorkflowConfig>,
    d: &mut Diagnostics<'_>,
) -> Option<ScheduleTarget> {
    match kind {
        "command" => section.string("command", "command", d, |c| {
            if c.trim().is_empty() {
                Err(Invalid::Expected(
                    "expected a shell command such as \"python3 manage.py cleanup\"".into(),
                ))
            } else {
                Ok(ScheduleTarget::Command {
                    command: c.to_owned(),
                })
            }
        }),
        "job" => {
            let job = section.table(
                "job",
                "a table such as { queue = \"default\", kind = \"cleanup\" }",
                d,
            )?;
            let queue = job.string("queue", "queue", d, |q| {
                if queues.contains_key(q) {
                    return Ok(q.to_owned());
                }
                let names: Vec<&str> = queues.keys().map(String::as_str).collect();
                Err(Invalid::Message(unknown(
                    "queue",
                    q,
                    &names,
                    "[queue.NAME]",
                )))
            });
            let kind = job.string("kind", "kind", d, |k| {
                if k.trim().is_empty() {
                    Err(Invalid::Expected(
                        "expected a kind such as \"cleanup\"".into(),
                    ))
                } else {
                    Ok(k.to_owned())
                }
            });
            for key in ["queue", "kind"] {
                if job.get(key).is_none() {
                    d.error(
                        job.span(),
                        format!(
                            "missing `{key}` in `job` of [schedule.{name}]: expected {TARGETS}"
                        ),
                    );
                }
            }
            let args = args(&job, d);
            job.finish(d);
            Some(ScheduleTarget::Job {
                queue: queue?,
                kind: kind?,
                args,
            })
        }
        _ => {
            let value = section.get("workflow")?;
            let check = |w: &str| {
                if workflows.contains_key(w) {
                    return Ok(w.to_owned());
                }
                let names: Vec<&str> = workflows.keys().map(String::as_str).collect();
                Err(Invalid::Message(unknown(
                    "workflow",
                    w,
                    &names,
                    "[workflow.NAME]",
                )))
            };
            match value.get_ref() {
                DeValue::Table(_) => {
                    let w =
                        section.table("workflow", "a table such as { name = \"publish\" }", d)?;
                    if w.get("name").is_none() {
                        d.error(w.span(), format!("missing `name` in `workflow` of [schedule.{name}]: expected {{ name = \"publish\", args = {{ … }} }}"));
                    }
                    let wname = w.string("name", "workflow", d, check);
                    let args = args(&w, d);
                    w.finish(d);
                    Some(ScheduleTarget::Workflow { name: wname?, args })
                }
                _ => section.string("workflow", "workflow", d, check).map(|w| {
                    ScheduleTarget::Workflow {
                        name: w,
                        args: Json::Object(Default::default()),
                    }
                }),
            }
        }
    }
}

fn unknown(what: &str, name: &str, known: &[&str], table: &str) -> String {
    let mut message = format!("unknown {what} `{name}`");
    if let Some(close) = closest(name, known) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    if known.is_empty() {
        message.push_str(&format!("; this file has no {what}s: add a {table} table"));
    } else {
        message.push_str(&format!("; expected one of: {}", known.join(", ")));
    }
    message
}

/// `args = { … }`: any TOML table, as JSON (default `{}`).
fn args(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Json {
    match section.get("args") {
        None => Json::Object(Default::default()),
        Some(v) if matches!(v.get_ref(), DeValue::Table(_)) => to_json(v),
        Some(v) => {
            section.wrong_type("args", v, "a table such as { days = 30 }", d);
            Json::Null
        }
    }
}

/// A TOML value as JSON; dates and times become their RFC 3339 text.
pub(crate) fn to_json(v: &Value<'_>) -> Json {
    match v.get_ref() {
        DeValue::String(s) => Json::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Json::from)
            .unwrap_or(Json::Null),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        DeValue::Boolean(b) => Json::Bool(*b),
        DeValue::Datetime(dt) => Json::String(dt.to_string()),
        DeValue::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        DeValue::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v)))
                .collect(),
        ),
    }
}
