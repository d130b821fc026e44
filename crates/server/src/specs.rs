//! The queue settings of a config, in the queue crate's terms.

use berth_config::{Config, Handler};
use berth_queue::{Backoff, HandlerSpec, QueueSpec, Retention};

/// One `QueueSpec` per `[queue.NAME]`.
pub fn queue_specs(config: &Config) -> Vec<QueueSpec> {
    config
        .queues
        .values()
        .map(|q| QueueSpec {
            name: q.name.clone(),
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
        })
        .collect()
}
