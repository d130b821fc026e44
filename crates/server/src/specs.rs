//! The queue, workflow and schedule settings of a config, in the domain crates' terms.
//!
//! Besides one queue per `[queue.NAME]`, berth runs a queue per workflow step
//! (`workflow.NAME.STEP`, with the step's handler and heartbeat timeout) and per schedule
//! with a `command` (`schedule.NAME`, one run at a time).

use berth_config::{CatchUp, Config, Handler, Overlap, QueueConfig, ScheduleTarget};
use berth_queue::{Backoff, HandlerSpec, QueueSpec, Retention};
use berth_schedule::{ScheduleDef, StartDef};
use berth_workflow::{StepDef, WorkflowDef, step_queue};

/// The queue of a schedule's `command`.
pub fn command_queue(schedule: &str) -> String {
    format!("schedule.{schedule}")
}

fn spec(name: String, q: &QueueConfig) -> QueueSpec {
    QueueSpec {
        name,
        concurrency: q.concurrency,
        handler: match &q.handler {
            Handler::Run { command } => HandlerSpec::Run {
                command: command.clone(),
            },
            Handler::Post { url } => HandlerSpec::Post { url: url.clone() },
            Handler::Pull => HandlerSpec::Pull,
        },
        max_attempts: q.max_attempts,
        backoff: Backoff {
            initial: q.backoff.initial,
            max: q.backoff.max,
            factor: q.backoff.factor,
            jitter: q.backoff.jitter,
        },
        timeout: q.timeout,
        retention: Retention {
            completed: q.retention.completed,
            discarded: q.retention.discarded,
            cancelled: q.retention.cancelled,
        },
        lease_ttl: None,
    }
}

/// Every queue berth runs: the configured ones, the workflow steps', the schedule
/// commands'.
pub fn queue_specs(config: &Config) -> Vec<QueueSpec> {
    let mut specs: Vec<QueueSpec> = config
        .queues
        .values()
        .map(|q| spec(q.name.clone(), q))
        .collect();
    for w in config.workflows.values() {
        for s in w.steps.values() {
            let mut step = spec(step_queue(&w.name, &s.name), &s.queue);
            step.lease_ttl = s.heartbeat_timeout;
            specs.push(step);
        }
    }
    for s in config.schedules.values() {
        if let ScheduleTarget::Command { command } = &s.target {
            let mut q = QueueConfig::new(command_queue(&s.name));
            q.concurrency = 1;
            q.max_attempts = s.max_attempts.unwrap_or(1);
            q.handler = Handler::Run {
                command: command.clone(),
            };
            specs.push(spec(command_queue(&s.name), &q));
        }
    }
    specs
}

/// One `WorkflowDef` per `[workflow.NAME]`.
pub fn workflow_defs(config: &Config) -> Vec<WorkflowDef> {
    config
        .workflows
        .values()
        .map(|w| WorkflowDef {
            name: w.name.clone(),
            timeout: w.timeout,
            steps: w
                .steps
                .values()
                .map(|s| StepDef {
                    name: s.name.clone(),
                    parents: s.parents.clone(),
                    optional: s.optional,
                    max_attempts: s.queue.max_attempts,
                })
                .collect(),
        })
        .collect()
}

/// One `ScheduleDef` per `[schedule.NAME]`.
pub fn schedule_defs(config: &Config) -> Result<Vec<ScheduleDef>, String> {
    config
        .schedules
        .values()
        .map(|s| {
            let tz = berth_cron::time_zone(&s.timezone).map_err(|e| e.to_string())?;
            Ok(ScheduleDef {
                name: s.name.clone(),
                cron: s.cron.clone(),
                tz,
                tz_name: s.timezone.clone(),
                start: match &s.target {
                    ScheduleTarget::Job { queue, kind, args } => StartDef::Job {
                        queue: queue.clone(),
                        kind: kind.clone(),
                        args: args.clone(),
                        max_attempts: s.max_attempts,
                    },
                    ScheduleTarget::Command { .. } => StartDef::Job {
                        queue: command_queue(&s.name),
                        kind: s.name.clone(),
                        args: serde_json::json!({}),
                        max_attempts: None,
                    },
                    ScheduleTarget::Workflow { name, args } => StartDef::Workflow {
                        name: name.clone(),
                        args: args.clone(),
                    },
                },
                overlap: match s.overlap {
                    Overlap::Skip => berth_schedule::Overlap::Skip,
                    Overlap::Allow => berth_schedule::Overlap::Allow,
                    Overlap::Queue => berth_schedule::Overlap::Queue,
                },
                catch_up: match s.catch_up {
                    CatchUp::Skip => berth_schedule::CatchUp::Skip,
                    CatchUp::Once => berth_schedule::CatchUp::Once,
                    CatchUp::All(limit) => berth_schedule::CatchUp::All { limit },
                },
                jitter: s.jitter,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The queue and supervise crates have constructors with defaults of their own (for
    /// their tests and `berth bench`); they must be the config's, which docs/config.md
    /// documents.
    #[test]
    fn the_domain_crates_defaults_are_the_configs() {
        assert_eq!(
            spec("q".into(), &QueueConfig::new("q")),
            QueueSpec::new("q", HandlerSpec::Pull)
        );
        let config = berth_config::parse(
            "[app]\nname = \"x\"\n\n[service.web]\ncommand = \"run\"\n",
            Path::new("/srv/x/berth.toml"),
        )
        .unwrap();
        let from_config = crate::services::service_specs(&config, None)
            .unwrap()
            .remove(0);
        let own =
            berth_supervise::ServiceSpec::new("web", "run", crate::services::log_dir(&config));
        assert_eq!(from_config, own);
        let gateway = berth_config::parse(
            "[app]\nname = \"x\"\n\n[gateway]\nlisten = \"127.0.0.1:1\"\n\n\
             [[gateway.route]]\nredirect = \"https://example.org/\"\n",
            Path::new("/srv/x/berth.toml"),
        )
        .unwrap()
        .gateway
        .unwrap();
        let limits = berth_gateway::ConnectionLimits::default();
        assert_eq!(
            (
                gateway.max_connections as usize,
                gateway.max_connections_per_address as usize
            ),
            (limits.total, limits.per_address)
        );
    }
}
