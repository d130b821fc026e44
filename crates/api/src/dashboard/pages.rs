//! The dashboard's pages, one function each, rendered from the API's answers, read as
//! the types in [`crate::types`].

use std::fmt::Write as _;
use std::time::Duration;

use crate::types::WorkflowStep;
use axum::http::StatusCode;

use super::html::{
    Column, button, cell, cut, esc, fields, json, link, pre_json, segment as seg, sparkline, table,
};
use super::{Dashboard, Failure, Page};
use crate::types::{
    BackupInfo, BackupList, Batch, BatchList, BatchReport, BudgetList, BudgetStatus, Delivery,
    EventList, EventRecord, GatewayStatus, Instance, Job, JobPage, JobState, Maintenance,
    MessagePage, MessageView, NodeStatus, NotificationList, QueueList, QueueView, ReleaseList,
    ReleaseView, RouteCounts, ScheduleInfo, ScheduleList, ServiceList, ServiceLogs, Status,
    Workflow, WorkflowList,
};

/// The navigation: path and label.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/jobs", "Jobs"),
    ("/queues", "Queues"),
    ("/schedules", "Schedules"),
    ("/batches", "Batches"),
    ("/workflows", "Workflows"),
    ("/services", "Services"),
    ("/gateway", "Gateway"),
    ("/messages", "Messages"),
    ("/notifications", "Outbox"),
    ("/events", "Events"),
    ("/releases", "Releases"),
    ("/backups", "Backups"),
];

/// Whether the page at `view` (path and query) is rendered again live. A jobs search in
/// the arguments or by push time may read many jobs: it is shown once, not every two
/// seconds for each open tab.
pub(crate) fn is_live(view: &str) -> bool {
    let (path, query) = view.split_once('?').unwrap_or((view, ""));
    let searching = params(query)
        .iter()
        .any(|(k, v)| matches!(k.as_str(), "args" | "since" | "until") && !v.is_empty());
    !(path.trim_end_matches('/') == "/jobs" && searching)
}

/// The query string's pairs, decoded.
pub(crate) fn params(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query).unwrap_or_default()
}

/// Renders the page at `path` (relative to the dashboard) with `query`.
pub(crate) async fn render(d: &Dashboard, path: &str, query: &str) -> Result<Page, Failure> {
    let q = params(query);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => overview(d).await,
        ["jobs"] => jobs(d, &q).await,
        ["jobs", id] => job(d, id).await,
        ["queues"] => queues(d).await,
        ["schedules"] => schedules(d).await,
        ["batches"] => batches(d).await,
        ["batches", id] => batch(d, id).await,
        ["workflows"] => workflows(d).await,
        ["workflows", id] => workflow(d, id).await,
        ["services"] => services(d).await,
        ["services", name] => service(d, name).await,
        ["gateway"] => gateway(d).await,
        ["messages"] => messages(d, &q).await,
        ["notifications"] => notifications(d).await,
        ["events"] => events(d, &q).await,
        ["releases"] => releases(d).await,
        ["backups"] => backups(d).await,
        _ => Err(Failure {
            status: StatusCode::NOT_FOUND,
            message: format!("no dashboard page {path}; the pages are in the navigation above"),
        }),
    }
}

fn page(title: impl Into<String>, main: String) -> Page {
    Page {
        title: title.into(),
        top: String::new(),
        main,
    }
}

fn section(title: &str, body: &str) -> String {
    format!("<section><h2>{}</h2>{body}</section>", esc(title))
}

/// No buttons on a table's rows.
fn no_actions<T>(_: &T) -> String {
    String::new()
}

/// The columns named, in that order, out of `columns`.
fn only<'a, T>(mut columns: Vec<Column<'a, T>>, names: &[&str]) -> Vec<Column<'a, T>> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(i) = columns.iter().position(|c| c.name() == *name) {
            out.push(columns.remove(i));
        }
    }
    out
}

/// `columns` but those named.
fn except<'a, T>(columns: Vec<Column<'a, T>>, names: &[&str]) -> Vec<Column<'a, T>> {
    columns
        .into_iter()
        .filter(|c| !names.contains(&c.name()))
        .collect()
}

/// A query string of the pairs with a value.
fn encode(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> &'a str {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn node_columns<'a>() -> Vec<Column<'a, NodeStatus>> {
    vec![
        Column::new("id", |n: &NodeStatus| cell(&n.node.id)),
        Column::new("host", |n: &NodeStatus| cell(&n.node.host)),
        Column::new("pid", |n: &NodeStatus| cell(&n.node.pid)),
        Column::new("version", |n: &NodeStatus| cell(&n.node.version)),
        Column::new("leader", |n: &NodeStatus| cell(&n.leader)),
        Column::new("this", |n: &NodeStatus| cell(&n.this)),
        Column::new("started_at", |n: &NodeStatus| cell(&n.node.started_at)),
        Column::new("last_seen_secs", |n: &NodeStatus| cell(&n.last_seen_secs)),
    ]
}

