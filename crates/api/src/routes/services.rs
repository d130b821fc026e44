//! Services: every instance with its state, pid, uptime, restarts, port, CPU and memory;
//! start, stop, rolling restart and signals; the recorded events; reloading the config.

use std::sync::Arc;
use std::time::SystemTime;

use aide::axum::ApiRouter;
use aide::axum::routing::{get, post};
use axum::Json;
use axum::extract::Query;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use berth_store::EventFilter;
use berth_supervise::usage::ProcessTable;
use berth_supervise::{InstanceStatus, Signal};

use super::{ApiPath, Shared};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::types::{
    EventList, EventsQuery, Instance, LogLine, LogsQuery, NamePath, ReloadReport, ServiceInstances,
    ServiceList, ServiceLogs, SignalBody, Signalled, time,
};

/// Signals `berth signal` may send, without their `SIG` prefix.
pub const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "WINCH", "ALRM",
];

pub(crate) fn routes() -> ApiRouter<Arc<AppState>> {
    ApiRouter::new()
        .api_route("/v1/services", get(list))
        .api_route("/v1/services/{name}/start", post(start))
        .api_route("/v1/services/{name}/stop", post(stop))
        .api_route("/v1/services/{name}/restart", post(restart))
        .api_route("/v1/services/{name}/signal", post(signal))
        .api_route("/v1/services/{name}/logs", get(logs))
        .api_route("/v1/events", get(events))
        .api_route("/v1/reload", post(reload))
}

