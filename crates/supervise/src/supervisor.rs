//! The [`Supervisor`]: the services it runs, their instances' tasks, status and events.
//!
//! Services are kept in the order they were added, which is their start order; a full
//! [`Supervisor::stop`] walks them backwards. A service's instances wait for every
//! instance of the services it depends on to be ready before their first start, so
//! adding services in dependency order is all it takes for both orders to hold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::instance::{Control, Instance};
use crate::logs::{LogFile, log_path};
use crate::ports::{PortPool, SharedPorts};
use crate::watchdog::Watchdog;
use crate::{Error, Event, InstanceState, InstanceStatus, ServiceSpec};

/// How many events a slow subscriber may fall behind before it misses some. The channel
/// holds this many slots from the start (112 bytes each): 4,096 of them were 448 KiB of
/// an idle berth's memory. The event recorder drains the channel into its own buffer as
/// events come, so it falls this far behind only if its task is starved meanwhile.
const EVENT_BACKLOG: usize = 1024;

/// Runs the instances of one or more services.
///
/// Dropping the supervisor SIGKILLs every process it still runs; call
/// [`stop`](Self::stop) first for a graceful end.
#[derive(Debug)]
pub struct Supervisor {
    // A std mutex: held only to read or change the list, never across an await.
    services: Mutex<Vec<Service>>,
    events: broadcast::Sender<Event>,
    // Started with the first service, so that a berth without services runs no
    // watchdog process.
    watchdog: Mutex<Option<Arc<Watchdog>>>,
}

#[derive(Debug)]
struct Service {
    spec: Arc<ServiceSpec>,
    instances: Vec<Handle>,
}

#[derive(Debug, Clone)]
struct Handle {
    status: watch::Receiver<InstanceStatus>,
    control: mpsc::UnboundedSender<Control>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no services; the watchdog process starts with the first one.
    pub fn new() -> Self {
        Self {
            services: Mutex::new(Vec::new()),
            events: broadcast::channel(EVENT_BACKLOG).0,
            watchdog: Mutex::new(None),
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Adds a service and starts its instances once the services it depends on are
    /// ready. Its log files are opened here, so that an unwritable log directory is an
    /// error now rather than lost output later.
    pub fn add(&self, spec: ServiceSpec) -> Result<(), Error> {
        if self.find(&spec.name, |_| ()).is_ok() {
            return Err(Error::DuplicateService(spec.name));
        }
        let dependencies = self.dependencies(&spec)?;
        let watchdog = self.watchdog()?;
        let spec = Arc::new(spec);
        let mut logs = Vec::new();
        for i in 0..spec.instances {
            let path = log_path(&spec.log_dir, &spec.name, i);
            logs.push(Arc::new(Mutex::new(LogFile::open(
                path,
                spec.log_max_bytes,
                spec.log_keep,
            )?)));
        }
        let ports: Option<SharedPorts> = spec.ports.map(PortPool::shared);
        let mut instances = Vec::new();
        for (i, log) in (0..spec.instances).zip(logs) {
            let instance = Instance::new(
                spec.clone(),
                i,
                self.events.clone(),
                log,
                watchdog.clone(),
                ports.clone(),
                dependencies.clone(),
            );
            let (control, rx) = mpsc::unbounded_channel();
            instances.push(Handle {
                status: instance.status.subscribe(),
                control,
            });
            tokio::spawn(instance.run(rx));
        }
        let mut services = self.services.lock().expect("services lock");
        if services.iter().any(|s| s.spec.name == spec.name) {
            // Lost a race with another add of the same name; dropping the handles ends
            // the tasks just spawned, and their processes with them.
            return Err(Error::DuplicateService(spec.name.clone()));
        }
        services.push(Service { spec, instances });
        Ok(())
    }

    /// The names of the services, in start order.
    pub fn services(&self) -> Vec<String> {
        let services = self.services.lock().expect("services lock");
        services.iter().map(|s| s.spec.name.clone()).collect()
    }

    /// The definition a service runs with.
    pub fn spec(&self, name: &str) -> Result<Arc<ServiceSpec>, Error> {
        self.find(name, |s| s.spec.clone())
    }

    /// A snapshot of every instance, services in start order.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let services = self.services.lock().expect("services lock");
        services
            .iter()
            .flat_map(|s| &s.instances)
            .map(|h| h.status.borrow().clone())
            .collect()
    }

    /// Starts the service's instances that are not running, clearing crash loops and
    /// backoff; a running instance is left alone.
    pub fn start(&self, name: &str) -> Result<(), Error> {
        for handle in self.handles(name)? {
            let _ = handle.control.send(Control::Start);
        }
        Ok(())
    }

    /// Sends `signal` to the process group of each running instance of the service.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<(), Error> {
        for handle in self.handles(name)? {
            let _ = handle.control.send(Control::Signal(signal));
        }
        Ok(())
    }

