//! `berth bench`: measures the queue on this machine with durable commits, and prints one
//! comparable table (or JSON).
//!
//! Cases:
//! - `enqueue`: bulk insert of no-op jobs, in batches;
//! - `burn-inproc`: burn-down of pre-inserted jobs through an in-process no-op handler;
//! - `burn-post`: the same through the `post` handler to a minimal local HTTP server;
//! - `burn-run`: the same through the `run` handler of a trivial command (`true`);
//! - `pickup`: latency from enqueue to the handler starting, on an idle queue.
//!
//! Each case gets a fresh database in a temporary directory under `--dir` (default: the
//! current directory, so that fsync hits the same disk berth would use; `/tmp` is often
//! a RAM disk).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use berth_queue::handler::func::FnHandler;
use berth_queue::{
    Enqueue, Handler, HandlerOutcome, HandlerSpec, QueueSpec, Queues, Runtime, RuntimeOptions,
    SystemClock,
};
use berth_store::{
    JobState, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store, Timestamp,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Ctx;
use crate::output;
use berth_store::JobStore;

/// `berth bench` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Jobs per enqueue and in-process burn-down run.
    #[arg(long, default_value_t = 200_000)]
    jobs: usize,
    /// Jobs for the `post` burn-down.
    #[arg(long, default_value_t = 100_000)]
    post_jobs: usize,
    /// Jobs for the `run` burn-down (a process each).
    #[arg(long, default_value_t = 2_000)]
    run_jobs: usize,
    /// Samples for the pickup latency.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Only these cases (comma separated: enqueue, burn-inproc, burn-post, burn-run, pickup).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the temporary databases go (default: the current directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// SQLite durability: full (the default, as `berth up` runs) or normal.
    #[arg(long, default_value = "full")]
    durability: String,
    /// Measure a PostgreSQL store at this URL instead of the embedded one (its berth
    /// jobs are deleted first; use a database of its own).
    #[arg(long, env = "BERTH_BENCH_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Nodes sharing the store in the in-process burn-down (PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Concurrency per node of the in-process burn-down.
    #[arg(long, default_value_t = 1000)]
    concurrency: u32,
}

struct Row {
    case: &'static str,
    jobs: usize,
    secs: f64,
    rate: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    target: &'static str,
    met: bool,
}

/// Runs the benchmarks.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()?,
    };
    let durable = match args.durability.as_str() {
        "full" => true,
        "normal" => false,
        other => {
            return Err(crate::exit::UsageError(format!(
                "--durability {other:?}: expected full or normal"
            ))
            .into());
        }
    };
    let known = ["enqueue", "burn-inproc", "burn-post", "burn-run", "pickup"];
    for o in &args.only {
        if !known.contains(&o.as_str()) {
            return Err(crate::exit::UsageError(format!(
                "--only {o:?}: expected some of {}",
                known.join(", ")
            ))
            .into());
        }
    }
    let want = |c: &str| args.only.is_empty() || args.only.iter().any(|o| o == c);
    if args.nodes == 0 || (args.nodes > 1 && args.store.is_none()) {
        return Err(crate::exit::UsageError(
            "--nodes: several nodes need a shared PostgreSQL store (--store postgres://…)".into(),
        )
        .into());
    }
    let env = Env {
        base,
        durable,
        postgres: args.store.clone(),
        nodes: args.nodes,
    };
    let mut rows = Vec::new();
    if want("enqueue") {
        rows.push(enqueue(&env, args.jobs).await?);
    }
    if want("burn-inproc") {
        let h: Arc<dyn Handler> = Arc::new(FnHandler::noop());
        let r = burn(
            &env,
            "burn-inproc",
            args.jobs,
            args.concurrency,
            h,
            HandlerSpec::Pull,
        )
        .await?;
        // Issue 2's bar for the embedded store; issue 3's for PostgreSQL (1.5× with two
        // nodes).
        let (target, bar) = match (&env.postgres, env.nodes) {
            (None, _) => ("≥ 50,000/s", 50_000.0),
            (Some(_), 1) => ("≥ 20,000/s", 20_000.0),
            (Some(_), _) => ("≥ 30,000/s", 30_000.0),
        };
        rows.push(Row {
            target,
            met: r.rate.unwrap_or(0.0) >= bar,
            ..r
        });
    }
    if want("burn-post") {
        let addr = start_http_server().await?;
        let spec = HandlerSpec::Post {
            url: format!("http://{addr}/jobs"),
        };
        let h = configured(&spec)?;
        let r = burn(&env, "burn-post", args.post_jobs, 256, h, spec).await?;
        rows.push(Row {
            target: "≥ 15,000/s",
            met: r.rate.unwrap_or(0.0) >= 15_000.0,
            ..r
        });
    }
    if want("burn-run") {
        let spec = HandlerSpec::Run {
            command: "true".into(),
        };
        let h = configured(&spec)?;
        let r = burn(&env, "burn-run", args.run_jobs, 16, h, spec).await?;
        rows.push(Row {
            target: "(no target)",
            met: true,
            ..r
        });
    }
    if want("pickup") {
        rows.push(pickup(&env, args.samples).await?);
    }
    print(ctx, &env, &rows);
    Ok(ExitCode::SUCCESS)
}