async fn list(state: Shared) -> ApiResult<Json<ServiceList>> {
    let status = state.services.status();
    // Reading all of /proc (and each tree's smaps) is file work: off the async threads.
    let rows = tokio::task::spawn_blocking(move || {
        let procs = ProcessTable::read();
        status
            .iter()
            .map(|s| row(s, &procs))
            .collect::<Vec<Instance>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the processes' usage: {e}")))?;
    Ok(Json(ServiceList { services: rows }))
}

/// One instance as the API shows it; CPU and memory are its whole process tree's.
fn row(s: &InstanceStatus, procs: &ProcessTable) -> Instance {
    let now = SystemTime::now();
    let uptime = s
        .started_at
        .filter(|_| s.pid.is_some())
        .and_then(|t| now.duration_since(t).ok());
    let used = s.pid.and_then(|pid| procs.tree(pid));
    Instance {
        service: s.service.clone(),
        instance: s.instance,
        pid: s.pid,
        state: s.state.as_str().to_owned(),
        uptime_secs: uptime.map(|d| d.as_secs_f64()),
        restarts: s.restarts,
        port: s.port,
        // Average over the process's life so far.
        cpu_percent: used
            .zip(uptime)
            .map(|(u, up)| 100.0 * u.cpu.as_secs_f64() / up.as_secs_f64().max(0.001)),
        rss_bytes: used.map(|u| u.rss_bytes),
        pss_bytes: used.and_then(|u| u.pss_bytes),
        processes: used.map(|u| u.processes),
        last_exit: s.last_exit.as_ref().map(|e| e.exit.to_string()),
    }
}

/// The service's instances as they stand, for an action's answer.
async fn instances(state: &AppState, name: &str) -> ServiceInstances {
    let status: Vec<InstanceStatus> = state
        .services
        .status()
        .into_iter()
        .filter(|s| s.service == name)
        .collect();
    // Reading /proc is file work: off the async threads.
    let rows = tokio::task::spawn_blocking(move || {
        let procs = ProcessTable::read();
        status
            .iter()
            .map(|s| row(s, &procs))
            .collect::<Vec<Instance>>()
    })
    .await
    .unwrap_or_default();
    ServiceInstances {
        service: name.to_owned(),
        instances: rows,
    }
}

fn supervise_error(e: berth_supervise::Error, state: &AppState) -> ApiError {
    match e {
        berth_supervise::Error::UnknownService(_) => ApiError {
            status: StatusCode::NOT_FOUND,
            code: "unknown_service",
            message: format!("{e}; the services are: {}", names(state)),
        },
        berth_supervise::Error::RestartFailed { .. } | berth_supervise::Error::NotReady { .. } => {
            ApiError {
                status: StatusCode::CONFLICT,
                code: "not_ready",
                message: e.to_string(),
            }
        }
        _ => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: e.to_string(),
        },
    }
}

fn names(state: &AppState) -> String {
    let names = state.services.services();
    if names.is_empty() {
        "none (no [service.NAME] in the config)".into()
    } else {
        names.join(", ")
    }
}

async fn start(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ServiceInstances>> {
    state
        .services
        .start(&name)
        .map_err(|e| supervise_error(e, &state))?;
    Ok(Json(instances(&state, &name).await))
}

// Stops and restarts run in a task of their own: a client that hangs up does not cut a
// rolling restart short between two instances.

async fn stop(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ServiceInstances>> {
    let (sup, service) = (state.services.clone(), name.clone());
    let done = tokio::spawn(async move { sup.stop_service(&service).await }).await;
    finished(&state, &name, done).await
}

async fn restart(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ServiceInstances>> {
    let (sup, service) = (state.services.clone(), name.clone());
    let done = tokio::spawn(async move { sup.restart(&service).await }).await;
    finished(&state, &name, done).await
}

async fn finished(
    state: &AppState,
    name: &str,
    done: Result<Result<(), berth_supervise::Error>, tokio::task::JoinError>,
) -> ApiResult<Json<ServiceInstances>> {
    match done {
        Ok(result) => result.map_err(|e| supervise_error(e, state))?,
        Err(e) => {
            return Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "internal",
                message: format!("the action on `{name}` failed: {e}"),
            });
        }
    }
    Ok(Json(instances(state, name).await))
}

/// How much of the end of each instance's current log file is read for a tail.
const TAIL_BYTES: u64 = 1024 * 1024;

/// The last lines of a service's logs, all instances interleaved by time (each line
/// starts with its RFC 3339 stamp), from the end of each instance's current file.
async fn logs(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Json<ServiceLogs>> {
    let Query(q) = query?;
    let want = q.lines.unwrap_or(100).clamp(1, 10_000) as usize;
    let spec = state
        .services
        .spec(&name)
        .map_err(|e| supervise_error(e, &state))?;
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines: Vec<(u32, String)> = Vec::new();
        for i in 0..spec.instances {
            let path = berth_supervise::logs::log_path(&spec.log_dir, &spec.name, i);
            let text = tail(&path, TAIL_BYTES);
            let mut own: Vec<&str> = text.lines().collect();
            own.drain(..own.len().saturating_sub(want));
            lines.extend(own.into_iter().map(|l| (i, l.to_owned())));
        }
        // Stable: lines of one instance with the same stamp keep their order.
        lines.sort_by(|a, b| stamp(&a.1).cmp(stamp(&b.1)));
        lines.drain(..lines.len().saturating_sub(want));
        lines
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the logs: {e}")))?;
    let lines = lines
        .into_iter()
        .map(|(instance, line)| LogLine { instance, line })
        .collect();
    Ok(Json(ServiceLogs {
        service: name,
        lines,
    }))
}

fn stamp(line: &str) -> &str {
    line.split(' ').next().unwrap_or("")
}

/// The last `max` bytes of a file, from the first whole line in them (empty when the file
/// cannot be read: an instance that never started has no log yet).
fn tail(path: &std::path::Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(max);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(max).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        // The first line was cut: start after it.
        text.split_once('\n')
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    } else {
        text
    }
}

async fn signal(
    state: Shared,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    body: Result<Json<SignalBody>, JsonRejection>,
) -> ApiResult<Json<Signalled>> {
    let Json(body) = body?;
    let signal = parse_signal(&body.signal)?;
    state
        .services
        .signal(&name, signal)
        .map_err(|e| supervise_error(e, &state))?;
    Ok(Json(Signalled {
        service: name,
        signal: signal.as_str().to_owned(),
    }))
}

/// `"hup"`, `"SIGHUP"`, … → SIGHUP.
pub fn parse_signal(text: &str) -> ApiResult<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if !SIGNALS.contains(&bare) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: format!(
                "unknown signal {text:?}; expected one of {} (with or without SIG)",
                SIGNALS.join(", ")
            ),
        });
    }
    format!("SIG{bare}")
        .parse()
        .map_err(|_| ApiError::bad_request("invalid", format!("unknown signal {text:?}")))
}

async fn events(
    state: Shared,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Json<EventList>> {
    let Query(q) = query?;
    let since = match &q.since {
        None => None,
        Some(text) => Some(time("since", text)?),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid",
            format!("limit {limit} is out of range; expected 1 to 10000"),
        ));
    }
    let filter = EventFilter {
        source: q.source,
        subject: q.subject,
        kinds: q
            .kind
            .map(|k| {
                k.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        before_id: q.before,
        since,
        limit,
    };
    let events = state.queues.store().events(filter).await?;
    Ok(Json(EventList { events }))
}

async fn reload(state: Shared) -> ApiResult<Json<ReloadReport>> {
    let Some(reloader) = &state.reload else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_config",
            message: "this berth was started without a config file to reload".into(),
        });
    };
    match reloader.reload().await {
        Ok(report) => Ok(Json(report)),
        Err(message) => Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "config_invalid",
            message,
        }),
    }
}
