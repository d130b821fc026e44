//! The [`Supervisor`]: the services it runs, their instances' tasks, status and events.
//!
//! Services are kept in the order they were added, which is their start order; a full
//! [`Supervisor::stop`] walks them backwards. Once `depends_on` exists, adding services
//! in dependency order (and waiting for readiness between them) is all it takes for the
//! stop to run in reverse dependency order.

use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::instance::{Control, Instance};
use crate::logs::{LogFile, log_path};
use crate::watchdog::Watchdog;
use crate::{Error, Event, InstanceStatus, ServiceSpec};

/// How many events a slow subscriber may fall behind before it misses some.
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
    watchdog: Arc<Watchdog>,
}

#[derive(Debug)]
struct Service {
    spec: Arc<ServiceSpec>,
    instances: Vec<Handle>,
}

#[derive(Debug)]
struct Handle {
    status: Arc<Mutex<InstanceStatus>>,
    control: mpsc::UnboundedSender<Control>,
}

impl Supervisor {
    /// A supervisor with no services. Must be called within a tokio runtime; starts the
    /// watchdog process that cleans up after a killed berth.
    pub fn new() -> Result<Self, Error> {
        Ok(Self {
            services: Mutex::new(Vec::new()),
            events: broadcast::channel(EVENT_BACKLOG).0,
            watchdog: Arc::new(Watchdog::start()?),
        })
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Adds a service and starts its instances. Its log files are opened here, so that an
    /// unwritable log directory is an error now rather than lost output later.
    pub fn add(&self, spec: ServiceSpec) -> Result<(), Error> {
        if self.find(&spec.name, |_| ()).is_ok() {
            return Err(Error::DuplicateService(spec.name));
        }
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
        let mut instances = Vec::new();
        for (i, log) in (0..spec.instances).zip(logs) {
            let instance = Instance::new(
                spec.clone(),
                i,
                self.events.clone(),
                log,
                self.watchdog.clone(),
            );
            let (control, rx) = mpsc::unbounded_channel();
            instances.push(Handle {
                status: instance.status.clone(),
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

    /// A snapshot of every instance, services in start order.
    pub fn status(&self) -> Vec<InstanceStatus> {
        let services = self.services.lock().expect("services lock");
        services
            .iter()
            .flat_map(|s| &s.instances)
            .map(|h| h.status.lock().expect("status lock").clone())
            .collect()
    }

    /// Starts the service's instances that are not running, clearing crash loops and
    /// backoff; a running instance is left alone.
    pub fn start(&self, name: &str) -> Result<(), Error> {
        for control in self.controls(name)? {
            let _ = control.send(Control::Start);
        }
        Ok(())
    }

    /// Sends `signal` to the process group of each running instance of the service.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<(), Error> {
        for control in self.controls(name)? {
            let _ = control.send(Control::Signal(signal));
        }
        Ok(())
    }

    /// Stops the service's instances, all at once: the stop signal to each group, the
    /// grace period, then SIGKILL. Returns when all are stopped.
    pub async fn stop_service(&self, name: &str) -> Result<(), Error> {
        let mut acks = Vec::new();
        for control in self.controls(name)? {
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Stop(tx)).is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
        Ok(())
    }

    /// Stops every service, the last added first.
    pub async fn stop(&self) {
        for name in self.services().into_iter().rev() {
            // The service cannot have disappeared: services are never removed.
            let _ = self.stop_service(&name).await;
        }
    }

    fn controls(&self, name: &str) -> Result<Vec<mpsc::UnboundedSender<Control>>, Error> {
        self.find(name, |s| {
            s.instances.iter().map(|h| h.control.clone()).collect()
        })
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
