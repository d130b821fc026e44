//! The dashboard's pages, one function each, rendered from the API's answers.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::html::{button, cell, cut, esc, fields, pre_json, segment as seg, sparkline, table};
use super::{Dashboard, Failure, Page};

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
];

const STATES: &[&str] = &[
    "pending",
    "scheduled",
    "available",
    "running",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
    "split",
];

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

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or_default()
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

async fn overview(d: &Dashboard) -> Result<Page, Failure> {
    let status = d.get("/v1/status").await?;
    let mut main = String::new();
    let nodes = list(&status, "nodes");
    main.push_str(&section(
        "Nodes",
        &table(
            nodes,
            &[
                "id",
                "host",
                "pid",
                "version",
                "leader",
                "this",
                "started_at",
                "last_seen_secs",
            ],
            None,
            |_| String::new(),
        ),
    ));
    // Queues, with this node's completions per five minutes over the last hour.
    let mut rows = String::new();
    for q in list(&status, "queues") {
        let name = q["name"].as_str().unwrap_or_default();
        let per = d.completed_per(name, Duration::from_secs(300), 12);
        let c = &q["counts"];
        let _ = write!(
            rows,
            "<tr><td><a href=\"jobs?queue={}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&seg(name)),
            esc(name),
            if q["paused"].as_bool() == Some(true) {
                "paused"
            } else {
                ""
            },
            cell(&c["available"]),
            cell(&c["running"]),
            c["scheduled"].as_u64().unwrap_or(0) + c["retryable"].as_u64().unwrap_or(0),
            cell(&c["completed"]),
            cell(&c["discarded"]),
            cell(&q["oldest_available_at"]),
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
    let services = d.get("/v1/services").await?;
    main.push_str(&section(
        "Services",
        &table(
            list(&services, "services"),
            &[
                "service",
                "instance",
                "state",
                "pid",
                "restarts",
                "cpu_percent",
                "rss_bytes",
            ],
            None,
            |_| String::new(),
        ),
    ));
    let schedules = d.get("/v1/schedules").await?;
    main.push_str(&section(
        "Schedules",
        &table(
            list(&schedules, "schedules"),
            &["name", "cron", "next_at", "paused", "target"],
            None,
            |_| String::new(),
        ),
    ));
    let failures = d.get("/v1/jobs?state=discarded&limit=5").await?;
    main.push_str(&section(
        "Recent failures",
        &jobs_table(list(&failures, "jobs")),
    ));
    let events = d.get("/v1/events?limit=10").await?;
    main.push_str(&section(
        "Recent events",
        &table(
            list(&events, "events"),
            &["at", "source", "subject", "instance", "kind", "message"],
            None,
            |_| String::new(),
        ),
    ));
    Ok(page("Overview", main))
}

/// The buttons a job in `state` offers.
fn job_actions(id: i64, state: &str) -> String {
    let mut out = String::new();
    let path = |action: &str| format!("/v1/jobs/{id}/{action}");
    if !matches!(state, "running" | "available" | "pending") {
        out.push_str(&button("retry", "POST", &path("retry"), None));
    }
    if matches!(
        state,
        "available" | "scheduled" | "retryable" | "running" | "pending"
    ) {
        out.push_str(&button("cancel", "POST", &path("cancel"), None));
        out.push_str(&button(
            "discard",
            "POST",
            &path("discard"),
            Some("Discard this job? It will not run again."),
        ));
    }
    if state != "running" {
        out.push_str(&button(
            "delete",
            "DELETE",
            &format!("/v1/jobs/{id}"),
            Some("Delete this job and its record?"),
        ));
    }
    out
}

fn jobs_table(jobs: &[Value]) -> String {
    table(
        jobs,
        &[
            "id",
            "queue",
            "kind",
            "state",
            "attempt",
            "max_attempts",
            "created_at",
            "args",
        ],
        Some(("id", "jobs/")),
        |j| {
            job_actions(
                j["id"].as_i64().unwrap_or(0),
                j["state"].as_str().unwrap_or(""),
            )
        },
    )
}

async fn jobs(d: &Dashboard, q: &[(String, String)]) -> Result<Page, Failure> {
    let (queue, state, kind, tag, before) = (
        param(q, "queue"),
        param(q, "state"),
        param(q, "kind"),
        param(q, "tag"),
        param(q, "before"),
    );
    let filter = encode(&[
        ("queue", queue),
        ("state", state),
        ("kind", kind),
        ("tag", tag),
        ("before", before),
        ("limit", "50"),
    ]);
    let answer = d.get(&format!("/v1/jobs?{filter}")).await?;
    let mut top = String::from("<form class=\"filters\" method=\"get\" action=\"jobs\">");
    for (key, value) in [("queue", queue), ("kind", kind), ("tag", tag)] {
        let _ = write!(
            top,
            "<label>{key} <input name=\"{key}\" value=\"{}\"></label>",
            esc(value)
        );
    }
    top.push_str("<label>state <select name=\"state\"><option value=\"\">any</option>");
    for s in STATES {
        let _ = write!(
            top,
            "<option{}>{s}</option>",
            if *s == state { " selected" } else { "" }
        );
    }
    top.push_str("</select></label><button type=\"submit\">show</button></form>");
    // The same actions on every job the filter takes (up to 10,000 at a time).
    if [queue, state, kind, tag].iter().any(|v| !v.is_empty()) {
        let filter = serde_json::json!({
            "queue": (!queue.is_empty()).then_some(queue),
            "state": (!state.is_empty()).then_some(state),
            "kind": (!kind.is_empty()).then_some(kind),
            "tag": (!tag.is_empty()).then_some(tag),
        });
        top.push_str("<p class=\"actions bulk\">All jobs this filter shows: ");
        for action in ["retry", "cancel", "discard", "delete"] {
            let mut body = filter.clone();
            body["action"] = action.into();
            top.push_str(&super::html::body_button(
                &format!("{action} all"),
                "/v1/jobs/actions",
                &body.to_string(),
                &format!("{action} every job this filter shows (up to 10,000)?"),
            ));
        }
        top.push_str("</p>");
    }
    let mut main = jobs_table(list(&answer, "jobs"));
    if let Some(next) = answer["next_before"].as_i64() {
        let more = encode(&[
            ("queue", queue),
            ("state", state),
            ("kind", kind),
            ("tag", tag),
            ("before", &next.to_string()),
        ]);
        let _ = write!(
            main,
            "<p class=\"pager\"><a href=\"jobs?{}\">older jobs →</a></p>",
            esc(&more)
        );
    }
    Ok(Page {
        title: "Jobs".into(),
        top,
        main,
    })
}

async fn job(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let j = d.get(&format!("/v1/jobs/{}", seg(id))).await?;
    let state = j["state"].as_str().unwrap_or_default();
    let mut main = format!(
        "<p class=\"actions\"><span class=\"state state-{}\">{}</span> {}</p>",
        esc(state),
        esc(state),
        job_actions(j["id"].as_i64().unwrap_or(0), state)
    );
    main.push_str(&fields(&j, &["args", "errors", "result", "output"]));
    main.push_str(&section("Arguments", &pre_json(&j["args"])));
    if !j["result"].is_null() {
        main.push_str(&section("Result", &pre_json(&j["result"])));
    }
    if let Some(out) = j["output"].as_str() {
        main.push_str(&section("Output", &format!("<pre>{}</pre>", esc(out))));
    }
    let mut attempts = String::new();
    for e in list(&j, "errors").iter().rev() {
        let _ = write!(
            attempts,
            "<article class=\"attempt\"><h3>attempt {} · {}</h3><pre class=\"error\">{}</pre>{}</article>",
            cell(&e["attempt"]),
            cell(&e["at"]),
            esc(e["error"].as_str().unwrap_or_default()),
            e["output"]
                .as_str()
                .map(|o| format!("<pre>{}</pre>", esc(o)))
                .unwrap_or_default()
        );
    }
    if !attempts.is_empty() {
        main.push_str(&section("Failed attempts", &attempts));
    }
    Ok(page(format!("Job {id}"), main))
}

async fn queues(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/queues").await?;
    let mut rows: Vec<Value> = Vec::new();
    for q in list(&answer, "queues") {
        let mut row = serde_json::json!({
            "name": q["name"],
            "paused": q["paused"],
            "oldest_available_age_secs": q["oldest_available_age_secs"],
        });
        for s in STATES {
            row[*s] = q["counts"][*s].clone();
        }
        rows.push(row);
    }
    let mut columns = vec!["name", "paused"];
    columns.extend_from_slice(STATES);
    columns.push("oldest_available_age_secs");
    let main = table(&rows, &columns, None, |q| {
        let name = seg(q["name"].as_str().unwrap_or_default());
        if q["paused"].as_bool() == Some(true) {
            button("resume", "POST", &format!("/v1/queues/{name}/resume"), None)
        } else {
            button("pause", "POST", &format!("/v1/queues/{name}/pause"), None)
        }
    });
    Ok(page("Queues", main))
}

async fn schedules(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/schedules").await?;
    let main = table(
        list(&answer, "schedules"),
        &[
            "name", "cron", "timezone", "target", "next_at", "last", "skipped", "paused",
        ],
        None,
        |s| {
            let name = seg(s["name"].as_str().unwrap_or_default());
            let mut out = button(
                "run now",
                "POST",
                &format!("/v1/schedules/{name}/run"),
                None,
            );
            out.push_str(&if s["paused"].as_bool() == Some(true) {
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
        },
    );
    Ok(page("Schedules", main))
}

async fn batches(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/batches").await?;
    let main = table(
        list(&answer, "batches"),
        &[],
        Some(("id", "batches/")),
        |_| String::new(),
    );
    Ok(page("Batches", main))
}

async fn batch(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let b = d.get(&format!("/v1/batches/{}", seg(id))).await?;
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
    main.push_str(&fields(&b, &[]));
    Ok(page(format!("Batch {id}"), main))
}

async fn workflows(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/workflows").await?;
    let main = table(
        list(&answer, "workflows"),
        &[],
        Some(("id", "workflows/")),
        |_| String::new(),
    );
    Ok(page("Workflows", main))
}

async fn workflow(d: &Dashboard, id: &str) -> Result<Page, Failure> {
    let w = d.get(&format!("/v1/workflows/{}", seg(id))).await?;
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
    main.push_str(&fields(&w, &["steps", "args"]));
    // The steps in their order, each with its state, its job, result and error.
    let steps: Vec<Value> = match &w["steps"] {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                if v.get("name").is_none() {
                    v["name"] = Value::String(k.clone());
                }
                v
            })
            .collect(),
        _ => Vec::new(),
    };
    main.push_str(&section(
        "Steps",
        &table(&steps, &[], Some(("job_id", "jobs/")), |_| String::new()),
    ));
    if !w["args"].is_null() {
        main.push_str(&section("Arguments", &pre_json(&w["args"])));
    }
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

const INSTANCE_COLUMNS: &[&str] = &[
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

async fn services(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/services").await?;
    let all = list(&answer, "services");
    let mut names: Vec<&str> = all.iter().filter_map(|s| s["service"].as_str()).collect();
    names.dedup();
    let mut main = String::new();
    for name in names {
        let instances: Vec<Value> = all
            .iter()
            .filter(|s| s["service"].as_str() == Some(name))
            .cloned()
            .collect();
        let _ = write!(
            main,
            "<section><h2><a href=\"services/{}\">{}</a></h2><p class=\"actions\">{}</p>{}{}</section>",
            esc(&seg(name)),
            esc(name),
            service_actions(name),
            table(&instances, INSTANCE_COLUMNS, None, |_| String::new()),
            history(d, name)
        );
    }
    if main.is_empty() {
        main.push_str("<p class=\"dim\">no [service.NAME] in the config</p>");
    }
    Ok(page("Services", main))
}

async fn service(d: &Dashboard, name: &str) -> Result<Page, Failure> {
    let answer = d.get("/v1/services").await?;
    let instances: Vec<Value> = list(&answer, "services")
        .iter()
        .filter(|s| s["service"].as_str() == Some(name))
        .cloned()
        .collect();
    let logs = d
        .get(&format!("/v1/services/{}/logs?lines=200", seg(name)))
        .await?;
    let mut tail = String::new();
    for l in list(&logs, "lines") {
        let _ = writeln!(
            tail,
            "[{}] {}",
            cell(&l["instance"]),
            esc(l["line"].as_str().unwrap_or_default())
        );
    }
    let main = format!(
        "<p class=\"actions\">{}</p>{}{}{}",
        service_actions(name),
        table(&instances, INSTANCE_COLUMNS, None, |_| String::new()),
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

async fn gateway(d: &Dashboard) -> Result<Page, Failure> {
    let g = d.get("/v1/gateway").await?;
    let mut main = fields(&g, &["routes"]);
    main.push_str(&section(
        "Routes",
        &table(list(&g, "routes"), &[], None, |_| String::new()),
    ));
    let budgets = d.get("/v1/budgets").await?;
    main.push_str(&section(
        "Budgets",
        &table(
            list(&budgets, "budgets"),
            &[
                "name",
                "spent",
                "limit",
                "cost_per_request",
                "period",
                "period_start",
                "resets_at",
            ],
            None,
            |b| {
                let name = b["name"].as_str().unwrap_or_default();
                button(
                    "reset",
                    "POST",
                    &format!("/v1/budgets/{}/reset", seg(name)),
                    Some(&format!("Start budget {name} over, with nothing spent?")),
                )
            },
        ),
    ));
    let m = d.get("/v1/maintenance").await?;
    let maintenance = if m["maintenance"].as_bool() == Some(true) {
        format!(
            "<p><strong>On</strong> since {}: {} {}</p>",
            cell(&m["setting"]["since"]),
            cell(&m["setting"]["message"]),
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
    let answer = d.get(&format!("/v1/messages?{filter}")).await?;
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
    let rows: Vec<Value> = list(&answer, "messages")
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m["payload_text"] = Value::String(cut(m["payload_text"].as_str().unwrap_or(""), 120));
            m
        })
        .collect();
    let mut main = table(
        &rows,
        &[
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
        ],
        None,
        |m| {
            if m["dead"].as_bool() == Some(true) {
                button(
                    "replay",
                    "POST",
                    &format!("/v1/messages/{}/replay", m["id"].as_i64().unwrap_or(0)),
                    None,
                )
            } else {
                String::new()
            }
        },
    );
    if let Some(next) = answer["next_before"].as_i64() {
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

async fn notifications(d: &Dashboard) -> Result<Page, Failure> {
    let answer = d.get("/v1/notifications").await?;
    let main = table(list(&answer, "notifications"), &[], None, |_| String::new());
    Ok(page("Notification outbox", main))
}

async fn events(d: &Dashboard, q: &[(String, String)]) -> Result<Page, Failure> {
    let source = param(q, "source");
    let answer = d
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
    let main = table(
        list(&answer, "events"),
        &[
            "at", "node", "source", "subject", "instance", "kind", "message",
        ],
        None,
        |_| String::new(),
    );
    Ok(Page {
        title: "Events".into(),
        top,
        main,
    })
}

async fn releases(d: &Dashboard) -> Result<Page, Failure> {
    let main = match d.get("/v1/releases").await {
        Ok(answer) => table(list(&answer, "releases"), &[], None, |_| String::new()),
        // No [deploy] in the config: nothing to list, which is no error.
        Err(f) if f.status == StatusCode::CONFLICT || f.status == StatusCode::NOT_FOUND => {
            format!("<p class=\"dim\">{}</p>", esc(&f.message))
        }
        Err(f) => return Err(f),
    };
    Ok(page("Releases", main))
}