async fn overview(d: &Dashboard) -> Result<Page, Failure> {
    let status: Status = d.get("/v1/status").await?;
    let mut main = String::new();
    main.push_str(&section(
        "Nodes",
        &table(&status.nodes, &node_columns(), no_actions),
    ));
    // Queues, with this node's completions per five minutes over the last hour.
    let mut rows = String::new();
    for q in &status.queues {
        let name = q.name.as_str();
        let per = d.completed_per(name, Duration::from_secs(300), 12);
        let count = |state: JobState| q.counts.get(&state).copied();
        let _ = write!(
            rows,
            "<tr><td><a href=\"jobs?queue={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&seg(name)),
            esc(name),
            if q.paused { "paused" } else { "" },
            cell(&count(JobState::Available)),
            cell(&count(JobState::Running)),
            count(JobState::Scheduled).unwrap_or(0) + count(JobState::Retryable).unwrap_or(0),
            cell(&count(JobState::Completed)),
            cell(&count(JobState::Discarded)),
            cell(&q.oldest_available_at),
            sparkline(&per, "completed on this node per 5 minutes, last hour"),
        );
    }
    main.push_str(&section(
        "Queues",
        &if rows.is_empty() {
            "<p class=\"dim\">none</p>".to_owned()
        } else {
            format!(
                "<table><thead><tr><th>queue</th><th></th><th>available</th><th>running</th><th>waiting</th><th>completed</th><th>discarded</th><th>oldest available</th><th title=\"completed on this node per 5 minutes, last hour\">last hour</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        },
    ));
    let services: ServiceList = d.get("/v1/services").await?;
    main.push_str(&section(
        "Services",
        &table(
            &services.services,
            &only(
                instance_columns(),
                &[
                    "service",
                    "instance",
                    "state",
                    "pid",
                    "restarts",
                    "cpu_percent",
                    "rss_bytes",
                ],
            ),
            no_actions,
        ),
    ));
    let schedules: ScheduleList = d.get("/v1/schedules").await?;
    main.push_str(&section(
        "Schedules",
        &table(
            &schedules.schedules,
            &only(
                schedule_columns(),
                &["name", "cron", "next_at", "paused", "target"],
            ),
            no_actions,
        ),
    ));
    let failures: JobPage = d.get("/v1/jobs?state=discarded&limit=5").await?;
    main.push_str(&section("Recent failures", &jobs_table(&failures.jobs)));
    let events: EventList = d.get("/v1/events?limit=10").await?;
    main.push_str(&section(
        "Recent events",
        &table(
            &events.events,
            &only(
                event_columns(),
                &["at", "source", "subject", "instance", "kind", "message"],
            ),
            no_actions,
        ),
    ));
    Ok(page("Overview", main))
}

/// The buttons a job in `state` offers.
fn job_actions(id: i64, state: JobState) -> String {
    use JobState::{Available, Pending, Retryable, Running, Scheduled};
    let mut out = String::new();
    let path = |action: &str| format!("/v1/jobs/{id}/{action}");
    if !matches!(state, Running | Available | Pending) {
        out.push_str(&button("retry", "POST", &path("retry"), None));
    }
    if matches!(state, Available | Scheduled | Retryable | Running | Pending) {
        out.push_str(&button("cancel", "POST", &path("cancel"), None));
        out.push_str(&button(
            "discard",
            "POST",
            &path("discard"),
            Some("Discard this job? It will not run again."),
        ));
    }
    if state != Running {
        out.push_str(&button(
            "delete",
            "DELETE",
            &format!("/v1/jobs/{id}"),
            Some("Delete this job and its record?"),
        ));
    }
    out
}

fn job_columns<'a>() -> Vec<Column<'a, Job>> {
    vec![
        Column::new("id", |j: &Job| link("jobs/", &j.id.to_string())),
        Column::new("queue", |j: &Job| cell(&j.queue)),
        Column::new("kind", |j: &Job| cell(&j.kind)),
        Column::new("state", |j: &Job| cell(&j.state)),
        Column::new("attempt", |j: &Job| cell(&j.attempt)),
        Column::new("max_attempts", |j: &Job| cell(&j.max_attempts)),
        Column::new("created_at", |j: &Job| cell(&j.created_at)),
        Column::new("args", |j: &Job| cell(&j.args)),
    ]
}

fn jobs_table(jobs: &[Job]) -> String {
    table(jobs, &job_columns(), |j| job_actions(j.id, j.state))
}

/// A job's fields but its arguments, errors, result and output (shown apart), in the
/// order of their names.
fn job_fields<'a>() -> Vec<Column<'a, Job>> {
    vec![
        Column::new("attempt", |j: &Job| cell(&j.attempt)),
        Column::new("attempted_at", |j: &Job| cell(&j.attempted_at)),
        Column::new("attempted_by", |j: &Job| cell(&j.attempted_by)),
        Column::new("batch_id", |j: &Job| cell(&j.batch_id)),
        Column::new("created_at", |j: &Job| cell(&j.created_at)),
        Column::new("finalized_at", |j: &Job| cell(&j.finalized_at)),
        Column::new("id", |j: &Job| cell(&j.id)),
        Column::new("kind", |j: &Job| cell(&j.kind)),
        Column::new("lease_expires_at", |j: &Job| cell(&j.lease_expires_at)),
        Column::new("max_attempts", |j: &Job| cell(&j.max_attempts)),
        Column::new("priority", |j: &Job| cell(&j.priority)),
        Column::new("queue", |j: &Job| cell(&j.queue)),
        Column::new("scheduled_at", |j: &Job| cell(&j.scheduled_at)),
        Column::new("state", |j: &Job| cell(&j.state)),
        Column::new("tags", |j: &Job| json(&j.tags)),
        Column::new("unique_key", |j: &Job| cell(&j.unique_key)),
        Column::new("workflow_id", |j: &Job| cell(&j.workflow_id)),
    ]
}

/// The jobs page's filters, as the API's `GET /v1/jobs` takes them.
const JOB_FILTERS: [&str; 7] = ["queue", "state", "kind", "tag", "args", "since", "until"];

async fn jobs(d: &Dashboard, q: &[(String, String)]) -> Result<Page, Failure> {
    let values = JOB_FILTERS.map(|k| (k, param(q, k)));
    let before = param(q, "before");
    let state = param(q, "state");
    let mut query: Vec<(&str, &str)> = values.to_vec();
    query.extend([("before", before), ("limit", "50")]);
    let answer: JobPage = d.get(&format!("/v1/jobs?{}", encode(&query))).await?;
    let mut top = String::from("<form class=\"filters\" method=\"get\" action=\"jobs\">");
    for (key, label, hint) in [
        ("queue", "queue", ""),
        ("kind", "kind", ""),
        ("tag", "tag", ""),
        ("args", "args contain", "text in the arguments"),
        ("since", "pushed since", "1h or 2026-12-01T00:00:00Z"),
        ("until", "until", "time or duration ago"),
    ] {
        let _ = write!(
            top,
            "<label>{label} <input name=\"{key}\" value=\"{}\" placeholder=\"{hint}\"></label>",
            esc(param(q, key))
        );
    }
    top.push_str("<label>state <select name=\"state\"><option value=\"\">any</option>");
    for s in JobState::ALL.map(JobState::as_str) {
        let _ = write!(
            top,
            "<option{}>{s}</option>",
            if s == state { " selected" } else { "" }
        );
    }
    top.push_str("</select></label><button type=\"submit\">show</button></form>");
    // The same actions on every job the filter takes (up to 10,000 at a time). The body
    // is built from the page's own filter, not from the API's answer; the API refuses an
    // action on every job, so one of the narrowing filters must be set.
    let narrowed = ["queue", "state", "kind", "tag", "args"]
        .iter()
        .any(|k| !param(q, k).is_empty());
    if narrowed {
        let filter: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        top.push_str("<p class=\"actions bulk\">All jobs this filter shows: ");
        for action in ["retry", "cancel", "discard", "delete"] {
            let mut body = filter.clone();
            body.insert("action".into(), action.into());
            top.push_str(&super::html::body_button(
                &format!("{action} all"),
                "/v1/jobs/actions",
                &serde_json::Value::Object(body).to_string(),
                &format!("{action} every job this filter shows (up to 10,000)?"),
            ));
        }
        top.push_str("</p>");
    }
    let mut main = jobs_table(&answer.jobs);
    if let Some(next) = answer.next_before {
        let next = next.to_string();
        let mut more: Vec<(&str, &str)> = values.to_vec();
        more.push(("before", &next));
        let _ = write!(
            main,
            "<p class=\"pager\"><a href=\"jobs?{}\">older jobs →</a></p>",
            esc(&encode(&more))
        );
    }
    Ok(Page {
        title: "Jobs".into(),
        top,
        main,
    })
}

async fn job(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let j: Job = d.get(&format!("/v1/jobs/{}", seg(id))).await?;
    let state = j.state.as_str();
    let mut main = format!(
        "<p class=\"actions\"><span class=\"state state-{}\">{}</span> {}</p>",
        esc(state),
        esc(state),
        job_actions(j.id, j.state)
    );
    main.push_str(&fields(&j, &job_fields()));
    main.push_str(&section("Arguments", &pre_json(&j.args)));
    if let Some(result) = j.result.as_ref().filter(|r| !r.is_null()) {
        main.push_str(&section("Result", &pre_json(result)));
    }
    if let Some(out) = &j.output {
        main.push_str(&section("Output", &format!("<pre>{}</pre>", esc(out))));
    }
    let mut attempts = String::new();
    for e in j.errors.iter().rev() {
        let _ = write!(
            attempts,
            "<article class=\"attempt\"><h3>attempt {} · {}</h3><pre class=\"error\">{}</pre>{}</article>",
            cell(&e.attempt),
            cell(&e.at),
            esc(&e.error),
            e.output
                .as_deref()
                .map(|o| format!("<pre>{}</pre>", esc(o)))
                .unwrap_or_default()
        );
    }
    if !attempts.is_empty() {
        main.push_str(&section("Failed attempts", &attempts));
    }
    Ok(page(format!("Job {id}"), main))
}

/// A queue's name, whether it is paused, its counts and its oldest available job's age.
fn queue_columns<'a>() -> Vec<Column<'a, QueueView>> {
    let mut columns = vec![
        Column::new("name", |q: &QueueView| cell(&q.stats.name)),
        Column::new("paused", |q: &QueueView| cell(&q.stats.paused)),
    ];
    for state in JobState::ALL {
        columns.push(Column::new(state.as_str(), move |q: &QueueView| {
            cell(&q.stats.counts.get(&state))
        }));
    }
    columns.push(Column::new("oldest_available_age_secs", |q: &QueueView| {
        cell(&q.oldest_available_age_secs)
    }));
    columns
}

async fn queues(d: &Dashboard) -> Result<Page, Failure> {
    let answer: QueueList = d.get("/v1/queues").await?;
    let mut columns = queue_columns();
    columns.insert(
        2,
        Column::new("concurrency", |q: &QueueView| cell(&q.concurrency)),
    );
    let main = table(&answer.queues, &columns, |q| {
        let name = seg(&q.stats.name);
        let mut out = if q.stats.paused {
            button("resume", "POST", &format!("/v1/queues/{name}/resume"), None)
        } else {
            button("pause", "POST", &format!("/v1/queues/{name}/pause"), None)
        };
        // Pull queues have none: their workers choose how many jobs they lease.
        if let Some(now) = q.concurrency {
            out.push_str(&super::html::number_button(
                "concurrency",
                &format!("/v1/queues/{name}/concurrency"),
                &format!(
                    "Jobs of `{}` at once on each node (now {now}); empty: the config's",
                    q.stats.name
                ),
                "concurrency",
                now,
            ));
        }
        out
    });
    Ok(page("Queues", main))
}

fn schedule_columns<'a>() -> Vec<Column<'a, ScheduleInfo>> {
    vec![
        Column::new("name", |s: &ScheduleInfo| cell(&s.name)),
        Column::new("cron", |s: &ScheduleInfo| cell(&s.cron)),
        Column::new("timezone", |s: &ScheduleInfo| cell(&s.timezone)),
        Column::new("target", |s: &ScheduleInfo| cell(&s.target)),
        Column::new("next_at", |s: &ScheduleInfo| cell(&s.next_at)),
        Column::new("last", |s: &ScheduleInfo| json(&s.last)),
        Column::new("skipped", |s: &ScheduleInfo| cell(&s.skipped)),
        Column::new("paused", |s: &ScheduleInfo| cell(&s.paused)),
    ]
}

async fn schedules(d: &Dashboard) -> Result<Page, Failure> {
    let answer: ScheduleList = d.get("/v1/schedules").await?;
    let main = table(&answer.schedules, &schedule_columns(), |s| {
        let name = seg(&s.name);
        let mut out = button(
            "run now",
            "POST",
            &format!("/v1/schedules/{name}/run"),
            None,
        );
        out.push_str(&if s.paused {
            button(
                "resume",
                "POST",
                &format!("/v1/schedules/{name}/resume"),
                None,
            )
        } else {
            button(
                "pause",
                "POST",
                &format!("/v1/schedules/{name}/pause"),
                None,
            )
        });
        out
    });
    Ok(page("Schedules", main))
}

/// A batch's fields in the order of their names; `id` shows its id.
fn batch_columns<'a>(id: impl Fn(&Batch) -> String + 'a) -> Vec<Column<'a, Batch>> {
    vec![
        Column::new("cancelled_items", |b: &Batch| cell(&b.cancelled_items)),
        Column::new("created_at", |b: &Batch| cell(&b.created_at)),
        Column::new("done_items", |b: &Batch| cell(&b.done_items)),
        Column::new("failed_items", |b: &Batch| cell(&b.failed_items)),
        Column::new("finalized_at", |b: &Batch| cell(&b.finalized_at)),
        Column::new("id", id),
        Column::new("job_size", |b: &Batch| cell(&b.job_size)),
        Column::new("kind", |b: &Batch| cell(&b.kind)),
        Column::new("max_attempts", |b: &Batch| cell(&b.max_attempts)),
        Column::new("queue", |b: &Batch| cell(&b.queue)),
        Column::new("state", |b: &Batch| cell(&b.state)),
        Column::new("total_items", |b: &Batch| cell(&b.total_items)),
    ]
}