struct Env {
    base: PathBuf,
    durable: bool,
    /// A PostgreSQL URL to measure instead of the embedded store.
    postgres: Option<String>,
    /// Nodes sharing the store in the in-process burn-down.
    nodes: usize,
}

/// Keeps a case's store alive: its temp dir (SQLite) or nothing (PostgreSQL).
type Guard = Option<tempfile::TempDir>;

impl Env {
    /// A fresh store: SQLite in its own temporary directory (removed when the guard
    /// drops), or the PostgreSQL database emptied of berth's jobs.
    async fn store(&self) -> anyhow::Result<(Arc<dyn Store>, Guard)> {
        if let Some(url) = &self.postgres {
            let store = PostgresStore::open(url, PostgresOptions::default()).await?;
            let all = JobState::ALL
                .into_iter()
                .filter(|s| *s != JobState::Running)
                .collect();
            store.purge("bench", all).await?;
            if store.count_jobs().await? > 0 {
                anyhow::bail!(
                    "the bench database holds jobs berth cannot clear (running ones?); use an empty database"
                );
            }
            return Ok((Arc::new(store), None));
        }
        let dir = tempfile::Builder::new()
            .prefix(".berth-bench-")
            .tempdir_in(&self.base)
            .with_context(|| format!("cannot make a temp dir in {}", self.base.display()))?;
        let store = SqliteStore::open(
            &dir.path().join("bench.db"),
            SqliteOptions {
                durable: self.durable,
                ..Default::default()
            },
        )?;
        Ok((Arc::new(store), Some(dir)))
    }

    /// Another connection to the same store, for a second node (PostgreSQL only).
    async fn another_node(&self) -> anyhow::Result<Arc<dyn Store>> {
        let url = self
            .postgres
            .as_ref()
            .context("several nodes need a shared PostgreSQL store (--store)")?;
        Ok(Arc::new(
            PostgresStore::open(url, PostgresOptions::default()).await?,
        ))
    }
}

fn queue(name: &str, concurrency: u32, handler: HandlerSpec) -> QueueSpec {
    QueueSpec {
        concurrency,
        ..QueueSpec::new(name, handler)
    }
}

fn noop_jobs(n: usize) -> Vec<Enqueue> {
    (0..n)
        .map(|_| Enqueue {
            queue: "bench".into(),
            kind: "noop".into(),
            args: json!({}),
            ..Default::default()
        })
        .collect()
}

const BATCH: usize = 10_000;

