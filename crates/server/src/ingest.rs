//! The `[ingest.NAME]` tables, in the ingest crate's terms.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use berth_config::{Config, IngestStart, Pick};
use berth_gateway::auth::{Passwords, Refused};
use berth_ingest::{
    AllowRule, AuthSpec, Checker, IngestSpec, LoginRefusal, MqttSpec, Starter, UserLogin,
};
use berth_queue::{Clock, Queues};
use berth_store::{Lockout, NewJob, Start};
use berth_workflow::Workflows;

/// Berth users logging in to an MQTT listener, checked as the gateway checks them.
struct Users {
    passwords: Passwords,
    clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl UserLogin for Users {
    async fn check(&self, name: &str, password: &str) -> Result<Vec<String>, LoginRefusal> {
        match self.passwords.check(name, password, self.clock.now()).await {
            Ok(user) => Ok(user.roles),
            Err(Refused::Wrong { .. }) => Err(LoginRefusal::Wrong),
            Err(Refused::Locked(_)) => Err(LoginRefusal::Locked),
            Err(Refused::Busy | Refused::Unavailable) => Err(LoginRefusal::Unavailable),
        }
    }
}

fn pick(p: &Pick) -> berth_ingest::Pick {
    match p {
        Pick::Pointer(p) => berth_ingest::Pick::Pointer(p.clone()),
        Pick::Segment(n) => berth_ingest::Pick::Segment(*n),
    }
}

/// Every ingest of the config. Schemas are compiled and passwords read here, before
/// anything starts, so that a bad schema or a missing password stops the start.
pub fn ingest_specs(
    config: &Config,
    queues: &Queues,
    workflows: &Workflows,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Vec<IngestSpec>> {
    // The gateway's lockout, so that a user locked out of one door is out of both.
    let lockout = config.gateway.as_ref().map_or_else(
        || berth_gateway::LoginSpec::default().lockout,
        |g| Lockout {
            after: g.lockout_after,
            lasts: g.lockout_for,
        },
    );
    let users: Arc<dyn UserLogin> = Arc::new(Users {
        passwords: Passwords::new(queues.store().clone(), lockout),
        clock,
    });
    let mut specs = Vec::new();
    for i in config.ingests.values() {
        let starter: Option<Starter> = match &i.start {
            None => None,
            Some(IngestStart::Job { queue, kind }) => {
                let max_attempts = queues.spec(queue)?.max_attempts;
                let (queue, fixed, tag) =
                    (queue.clone(), kind.clone(), format!("ingest:{}", i.name));
                Some(Arc::new(move |kind: &str, args| {
                    let mut job = NewJob::new(
                        queue.clone(),
                        fixed.clone().unwrap_or_else(|| kind.to_owned()),
                        args,
                    );
                    job.max_attempts = max_attempts;
                    job.tags = vec![tag.clone()];
                    Ok(Start::Job(job))
                }))
            }
            Some(IngestStart::Workflow { name }) => {
                let (workflows, name, by) = (
                    workflows.clone(),
                    name.clone(),
                    format!("ingest:{}", i.name),
                );
                Some(Arc::new(move |_: &str, args| {
                    workflows
                        .instance(&name, args, &by)
                        .map(Start::Workflow)
                        .map_err(|e| format!("cannot start workflow `{name}`: {e}"))
                }))
            }
        };
        let checker = Checker::new(
            &i.name,
            i.schema.as_deref(),
            i.classify.as_ref().map(pick),
            i.device.as_ref().map(pick),
            usize::try_from(i.max_payload).unwrap_or(usize::MAX),
            starter,
            i.store,
        )?;
        let mqtt = match &i.mqtt {
            None => None,
            Some(m) => {
                let mut credentials = HashMap::new();
                for (user, var) in &i.credentials {
                    let password = std::env::var(var).map_err(|_| {
                        berth_ingest::IngestError::MissingPassword {
                            ingest: i.name.clone(),
                            user: user.clone(),
                            var: var.clone(),
                        }
                    })?;
                    credentials.insert(user.clone(), password);
                }
                let allow = i
                    .allow
                    .iter()
                    .map(|a| AllowRule {
                        user: a.user.clone(),
                        role: a.role.clone(),
                        publish: a.publish.clone(),
                        subscribe: a.subscribe.clone(),
                    })
                    .collect();
                Some((
                    MqttSpec {
                        listen: m.listen,
                        websocket: m.websocket,
                    },
                    AuthSpec {
                        anonymous: m.anonymous,
                        credentials,
                        users: Some(users.clone()),
                        allow,
                    },
                ))
            }
        };
        specs.push(IngestSpec {
            name: i.name.clone(),
            topics: i.topics.clone(),
            checker,
            retention: i.retention,
            mqtt,
        });
    }
    Ok(specs)
}

/// Starts the ingests, if the config has any.
pub async fn start(
    specs: Vec<IngestSpec>,
    queues: &Queues,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<berth_ingest::Ingests>>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let ingests = berth_ingest::Ingests::start(specs, queues.store().clone(), clock)
        .await
        .context("cannot start the ingests")?;
    Ok(Some(Arc::new(ingests)))
}

#[cfg(test)]
mod tests {
    /// The config (which depends on nothing) and the broker check topic filters each
    /// with their own copy of one rule; they must agree.
    #[test]
    fn config_and_broker_agree_on_topic_filters() {
        for f in [
            "#",
            "+",
            "a/b",
            "+/inbound",
            "a/#",
            "a/+/b",
            "/",
            "a//b",
            "",
            "a#",
            "a/#/b",
            "a+",
            "+a/b",
            "a/b#",
            "\0",
            "$SYS/#",
        ] {
            assert_eq!(
                berth_config::topic_filter_error(f).is_some(),
                berth_ingest::mqtt::filter_error(f).is_some(),
                "{f:?}"
            );
        }
    }
}