async fn batches(d: &Dashboard) -> Result<Page, Failure> {
    let answer: BatchList = d.get("/v1/batches").await?;
    let columns = batch_columns(|b| link("batches/", &b.id.to_string()));
    let main = table(&answer.batches, &columns, no_actions);
    Ok(page("Batches", main))
}

async fn batch(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let report: BatchReport = d.get(&format!("/v1/batches/{}", seg(id))).await?;
    let id = seg(id);
    let mut main = format!(
        "<p class=\"actions\">{}{}</p>",
        button(
            "retry failed",
            "POST",
            &format!("/v1/batches/{id}/retry-failed"),
            None
        ),
        button(
            "cancel",
            "POST",
            &format!("/v1/batches/{id}/cancel"),
            Some("Cancel this batch's unfinished jobs?")
        ),
    );
    main.push_str(&fields(&report, &batch_report_fields()));
    Ok(page(format!("Batch {id}"), main))
}

/// A batch's fields and its failures, in the order of their names.
fn batch_report_fields<'a>() -> Vec<Column<'a, BatchReport>> {
    let mut columns: Vec<Column<BatchReport>> = batch_columns(|b| cell(&b.id))
        .into_iter()
        .map(|c| c.on(|r: &BatchReport| &r.batch))
        .collect();
    let at = columns
        .iter()
        .position(|c| c.name() > "failures")
        .unwrap_or(columns.len());
    columns.insert(
        at,
        Column::new("failures", |r: &BatchReport| json(&r.failures)),
    );
    columns
}

/// A workflow's fields in the order of their names; `id` shows its id.
fn workflow_columns<'a>(id: impl Fn(&Workflow) -> String + 'a) -> Vec<Column<'a, Workflow>> {
    vec![
        Column::new("created_at", |w: &Workflow| cell(&w.created_at)),
        Column::new("deadline", |w: &Workflow| cell(&w.deadline)),
        Column::new("error", |w: &Workflow| cell(&w.error)),
        Column::new("finalized_at", |w: &Workflow| cell(&w.finalized_at)),
        Column::new("id", id),
        Column::new("input", |w: &Workflow| cell(&w.input)),
        Column::new("name", |w: &Workflow| cell(&w.name)),
        Column::new("result", |w: &Workflow| cell(&w.result)),
        Column::new("started_by", |w: &Workflow| cell(&w.started_by)),
        Column::new("state", |w: &Workflow| cell(&w.state)),
        Column::new("steps", |w: &Workflow| json(&w.steps)),
        Column::new("unique_key", |w: &Workflow| cell(&w.unique_key))
            .optional(|w: &Workflow| w.unique_key.is_some()),
    ]
}

/// A workflow's fields but its steps (shown apart); its input is among them, as a cell.
fn workflow_fields<'a>() -> Vec<Column<'a, Workflow>> {
    except(workflow_columns(|w| cell(&w.id)), &["steps"])
}