async fn insert_all(queues: &Queues, n: usize) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        queues.enqueue(noop_jobs(k)).await?;
        left -= k;
    }
    Ok(())
}

async fn enqueue(env: &Env, n: usize) -> anyhow::Result<Row> {
    let (store, _dir) = env.store().await?;
    let queues = Queues::new(
        store,
        Arc::new(SystemClock),
        vec![queue("bench", 1, HandlerSpec::Pull)],
    );
    errln!("enqueue: {n} jobs in batches of {BATCH}…");
    let t = Instant::now();
    insert_all(&queues, n).await?;
    let secs = t.elapsed().as_secs_f64();
    let rate = n as f64 / secs;
    Ok(Row {
        case: "enqueue",
        jobs: n,
        secs,
        rate: Some(rate),
        p50_ms: None,
        p99_ms: None,
        target: "≥ 200,000/s",
        met: rate >= 200_000.0,
    })
}

/// The handler berth would build for `spec`.
fn configured(spec: &HandlerSpec) -> anyhow::Result<Arc<dyn Handler>> {
    berth_queue::runtime::handler_for(&queue("bench", 1, spec.clone()), &[], None)?
        .context("a pull queue has no handler to measure")
}

/// Counts finished handler calls, so that the burn-down knows when to look for the last
/// commits without scanning the job table all along.
struct Counting {
    inner: Arc<dyn Handler>,
    done: Arc<AtomicUsize>,
}

impl Handler for Counting {
    fn handle(&self, job: berth_store::LeasedJob) -> berth_queue::handler::HandlerFuture {
        let fut = self.inner.handle(job);
        let done = self.done.clone();
        Box::pin(async move {
            let out = fut.await;
            done.fetch_add(1, Ordering::Relaxed);
            out
        })
    }
}

async fn burn(
    env: &Env,
    case: &'static str,
    n: usize,
    concurrency: u32,
    handler: Arc<dyn Handler>,
    spec: HandlerSpec,
) -> anyhow::Result<Row> {
    let (store, _dir) = env.store().await?;
    let queues = Queues::new(
        store,
        Arc::new(SystemClock),
        vec![queue("bench", concurrency, spec.clone())],
    );
    errln!("{case}: inserting {n} jobs…");
    insert_all(&queues, n).await?;
    let done = Arc::new(AtomicUsize::new(0));
    let counting: Arc<dyn Handler> = Arc::new(Counting {
        inner: handler,
        done: done.clone(),
    });
    // Nodes beyond the first share the store over their own connections (in this
    // process, on the same two cores).
    let nodes = if case == "burn-inproc" { env.nodes } else { 1 };
    let mut all = vec![queues.clone()];
    for i in 1..nodes {
        all.push(Queues::for_node(
            env.another_node().await?,
            Arc::new(SystemClock),
            vec![queue("bench", concurrency, spec.clone())],
            &format!("bench-node-{i}"),
        ));
    }
    errln!("{case}: burning down with {nodes} node(s) of concurrency {concurrency}…");
    let t = Instant::now();
    let mut runtimes = Vec::new();
    for q in &all {
        runtimes.push(
            Runtime::start(
                q.clone(),
                RuntimeOptions {
                    handlers: HashMap::from([("bench".to_string(), counting.clone())]),
                    ..Default::default()
                },
            )
            .await?,
        );
    }
    loop {
        // Cheap until every handler call returned; then watch for the last commits.
        let wait = if done.load(Ordering::Relaxed) < n {
            20
        } else {
            2
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if done.load(Ordering::Relaxed) < n {
            continue;
        }
        let stats = queues.stats().await?;
        let done = stats
            .iter()
            .find(|s| s.name == "bench")
            .map(|s| s.counts[&JobState::Completed])
            .unwrap_or(0);
        if done as usize >= n {
            break;
        }
        let failed = stats
            .iter()
            .map(|s| s.counts[&JobState::Retryable] + s.counts[&JobState::Discarded])
            .sum::<u64>();
        if failed > 0 {
            anyhow::bail!("{case}: {failed} jobs failed");
        }
    }
    let secs = t.elapsed().as_secs_f64();
    for rt in runtimes {
        rt.stop().await;
    }
    Ok(Row {
        case,
        jobs: n,
        secs,
        rate: Some(n as f64 / secs),
        p50_ms: None,
        p99_ms: None,
        target: "",
        met: true,
    })
}

async fn pickup(env: &Env, samples: usize) -> anyhow::Result<Row> {
    let (store, _dir) = env.store().await?;
    let queues = Queues::new(
        store,
        Arc::new(SystemClock),
        vec![queue("bench", 4, HandlerSpec::Pull)],
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let h: Arc<dyn Handler> = Arc::new(FnHandler::new(move |_| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Instant::now());
            HandlerOutcome::Completed {
                result: None,
                output: None,
            }
        }
    }));
    let rt = Runtime::start(
        queues.clone(),
        RuntimeOptions {
            handlers: HashMap::from([("bench".to_string(), h)]),
            ..Default::default()
        },
    )
    .await?;
    errln!("pickup: {samples} jobs pushed one at a time onto an idle queue…");
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Let the executor go idle (waiting for a wake-up) before each push.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let t = Instant::now();
        queues.enqueue(noop_jobs(1)).await?;
        let started = rx.recv().await.context("the handler stopped")?;
        lat.push(started.duration_since(t).as_secs_f64() * 1000.0);
    }
    rt.stop().await;
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    let (p50, p99) = (pct(0.50), pct(0.99));
    Ok(Row {
        case: "pickup",
        jobs: samples,
        secs: 0.0,
        rate: None,
        p50_ms: Some(p50),
        p99_ms: Some(p99),
        target: "p50 ≤ 5 ms",
        met: p50 <= 5.0,
    })
}

