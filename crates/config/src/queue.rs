//! The `[queue.NAME]` tables: their keys, their validated types and defaults, and the
//! rules that read them (a workflow step shares a queue's settings).

use std::collections::BTreeMap;
use std::time::Duration;

use toml::de::DeValue;

use crate::diagnostic::Diagnostics;
use crate::section::{Invalid, Section};

/// The accepted forms of `handler`, for messages.
const HANDLER_FORMS: &str =
    "\"pull\", { run = \"a shell command\" } or { post = \"http://host:port/path\" }";

/// One `[queue.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// The table key: lowercase letters, digits, `_` and `-`, at most 64 characters.
    pub name: String,
    /// `concurrency` (default 10, 1..=10000): jobs of this queue running at once on one node.
    pub concurrency: u32,
    /// `handler` (default pull): how a job reaches the application's code.
    pub handler: Handler,
    /// `max_attempts` (default 25, 1..=1000): attempts before a job is discarded.
    pub max_attempts: u32,
    /// `backoff`: the delay between attempts.
    pub backoff: Backoff,
    /// `timeout` (default 30m): how long one attempt may run.
    pub timeout: Duration,
    /// `retention`: how long finished jobs are kept before they are pruned.
    pub retention: Retention,
}

impl QueueConfig {
    /// A queue called `name` with every option at its default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 10,
            handler: Handler::Pull,
            max_attempts: 25,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(30 * 60),
            retention: Retention::default(),
        }
    }
}

/// `handler`: how a job reaches the application's code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Handler {
    /// `handler = { run = "python3 manage.py import {args.file}" }`: one process
    /// per job, started with `sh -c`.
    Run {
        /// The shell command, non-empty.
        command: String,
    },
    /// `handler = { post = "http://127.0.0.1:8000/jobs" }`: an HTTP POST per job.
    Post {
        /// An `http://` URL with a host, kept as written.
        url: String,
    },
    /// `handler = "pull"` or no handler: long-lived workers lease jobs over the API.
    #[default]
    Pull,
}

/// `backoff = { initial = "1s", max = "1h", factor = 2.0, jitter = 0.1 }`:
/// exponential delay between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure (default 1s, > 0).
    pub initial: Duration,
    /// Longest delay (default 1h, >= `initial`).
    pub max: Duration,
    /// Growth per further failure (default 2.0, finite and >= 1.0).
    pub factor: f64,
    /// Fraction of the delay randomly added or removed (default 0.1, 0.0..=1.0),
    /// so that jobs that failed together do not all retry together.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60 * 60),
            factor: 2.0,
            jitter: 0.1,
        }
    }
}

/// `retention = { completed = "1d", discarded = "7d", cancelled = "7d" }`:
/// how long finished jobs are kept before they are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Completed jobs (default 24h).
    pub completed: Duration,
    /// Discarded jobs, that ran out of attempts (default 7 days).
    pub discarded: Duration,
    /// Cancelled jobs (default 7 days).
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            completed: Duration::from_secs(DAY),
            discarded: Duration::from_secs(7 * DAY),
            cancelled: Duration::from_secs(7 * DAY),
        }
    }
}