async fn workflows(d: &Dashboard) -> Result<Page, Failure> {
    let answer: WorkflowList = d.get("/v1/workflows").await?;
    let columns = workflow_columns(|w| link("workflows/", &w.id.to_string()));
    let main = table(&answer.workflows, &columns, no_actions);
    Ok(page("Workflows", main))
}

/// A workflow step's fields in the order of their names, its job linked.
fn step_columns<'a>() -> Vec<Column<'a, WorkflowStep>> {
    vec![
        Column::new("attempt", |s: &WorkflowStep| cell(&s.attempt)),
        Column::new("error", |s: &WorkflowStep| cell(&s.error)),
        Column::new("job_id", |s: &WorkflowStep| {
            link("jobs/", &s.job_id.to_string())
        }),
        Column::new("name", |s: &WorkflowStep| cell(&s.name)),
        Column::new("optional", |s: &WorkflowStep| cell(&s.optional)),
        Column::new("parents", |s: &WorkflowStep| json(&s.parents)),
        Column::new("result", |s: &WorkflowStep| cell(&s.result)),
        Column::new("state", |s: &WorkflowStep| cell(&s.state)),
    ]
}

async fn workflow(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let w: Workflow = d.get(&format!("/v1/workflows/{}", seg(id))).await?;
    let id = seg(id);
    let mut main = format!(
        "<p class=\"actions\">{}{}</p>",
        button("retry", "POST", &format!("/v1/workflows/{id}/retry"), None),
        button(
            "cancel",
            "POST",
            &format!("/v1/workflows/{id}/cancel"),
            Some("Cancel this workflow?")
        ),
    );
    main.push_str(&fields(&w, &workflow_fields()));
    // The steps in their order, each with its state, its job, result and error.
    main.push_str(&section(
        "Steps",
        &table(&w.steps, &step_columns(), no_actions),
    ));
    Ok(page(format!("Workflow {id}"), main))
}

fn service_actions(name: &str) -> String {
    let name = seg(name);
    format!(
        "{}{}{}",
        button("start", "POST", &format!("/v1/services/{name}/start"), None),
        button(
            "stop",
            "POST",
            &format!("/v1/services/{name}/stop"),
            Some("Stop every instance of this service?")
        ),
        button(
            "restart",
            "POST",
            &format!("/v1/services/{name}/restart"),
            None
        ),
    )
}

fn instance_columns<'a>() -> Vec<Column<'a, Instance>> {
    vec![
        Column::new("service", |i: &Instance| cell(&i.service)),
        Column::new("instance", |i: &Instance| cell(&i.instance)),
        Column::new("state", |i: &Instance| cell(&i.state)),
        Column::new("pid", |i: &Instance| cell(&i.pid)),
        Column::new("port", |i: &Instance| cell(&i.port)),
        Column::new("uptime_secs", |i: &Instance| cell(&i.uptime_secs)),
        Column::new("restarts", |i: &Instance| cell(&i.restarts)),
        Column::new("cpu_percent", |i: &Instance| cell(&i.cpu_percent)),
        Column::new("rss_bytes", |i: &Instance| cell(&i.rss_bytes)),
        Column::new("last_exit", |i: &Instance| cell(&i.last_exit)),
    ]
}

/// The instances of service `name`.
fn instances_of(all: &[Instance], name: &str) -> Vec<Instance> {
    all.iter().filter(|i| i.service == name).cloned().collect()
}

async fn services(d: &Dashboard) -> Result<Page, Failure> {
    let answer: ServiceList = d.get("/v1/services").await?;
    let all = &answer.services;
    let mut names: Vec<&str> = all.iter().map(|i| i.service.as_str()).collect();
    names.dedup();
    let mut main = String::new();
    for name in names {
        let _ = write!(
            main,
            "<section><h2><a href=\"services/{}\">{}</a></h2><p class=\"actions\">{}</p>{}{}</section>",
            esc(&seg(name)),
            esc(name),
            service_actions(name),
            table(&instances_of(all, name), &instance_columns(), no_actions),
            history(d, name)
        );
    }
    if main.is_empty() {
        main.push_str("<p class=\"dim\">no [service.NAME] in the config</p>");
    }
    Ok(page("Services", main))
}

async fn service(d: &Dashboard, name: &str) -> Result<Page, Failure> {
    let answer: ServiceList = d.get("/v1/services").await?;
    let instances = instances_of(&answer.services, name);
    let logs: ServiceLogs = d
        .get(&format!("/v1/services/{}/logs?lines=200", seg(name)))
        .await?;
    let mut tail = String::new();
    for l in &logs.lines {
        let _ = writeln!(tail, "[{}] {}", cell(&l.instance), esc(&l.line));
    }
    let main = format!(
        "<p class=\"actions\">{}</p>{}{}{}",
        service_actions(name),
        table(&instances, &instance_columns(), no_actions),
        history(d, name),
        section(
            "Log",
            &format!("<pre class=\"log\" id=\"log\">{tail}</pre>")
        )
    );
    Ok(page(format!("Service {name}"), main))
}

/// A service's CPU and memory over the last hour, from the dashboard's samples.
fn history(d: &Dashboard, name: &str) -> String {
    let (cpu, memory) = d.service_history(name);
    if cpu.is_empty() {
        return "<p class=\"dim\">CPU and memory over time appear within two minutes of the first dashboard page.</p>"
            .into();
    }
    let mib: Vec<u64> = memory.iter().map(|b| b / (1024 * 1024)).collect();
    format!(
        "<p class=\"history\">CPU, % of a core per minute: {} {}% now · memory: {} {} MiB now</p>",
        sparkline(&cpu, "CPU per minute, last hour, percent of a core"),
        cpu.last().copied().unwrap_or(0),
        sparkline(&mib, "resident memory per minute, last hour, MiB"),
        mib.last().copied().unwrap_or(0),
    )
}

/// A gateway's fields but its routes, in the order of their names.
fn gateway_fields<'a>() -> Vec<Column<'a, GatewayStatus>> {
    vec![
        Column::new("http", |g: &GatewayStatus| cell(&g.http)),
        Column::new("listen", |g: &GatewayStatus| json(&g.listen)),
        Column::new("tls", |g: &GatewayStatus| cell(&g.tls)),
    ]
}

/// A route's counts in the order of their names.
fn route_columns<'a>() -> Vec<Column<'a, RouteCounts>> {
    vec![
        Column::new("mean_ms", |r: &RouteCounts| cell(&r.mean_ms)),
        Column::new("requests", |r: &RouteCounts| cell(&r.requests)),
        Column::new("route", |r: &RouteCounts| cell(&r.route)),
        Column::new("status_2xx", |r: &RouteCounts| cell(&r.status_2xx)),
        Column::new("status_3xx", |r: &RouteCounts| cell(&r.status_3xx)),
        Column::new("status_4xx", |r: &RouteCounts| cell(&r.status_4xx)),
        Column::new("status_5xx", |r: &RouteCounts| cell(&r.status_5xx)),
        Column::new("target", |r: &RouteCounts| cell(&r.target)),
    ]
}

fn budget_columns<'a>() -> Vec<Column<'a, BudgetStatus>> {
    vec![
        Column::new("name", |b: &BudgetStatus| cell(&b.name)),
        Column::new("spent", |b: &BudgetStatus| cell(&b.spent)),
        Column::new("limit", |b: &BudgetStatus| cell(&b.limit)),
        Column::new("cost_per_request", |b: &BudgetStatus| {
            cell(&b.cost_per_request)
        }),
        Column::new("period", |b: &BudgetStatus| cell(&b.period)),
        Column::new("period_start", |b: &BudgetStatus| cell(&b.period_start)),
        Column::new("resets_at", |b: &BudgetStatus| cell(&b.resets_at)),
    ]
}

