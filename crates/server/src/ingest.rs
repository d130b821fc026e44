//! The `[ingest.NAME]` tables, in the ingest crate's terms.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use berth_config::{Config, IngestStart, Pick};
use berth_gateway::auth::{Passwords, Refused};
use berth_gateway::{HookReply, Hooks};
use berth_ingest::{
    AllowRule, AuthSpec, BrokerSpec, Checker, DirSpec, Hooked, IngestError, IngestSpec, Ingests,
    LoginRefusal, MqttSpec, Starter, UserLogin,
};
use berth_queue::{Clock, Queues};
use berth_store::{Lockout, NewJob, Start};
use berth_workflow::Workflows;
use serde_json::json;

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
    ingest_specs_of(config, queues, workflows, clock, |_| true)
}

/// The ingests of the config that `only` takes (a reload builds the changed ones).
pub fn ingest_specs_of(
    config: &Config,
    queues: &Queues,
    workflows: &Workflows,
    clock: Arc<dyn Clock>,
    only: impl Fn(&str) -> bool,
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
    for i in config.ingests.values().filter(|i| only(&i.name)) {
        let starter: Option<Starter> = match &i.start {
            None => None,
            Some(IngestStart::Job { queue, kind }) => {
                let (queue, fixed, tag) =
                    (queue.clone(), kind.clone(), format!("ingest:{}", i.name));
                let queues = queues.clone();
                Some(Arc::new(move |kind: &str, args| {
                    // The queue's settings as they stand (a reload may change them).
                    let max_attempts = queues
                        .spec(&queue)
                        .map_err(|e| format!("cannot start a job: {e}"))?
                        .max_attempts;
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
        let dir = match (&i.dir, &starter) {
            (Some(d), Some(job)) => Some(DirSpec {
                watch: d.watch.clone(),
                processing: d.processing.clone(),
                done: d.done.clone(),
                error: d.error.clone(),
                patterns: d.patterns.clone(),
                settle: d.settle,
                job: job.clone(),
            }),
            _ => None,
        };
        let checker = Checker::new(
            &i.name,
            i.schema.as_deref(),
            i.classify.as_ref().map(pick),
            i.device.as_ref().map(pick),
            usize::try_from(i.max_payload).unwrap_or(usize::MAX),
            starter,
            i.store,
        )?
        .with_key(i.key.clone(), i.key_window);
        let broker = match &i.broker {
            None => None,
            Some(b) => {
                let login = match (&b.user, &b.password_env) {
                    (Some(user), Some(var)) => Some((user.clone(), password(&i.name, user, var)?)),
                    (Some(user), None) => Some((user.clone(), String::new())),
                    _ => None,
                };
                Some(BrokerSpec {
                    host: b.host.clone(),
                    port: b.port,
                    login,
                    client_id: b.client_id.clone(),
                    qos: b.qos,
                })
            }
        };
        let mqtt = match &i.mqtt {
            None => None,
            Some(m) => {
                let mut credentials = HashMap::new();
                for (user, c) in &i.credentials {
                    let device = berth_ingest::Device {
                        password: password(&i.name, user, &c.password_env)?,
                        roles: c.roles.clone(),
                    };
                    credentials.insert(user.clone(), device);
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
                let tls = match &m.tls {
                    None => None,
                    Some(t) => Some(
                        berth_gateway::tls::server_config(&t.cert, &t.key, &[]).with_context(
                            || format!("[ingest.{}] mqtt: cannot use the TLS files", i.name),
                        )?,
                    ),
                };
                Some((
                    MqttSpec {
                        listen: m.listen,
                        websocket: m.websocket,
                        tls,
                        max_per_address: m.max_connections_per_address as usize,
                    },
                    AuthSpec {
                        anonymous: m.anonymous,
                        credentials,
                        users: Some(users.clone()),
                        allow,
                        lockout,
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
            broker,
            dir,
            webhook: i.webhook.is_some(),
        });
    }
    Ok(specs)
}

/// The password of `user`, from the environment variable `var`.
fn password(ingest: &str, user: &str, var: &str) -> Result<String, IngestError> {
    std::env::var(var).map_err(|_| IngestError::MissingPassword {
        ingest: ingest.to_owned(),
        user: user.to_owned(),
        var: var.to_owned(),
    })
}

/// Starts the ingests, if the config has any.
pub async fn start(
    specs: Vec<IngestSpec>,
    queues: &Queues,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<berth_ingest::Ingests>> {
    // Even without ingests: a reload may add some.
    let ingests = berth_ingest::Ingests::start(specs, queues.store().clone(), clock)
        .await
        .context("cannot start the ingests")?;
    Ok(Arc::new(ingests))
}

/// The gateway's webhook routes, answered by the ingests once they run (the gateway
/// starts first).
///
/// It also answers the gateway's read-only `api` routes from the API's router, once
/// [`Webhooks::serve_api`] handed it over.
#[derive(Default)]
pub struct Webhooks {
    ingests: std::sync::OnceLock<Arc<Ingests>>,
    api: std::sync::OnceLock<axum::Router>,
    dashboard: std::sync::OnceLock<berth_api::dashboard::Dashboard>,
}

impl Webhooks {
    /// From now on, requests go to `ingests`.
    pub fn serve(&self, ingests: Arc<Ingests>) {
        let _ = self.ingests.set(ingests);
    }

    /// From now on, `api` routes are answered by `router` (berth's API, in process).
    pub fn serve_api(&self, router: axum::Router) {
        let _ = self.api.set(router);
    }

    /// From now on, `dashboard` routes are answered by `dashboard`.
    pub fn serve_dashboard(&self, dashboard: berth_api::dashboard::Dashboard) {
        let _ = self.dashboard.set(dashboard);
    }
}

/// The largest API answer an `api` route passes on.
const MAX_API_ANSWER: usize = 32 * 1024 * 1024;

impl Hooks for Webhooks {
    fn take(
        &self,
        ingest: &str,
        topic: &str,
        body: bytes::Bytes,
        idempotency_key: Option<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HookReply> + Send + '_>> {
        let (ingest, topic) = (ingest.to_owned(), topic.to_owned());
        Box::pin(async move {
            let reply = |status, body| HookReply { status, body };
            let Some(ingests) = self.ingests.get() else {
                return reply(
                    503,
                    json!({"error": "unavailable", "message": "the ingest is starting; try again"}),
                );
            };
            match ingests
                .webhook(&ingest, &topic, body.to_vec(), idempotency_key.as_deref())
                .await
            {
                Ok(Hooked::Stored(id)) => reply(202, json!({ "stored": true, "id": id })),
                Ok(Hooked::Duplicate(id)) => {
                    reply(200, json!({ "stored": false, "duplicate": true, "id": id }))
                }
                Ok(Hooked::Dead { id, errors }) => reply(
                    422,
                    json!({
                        "error": "invalid_message",
                        "message": "the message was refused and kept as a dead letter",
                        "id": id,
                        "errors": errors,
                    }),
                ),
                Err(e @ (IngestError::Stopping(_) | IngestError::NotStored(_))) => reply(
                    503,
                    json!({"error": "unavailable", "message": e.to_string()}),
                ),
                Err(e) => reply(404, json!({"error": "not_found", "message": e.to_string()})),
            }
        })
    }

    fn read_api(
        &self,
        scopes: Vec<String>,
        path_and_query: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HookReply> + Send + '_>> {
        Box::pin(async move {
            let refuse = |status: u16, code: &str, message: String| HookReply {
                status,
                body: json!({"error": {"code": code, "message": message}}),
            };
            let path = path_and_query.split('?').next().unwrap_or_default();
            if path.trim_end_matches('/') == "/metrics" {
                return refuse(
                    403,
                    "forbidden",
                    "/metrics is not served on `api` routes; scrape it from the API".into(),
                );
            }
            if path.trim_end_matches('/') == "/v1/messages/stream" {
                return refuse(
                    403,
                    "forbidden",
                    "the live stream is not served on `api` routes; page with GET /v1/messages"
                        .into(),
                );
            }
            let exposed = berth_api::scopes::parse_all(&scopes);
            if let Err(why) = berth_api::scopes::read_only(&exposed, "GET", path) {
                return refuse(
                    403,
                    "forbidden",
                    format!(
                        "this route exposes {} only; GET {path}: {why}",
                        scopes.join(", ")
                    ),
                );
            }
            let Some(router) = self.api.get() else {
                return refuse(503, "unavailable", "berth is starting; try again".into());
            };
            let request = match axum::http::Request::get(path_and_query.as_str())
                .body(axum::body::Body::empty())
            {
                Ok(r) => r,
                Err(_) => return refuse(400, "invalid", "the path is not valid".into()),
            };
            let mut service = router.clone();
            let Ok(response) = tower_service::Service::call(&mut service, request).await;
            let status = response.status().as_u16();
            match axum::body::to_bytes(response.into_body(), MAX_API_ANSWER).await {
                Ok(bytes) => HookReply {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
                },
                Err(_) => refuse(
                    502,
                    "too_large",
                    "the answer is too large for an `api` route; ask for fewer (limit)".into(),
                ),
            }
        })
    }

    fn dashboard(
        &self,
        request: axum::http::Request<bytes::Bytes>,
        viewer: berth_gateway::DashboardViewer,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = axum::http::Response<berth_gateway::HookBody>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            match self.dashboard.get() {
                Some(d) => d.serve(request, viewer).await,
                None => berth_api::dashboard::starting(),
            }
        })
    }
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
