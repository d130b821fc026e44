//! One instance's supervision loop: a task that owns the instance's process, waits for
//! its dependencies, checks readiness and liveness, reaps it, restarts it under the
//! service's policy and backoff, detects crash loops, replaces it for a rolling restart
//! and stops it on request.
//!
//! The task is the only writer of the instance's status; the supervisor talks to it
//! through [`Control`] messages. Its phases:
//!
//! ```text
//!   Pending ──dependencies ready──► Start ──spawned──► Starting ──ready──► Running
//!                                     ▲                  │ exit / not ready   │ exit / unhealthy
//!                                     │                  ▼                    ▼
//!                                     └── Waiting(backoff) ◄──(policy)── exited ──► Idle
//!   Running ──Replace──► new process started beside the old (or after it, without a
//!                        spare port), the old one stopped once the new one is ready
//!                        (the new one watched meanwhile: its exit shows at once)
//!   Starting ──Replace──► held: done once the process is ready, or started at once
//!                         with the new spec if the process fails to get ready
//!   any ──Stop──► signal, grace, SIGKILL ──► Idle (Stopped)
//!   Idle ──Start──► Start (crash-loop count and backoff reset)
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::logs::SharedLog;
use crate::ports::SharedPorts;
use crate::process::{self, Proc, signal_group};
use crate::watchdog::Watchdog;
use crate::{Event, EventKind, Exit, ExitInfo, InstanceState, InstanceStatus, ServiceSpec, probe};

/// How often a stopping group is looked at once its leader is gone.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// How long an exit waits for the last output to reach the log before it is reported.
const DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// The first wait between readiness checks; it doubles up to the probe's interval, so
/// that a fast starter is seen ready quickly without hammering a slow one.
const FIRST_READY_WAIT: Duration = Duration::from_millis(20);

/// Answers a request that completes once a process is ready (or has failed to be).
pub(crate) type Ack = oneshot::Sender<Result<(), String>>;

/// What the supervisor asks of an instance.
#[derive(Debug)]
pub(crate) enum Control {
    /// Start it if it is not running; clears a crash loop.
    Start,
    /// Stop it; the sender is answered once it is stopped.
    Stop(oneshot::Sender<()>),
    /// Send a signal to its process group, if it runs.
    Signal(Signal),
    /// Replace its process with one of this spec: the new process ready before the old
    /// one stops where a spare port (or no port) allows. Answered once the new one is
    /// ready, or with why it is not.
    Replace(Arc<ServiceSpec>, Ack),
}

enum Phase {
    Pending,
    Start { restart: bool, ack: Option<Ack> },
    Starting(Box<Proc>, Option<Ack>),
    Running(Box<Proc>),
    Waiting(tokio::time::Instant),
    Idle,
    Gone,
}

/// The state an instance's task works with.
pub(crate) struct Instance {
    pub spec: Arc<ServiceSpec>,
    pub index: u32,
    pub status: watch::Sender<InstanceStatus>,
    pub events: broadcast::Sender<Event>,
    pub log: SharedLog,
    pub watchdog: Arc<Watchdog>,
    pub ports: Option<SharedPorts>,
    /// The instances of the services this one depends on.
    pub dependencies: Vec<watch::Receiver<InstanceStatus>>,
    /// When the recent exits happened, for crash-loop detection.
    exits: VecDeque<Instant>,
    /// Restarts since the last stable run, for the backoff.
    streak: u32,
}

impl Instance {
    pub fn new(
        spec: Arc<ServiceSpec>,
        index: u32,
        events: broadcast::Sender<Event>,
        log: SharedLog,
        watchdog: Arc<Watchdog>,
        ports: Option<SharedPorts>,
        dependencies: Vec<watch::Receiver<InstanceStatus>>,
    ) -> Self {
        let status = InstanceStatus {
            service: spec.name.clone(),
            instance: index,
            pid: None,
            state: InstanceState::Waiting,
            started_at: None,
            restarts: 0,
            port: spec.port(index),
            last_exit: None,
        };
        Self {
            spec,
            index,
            status: watch::channel(status).0,
            events,
            log,
            watchdog,
            ports,
            dependencies,
            exits: VecDeque::new(),
            streak: 0,
        }
    }