async fn gateway(d: &Dashboard) -> Result<Page, Failure> {
    let g: GatewayStatus = d.get("/v1/gateway").await?;
    let mut main = fields(&g, &gateway_fields());
    main.push_str(&section(
        "Routes",
        &table(&g.routes, &route_columns(), no_actions),
    ));
    let budgets: BudgetList = d.get("/v1/budgets").await?;
    main.push_str(&section(
        "Budgets",
        &table(&budgets.budgets, &budget_columns(), |b| {
            button(
                "reset",
                "POST",
                &format!("/v1/budgets/{}/reset", seg(&b.name)),
                Some(&format!(
                    "Start budget {} over, with nothing spent?",
                    b.name
                )),
            )
        }),
    ));
    let m: Maintenance = d.get("/v1/maintenance").await?;
    let maintenance = if m.maintenance {
        let setting = m.setting.unwrap_or_default();
        format!(
            "<p><strong>On</strong> since {}: {} {}</p>",
            cell(&setting.since),
            cell(&setting.message),
            button("turn off", "DELETE", "/v1/maintenance", None)
        )
    } else {
        format!(
            "<p>Off. {}</p>",
            super::html::prompt_button(
                "turn on",
                "/v1/maintenance",
                "Every request but an admin's gets a 503 page. The message it shows:"
            )
        )
    };
    main.push_str(&section("Maintenance mode", &maintenance));
    Ok(page("Gateway", main))
}

fn message_columns<'a>() -> Vec<Column<'a, MessageView>> {
    vec![
        Column::new("id", |m: &MessageView| cell(&m.id)),
        Column::new("ingest", |m: &MessageView| cell(&m.ingest)),
        Column::new("device", |m: &MessageView| cell(&m.device)),
        Column::new("topic", |m: &MessageView| cell(&m.topic)),
        Column::new("kind", |m: &MessageView| cell(&m.kind)),
        Column::new("received_at", |m: &MessageView| cell(&m.received_at)),
        Column::new("dead", |m: &MessageView| cell(&m.dead)),
        Column::new("errors", |m: &MessageView| json(&m.errors)),
        Column::new("job_id", |m: &MessageView| cell(&m.job_id)),
        // The start of its text (nothing for a payload that is not UTF-8).
        Column::new("payload_text", |m: &MessageView| {
            cell(&cut(m.payload_text.as_deref().unwrap_or(""), 120))
        }),
    ]
}

async fn messages(d: &Dashboard, q: &[(String, String)]) -> Result<Page, Failure> {
    let (ingest, device, dead, before) = (
        param(q, "ingest"),
        param(q, "device"),
        param(q, "dead"),
        param(q, "before"),
    );
    let dead = if dead == "true" { "true" } else { "" };
    let filter = encode(&[
        ("ingest", ingest),
        ("device", device),
        ("dead", dead),
        ("before", before),
        ("limit", "50"),
    ]);
    let answer: MessagePage = d.get(&format!("/v1/messages?{filter}")).await?;
    let top = format!(
        "<form class=\"filters\" method=\"get\" action=\"messages\">\
         <label>ingest <input name=\"ingest\" value=\"{}\"></label>\
         <label>device <input name=\"device\" value=\"{}\"></label>\
         <label><input type=\"checkbox\" name=\"dead\" value=\"true\"{}> dead letters only</label>\
         <button type=\"submit\">show</button></form>",
        esc(ingest),
        esc(device),
        if dead.is_empty() { "" } else { " checked" }
    );
    let mut main = table(&answer.messages, &message_columns(), |m| {
        if m.dead {
            button(
                "replay",
                "POST",
                &format!("/v1/messages/{}/replay", m.id),
                None,
            )
        } else {
            String::new()
        }
    });
    if let Some(next) = answer.next_before {
        let more = encode(&[
            ("ingest", ingest),
            ("device", device),
            ("dead", dead),
            ("before", &next.to_string()),
        ]);
        let _ = write!(
            main,
            "<p class=\"pager\"><a href=\"messages?{}\">older messages →</a></p>",
            esc(&more)
        );
    }
    Ok(Page {
        title: if dead.is_empty() {
            "Messages"
        } else {
            "Dead letters"
        }
        .into(),
        top,
        main,
    })
}

/// A delivery's fields in the order of their names.
fn delivery_columns<'a>() -> Vec<Column<'a, Delivery>> {
    vec![
        Column::new("at", |n: &Delivery| cell(&n.at)),
        Column::new("attempts", |n: &Delivery| cell(&n.attempts)),
        Column::new("channel", |n: &Delivery| cell(&n.channel)),
        Column::new("created_at", |n: &Delivery| cell(&n.created_at)),
        Column::new("event_id", |n: &Delivery| cell(&n.event_id)),
        Column::new("id", |n: &Delivery| cell(&n.id)),
        Column::new("kind", |n: &Delivery| cell(&n.kind)),
        Column::new("last_error", |n: &Delivery| cell(&n.last_error)),
        Column::new("message", |n: &Delivery| cell(&n.message)),
        Column::new("next_at", |n: &Delivery| cell(&n.next_at)),
        Column::new("node", |n: &Delivery| cell(&n.node)),
        Column::new("sent_at", |n: &Delivery| cell(&n.sent_at)),
        Column::new("subject", |n: &Delivery| cell(&n.subject)),
    ]
}

async fn notifications(d: &Dashboard) -> Result<Page, Failure> {
    let answer: NotificationList = d.get("/v1/notifications").await?;
    let main = table(&answer.notifications, &delivery_columns(), no_actions);
    Ok(page("Notification outbox", main))
}

fn event_columns<'a>() -> Vec<Column<'a, EventRecord>> {
    vec![
        Column::new("at", |e: &EventRecord| cell(&e.event.at)),
        Column::new("node", |e: &EventRecord| cell(&e.event.node)),
        Column::new("source", |e: &EventRecord| cell(&e.event.source)),
        Column::new("subject", |e: &EventRecord| cell(&e.event.subject)),
        Column::new("instance", |e: &EventRecord| cell(&e.event.instance)),
        Column::new("kind", |e: &EventRecord| cell(&e.event.kind)),
        Column::new("message", |e: &EventRecord| cell(&e.event.message)),
    ]
}

async fn events(d: &Dashboard, q: &[(String, String)]) -> Result<Page, Failure> {
    let source = param(q, "source");
    let answer: EventList = d
        .get(&format!(
            "/v1/events?{}",
            encode(&[("source", source), ("limit", "100")])
        ))
        .await?;
    let top = format!(
        "<form class=\"filters\" method=\"get\" action=\"events\">\
         <label>source <input name=\"source\" value=\"{}\"></label>\
         <button type=\"submit\">show</button></form>",
        esc(source)
    );
    let main = table(&answer.events, &event_columns(), no_actions);
    Ok(Page {
        title: "Events".into(),
        top,
        main,
    })
}

