//! berth's ingest: device messages in, checked, stored.
//!
//! Each `[ingest.NAME]` runs:
//! - its sources: [`mqtt`], an embedded MQTT broker (its topics filtered by the ingest's
//!   `topics`); [`client`], a subscriber to an external broker; [`files`], a watched
//!   directory whose files each start a job; a webhook, whose requests the gateway hands
//!   to [`Ingests::webhook`];
//! - the [`pipeline`]: size, JSON, the JSON Schema, then the kind and the device;
//! - one [`writer`] task that stores messages and dead letters in batches, one
//!   transaction each, and starts their jobs or workflows in the same transaction;
//! - a pruner that forgets messages older than the ingest's retention.
//!
//! # Layout
//! - [`pipeline`]: the checks, and what a valid message starts;
//! - `writer`: the batching writer and its acknowledgements;
//! - [`mqtt`]: the broker (codec, connections, sessions, permissions, WebSocket, TLS;
//!   `persist.rs`: retained messages and persistent sessions kept in the store across
//!   restarts);
//! - [`client`]: the external broker's subscriber (acknowledges once stored);
//! - [`files`]: dropped files (processing, done, error, resumed after a crash);
//! - [`feed`]: the live stream of stored messages and dead letters;
//! - [`error`]: the ingest's error type, [`IngestError`].