    /// Stops the service's instances, all at once: the stop signal to each group, the
    /// grace period, then SIGKILL. Returns when all are stopped.
    pub async fn stop_service(&self, name: &str) -> Result<(), Error> {
        let mut acks = Vec::new();
        for handle in self.handles(name)? {
            let (tx, rx) = oneshot::channel();
            if handle.control.send(Control::Stop(tx)).is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        Ok(())
    }

    /// Restarts the service one instance at a time, each new process ready before the
    /// next instance is touched (and, where a spare port or no port allows, before its
    /// own old process stops). A stopped or crash-looping instance is started. Stops at
    /// the first instance whose new process does not become ready.
    pub async fn restart(&self, name: &str) -> Result<(), Error> {
        let spec = self.spec(name)?;
        self.roll(name, spec).await
    }

    /// Runs the service with a changed definition: a rolling restart onto `spec` when
    /// its instances and ports are unchanged, else a stop of the old instances and a
    /// start of the new ones. If the rolling restart stops at an instance whose new
    /// process does not become ready, that instance and the service keep the old
    /// definition (instances replaced before it run the new one).
    pub async fn update(&self, spec: ServiceSpec) -> Result<(), Error> {
        let old = self.spec(&spec.name)?;
        if old.instances == spec.instances && old.ports == spec.ports {
            let name = spec.name.clone();
            let spec = Arc::new(spec);
            self.set_spec(&name, spec.clone());
            let rolled = self.roll(&name, spec).await;
            if rolled.is_err() {
                // The instance that failed kept the old definition; so does the service.
                self.set_spec(&name, old);
            }
            return rolled;
        }
        let position = self.remove(&spec.name).await?;
        self.add(spec)?;
        // Keep the start order: back where it was.
        let mut services = self.services.lock().expect("services lock");
        if let Some(service) = services.pop() {
            let at = position.min(services.len());
            services.insert(at, service);
        }
        Ok(())
    }

    fn set_spec(&self, name: &str, spec: Arc<ServiceSpec>) {
        let mut services = self.services.lock().expect("services lock");
        if let Some(s) = services.iter_mut().find(|s| s.spec.name == name) {
            s.spec = spec;
        }
    }

    /// Stops the service and forgets it; returns where it was in the start order.
    pub async fn remove(&self, name: &str) -> Result<usize, Error> {
        self.stop_service(name).await?;
        let mut services = self.services.lock().expect("services lock");
        let position = services
            .iter()
            .position(|s| s.spec.name == name)
            .ok_or_else(|| Error::UnknownService(name.to_string()))?;
        // Dropping the handles closes the control channels: the tasks end.
        services.remove(position);
        Ok(position)
    }

    /// Waits until every instance of the service is running and ready. Fails at once
    /// when one of them stops being started (exited under its policy, crash loop,
    /// stopped), or after `limit`.
    pub async fn wait_ready(&self, name: &str, limit: Duration) -> Result<(), Error> {
        let handles = self.handles(name)?;
        let all = async {
            for mut handle in handles {
                let status = handle
                    .status
                    .wait_for(|s| {
                        matches!(
                            s.state,
                            InstanceState::Running
                                | InstanceState::Exited
                                | InstanceState::CrashLoop
                                | InstanceState::Stopped
                        )
                    })
                    .await
                    .map(|s| s.clone());
                match status {
                    Ok(s) if s.state == InstanceState::Running => {}
                    Ok(s) => {
                        return Err(Error::NotReady {
                            service: name.to_string(),
                            why: format!(
                                "instance {} is {}{}",
                                s.instance,
                                s.state,
                                s.last_exit
                                    .map(|e| format!(" ({})", e.exit))
                                    .unwrap_or_default()
                            ),
                        });
                    }
                    Err(_) => return Err(Error::UnknownService(name.to_string())),
                }
            }
            Ok(())
        };
        match tokio::time::timeout(limit, all).await {
            Ok(result) => result,
            Err(_) => Err(Error::NotReady {
                service: name.to_string(),
                why: format!("not ready within {}", humantime::format_duration(limit)),
            }),
        }
    }

    /// Stops every service, the last added first.
    pub async fn stop(&self) {
        for name in self.services().into_iter().rev() {
            // A service removed meanwhile has nothing left to stop.
            let _ = self.stop_service(&name).await;
        }
    }

    async fn roll(&self, name: &str, spec: Arc<ServiceSpec>) -> Result<(), Error> {
        for (i, handle) in self.handles(name)?.into_iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            if handle
                .control
                .send(Control::Replace(spec.clone(), tx))
                .is_err()
            {
                return Err(Error::UnknownService(name.to_string()));
            }
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    return Err(Error::RestartFailed {
                        service: name.to_string(),
                        instance: i as u32,
                        why,
                    });
                }
                Err(_) => return Err(Error::UnknownService(name.to_string())),
            }
        }
        Ok(())
    }

    /// The status channels of every instance of the services `spec` depends on.
    fn dependencies(
        &self,
        spec: &ServiceSpec,
    ) -> Result<Vec<watch::Receiver<InstanceStatus>>, Error> {
        let mut out = Vec::new();
        for name in &spec.depends_on {
            let statuses = self
                .find(name, |s| {
                    s.instances
                        .iter()
                        .map(|h| h.status.clone())
                        .collect::<Vec<_>>()
                })
                .map_err(|_| Error::UnknownDependency {
                    service: spec.name.clone(),
                    dependency: name.clone(),
                })?;
            out.extend(statuses);
        }
        Ok(out)
    }

    fn watchdog(&self) -> Result<Arc<Watchdog>, Error> {
        let mut watchdog = self.watchdog.lock().expect("watchdog lock");
        match &*watchdog {
            Some(w) => Ok(w.clone()),
            None => {
                let w = Arc::new(Watchdog::start()?);
                *watchdog = Some(w.clone());
                Ok(w)
            }
        }
    }

    fn handles(&self, name: &str) -> Result<Vec<Handle>, Error> {
        self.find(name, |s| s.instances.clone())
    }

    fn find<T>(&self, name: &str, f: impl FnOnce(&Service) -> T) -> Result<T, Error> {
        let services = self.services.lock().expect("services lock");
        services
            .iter()
            .find(|s| s.spec.name == name)
            .map(f)
            .ok_or_else(|| Error::UnknownService(name.to_string()))
    }
}