/// A release's fields in the order of their names; those it may lack are shown when the
/// first release has them.
fn release_columns<'a>() -> Vec<Column<'a, ReleaseView>> {
    vec![
        Column::new("backup", |r: &ReleaseView| cell(&r.release.backup))
            .optional(|r: &ReleaseView| r.release.backup.is_some()),
        Column::new("by", |r: &ReleaseView| cell(&r.release.by)),
        Column::new("created_at", |r: &ReleaseView| cell(&r.release.created_at)),
        Column::new("error", |r: &ReleaseView| cell(&r.release.error))
            .optional(|r: &ReleaseView| r.release.error.is_some()),
        Column::new("finished_at", |r: &ReleaseView| {
            cell(&r.release.finished_at)
        })
        .optional(|r: &ReleaseView| r.release.finished_at.is_some()),
        Column::new("id", |r: &ReleaseView| cell(&r.release.id)),
        Column::new("maintenance_on", |r: &ReleaseView| {
            cell(&r.release.maintenance_on)
        }),
        Column::new("maintenance_value", |r: &ReleaseView| {
            cell(&r.release.maintenance_value)
        })
        .optional(|r: &ReleaseView| r.release.maintenance_value.is_some()),
        Column::new("migrated", |r: &ReleaseView| cell(&r.release.migrated)),
        Column::new("node", |r: &ReleaseView| cell(&r.release.node)),
        Column::new("previous", |r: &ReleaseView| cell(&r.release.previous))
            .optional(|r: &ReleaseView| r.release.previous.is_some()),
        Column::new("rollback", |r: &ReleaseView| cell(&r.release.rollback))
            .optional(|r: &ReleaseView| r.release.rollback.is_some()),
        Column::new("shown_state", |r: &ReleaseView| cell(&r.shown_state))
            .optional(|r: &ReleaseView| r.shown_state.is_some()),
        Column::new("source", |r: &ReleaseView| json(&r.release.source)),
        Column::new("state", |r: &ReleaseView| json(&r.release.state)),
        Column::new("steps", |r: &ReleaseView| json(&r.release.steps)),
        Column::new("switched", |r: &ReleaseView| cell(&r.release.switched)),
    ]
}

async fn releases(d: &Dashboard) -> Result<Page, Failure> {
    let main = match d.get::<ReleaseList>("/v1/releases").await {
        Ok(answer) => table(&answer.releases, &release_columns(), no_actions),
        // No [deploy] in the config: nothing to list, which is no error.
        Err(f) if f.status == StatusCode::CONFLICT || f.status == StatusCode::NOT_FOUND => {
            format!("<p class=\"dim\">{}</p>", esc(&f.message))
        }
        Err(f) => return Err(f),
    };
    Ok(page("Releases", main))
}

async fn backups(d: &Dashboard) -> Result<Page, Failure> {
    let list: BackupList = d.get("/v1/backups").await?;
    let mut top = format!(
        "<p class=\"actions\">In <code>{}</code>. {}</p>",
        esc(&list.dir),
        if list.running {
            "A backup is being made now.".to_owned()
        } else {
            super::html::body_button(
                "save a backup now",
                "/v1/backups",
                "{}",
                "Make a backup now (the store, the included directories and databases)?",
            )
        }
    );
    if list.backups.is_empty() {
        top.push_str("<p class=\"dim\">No backups yet.</p>");
    }
    let columns = vec![
        Column::new("id", |b: &BackupInfo| cell(&b.id)),
        Column::new("made", |b: &BackupInfo| cell(&b.created)),
        Column::new("size", |b: &BackupInfo| size(b.bytes)),
        Column::new("holds", |b: &BackupInfo| cell(&b.parts)),
        Column::new("tiers", |b: &BackupInfo| {
            if b.kept { "keep" } else { "prune" }.into()
        }),
    ];
    // Newest first, as every other list of the dashboard.
    let rows: Vec<BackupInfo> = list.backups.into_iter().rev().collect();
    let main = table(&rows, &columns, |b: &BackupInfo| {
        button(
            "verify",
            "POST",
            &format!("/v1/backups/{}/verify", seg(&b.id)),
            None,
        )
    });
    Ok(Page {
        title: "Backups".into(),
        top,
        main,
    })
}