pub mod client;
pub mod error;
pub mod feed;
pub mod files;
pub mod mqtt;
pub mod pipeline;
mod writer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_queue::Clock;
use berth_store::{Message, MessageStore, Store, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::BrokerSpec;
pub use error::IngestError;
pub use feed::Feed;
pub use files::DirSpec;
pub use mqtt::{AllowRule, AuthSpec, Device, LoginRefusal, MqttSpec, UserLogin};
pub use pipeline::{Checker, Pick, Starter};

/// Messages waiting for the writer before publishers are held back.
const BACKLOG: usize = 16_384;

/// How often old messages are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How often the schema file is checked for changes.
const SCHEMA_EVERY: Duration = Duration::from_secs(5);

/// One ingest, as configured.
pub struct IngestSpec {
    /// `[ingest.NAME]`.
    pub name: String,
    /// The topic filters it takes in.
    pub topics: Vec<String>,
    /// Its checks.
    pub checker: Checker,
    /// How long messages and dead letters are kept.
    pub retention: Duration,
    /// The embedded broker and who may use it.
    pub mqtt: Option<(MqttSpec, AuthSpec)>,
    /// An external broker to subscribe to.
    pub broker: Option<BrokerSpec>,
    /// A watched directory.
    pub dir: Option<DirSpec>,
    /// Whether the gateway hands it webhook requests.
    pub webhook: bool,
}

/// What the sources of one ingest share.
pub(crate) struct Core {
    pub name: String,
    topics: Vec<String>,
    pub checker: Checker,
    pub submit: mpsc::Sender<writer::Submit>,
    pub store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Whether the gateway hands it webhook requests.
    webhook: bool,
    /// MQTT connections open on its broker now.
    pub(crate) mqtt_connections: std::sync::atomic::AtomicUsize,
}

impl Core {
    /// Whether a message on `topic` is this ingest's.
    pub fn takes(&self, topic: &str) -> bool {
        self.topics.iter().any(|f| mqtt::matches(topic, f))
    }

    /// The current time, from the server's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Every running ingest of this node.
pub struct Ingests {
    cores: std::sync::RwLock<BTreeMap<String, Arc<Core>>>,
    feed: Feed,
    addrs: std::sync::RwLock<BTreeMap<String, Vec<SocketAddr>>>,
    /// Each ingest's tasks; the lock also keeps a reload and a stop from interleaving.
    tasks: tokio::sync::Mutex<BTreeMap<String, Tasks>>,
    /// Ingests being replaced by a reload: their webhooks answer "try again" meanwhile.
    replacing: std::sync::Mutex<std::collections::BTreeSet<String>>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
}

struct Tasks {
    /// Stops this ingest alone (a child of the whole set's).
    stop: CancellationToken,
    listeners: Option<mqtt::Listeners>,
    /// The external broker's subscriber and the directory watcher.
    sources: Vec<JoinHandle<()>>,
    close_writer: CancellationToken,
    writer: JoinHandle<()>,
    pruner: JoinHandle<()>,
}

impl Tasks {
    /// Closes the listeners and sources (connections acknowledge what was stored), then
    /// lets the writer store what it holds.
    async fn stop(self) {
        self.stop.cancel();
        if let Some(l) = self.listeners {
            l.stop().await;
        }
        for s in self.sources {
            let _ = s.await;
        }
        self.close_writer.cancel();
        let _ = self.writer.await;
        let _ = self.pruner.await;
    }
}

impl Ingests {
    /// Starts every ingest: binds its listeners (a taken port fails the start), its
    /// writer and its pruner.
    pub async fn start(
        specs: Vec<IngestSpec>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, IngestError> {
        for spec in &specs {
            if let Some(dir) = &spec.dir {
                files::prepare(&spec.name, dir)?;
            }
        }
        let this = Self {
            cores: std::sync::RwLock::new(BTreeMap::new()),
            feed: Feed::default(),
            addrs: std::sync::RwLock::new(BTreeMap::new()),
            tasks: tokio::sync::Mutex::new(BTreeMap::new()),
            replacing: std::sync::Mutex::new(Default::default()),
            store,
            clock,
            stop: CancellationToken::new(),
        };
        {
            let mut tasks = this.tasks.lock().await;
            for spec in specs {
                let name = spec.name.clone();
                match this.start_one(spec).await {
                    Ok(t) => {
                        tasks.insert(name, t);
                    }
                    Err(e) => {
                        for (_, t) in std::mem::take(&mut *tasks) {
                            t.stop().await;
                        }
                        return Err(e);
                    }
                }
            }
        }
        Ok(this)
    }

    /// Starts one ingest and lists it.
    async fn start_one(&self, spec: IngestSpec) -> Result<Tasks, IngestError> {
        let stop = self.stop.child_token();
        let close_writer = CancellationToken::new();
        let (submit, writer) = writer::spawn(
            self.store.clone(),
            self.feed.clone(),
            BACKLOG,
            close_writer.clone(),
        );
        let core = Arc::new(Core {
            name: spec.name.clone(),
            topics: spec.topics,
            checker: spec.checker,
            submit,
            store: self.store.clone(),
            clock: self.clock.clone(),
            webhook: spec.webhook,
            mqtt_connections: Default::default(),
        });
        let listeners = match spec.mqtt {
            Some((m, auth)) => {
                match mqtt::Listeners::start(core.clone(), &m, auth, stop.child_token()).await {
                    Ok(l) => Some(l),
                    Err(e) => {
                        stop.cancel();
                        close_writer.cancel();
                        let _ = writer.await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        self.addrs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                spec.name.clone(),
                listeners
                    .as_ref()
                    .map(|l| l.local_addrs().to_vec())
                    .unwrap_or_default(),
            );
        let mut sources = Vec::new();
        if let Some(broker) = spec.broker {
            let topics = core.topics.clone();
            sources.push(tokio::spawn(client::run(
                core.clone(),
                topics,
                broker,
                stop.child_token(),
            )));
        }
        if let Some(dir) = spec.dir {
            sources.push(tokio::spawn(files::run(
                core.clone(),
                dir,
                stop.child_token(),
            )));
        }
        let pruner = tokio::spawn(upkeep(core.clone(), spec.retention, stop.clone()));
        self.cores
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.name, core);
        Ok(Tasks {
            stop,
            listeners,
            sources,
            close_writer,
            writer,
            pruner,
        })
    }

    /// Replaces ingest `name` (a reload): the running one, if any, stops as at a stop
    /// of berth (its MQTT clients get what was stored acknowledged, then are
    /// disconnected and reconnect; its writer stores what it holds), then `spec`, if
    /// given, starts. Fails if the new one cannot start (a taken port, an unusable
    /// folder); then the ingest does not run.
    pub async fn replace(&self, name: &str, spec: Option<IngestSpec>) -> Result<(), IngestError> {
        if let Some(dir) = spec.as_ref().and_then(|s| s.dir.as_ref()) {
            files::prepare(name, dir)?;
        }
        let mut tasks = self.tasks.lock().await;
        if self.stop.is_cancelled() {
            return Err(IngestError::Stopping(name.to_owned()));
        }
        self.replacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned());
        let started = self.swap(&mut tasks, name, spec).await;
        self.replacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        started
    }

    async fn swap(
        &self,
        tasks: &mut BTreeMap<String, Tasks>,
        name: &str,
        spec: Option<IngestSpec>,
    ) -> Result<(), IngestError> {
        if let Some(old) = tasks.remove(name) {
            old.stop().await;
            self.cores
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            self.addrs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
        }
        if let Some(spec) = spec {
            let t = self.start_one(spec).await?;
            tasks.insert(name.to_owned(), t);
        }
        Ok(())
    }

    /// The names of the running ingests.
    pub fn names(&self) -> Vec<String> {
        self.cores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn core(&self, name: &str) -> Option<Arc<Core>> {
        self.cores
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The MQTT connections open now on ingest `name`'s broker.
    pub fn mqtt_connections(&self, name: &str) -> usize {
        self.core(name).map_or(0, |c| {
            c.mqtt_connections
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The bound MQTT addresses of ingest `name` (TCP, then WebSocket).
    pub fn mqtt_addrs(&self, name: &str) -> Vec<SocketAddr> {
        self.addrs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The live stream of stored messages and dead letters.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Takes a webhook's body for ingest `name`: checked like any message, then stored
    /// (or kept as a dead letter) before this returns.
    pub async fn webhook(
        &self,
        name: &str,
        topic: &str,
        body: Vec<u8>,
        idempotency_key: Option<&str>,
    ) -> Result<Hooked, IngestError> {
        let core = match self.core(name).filter(|c| c.webhook) {
            Some(core) => core,
            None if self
                .replacing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(name) =>
            {
                return Err(IngestError::Stopping(name.to_owned()));
            }
            None => return Err(IngestError::NoWebhook(name.to_owned())),
        };
        let message = core
            .checker
            .message_keyed(topic, body, core.now(), idempotency_key);
        let errors = message.errors.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        core.submit
            .send(writer::Submit {
                message,
                done: Some(writer::Done::Reply(tx)),
            })
            .await
            .map_err(|_| IngestError::Stopping(name.to_owned()))?;
        match rx.await {
            Ok((writer::Outcome::Stored, id)) => Ok(Hooked::Stored(id)),
            Ok((writer::Outcome::Duplicate, id)) => Ok(Hooked::Duplicate(id)),
            Ok((writer::Outcome::Dead(_), id)) => Ok(Hooked::Dead { id, errors }),
            Ok((writer::Outcome::Failed, _)) => Err(IngestError::NotStored(name.to_owned())),
            Err(_) => Err(IngestError::Stopping(name.to_owned())),
        }
    }

    /// Checks dead letter `id` again with its ingest's current schema: valid, it becomes
    /// a stored message and starts what the ingest starts; still invalid, its reasons are
    /// replaced.
    pub async fn replay(&self, id: i64) -> Result<Message, IngestError> {
        let message = self
            .store
            .message(id)
            .await?
            .ok_or(IngestError::NoMessage(id))?;
        let Some(core) = self.core(&message.ingest) else {
            return Err(IngestError::IngestGone {
                id,
                ingest: message.ingest,
            });
        };
        refresh(&core).await;
        let replay = core.checker.replay(&message.topic, &message.payload);
        Ok(self.store.message_replay(id, replay, core.now()).await?)
    }

    /// Closes the listeners, then lets the writers store what they hold.
    pub async fn stop(&self) {
        let mut tasks = self.tasks.lock().await;
        self.stop.cancel();
        for (_, t) in std::mem::take(&mut *tasks) {
            t.stop().await;
        }
        self.feed.close();
    }
}

/// What became of a webhook's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hooked {
    /// Valid and stored (the id is `None` when the ingest keeps no messages).
    Stored(Option<i64>),
    /// A resend of a message already taken (its key was seen within the window): the
    /// first message's id, if it was kept; nothing stored or started.
    Duplicate(Option<i64>),
    /// Refused and kept as a dead letter, for these reasons.
    Dead {
        /// The dead letter's id.
        id: Option<i64>,
        /// Every reason.
        errors: Vec<String>,
    },
}

/// Picks up a changed schema file every few seconds, and forgets messages older than
/// the retention every minute.
async fn upkeep(core: Arc<Core>, retention: Duration, stop: CancellationToken) {
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        refresh(&core).await;
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let before = core.now().minus(retention);
            prune(core.store.as_ref(), &core.name, before).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(SCHEMA_EVERY) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Compiles the schema again if its file changed, off the async threads.
async fn refresh(core: &Arc<Core>) {
    let core = core.clone();
    let _ = tokio::task::spawn_blocking(move || core.checker.refresh()).await;
}

async fn prune(store: &dyn MessageStore, ingest: &str, before: Timestamp) {
    loop {
        match store.prune_messages(ingest, before, 5_000).await {
            Ok(5_000) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(ingest = %ingest, error = %e, "cannot prune old messages");
                return;
            }
        }
    }
}
