//! One instance's supervision loop: a task that owns the instance's process, reaps it,
//! restarts it under the service's policy and backoff, detects crash loops and stops it
//! on request.
//!
//! The task is the only writer of the instance's status; the supervisor talks to it
//! through [`Control`] messages. Its phases:
//!
//! ```text
//!   Start ──spawned──► Running ──exit──► (policy) ─┬─► Waiting(backoff) ──► Start
//!     │                   │                        ├─► Idle (Exited / CrashLoop)
//!     └─spawn failed──► (as an exit)               │
//!                         └──Stop──► signal, grace, SIGKILL ──► Idle (Stopped)
//!   Idle ──Start──► Start (crash-loop count and backoff reset)
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::logs::SharedLog;
use crate::process::{self, Proc};
use crate::watchdog::Watchdog;
use crate::{Event, EventKind, Exit, ExitInfo, InstanceState, InstanceStatus, ServiceSpec};

/// How long an exit waits for the last output to reach the log before it is reported.
const DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// What the supervisor asks of an instance.
#[derive(Debug)]
pub(crate) enum Control {
    /// Start it if it is not running; clears a crash loop.
    Start,
    /// Stop it; the sender is answered once it is stopped.
    Stop(oneshot::Sender<()>),
    /// Send a signal to its process group, if it runs.
    Signal(Signal),
}

enum Phase {
    Start { restart: bool },
    Running(Box<Proc>),
    Waiting(tokio::time::Instant),
    Idle,
    Gone,
}

/// The state an instance's task works with.
pub(crate) struct Instance {
    pub spec: Arc<ServiceSpec>,
    pub index: u32,
    pub status: Arc<Mutex<InstanceStatus>>,
    pub events: broadcast::Sender<Event>,
    pub log: SharedLog,
    pub watchdog: Arc<Watchdog>,
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
    ) -> Self {
        let status = InstanceStatus {
            service: spec.name.clone(),
            instance: index,
            pid: None,
            state: InstanceState::Stopped,
            started_at: None,
            restarts: 0,
            port: spec.port(index),
            last_exit: None,
        };
        Self {
            spec,
            index,
            status: Arc::new(Mutex::new(status)),
            events,
            log,
            watchdog,
            exits: VecDeque::new(),
            streak: 0,
        }
    }

    /// Runs the instance until the supervisor goes away (its control channel closes),
    /// starting it first.
    pub async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let mut phase = Phase::Start { restart: false };
        loop {
            phase = match phase {
                Phase::Start { restart } => self.spawn(restart).await,
                Phase::Running(proc) => self.running(*proc, &mut control).await,
                Phase::Waiting(deadline) => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => Phase::Start { restart: true },
                    c = control.recv() => match c {
                        None => Phase::Gone,
                        Some(Control::Start) => Phase::Start { restart: true },
                        Some(Control::Stop(ack)) => {
                            self.stopped(None);
                            let _ = ack.send(());
                            Phase::Idle
                        }
                        Some(Control::Signal(_)) => Phase::Waiting(deadline),
                    },
                },
                Phase::Idle => match control.recv().await {
                    None => Phase::Gone,
                    Some(Control::Start) => {
                        self.exits.clear();
                        self.streak = 0;
                        Phase::Start { restart: false }
                    }
                    Some(Control::Stop(ack)) => {
                        let _ = ack.send(());
                        Phase::Idle
                    }
                    Some(Control::Signal(_)) => Phase::Idle,
                },
                Phase::Gone => return,
            }
        }
    }

    async fn spawn(&mut self, restart: bool) -> Phase {
        self.update(|s| {
            s.state = InstanceState::Starting;
            if restart {
                s.restarts += 1;
            }
        });
        match process::spawn(&self.spec, self.index, &self.log) {
            Ok(proc) => {
                self.watchdog.add(proc.pid).await;
                self.update(|s| {
                    s.pid = Some(proc.pid);
                    s.state = InstanceState::Running;
                    s.started_at = Some(proc.started_at);
                });
                self.emit(EventKind::Started { pid: proc.pid });
                Phase::Running(Box::new(proc))
            }
            Err(why) => self.exited(Exit::SpawnFailed(why), Duration::ZERO),
        }
    }

    async fn running(
        &mut self,
        mut proc: Proc,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> Phase {
        loop {
            tokio::select! {
                status = proc.child.wait() => {
                    let exit = match status {
                        Ok(status) => Exit::from_status(status),
                        Err(e) => Exit::SpawnFailed(format!("waiting for the process failed: {e}")),
                    };
                    // The leader is gone: kill what it left in its group, which also
                    // closes the pipes such leftovers would hold open.
                    proc.signal_group(Signal::SIGKILL);
                    self.watchdog.remove(proc.pid).await;
                    let ran_for = proc.started.elapsed();
                    proc.drain_logs(DRAIN_LIMIT).await;
                    return self.exited(exit, ran_for);
                }
                c = control.recv() => match c {
                    None => {
                        proc.signal_group(Signal::SIGKILL);
                        let _ = proc.child.wait().await;
                        self.watchdog.remove(proc.pid).await;
                        return Phase::Gone;
                    }
                    Some(Control::Stop(ack)) => {
                        let exit = self.stop(&mut proc).await;
                        self.stopped(Some(exit));
                        let _ = ack.send(());
                        return Phase::Idle;
                    }
                    Some(Control::Start) => {}
                    Some(Control::Signal(signal)) => proc.signal_group(signal),
                },
            }
        }
    }

    /// Sends the stop signal to the group, waits up to the grace period for the leader,
    /// then SIGKILLs the group (always: leftovers of a leader that did exit die too).
    async fn stop(&mut self, proc: &mut Proc) -> Exit {
        proc.signal_group(self.spec.stop_signal);
        let status = match tokio::time::timeout(self.spec.stop_grace, proc.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                proc.signal_group(Signal::SIGKILL);
                proc.child.wait().await
            }
        };
        proc.signal_group(Signal::SIGKILL);
        self.watchdog.remove(proc.pid).await;
        proc.drain_logs(DRAIN_LIMIT).await;
        match status {
            Ok(status) => Exit::from_status(status),
            Err(e) => Exit::SpawnFailed(format!("waiting for the process failed: {e}")),
        }
    }

    /// Records an exit and decides what follows: a restart after the backoff, or rest.
    fn exited(&mut self, exit: Exit, ran_for: Duration) -> Phase {
        let now = Instant::now();
        let succeeded = exit.success();
        self.update(|s| {
            s.pid = None;
            s.last_exit = Some(ExitInfo {
                exit: exit.clone(),
                at: SystemTime::now(),
                ran_for,
            });
        });
        self.emit(EventKind::Exited(exit));
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
            Phase::Start { restart: true }
        } else {
            Phase::Waiting(tokio::time::Instant::now() + after)
        }
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

    fn update(&self, f: impl FnOnce(&mut InstanceStatus)) {
        f(&mut self.status.lock().expect("status lock"));
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