/// Bytes in words: "812 B", "3.4 MiB".
fn size(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{bytes} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    //! The typed pages against the pages as they were rendered from the answers' JSON: the
    //! same tables and field lists, cell for cell.

    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use berth_store::{FlowState, NewEvent};
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;
    use crate::types::{
        AttemptError, BatchFailure, BudgetStatus, CatchUp, LastRun, NodeInfo, Overlap, QueueStats,
        Release, ReleaseState, RouteCounts, SourceInfo, StepRecord, Timestamp,
    };

    /// `v` as the dashboard read it before: the answer's bytes as JSON.
    fn as_json<T: Serialize>(v: &T) -> Value {
        serde_json::from_slice(&serde_json::to_vec(v).unwrap()).unwrap()
    }

    fn rows_of<T: Serialize>(rows: &[T]) -> Vec<Value> {
        rows.iter().map(as_json).collect()
    }

    /// The table of JSON rows as it was: `columns` (all keys of the first row when empty),
    /// `link` making a column's key a link.
    fn json_table(rows: &[Value], columns: &[&str], link: Option<(&str, &str)>) -> String {
        if rows.is_empty() {
            return "<p class=\"dim\">none</p>".into();
        }
        let derived: Vec<String>;
        let columns: Vec<&str> = if columns.is_empty() {
            derived = rows[0].as_object().unwrap().keys().cloned().collect();
            derived.iter().map(String::as_str).collect()
        } else {
            columns.to_vec()
        };
        let mut out = String::from("<table><thead><tr>");
        for c in &columns {
            let _ = write!(out, "<th>{}</th>", esc(&c.replace('_', " ")));
        }
        out.push_str("</tr></thead><tbody>");
        for row in rows {
            out.push_str("<tr>");
            for c in &columns {
                let v = row.get(*c).unwrap_or(&Value::Null);
                match link {
                    Some((column, prefix)) if column == *c && !v.is_null() => {
                        let key = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        let _ = write!(
                            out,
                            "<td><a href=\"{}{}\">{}</a></td>",
                            esc(prefix),
                            esc(&seg(&key)),
                            esc(&key)
                        );
                    }
                    _ => {
                        let _ = write!(out, "<td>{}</td>", cell(v));
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
        out
    }

    /// The field list of a JSON object as it was.
    fn json_fields(v: &Value, skip: &[&str]) -> String {
        let mut out = String::from("<dl class=\"fields\">");
        for (k, v) in v.as_object().unwrap() {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let _ = write!(
                out,
                "<dt>{}</dt><dd>{}</dd>",
                esc(&k.replace('_', " ")),
                cell(v)
            );
        }
        out.push_str("</dl>");
        out
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp(1_796_532_140_597_039 + secs * 1_000_000)
    }

    fn jobs() -> Vec<Job> {
        let full = Job {
            id: 7,
            queue: "mail".into(),
            kind: "send".into(),
            args: json!({"to": "<a@b>", "n": 1.5, "deep": {"x": [1, 2]}}),
            state: JobState::Retryable,
            priority: -1,
            attempt: 2,
            max_attempts: 5,
            scheduled_at: at(1),
            attempted_at: Some(at(2)),
            attempted_by: Some("berth:n1:1".into()),
            lease_expires_at: Some(at(3)),
            finalized_at: None,
            errors: vec![AttemptError {
                attempt: 1,
                at: at(0),
                error: "<boom>".into(),
                output: Some("out".into()),
            }],
            result: Some(json!({"ok": true})),
            output: Some("printed".into()),
            unique_key: None,
            batch_id: Some(3),
            workflow_id: None,
            tags: vec!["a".into(), "<b>".into()],
            created_at: at(0),
        };
        let bare = Job {
            id: 8,
            args: json!("2026-12-06T04:42:20.597039Z"),
            state: JobState::Completed,
            attempted_at: None,
            attempted_by: None,
            lease_expires_at: None,
            finalized_at: Some(at(9)),
            errors: Vec::new(),
            result: None,
            output: None,
            unique_key: Some("k".into()),
            batch_id: None,
            workflow_id: Some(4),
            tags: Vec::new(),
            ..full.clone()
        };
        vec![full, bare]
    }

    fn workflow(unique_key: Option<&str>) -> Workflow {
        Workflow {
            id: 4,
            name: "nightly".into(),
            state: FlowState::Failed,
            input: json!({"day": "2026-12-06"}),
            result: None,
            error: Some("step b failed".into()),
            started_by: "schedule:nightly".into(),
            created_at: at(0),
            deadline: None,
            finalized_at: Some(at(5)),
            unique_key: unique_key.map(Into::into),
            steps: vec![
                WorkflowStep {
                    name: "a".into(),
                    job_id: 9,
                    parents: Vec::new(),
                    optional: false,
                    state: Some(JobState::Completed),
                    attempt: 1,
                    result: Some(json!([1, "x"])),
                    error: None,
                },
                WorkflowStep {
                    name: "b".into(),
                    job_id: 10,
                    parents: vec!["a".into()],
                    optional: true,
                    state: None,
                    attempt: 0,
                    result: None,
                    error: Some("gone".into()),
                },
            ],
        }
    }

    fn release(id: &str, full: bool) -> ReleaseView {
        ReleaseView {
            release: Release {
                id: id.into(),
                source: SourceInfo {
                    kind: "git".into(),
                    git_ref: Some("main".into()),
                    commit: full.then(|| "3f2c1a9d".into()),
                    path: None,
                },
                by: "ops".into(),
                node: "n1".into(),
                created_at: at(0),
                finished_at: full.then(|| at(60)),
                state: if full {
                    ReleaseState::RolledBack
                } else {
                    ReleaseState::Deployed
                },
                previous: full.then(|| "r0".into()),
                backup: full.then(|| "b1".into()),
                migrated: full,
                switched: true,
                maintenance_on: false,
                maintenance_value: full.then(|| json!({"message": "soon"})),
                error: full.then(|| "health gate".into()),
                rollback: full.then(|| "restored".into()),
                steps: vec![StepRecord {
                    name: "fetch".into(),
                    state: "ok".into(),
                    detail: "3f2c1a9d".into(),
                    started_at: at(1),
                    seconds: Some(2.0),
                    log: None,
                    output_tail: full.then(|| "tail".into()),
                }],
            },
            shown_state: full.then(|| "live".into()),
        }
    }

    #[test]
    fn job_tables_and_fields_are_as_they_were() {
        let jobs = jobs();
        let columns = [
            "id",
            "queue",
            "kind",
            "state",
            "attempt",
            "max_attempts",
            "created_at",
            "args",
        ];
        let typed = table(&jobs, &job_columns(), no_actions);
        let was = json_table(&rows_of(&jobs), &columns, Some(("id", "jobs/")));
        assert_eq!(typed, was);
        // And the table the pages show, with its buttons.
        assert!(jobs_table(&jobs).starts_with(&was[..was.find("</tr>").unwrap()]));
        for j in &jobs {
            assert_eq!(
                fields(j, &job_fields()),
                json_fields(&as_json(j), &["args", "errors", "result", "output"])
            );
        }
    }

    #[test]
    fn overview_and_service_tables_are_as_they_were() {
        let node = NodeStatus {
            node: NodeInfo {
                id: "n1".into(),
                host: "host".into(),
                pid: 42,
                version: "0.1.0".into(),
                started_at: at(0),
                heartbeat_at: at(1),
            },
            last_seen_secs: 1.25,
            leader: true,
            this: false,
        };
        let nodes = vec![node];
        let columns = [
            "id",
            "host",
            "pid",
            "version",
            "leader",
            "this",
            "started_at",
            "last_seen_secs",
        ];
        assert_eq!(
            table(&nodes, &node_columns(), no_actions),
            json_table(&rows_of(&nodes), &columns, None)
        );

        let running = Instance {
            service: "web".into(),
            instance: 0,
            pid: Some(42),
            state: "running".into(),
            uptime_secs: Some(12.0),
            restarts: 1,
            port: Some(8080),
            cpu_percent: Some(f64::NAN),
            rss_bytes: Some(1 << 20),
            pss_bytes: None,
            processes: Some(3),
            last_exit: None,
        };
        let stopped = Instance {
            instance: 1,
            pid: None,
            state: "failed".into(),
            uptime_secs: None,
            cpu_percent: Some(3.25),
            rss_bytes: None,
            last_exit: Some("exit status 1".into()),
            ..running.clone()
        };
        let instances = vec![running, stopped];
        let all = [
            "service",
            "instance",
            "state",
            "pid",
            "port",
            "uptime_secs",
            "restarts",
            "cpu_percent",
            "rss_bytes",
            "last_exit",
        ];
        assert_eq!(
            table(&instances, &instance_columns(), no_actions),
            json_table(&rows_of(&instances), &all, None)
        );
        let overview = [
            "service",
            "instance",
            "state",
            "pid",
            "restarts",
            "cpu_percent",
            "rss_bytes",
        ];
        assert_eq!(
            table(&instances, &only(instance_columns(), &overview), no_actions),
            json_table(&rows_of(&instances), &overview, None)
        );

        let first = ScheduleInfo {
            name: "nightly".into(),
            cron: "0 3 * * *".into(),
            timezone: "UTC".into(),
            target: "workflow nightly".into(),
            overlap: Overlap::Skip,
            catch_up: CatchUp::All { limit: 3 },
            next_at: at(100),
            last: Some(LastRun {
                planned_at: at(-100),
                fired_at: None,
                job_id: Some(1),
                workflow_id: None,
                outcome: Some("completed".into()),
            }),
            skipped: 2,
            paused: false,
        };
        let second = ScheduleInfo {
            last: None,
            paused: true,
            ..first.clone()
        };
        let schedules = vec![first, second];
        let all = [
            "name", "cron", "timezone", "target", "next_at", "last", "skipped", "paused",
        ];
        assert_eq!(
            table(&schedules, &schedule_columns(), no_actions),
            json_table(&rows_of(&schedules), &all, None)
        );
        let overview = ["name", "cron", "next_at", "paused", "target"];
        assert_eq!(
            table(&schedules, &only(schedule_columns(), &overview), no_actions),
            json_table(&rows_of(&schedules), &overview, None)
        );

        let events = vec![EventRecord {
            id: 1,
            event: NewEvent {
                at: at(0),
                node: "n1".into(),
                source: "service".into(),
                subject: "web".into(),
                instance: Some(0),
                kind: "exited".into(),
                message: "<exit> 1".into(),
            },
        }];
        let all = [
            "at", "node", "source", "subject", "instance", "kind", "message",
        ];
        assert_eq!(
            table(&events, &event_columns(), no_actions),
            json_table(&rows_of(&events), &all, None)
        );
    }

    #[test]
    fn queue_rows_are_as_they_were() {
        let counts: BTreeMap<JobState, u64> =
            [(JobState::Available, 3), (JobState::Completed, 10)].into();
        let queues = vec![QueueView {
            stats: QueueStats {
                name: "mail".into(),
                paused: true,
                counts,
                oldest_available_at: Some(at(0)),
            },
            oldest_available_age_secs: Some(3.5),
            configured: true,
            concurrency: Some(4),
        }];
        // The rows the queues page made of the answer's JSON.
        let states = JobState::ALL.map(JobState::as_str);
        let rows: Vec<Value> = rows_of(&queues)
            .iter()
            .map(|q| {
                let mut row = json!({
                    "name": q["name"],
                    "paused": q["paused"],
                    "oldest_available_age_secs": q["oldest_available_age_secs"],
                });
                for s in states {
                    row[s] = q["counts"][s].clone();
                }
                row
            })
            .collect();
        let mut columns = vec!["name", "paused"];
        columns.extend_from_slice(&states);
        columns.push("oldest_available_age_secs");
        assert_eq!(
            table(&queues, &queue_columns(), no_actions),
            json_table(&rows, &columns, None)
        );
    }

    #[test]
    fn batches_and_workflows_are_as_they_were() {
        let batch = Batch {
            id: 3,
            queue: "mail".into(),
            kind: "send".into(),
            state: FlowState::Running,
            total_items: 10,
            job_size: 2,
            max_attempts: 3,
            done_items: 4,
            failed_items: 1,
            cancelled_items: 0,
            created_at: at(0),
            finalized_at: None,
        };
        let batches = vec![batch.clone()];
        assert_eq!(
            table(
                &batches,
                &batch_columns(|b| link("batches/", &b.id.to_string())),
                no_actions
            ),
            json_table(&rows_of(&batches), &[], Some(("id", "batches/")))
        );
        let report = BatchReport {
            batch,
            failures: vec![BatchFailure {
                job_id: 5,
                items: vec![json!({"to": "x"})],
                error: Some("bounced".into()),
                state: JobState::Discarded,
            }],
        };
        assert_eq!(
            fields(&report, &batch_report_fields()),
            json_fields(&as_json(&report), &[])
        );

        // The columns follow the first workflow: its unique key, or none.
        for list in [
            vec![workflow(None), workflow(Some("k"))],
            vec![workflow(Some("k")), workflow(None)],
        ] {
            assert_eq!(
                table(
                    &list,
                    &workflow_columns(|w| link("workflows/", &w.id.to_string())),
                    no_actions
                ),
                json_table(&rows_of(&list), &[], Some(("id", "workflows/")))
            );
            for w in &list {
                assert_eq!(
                    fields(w, &workflow_fields()),
                    json_fields(&as_json(w), &["steps", "args"])
                );
                assert_eq!(
                    table(&w.steps, &step_columns(), no_actions),
                    json_table(&rows_of(&w.steps), &[], Some(("job_id", "jobs/")))
                );
            }
        }
    }

    #[test]
    fn gateway_messages_outbox_and_releases_are_as_they_were() {
        let g = GatewayStatus {
            listen: vec!["0.0.0.0:443".into()],
            tls: true,
            http: None,
            routes: vec![RouteCounts {
                route: "example.com/".into(),
                target: "proxy".into(),
                requests: 10,
                status_2xx: 9,
                status_3xx: 0,
                status_4xx: 1,
                status_5xx: 0,
                mean_ms: 1.5,
            }],
        };
        assert_eq!(
            fields(&g, &gateway_fields()),
            json_fields(&as_json(&g), &["routes"])
        );
        assert_eq!(
            table(&g.routes, &route_columns(), no_actions),
            json_table(&rows_of(&g.routes), &[], None)
        );
        let budgets = vec![BudgetStatus {
            name: "llm".into(),
            limit: 10.0,
            cost_per_request: 0.01,
            period: "day".into(),
            spent: 0.5,
            period_start: "2026-12-06T00:00:00Z".into(),
            resets_at: "2026-12-07T00:00:00Z".into(),
        }];
        let columns = [
            "name",
            "spent",
            "limit",
            "cost_per_request",
            "period",
            "period_start",
            "resets_at",
        ];
        assert_eq!(
            table(&budgets, &budget_columns(), no_actions),
            json_table(&rows_of(&budgets), &columns, None)
        );

        let dead = MessageView {
            id: 5,
            ingest: "mqtt".into(),
            device: Some("d1".into()),
            topic: "t/1".into(),
            kind: None,
            received_at: at(0),
            dead: true,
            errors: vec!["<bad>".into()],
            job_id: None,
            workflow_id: None,
            replayed_at: None,
            duplicates: 0,
            size: 300,
            payload: None,
            payload_text: Some("é".repeat(300)),
            payload_hex: None,
        };
        let binary = MessageView {
            id: 6,
            dead: false,
            errors: Vec::new(),
            job_id: Some(8),
            payload_text: None,
            payload_hex: Some("ff".into()),
            ..dead.clone()
        };
        let messages = vec![dead, binary];
        // The rows the messages page made of the answer's JSON.
        let rows: Vec<Value> = rows_of(&messages)
            .into_iter()
            .map(|mut m| {
                m["payload_text"] =
                    Value::String(cut(m["payload_text"].as_str().unwrap_or(""), 120));
                m
            })
            .collect();
        let columns = [
            "id",
            "ingest",
            "device",
            "topic",
            "kind",
            "received_at",
            "dead",
            "errors",
            "job_id",
            "payload_text",
        ];
        assert_eq!(
            table(&messages, &message_columns(), no_actions),
            json_table(&rows, &columns, None)
        );

        let delivery = Delivery {
            id: 1,
            channel: "ops".into(),
            event_id: 2,
            at: at(0),
            kind: "service.exited".into(),
            subject: "web".into(),
            message: "exited".into(),
            node: "n1".into(),
            created_at: at(1),
            next_at: at(2),
            attempts: 1,
            last_error: Some("timeout".into()),
            sent_at: None,
        };
        let deliveries = vec![delivery];
        assert_eq!(
            table(&deliveries, &delivery_columns(), no_actions),
            json_table(&rows_of(&deliveries), &[], None)
        );

        // The columns follow the first release's fields.
        for list in [
            vec![release("r2", true), release("r1", false)],
            vec![release("r1", false), release("r2", true)],
        ] {
            assert_eq!(
                table(&list, &release_columns(), no_actions),
                json_table(&rows_of(&list), &[], None)
            );
        }
    }

    #[test]
    fn an_answer_that_does_not_read_is_a_failure() {
        use axum::http::StatusCode;
        let read = |status: StatusCode, body: &str| {
            super::super::read_answer::<JobPage>("/v1/jobs", status, body.as_bytes())
        };
        let page = read(StatusCode::OK, r#"{"jobs": [], "next_before": null}"#).unwrap();
        assert!(page.jobs.is_empty());
        let f = read(StatusCode::OK, r#"{"jobs": 3}"#).unwrap_err();
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        assert!(f.message.contains("/v1/jobs"), "{}", f.message);
        let f = read(
            StatusCode::NOT_FOUND,
            r#"{"error": {"code": "not_found", "message": "no job 3"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            (f.status, f.message.as_str()),
            (StatusCode::NOT_FOUND, "no job 3")
        );
        let f = read(StatusCode::INTERNAL_SERVER_ERROR, "").unwrap_err();
        assert_eq!(f.message, "the API refused");
    }
}