    /// Runs the instance until the supervisor goes away (its control channel closes),
    /// starting it once its dependencies are ready.
    pub async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut phase = Phase::Pending;
        loop {
            phase = match phase {
                Phase::Pending => self.pending(&mut control).await,
                Phase::Start { restart, ack } => self.spawn(restart, ack).await,
                Phase::Starting(proc, ack) => self.starting(*proc, ack, &mut control).await,
                Phase::Running(proc) => self.running(*proc, &mut control).await,
                Phase::Waiting(deadline) => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => Phase::Start { restart: true, ack: None },
                    c = control.recv() => match c {
                        Some(Control::Stop(ack)) => {
                            self.stopped(None);
                            let _ = ack.send(());
                            Phase::Idle
                        }
                        c => self.at_rest(c, Phase::Waiting(deadline)),
                    },
                },
                Phase::Idle => {
                    let c = control.recv().await;
                    if let Some(Control::Stop(ack)) = c {
                        let _ = ack.send(());
                        Phase::Idle
                    } else {
                        self.at_rest(c, Phase::Idle)
                    }
                }
                Phase::Gone => return,
            }
        }
    }

    /// A control message while no process runs (backoff, idle): `Start` and `Replace`
    /// start one now, a signal has nobody to go to.
    fn at_rest(&mut self, control: Option<Control>, stay: Phase) -> Phase {
        match control {
            None => Phase::Gone,
            Some(Control::Start) => {
                self.exits.clear();
                self.streak = 0;
                Phase::Start {
                    restart: false,
                    ack: None,
                }
            }
            Some(Control::Replace(spec, ack)) => {
                self.spec = spec;
                self.exits.clear();
                self.streak = 0;
                Phase::Start {
                    restart: false,
                    ack: Some(ack),
                }
            }
            Some(Control::Signal(_) | Control::Stop(_)) => stay,
        }
    }

    /// Waits until every instance this one depends on is running, then starts.
    async fn pending(&mut self, control: &mut mpsc::UnboundedReceiver<Control>) -> Phase {
        self.update(|s| s.state = InstanceState::Waiting);
        let mut dependencies = std::mem::take(&mut self.dependencies);
        let all_ready = async {
            for dependency in &mut dependencies {
                // A dependency that went away (removed by a reload) no longer holds
                // anything up.
                let _ = dependency
                    .wait_for(|s| s.state == InstanceState::Running)
                    .await;
            }
        };
        tokio::pin!(all_ready);
        loop {
            tokio::select! {
                _ = &mut all_ready => return Phase::Start { restart: false, ack: None },
                c = control.recv() => match c {
                    None => return Phase::Gone,
                    Some(Control::Stop(ack)) => {
                        self.stopped(None);
                        let _ = ack.send(());
                        return Phase::Idle;
                    }
                    // An explicit start or restart does not wait any longer.
                    Some(c @ (Control::Start | Control::Replace(..))) => {
                        return self.at_rest(Some(c), Phase::Idle);
                    }
                    Some(Control::Signal(_)) => {}
                },
            }
        }
    }

    /// Spawns a process on the instance's port (or any free one of the range).
    async fn spawn(&mut self, restart: bool, ack: Option<Ack>) -> Phase {
        self.update(|s| {
            s.state = InstanceState::Starting;
            if restart {
                s.restarts += 1;
            }
        });
        let port = match self.take_port() {
            Ok(port) => port,
            Err(why) => {
                answer(ack, Err(why.clone()));
                return self.exited(Exit::SpawnFailed(why), Duration::ZERO);
            }
        };
        match self.launch(port).await {
            Ok(proc) => {
                self.update(|s| {
                    s.pid = Some(proc.pid);
                    s.port = port;
                    s.started_at = Some(proc.started_at);
                });
                Phase::Starting(Box::new(proc), ack)
            }
            Err(why) => {
                answer(ack, Err(why.clone()));
                self.exited(Exit::SpawnFailed(why), Duration::ZERO)
            }
        }
    }

    /// Spawns a process on `port` and lists it with the watchdog; the port goes back to
    /// the pool if that fails.
    async fn launch(&self, port: Option<u16>) -> Result<Proc, String> {
        match process::spawn(&self.spec, self.index, port, &self.log) {
            Ok(proc) => {
                self.watchdog.add(proc.pid).await;
                self.emit(EventKind::Started {
                    pid: proc.pid,
                    port,
                });
                Ok(proc)
            }
            Err(why) => {
                self.release_port(port);
                Err(why)
            }
        }
    }

    /// A spawned process until it is ready (→ `Running`), exits or misses its start
    /// timeout (→ as an exit), or is stopped.
    async fn starting(
        &mut self,
        mut proc: Proc,
        ack: Option<Ack>,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Phase {
        let pid = proc.pid;
        // A rolling restart that reaches this instance while it starts (a deploy right
        // after `berth up`) waits for it: the replacement follows once this process is
        // ready, or takes its place if it fails to be. A later restart supersedes it.
        let mut held: Option<(Arc<ServiceSpec>, Ack)> = None;
        let outcome = {
            let ready = self.await_ready(&mut proc);
            tokio::pin!(ready);
            loop {
                tokio::select! {
                    r = &mut ready => break Ok(r),
                    c = control.recv() => match c {
                        None => break Err(None),
                        Some(Control::Stop(stop)) => break Err(Some(stop)),
                        Some(Control::Signal(signal)) => signal_group(pid, signal),
                        Some(Control::Start) => {}
                        Some(Control::Replace(spec, other)) => {
                            if let Some((_, earlier)) = held.replace((spec, other)) {
                                let _ = earlier.send(Err(format!(
                                    "a later restart of instance {} replaced this one",
                                    self.index
                                )));
                            }
                        }
                    },
                }
            }
        };
        match outcome {
            Ok(Ok(())) => {
                self.became_ready(&proc);
                answer(ack, Ok(()));
                match held {
                    Some((spec, other)) => self.replace(proc, spec, other).await,
                    None => Phase::Running(Box::new(proc)),
                }
            }
            Ok(Err(exit)) => {
                let ran_for = proc.started.elapsed();
                self.finish(&mut proc).await;
                answer(ack, Err(format!("the new process {exit}")));
                match held {
                    // The restart asked for starts the new definition now.
                    Some((spec, other)) => {
                        self.record_exit(exit, ran_for);
                        self.at_rest(Some(Control::Replace(spec, other)), Phase::Idle)
                    }
                    None => self.exited(exit, ran_for),
                }
            }
            Err(None) => {
                answer(held.map(|(_, a)| a), Err("berth is stopping".into()));
                self.abandon(proc).await
            }
            Err(Some(stop)) => {
                answer(
                    held.map(|(_, a)| a),
                    Err("stopped before it was ready".into()),
                );
                answer(ack, Err("stopped before it was ready".into()));
                let exit = self.stop(&mut proc).await;
                self.stopped(Some(exit));
                let _ = stop.send(());
                Phase::Idle
            }
        }
    }

    /// A ready process: liveness checks, exits, and what the supervisor asks.
    async fn running(
        &mut self,
        mut proc: Proc,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Phase {
        let live = self.spec.live.clone();
        let mut next_check = live
            .as_ref()
            .map(|l| tokio::time::Instant::now() + l.probe.interval);
        let mut failures = 0u32;
        loop {
            tokio::select! {
                status = proc.child.wait() => {
                    let exit = exit_of(status);
                    let ran_for = proc.started.elapsed();
                    self.finish(&mut proc).await;
                    return self.exited(exit, ran_for);
                }
                _ = sleep_until_some(next_check) => {
                    let Some(live) = &live else { continue };
                    match probe::run(&live.probe, &self.spec, self.index, proc.port).await {
                        Ok(()) => failures = 0,
                        Err(reason) => {
                            failures += 1;
                            tracing::warn!(service = %self.spec.name, instance = self.index,
                                failures, %reason, "liveness check failed");
                            if failures >= live.failures {
                                self.emit(EventKind::Unhealthy { reason: reason.clone() });
                                let ran_for = proc.started.elapsed();
                                self.stop(&mut proc).await;
                                return self.exited(Exit::Unhealthy(format!(
                                    "{failures} liveness checks failed in a row, the last: {reason}"
                                )), ran_for);
                            }
                        }
                    }
                    next_check = Some(tokio::time::Instant::now() + live.probe.interval);
                }
                c = control.recv() => match c {
                    None => return self.abandon(proc).await,
                    Some(Control::Stop(ack)) => {
                        let exit = self.stop(&mut proc).await;
                        self.stopped(Some(exit));
                        let _ = ack.send(());
                        return Phase::Idle;
                    }
                    Some(Control::Start) => {}
                    Some(Control::Signal(signal)) => proc.signal_group(signal),
                    Some(Control::Replace(spec, ack)) => return self.replace(proc, spec, ack).await,
                },
            }
        }
    }

    /// The rolling step for this instance. With a spare port (or no ports), the new
    /// process starts beside the old one, which is stopped only once the new one is
    /// ready; if the new one fails, the old one keeps running. Without a spare, the old
    /// one stops first and the new one starts on its port.
    async fn replace(&mut self, mut old: Proc, spec: Arc<ServiceSpec>, ack: Ack) -> Phase {
        // Kept while the old process runs: if the new one fails, the old one stays, and so
        // does the definition it runs under.
        let previous = std::mem::replace(&mut self.spec, spec);
        let spare = match (&self.ports, self.spec.port(self.index)) {
            (Some(pool), Some(preferred)) => pool
                .lock()
                .expect("ports lock")
                .take_spare(preferred)
                .map(Some),
            _ => Some(None),
        };
        let Some(port) = spare else {
            let exit = self.stop(&mut old).await;
            self.stopped(Some(exit));
            return Phase::Start {
                restart: true,
                ack: Some(ack),
            };
        };
        let mut new = match self.launch(port).await {
            Ok(new) => new,
            Err(why) => {
                self.spec = previous;
                let _ = ack.send(Err(why));
                return Phase::Running(Box::new(old));
            }
        };
        let mut old_exit = None;
        let outcome = {
            let ready = self.await_ready(&mut new);
            tokio::pin!(ready);
            loop {
                tokio::select! {
                    r = &mut ready => break r,
                    status = old.child.wait(), if old_exit.is_none() => {
                        old_exit = Some(exit_of(status));
                    }
                }
            }
        };
        if let Some(exit) = &old_exit {
            self.emit(EventKind::Exited(exit.clone()));
        }
        match outcome {
            Ok(()) => {
                // The instance is the new process from now on: the gateway routes to its
                // port while the old one finishes its requests and stops. (Marking the
                // instance as stopping until then left it with no ready process: 503s
                // for the old one's whole stop.)
                self.update(|s| {
                    s.pid = Some(new.pid);
                    s.port = new.port;
                    s.started_at = Some(new.started_at);
                    s.restarts += 1;
                    s.state = InstanceState::Running;
                });
                self.emit(EventKind::Ready { pid: new.pid });
                // The new process is watched while the old one stops (for up to its
                // stop_grace): if it dies meanwhile, that shows at once, and the gateway
                // stops sending it requests.
                let mut new_exit = None;
                if old_exit.is_none() {
                    let stopping = self.terminate(&mut old);
                    tokio::pin!(stopping);
                    let exit = loop {
                        tokio::select! {
                            exit = &mut stopping => break exit,
                            status = new.child.wait(), if new_exit.is_none() => {
                                let exit = exit_of(status);
                                let ran_for = new.started.elapsed();
                                self.record_exit(exit.clone(), ran_for);
                                // Not routed to any more; the policy decides once the
                                // old process is gone.
                                self.update(|s| s.state = InstanceState::Backoff);
                                new_exit = Some((exit, ran_for));
                            }
                        }
                    };
                    self.emit(EventKind::Stopped { exit: Some(exit) });
                } else {
                    self.finish(&mut old).await;
                }
                if let Some((exit, ran_for)) = new_exit {
                    self.finish(&mut new).await;
                    let _ = ack.send(Err(format!(
                        "the new process {exit} while the old one was stopping"
                    )));
                    return self.after_exit(exit.success(), ran_for);
                }
                let _ = ack.send(Ok(()));
                Phase::Running(Box::new(new))
            }
            Err(exit) => {
                let ran_for = new.started.elapsed();
                self.finish(&mut new).await;
                match old_exit {
                    None => {
                        self.emit(EventKind::Exited(exit.clone()));
                        self.spec = previous;
                        let _ = ack.send(Err(format!(
                            "the new process {exit}; the old one keeps running"
                        )));
                        Phase::Running(Box::new(old))
                    }
                    Some(_) => {
                        let _ = ack.send(Err(format!("the new process {exit}")));
                        self.finish(&mut old).await;
                        self.exited(exit, ran_for)
                    }
                }
            }
        }
    }

    /// Checks readiness until it passes, the process exits, or the start timeout runs
    /// out (the group is then killed). Without a readiness check, ready at once.
    async fn await_ready(&self, proc: &mut Proc) -> Result<(), Exit> {
        let Some(probe) = &self.spec.ready else {
            return Ok(());
        };
        let timeout = self.spec.start_timeout;
        let deadline = tokio::time::Instant::from_std(proc.started) + timeout;
        let mut wait = FIRST_READY_WAIT.min(probe.interval);
        let mut last = "no check has run yet".to_string();
        loop {
            let at = (tokio::time::Instant::now() + wait).min(deadline);
            tokio::select! {
                status = proc.child.wait() => return Err(exit_of(status)),
                _ = tokio::time::sleep_until(at) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                proc.signal_group(Signal::SIGKILL);
                let _ = proc.child.wait().await;
                return Err(Exit::NotReady(format!(
                    "not ready within {} (last check: {last})",
                    humantime::format_duration(timeout)
                )));
            }
            match probe::run(probe, &self.spec, self.index, proc.port).await {
                Ok(()) => return Ok(()),
                Err(why) => last = why,
            }
            wait = (wait * 2).min(probe.interval);
        }
    }

    fn became_ready(&self, proc: &Proc) {
        self.update(|s| s.state = InstanceState::Running);
        self.emit(EventKind::Ready { pid: proc.pid });
    }

    /// Marks the instance stopping and [terminates](Self::terminate) its process.
    async fn stop(&self, proc: &mut Proc) -> Exit {
        self.update(|s| s.state = InstanceState::Stopping);
        self.terminate(proc).await
    }

    /// Sends the stop signal to the group and waits up to the grace period for the
    /// whole group to end, then SIGKILLs what is left. The leader alone is not enough:
    /// `sh -c "gunicorn …"` dies of SIGTERM at once while gunicorn finishes its requests,
    /// and killing the group then would cut that graceful stop short.
    async fn terminate(&self, proc: &mut Proc) -> Exit {
        let deadline = tokio::time::Instant::now() + self.spec.stop_grace;
        proc.signal_group(self.spec.stop_signal);
        let status = match tokio::time::timeout_at(deadline, proc.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                proc.signal_group(Signal::SIGKILL);
                proc.child.wait().await
            }
        };
        while tokio::time::Instant::now() < deadline && proc.group_alive() {
            tokio::time::sleep(GROUP_POLL).await;
        }
        self.finish(proc).await;
        exit_of(status)
    }

    /// After the leader is reaped: kills what it left in its group (which also closes
    /// the pipes such leftovers would hold open), forgets the group, drains the logs and
    /// frees the port.
    async fn finish(&self, proc: &mut Proc) {
        proc.signal_group(Signal::SIGKILL);
        self.watchdog.remove(proc.pid).await;
        proc.drain_logs(DRAIN_LIMIT).await;
        self.release_port(proc.port);
    }

    /// The supervisor is gone: kill at once.
    async fn abandon(&self, mut proc: Proc) -> Phase {
        proc.signal_group(Signal::SIGKILL);
        let _ = proc.child.wait().await;
        self.watchdog.remove(proc.pid).await;
        Phase::Gone
    }

    /// Records an exit and decides what follows: a restart after the backoff, or rest.
    fn exited(&mut self, exit: Exit, ran_for: Duration) -> Phase {
        let succeeded = exit.success();
        self.record_exit(exit, ran_for);
        self.after_exit(succeeded, ran_for)
    }

    /// What follows an exit already recorded: the restart policy, the crash-loop count
    /// and the backoff.
    fn after_exit(&mut self, succeeded: bool, ran_for: Duration) -> Phase {
        let now = Instant::now();
        if ran_for >= self.spec.backoff.reset_after {
            self.streak = 0;
        }
        self.exits.push_back(now);
        while let Some(&first) = self.exits.front() {
            if now.duration_since(first) > self.spec.crash_loop.window {
                self.exits.pop_front();
            } else {
                break;
            }
        }
        if !self.spec.restart.restarts(succeeded) {
            self.update(|s| s.state = InstanceState::Exited);
            return Phase::Idle;
        }
        if self.exits.len() > self.spec.crash_loop.max_exits as usize {
            self.update(|s| s.state = InstanceState::CrashLoop);
            self.emit(EventKind::CrashLoop);
            return Phase::Idle;
        }
        let after = self.spec.backoff.delay(self.streak);
        self.streak += 1;
        self.update(|s| s.state = InstanceState::Backoff);
        self.emit(EventKind::Restarting { after });
        if after.is_zero() {
            Phase::Start {
                restart: true,
                ack: None,
            }
        } else {
            Phase::Waiting(tokio::time::Instant::now() + after)
        }
    }

    /// Notes a process's exit in the status and as an event.
    fn record_exit(&self, exit: Exit, ran_for: Duration) {
        self.update(|s| {
            s.pid = None;
            s.last_exit = Some(ExitInfo {
                exit: exit.clone(),
                at: SystemTime::now(),
                ran_for,
            });
        });
        self.emit(EventKind::Exited(exit));
    }

    fn stopped(&mut self, exit: Option<Exit>) {
        self.update(|s| {
            s.pid = None;
            s.state = InstanceState::Stopped;
            if let Some(exit) = &exit {
                s.last_exit = Some(ExitInfo {
                    exit: exit.clone(),
                    at: SystemTime::now(),
                    ran_for: s
                        .started_at
                        .and_then(|t| t.elapsed().ok())
                        .unwrap_or_default(),
                });
            }
        });
        self.emit(EventKind::Stopped { exit });
    }

    /// The port for a new process: the instance's own if free, else any free one of the
    /// range. `Ok(None)` for a service without ports.
    fn take_port(&self) -> Result<Option<u16>, String> {
        let (Some(pool), Some(preferred)) = (&self.ports, self.spec.port(self.index)) else {
            return Ok(None);
        };
        let port = pool.lock().expect("ports lock").take(preferred);
        port.map(Some).ok_or_else(|| {
            let range = self.spec.ports.expect("a service with a pool has ports");
            format!(
                "every port from {} to {} is in use by this service's processes",
                range.first, range.last
            )
        })
    }

    fn release_port(&self, port: Option<u16>) {
        if let (Some(pool), Some(port)) = (&self.ports, port) {
            pool.lock().expect("ports lock").release(port);
        }
    }

    fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        self.status.send_modify(f);
    }

    fn emit(&self, kind: EventKind) {
        // No subscriber is fine: events are for whoever listens.
        let _ = self.events.send(Event {
            service: self.spec.name.clone(),
            instance: self.index,
            at: SystemTime::now(),
            kind,
        });
    }
}

/// Answers `ack`, if there is one waiting.
fn answer(ack: Option<Ack>, result: Result<(), String>) {
    if let Some(ack) = ack {
        let _ = ack.send(result);
    }
}

/// How a wait on a child ended, as an [`Exit`].
fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> Exit {
    match status {
        Ok(status) => Exit::from_status(status),
        Err(e) => Exit::SpawnFailed(format!("waiting for the process failed: {e}")),
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
