//! `GET /metrics`: what berth runs, in the Prometheus text format (version 0.0.4), for
//! the Prometheus and Grafana a team already has. Label sets are bounded: queues, states,
//! services, routes, budgets; never job ids.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_supervise::usage::ProcessTable;

use super::Shared;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Reads one counter of a queue's counts.
type CountOf = fn(&berth_queue::metrics::QueueCounts) -> u64;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(metrics))
}

/// The exposition being written: one `# HELP` and `# TYPE` per family, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

/// A label value, escaped as the text format wants (`\`, `"` and newlines).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

impl Exposition {
    /// Starts a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample of the family just started.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A histogram's samples: cumulative buckets, `+Inf`, sum and count.
    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        h: &berth_queue::metrics::Histogram,
    ) {
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            let le = number(le);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }
}

async fn metrics(state: Shared) -> ApiResult<Response> {
    let mut m = Exposition::default();
    let now = state.queues.now();
    m.family(
        "berth_build_info",
        "gauge",
        "Always 1; the labels say which berth and which app.",
    );
    m.sample(
        "berth_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("app", &state.app)],
        1.0,
    );
    m.family(
        "berth_uptime_seconds",
        "gauge",
        "Seconds since this berth started.",
    );
    m.sample(
        "berth_uptime_seconds",
        &[],
        state.started.elapsed().as_secs_f64(),
    );

    // Jobs: by queue and state, paused queues, the oldest waiting job.
    let stats = state.queues.stats().await?;
    m.family(
        "berth_jobs",
        "gauge",
        "Jobs in the store, by queue and state.",
    );
    for q in &stats {
        for (st, n) in &q.counts {
            m.sample(
                "berth_jobs",
                &[("queue", &q.name), ("state", st.as_str())],
                *n as f64,
            );
        }
    }
    m.family(
        "berth_queue_paused",
        "gauge",
        "1 while the queue is paused.",
    );
    for q in &stats {
        m.sample(
            "berth_queue_paused",
            &[("queue", &q.name)],
            f64::from(u8::from(q.paused)),
        );
    }
    m.family(
        "berth_queue_oldest_available_age_seconds",
        "gauge",
        "How long the oldest available job has waited (0 when none waits).",
    );
    for q in &stats {
        let age = q
            .oldest_available_at
            .map_or(0.0, |t| now.since(t).as_secs_f64());
        m.sample(
            "berth_queue_oldest_available_age_seconds",
            &[("queue", &q.name)],
            age,
        );
    }

    // What this process counted: pushes, attempts, discards, waits and run times.
    let counted = state.queues.metrics().snapshot();
    let counters: [(&str, &str, CountOf); 2] = [
        (
            "berth_jobs_enqueued_total",
            "Jobs pushed through this berth's API or CLI (not batch chunks, workflow steps or scheduled jobs), since it started.",
            |c| c.enqueued,
        ),
        (
            "berth_jobs_discarded_total",
            "Jobs discarded after their last attempt, as recorded by this berth, since it started.",
            |c| c.discarded,
        ),
    ];
    for (name, help, get) in counters {
        m.family(name, "counter", help);
        for (q, c) in &counted {
            m.sample(name, &[("queue", q)], get(c) as f64);
        }
    }
    m.family(
        "berth_job_attempts_total",
        "counter",
        "Attempts that ended, by outcome (completed, failed), recorded by this berth since it started.",
    );
    for (q, c) in &counted {
        m.sample(
            "berth_job_attempts_total",
            &[("queue", q), ("outcome", "completed")],
            c.completed as f64,
        );
        m.sample(
            "berth_job_attempts_total",
            &[("queue", q), ("outcome", "failed")],
            c.failed as f64,
        );
    }
    m.family(
        "berth_executor_busy_slots",
        "gauge",
        "Attempts running in this berth's executors now.",
    );
    for (q, c) in &counted {
        m.sample("berth_executor_busy_slots", &[("queue", q)], c.busy as f64);
    }
    m.family(
        "berth_job_wait_seconds",
        "histogram",
        "How long first attempts waited between their push and their start.",
    );
    for (q, c) in &counted {
        m.histogram("berth_job_wait_seconds", &[("queue", q)], &c.wait);
    }
    m.family(
        "berth_job_run_seconds",
        "histogram",
        "How long attempts ran in this berth's executors.",
    );
    for (q, c) in &counted {
        m.histogram("berth_job_run_seconds", &[("queue", q)], &c.run);
    }

    // Schedules: how late the last fire was, when the next is, what was skipped.
    let store = state.queues.store();
    let schedules = store.schedules().await?;
    m.family(
        "berth_schedule_lag_seconds",
        "gauge",
        "How late a schedule's last fire was after its planned time.",
    );
    for s in &schedules {
        if let (Some(planned), Some(fired)) = (s.last_planned_at, s.last_fired_at) {
            m.sample(
                "berth_schedule_lag_seconds",
                &[("schedule", &s.name)],
                fired.since(planned).as_secs_f64(),
            );
        }
    }
    m.family(
        "berth_schedule_next_run_timestamp_seconds",
        "gauge",
        "When a schedule fires next (Unix time).",
    );
    for s in &schedules {
        m.sample(
            "berth_schedule_next_run_timestamp_seconds",
            &[("schedule", &s.name)],
            s.next_at.0 as f64 / 1_000_000.0,
        );
    }
    m.family(
        "berth_schedule_skipped_total",
        "counter",
        "Planned times a schedule skipped (overlap, catch-up policy).",
    );
    for s in &schedules {
        m.sample(
            "berth_schedule_skipped_total",
            &[("schedule", &s.name)],
            s.skipped as f64,
        );
    }

    // Ingested messages and dead letters, per ingest.
    if let Some(ingests) = &state.ingests {
        m.family(
            "berth_messages",
            "gauge",
            "Messages in the store, per ingest; dead=\"true\" for dead letters.",
        );
        let totals = store.message_totals().await?;
        for name in ingests.names() {
            let t = totals.iter().find(|t| t.ingest == name);
            for (dead, n) in [
                ("false", t.map_or(0, |t| t.messages)),
                ("true", t.map_or(0, |t| t.dead)),
            ] {
                m.sample(
                    "berth_messages",
                    &[("ingest", &name), ("dead", dead)],
                    n as f64,
                );
            }
        }
        m.family(
            "berth_mqtt_connections",
            "gauge",
            "MQTT connections open now on an ingest's embedded broker.",
        );
        for name in ingests.names() {
            m.sample(
                "berth_mqtt_connections",
                &[("ingest", &name)],
                ingests.mqtt_connections(&name) as f64,
            );
        }
    }

    // The notification outbox: what waits to be sent, per channel.
    let outbox = store.notify_pending().await?;
    m.family(
        "berth_notify_outbox_pending",
        "gauge",
        "Notifications waiting to be sent (or retried), per channel.",
    );
    for (channel, n) in &outbox {
        m.sample(
            "berth_notify_outbox_pending",
            &[("channel", channel)],
            *n as f64,
        );
    }

    // Backups: when the last one was made and when one last failed, from the events every
    // backup records (the scheduled ones and `berth backup save`), on any node.
    for (kind, name, help) in [
        (
            "completed",
            "berth_backup_last_success_timestamp_seconds",
            "When the last backup was made (Unix time); 0 before the first.",
        ),
        (
            "failed",
            "berth_backup_last_failure_timestamp_seconds",
            "When a backup last failed (Unix time); 0 if none did.",
        ),
    ] {
        let last = store
            .events(berth_store::EventFilter {
                source: Some("backup".into()),
                kinds: vec![kind.into()],
                limit: 1,
                ..Default::default()
            })
            .await?;
        m.family(name, "gauge", help);
        m.sample(
            name,
            &[],
            last.first()
                .map_or(0.0, |e| e.event.at.0 as f64 / 1_000_000.0),
        );
    }

    // The nodes and the leader lease.
    let (nodes, leader) = (store.nodes().await?, store.leader().await?);
    m.family("berth_nodes", "gauge", "Nodes that share the store.");
    m.sample("berth_nodes", &[], nodes.len() as f64);
    m.family(
        "berth_leader_term",
        "gauge",
        "The leader lease's term: grows by one at every change of leader.",
    );
    m.sample("berth_leader_term", &[], leader.term as f64);
    m.family(
        "berth_leader",
        "gauge",
        "1 when this node holds an unexpired leader lease.",
    );
    let mine = leader.held_by(state.queues.node_name(), now);
    m.sample("berth_leader", &[], f64::from(u8::from(mine)));

    // Services: instances by state, restarts, and their process trees' CPU and memory.
    let status = state.services.status();
    let usage = tokio::task::spawn_blocking(move || {
        let procs = ProcessTable::read();
        status
            .into_iter()
            .map(|s| {
                let used = s.pid.and_then(|pid| procs.tree(pid));
                (s, used)
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the processes' usage: {e}")))?;
    let mut by_state: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    let mut per_service: BTreeMap<String, (u64, f64, u64)> = BTreeMap::new();
    for (s, used) in &usage {
        *by_state
            .entry((s.service.clone(), s.state.as_str()))
            .or_default() += 1;
        let e = per_service.entry(s.service.clone()).or_default();
        e.0 += u64::from(s.restarts);
        if let Some(u) = used {
            e.1 += u.cpu.as_secs_f64();
            e.2 += u.rss_bytes;
        }
    }
    m.family(
        "berth_service_instances",
        "gauge",
        "A service's instances, by state.",
    );
    for ((service, st), n) in &by_state {
        m.sample(
            "berth_service_instances",
            &[("service", service), ("state", st)],
            *n as f64,
        );
    }
    m.family(
        "berth_service_restarts_total",
        "counter",
        "Restarts of a service's instances since berth started.",
    );
    for (service, (restarts, _, _)) in &per_service {
        m.sample(
            "berth_service_restarts_total",
            &[("service", service)],
            *restarts as f64,
        );
    }
    m.family(
        "berth_service_cpu_seconds_total",
        "counter",
        "CPU time of a service's running instances (their whole process trees).",
    );
    for (service, (_, cpu, _)) in &per_service {
        m.sample(
            "berth_service_cpu_seconds_total",
            &[("service", service)],
            *cpu,
        );
    }
    m.family(
        "berth_service_resident_memory_bytes",
        "gauge",
        "Resident memory of a service's running instances (their whole process trees).",
    );
    for (service, (_, _, rss)) in &per_service {
        m.sample(
            "berth_service_resident_memory_bytes",
            &[("service", service)],
            *rss as f64,
        );
    }

    // The gateway: requests by route and status class, and the budgets.
    if let Some(g) = &state.gateway {
        let routes = g.stats();
        m.family(
            "berth_gateway_requests_total",
            "counter",
            "Requests the gateway answered, by route and status class.",
        );
        for r in &routes {
            for (code, n) in [
                ("2xx", r.status_2xx),
                ("3xx", r.status_3xx),
                ("4xx", r.status_4xx),
                ("5xx", r.status_5xx),
            ] {
                m.sample(
                    "berth_gateway_requests_total",
                    &[("route", &r.route), ("code", code)],
                    n as f64,
                );
            }
        }
        m.family(
            "berth_gateway_request_duration_seconds",
            "histogram",
            "Time to a route's response head (buckets 1 ms to 60 s).",
        );
        for r in &routes {
            let name = "berth_gateway_request_duration_seconds";
            for (le, n) in &r.latency {
                let le = number(*le);
                m.sample(
                    &format!("{name}_bucket"),
                    &[("route", &r.route), ("le", &le)],
                    *n as f64,
                );
            }
            m.sample(
                &format!("{name}_bucket"),
                &[("route", &r.route), ("le", "+Inf")],
                r.requests as f64,
            );
            m.sample(
                &format!("{name}_sum"),
                &[("route", &r.route)],
                r.seconds_sum,
            );
            m.sample(
                &format!("{name}_count"),
                &[("route", &r.route)],
                r.requests as f64,
            );
        }
        let budgets = g.budgets();
        let micros = |v: i64| v as f64 / 1_000_000.0;
        m.family(
            "berth_budget_spent",
            "gauge",
            "What a budget has spent in its current period (as this node counts it).",
        );
        for b in &budgets {
            m.sample(
                "berth_budget_spent",
                &[("budget", &b.name)],
                micros(b.spent),
            );
        }
        m.family(
            "berth_budget_limit",
            "gauge",
            "A budget's limit per period.",
        );
        for b in &budgets {
            m.sample(
                "berth_budget_limit",
                &[("budget", &b.name)],
                micros(b.limit),
            );
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.text,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_and_escaped() {
        let mut m = Exposition::default();
        m.family("berth_x", "gauge", "An example.");
        m.sample("berth_x", &[("queue", "a\"b\\c\nd")], 2.5);
        m.sample("berth_x", &[], f64::INFINITY);
        assert_eq!(
            m.text,
            "# HELP berth_x An example.\n# TYPE berth_x gauge\nberth_x{queue=\"a\\\"b\\\\c\\nd\"} 2.5\nberth_x +Inf\n"
        );
    }
}