/// A minimal HTTP server answering `200 {}` to every request, on its own thread and
/// runtime so that it does not share berth's.
async fn start_http_server() -> anyhow::Result<SocketAddr> {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    std::thread::Builder::new()
        .name("bench-http".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("bench http runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).expect("bench listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(async move {
                        let svc = service_fn(|_req| async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                            ))
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(addr)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} cores, {cpu}")
}

fn print(ctx: &Ctx, env: &Env, rows: &[Row]) {
    let durability = if env.durable { "full" } else { "normal" };
    if ctx.json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "case": r.case, "jobs": r.jobs, "secs": r.secs, "jobs_per_sec": r.rate,
                    "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "target": r.target, "met": r.met,
                })
            })
            .collect();
        output::json(&json!({
            "date": Timestamp::now(), "machine": machine(), "durability": durability,
            "store": if env.postgres.is_some() { "postgres" } else { "sqlite" }, "nodes": env.nodes,
            "version": env!("CARGO_PKG_VERSION"), "results": v,
        }));
        return;
    }
    let store = match &env.postgres {
        Some(_) => format!("PostgreSQL, {} node(s)", env.nodes),
        None => format!("SQLite synchronous={}", durability.to_uppercase()),
    };
    outln!(
        "berth {} bench — {} — {} — {store}",
        env!("CARGO_PKG_VERSION"),
        Timestamp::now(),
        machine(),
    );
    let fmt = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or("-".into());
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.case.to_string(),
                r.jobs.to_string(),
                if r.secs > 0.0 {
                    format!("{:.2}", r.secs)
                } else {
                    "-".into()
                },
                fmt(r.rate, 0),
                fmt(r.p50_ms, 2),
                fmt(r.p99_ms, 2),
                r.target.to_string(),
                if r.met { "yes" } else { "NO" }.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "CASE", "JOBS", "SECONDS", "JOBS/S", "P50 MS", "P99 MS", "TARGET", "MET",
        ],
        &table,
    );
}