pub(crate) fn queues(
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> BTreeMap<String, QueueConfig> {
    let mut queues = BTreeMap::new();
    for (name, table) in section.named_tables("queue", "emails", d) {
        queues.insert(name.to_owned(), queue(name, &table, d));
    }
    queues
}

fn queue(name: &str, section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> QueueConfig {
    let queue = queue_settings(QueueConfig::new(name), section, d);
    section.finish(d);
    queue
}

/// The settings a queue shares with a workflow step (the caller finishes the table).
pub(crate) fn queue_settings(
    mut queue: QueueConfig,
    section: &Section<'_, '_>,
    d: &mut Diagnostics<'_>,
) -> QueueConfig {
    // The ranges fit in a u32, so the conversions cannot fail.
    if let Some(n) = section.integer("concurrency", 1..=10_000, d) {
        queue.concurrency = u32::try_from(n).unwrap_or(queue.concurrency);
    }
    queue.handler = handler(section, d);
    if let Some(n) = section.integer("max_attempts", 1..=1_000, d) {
        queue.max_attempts = u32::try_from(n).unwrap_or(queue.max_attempts);
    }
    let backoff_form = "a table such as backoff = { initial = \"1s\", max = \"1h\" }";
    if let Some(table) = section.table("backoff", backoff_form, d) {
        queue.backoff = backoff(&table, d);
    }
    if let Some(timeout) = section.duration("timeout", false, d) {
        queue.timeout = timeout;
    }
    let retention_form = "a table such as retention = { completed = \"1d\" }";
    if let Some(table) = section.table("retention", retention_form, d) {
        queue.retention = retention(&table, d);
    }
    queue
}

fn handler(queue: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Handler {
    let Some(value) = queue.get("handler") else {
        return Handler::Pull;
    };
    match value.get_ref() {
        DeValue::String(_) => queue
            .string("handler", "handler", d, |handler| match handler {
                "pull" => Ok(Handler::Pull),
                _ => Err(Invalid::Expected(format!("expected {HANDLER_FORMS}"))),
            })
            .unwrap_or_default(),
        DeValue::Table(_) => {
            let Some(section) = queue.child("handler", value, HANDLER_FORMS, d) else {
                return Handler::Pull;
            };
            let (has_run, has_post) = (section.get("run").is_some(), section.get("post").is_some());
            let place = queue.place();
            if has_run && has_post {
                d.error(
                    value.span(),
                    format!(
                        "`handler` {place} has both `run` and `post`: expected exactly one of them"
                    ),
                );
            } else if section.entries().next().is_none() {
                d.error(
                    value.span(),
                    format!("empty `handler` {place}: expected {HANDLER_FORMS}"),
                );
            }
            let run = section.string("run", "command", d, |command| {
                if command.trim().is_empty() {
                    Err(Invalid::Expected(
                        "expected a shell command such as \"python3 manage.py import\"".into(),
                    ))
                } else {
                    Ok(Handler::Run {
                        command: command.to_owned(),
                    })
                }
            });
            let post = section.string("post", "URL", d, |url| {
                check_post_url(url).map(|()| Handler::Post {
                    url: url.to_owned(),
                })
            });
            section.finish(d);
            run.or(post).unwrap_or_default()
        }
        _ => {
            queue.wrong_type("handler", value, HANDLER_FORMS, d);
            Handler::Pull
        }
    }
}

/// An `http://` URL with a host and, if given, a valid port.
pub(crate) fn check_post_url(url: &str) -> Result<(), Invalid> {
    const EXPECTED: &str = "expected an http:// URL such as \"http://127.0.0.1:8000/jobs\"";
    if url.starts_with("https://") {
        return Err(Invalid::Expected(format!(
            "https is not supported yet for `post` handlers; {EXPECTED}"
        )));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Invalid::Expected(EXPECTED.into()));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Drop any user:password@ before the host.
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match host_port.strip_prefix('[') {
        // [::1]:8000
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err(Invalid::Expected(EXPECTED.into())),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok());
    if host.is_empty() || !port_ok {
        return Err(Invalid::Expected(EXPECTED.into()));
    }
    Ok(())
}

fn backoff(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Backoff {
    let mut backoff = Backoff::default();
    (backoff.initial, backoff.max) = initial_and_max(section, backoff.initial, backoff.max, d);
    if let Some(factor) = backoff_factor(section, d) {
        backoff.factor = factor;
    }
    if let Some(jitter) = section.number(
        "jitter",
        "a number from 0.0 to 1.0, such as 0.1",
        |j| (0.0..=1.0).contains(&j),
        d,
    ) {
        backoff.jitter = jitter;
    }
    section.finish(d);
    backoff
}

/// `initial` (> 0) and `max` (>= `initial`) of a backoff table, each falling
/// back to its default.
pub(crate) fn initial_and_max(
    section: &Section<'_, '_>,
    default_initial: Duration,
    default_max: Duration,
    d: &mut Diagnostics<'_>,
) -> (Duration, Duration) {
    let initial = section.duration("initial", false, d);
    let max = section.duration("max", true, d);
    let (initial_value, max_value) = (
        initial.unwrap_or(default_initial),
        max.unwrap_or(default_max),
    );
    // Only compare what the user wrote (or valid defaults); a bad value was
    // reported already and would only add noise here.
    let initial_bad = section.get("initial").is_some() && initial.is_none();
    let max_bad = section.get("max").is_some() && max.is_none();
    if !initial_bad && !max_bad && max_value < initial_value {
        // Point at `max` when written, else at the `initial` that outgrew the default `max`.
        let span = section
            .get("max")
            .or_else(|| section.get("initial"))
            .map_or_else(|| section.span(), |value| value.span());
        d.error(
            span,
            format!(
                "invalid backoff {}: `max` ({}) is shorter than `initial` ({}); expected `max` \
                 to be at least `initial`",
                section.place(),
                humantime::format_duration(max_value),
                humantime::format_duration(initial_value),
            ),
        );
    }
    (initial_value, max_value)
}

/// `factor` of a backoff table: finite and at least 1.
pub(crate) fn backoff_factor(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Option<f64> {
    section.number(
        "factor",
        "a number of at least 1.0, such as 2.0",
        |f| f.is_finite() && f >= 1.0,
        d,
    )
}

fn retention(section: &Section<'_, '_>, d: &mut Diagnostics<'_>) -> Retention {
    let mut retention = Retention::default();
    if let Some(completed) = section.duration("completed", true, d) {
        retention.completed = completed;
    }
    if let Some(discarded) = section.duration("discarded", true, d) {
        retention.discarded = discarded;
    }
    if let Some(cancelled) = section.duration("cancelled", true, d) {
        retention.cancelled = cancelled;
    }
    section.finish(d);
    retention
}
