//! `berth start|stop|restart NAME`, `berth signal NAME SIG`, `berth reload` and
//! `berth events [SERVICE]`: steering the services of a running berth.

use std::process::ExitCode;

use berth_api::types::{
    EventList, EventRecord, ReloadReport, ServiceInstances, SignalBody, Signalled,
};

use super::{Ctx, encode};
use crate::commands::ps;
use crate::output;
use crate::output::time;
use berth_api::types::NoBody;

/// `berth events` arguments.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Only this service's events.
    service: Option<String>,
    /// Only these kinds, comma-separated: started, ready, unhealthy, exited, restarting,
    /// crashloop, stopped.
    #[arg(long)]
    kind: Option<String>,
    /// Only events since this long ago ("1h") or this time ("2026-11-22T10:00:00Z").
    #[arg(long)]
    since: Option<String>,
    /// At most this many, the newest (1 to 10000).
    #[arg(short = 'n', long = "lines", default_value_t = 50)]
    lines: u32,
    /// Whose events: service (the default), deploy, backup, ingest, job, workflow,
    /// batch, budget, or all.
    #[arg(long, default_value = "service")]
    source: String,
}

/// What to do to a service.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// Start the instances that are not running (clears a crash loop).
    Start,
    /// Stop every instance: stop signal, grace period, SIGKILL.
    Stop,
    /// Rolling restart: one instance at a time, each new one ready before going on.
    Restart,
}

/// Runs `action` on the service `name` and prints its instances afterwards.
pub async fn act(ctx: &Ctx, name: &str, action: Action) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let verb = match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
    };
    if !ctx.json && matches!(action, Action::Restart) {
        errln!("restarting {name}, one instance at a time…");
    }
    let v: ServiceInstances = client
        .post(&format!("/v1/services/{}/{verb}", encode(name)), &NoBody {})
        .await?;
    if ctx.json {
        output::json(&v);
    } else {
        ps::print(&v.instances);
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth signal NAME SIG`.
pub async fn signal(ctx: &Ctx, name: &str, signal: &str) -> anyhow::Result<ExitCode> {
    let v: Signalled = ctx
        .client()?
        .post(
            &format!("/v1/services/{}/signal", encode(name)),
            &SignalBody {
                signal: signal.to_owned(),
            },
        )
        .await?;
    if ctx.json {
        output::json(&v);
    } else {
        outln!("sent {} to every running instance of {name}", v.signal);
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth reload`: exits 0 only when everything in the file now runs; 1 when a service
/// or an ingest failed to change or a section needs a restart of berth (both listed).
pub async fn reload(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let v: ReloadReport = ctx.client()?.post("/v1/reload", &NoBody {}).await?;
    let (failed, later) = (&v.failed, &v.not_applied);
    let code = if failed.is_empty() && later.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if ctx.json {
        output::json(&v);
        return Ok(code);
    }
    let list = |names: &[String]| -> String {
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    outln!("services started:   {}", list(&v.added));
    outln!("services restarted: {}", list(&v.restarted));
    outln!("services stopped:   {}", list(&v.removed));
    outln!("services unchanged: {}", list(&v.unchanged));
    outln!("applied:            {}", list(&v.applied));
    for f in failed {
        let what = match (&f.service, &f.section) {
            (Some(service), _) => format!("service {service}"),
            (None, section) => section.as_deref().unwrap_or("-").to_owned(),
        };
        outln!("failed:             {what}: {}", f.error);
    }
    for l in later {
        outln!("needs a restart:    {l}");
    }
    if !later.is_empty() {
        errln!(
            "some changes take effect only when berth restarts (see above); everything else is applied"
        );
    }
    Ok(code)
}

/// `berth events [SERVICE]`: newest last, like a log.
pub async fn events(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.lines)];
    if args.source != "all" {
        query.push(format!("source={}", encode(&args.source)));
    }
    if let Some(s) = &args.service {
        query.push(format!("subject={}", encode(s)));
    }
    if let Some(k) = &args.kind {
        query.push(format!("kind={}", encode(k)));
    }
    if let Some(s) = &args.since {
        query.push(format!("since={}", encode(s)));
    }
    let v: EventList = ctx
        .client()?
        .get(&format!("/v1/events?{}", query.join("&")))
        .await?;
    if ctx.json {
        output::json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    if v.events.is_empty() {
        outln!("no events");
    }
    for e in v.events.iter().rev() {
        outln!("{}", line(e));
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-22T10:00:00.123456Z web[0] exited: exited with code 1`.
fn line(e: &EventRecord) -> String {
    let e = &e.event;
    let instance = e.instance.map(|i| format!("[{i}]")).unwrap_or_default();
    let source = match e.source.as_str() {
        "service" => String::new(),
        s => format!("{s} "),
    };
    format!(
        "{} {source}{}{instance} {}: {}",
        time(e.at),
        e.subject,
        e.kind,
        e.message
    )
}
