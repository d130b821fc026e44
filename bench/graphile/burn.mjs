#!/usr/bin/env node
// Burn-down benchmark of graphile-worker, measured the way `berth bench` measures
// berth: insert N no-op jobs first (timed separately as "enqueue"), then start the
// worker process(es) and time from their start until every job has succeeded and
// its completion is committed (graphile-worker deletes a job row on success, so
// "done" is: every worker reported N successes in total AND the jobs table is empty).
//
//   node burn.mjs --url postgres://user@host:port/db --jobs 100000 --workers 1 --concurrency 24
//
// Prints one line of JSON on stdout; progress and diagnostics go to stderr.
// See README.md beside this file.

import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const SELF = fileURLToPath(import.meta.url);
const SCHEMA = "graphile_worker";

function usage(msg) {
  if (msg) console.error(`burn.mjs: ${msg}`);
  console.error(
    `usage: node burn.mjs --url postgres://... [--jobs 100000] [--workers 1] [--concurrency 24]
                     [--pool N (default concurrency+2)] [--poll-interval 1000]
                     [--batch 10000] [--local-queue 0] [--complete-batch-delay -1]
                     [--timeout 600]`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    url: process.env.DATABASE_URL,
    jobs: 100000,
    workers: 1,
    concurrency: 24,
    pool: undefined,
    pollInterval: 1000,
    batch: 10000,
    localQueue: 0,
    completeBatchDelay: -1,
    timeout: 600,
  };
  const ints = {
    "--jobs": "jobs",
    "--workers": "workers",
    "--concurrency": "concurrency",
    "--pool": "pool",
    "--poll-interval": "pollInterval",
    "--batch": "batch",
    "--local-queue": "localQueue",
    "--complete-batch-delay": "completeBatchDelay",
    "--timeout": "timeout",
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") usage();
    const [k, inline] = a.includes("=") ? a.split(/=(.*)/s, 2) : [a, undefined];
    const v = inline ?? argv[++i];
    if (v === undefined) usage(`missing value for ${k}`);
    if (k === "--url") o.url = v;
    else if (k in ints) {
      const n = Number(v);
      if (!Number.isInteger(n)) usage(`${k} wants an integer, got ${v}`);
      o[ints[k]] = n;
    } else usage(`unknown option ${k}`);
  }
  if (!o.url) usage("--url (or DATABASE_URL) is required");
  if (o.jobs < 1 || o.workers < 1 || o.concurrency < 1 || o.batch < 1) usage("counts must be >= 1");
  o.pool ??= o.concurrency + 2;
  return o;
}

// graphile-worker's package "exports" hides package.json; find it beside dist/.
function graphileVersion() {
  const entry = fileURLToPath(import.meta.resolve("graphile-worker"));
  return JSON.parse(readFileSync(join(dirname(entry), "..", "package.json"), "utf8")).version;
}

// Silence per-job and informational logging: the benchmark must not measure the console.
async function quietLogger() {
  const { Logger } = await import("graphile-worker");
  return new Logger(() => (level, message) => {
    if (level === "error" || level === "warning") console.error(`[graphile ${level}] ${message}`);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A sleep that does not keep the process alive once everything else is done.
const sleepUnref = (ms) => new Promise((r) => setTimeout(r, ms).unref());

// ---------------------------------------------------------------------------
// Child: one worker process. Waits for "go", runs, reports its success count.
// ---------------------------------------------------------------------------
async function child() {
  const o = JSON.parse(process.env.BURN_OPTIONS);
  const { run } = await import("graphile-worker"); // NO_LOG_SUCCESS is read at load
  const logger = await quietLogger();
  let succeeded = 0;
  let failed = 0;
  let runner = null;
  let stopping = false;

  const report = () => process.connected && process.send({ t: "count", succeeded, failed });
  let ticker = null;

  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    if (ticker) clearInterval(ticker);
    try {
      if (runner) await runner.stop();
    } catch (e) {
      console.error(`worker ${process.pid}: stop failed: ${e?.message ?? e}`);
      code = 1;
    }
    report();
    if (process.connected) process.send({ t: "stopped" });
    process.exit(code);
  };

  process.on("message", async (m) => {
    if (m?.t === "go") {
      try {
        runner = await run({
          connectionString: o.url,
          concurrency: o.concurrency,
          maxPoolSize: o.pool,
          noHandleSignals: true,
          pollInterval: o.pollInterval,
          logger,
          taskList: { noop: async () => {} },
          preset: {
            worker: {
              ...(o.localQueue > 1 ? { localQueue: { size: o.localQueue } } : {}),
              ...(o.completeBatchDelay >= 0 ? { completeJobBatchDelay: o.completeBatchDelay } : {}),
            },
          },
        });
      } catch (e) {
        console.error(`worker ${process.pid}: run() failed: ${e?.stack ?? e}`);
        process.exit(1);
      }
      runner.events.on("job:success", () => {
        succeeded++;
      });
      runner.events.on("job:failed", () => {
        failed++;
      });
      runner.events.on("job:error", () => {
        failed++;
      });
      ticker = setInterval(report, 50);
      process.send({ t: "started" });
    } else if (m?.t === "stop") {
      await stop(0);
    }
  });
  // Parent gone (crashed or killed): stop cleanly rather than linger.
  process.on("disconnect", () => stop(0));
  process.send({ t: "ready" });
}

// ---------------------------------------------------------------------------
// Parent: reset schema, enqueue, spawn workers, time the burn-down.
// ---------------------------------------------------------------------------
async function parent() {
  const o = parseArgs(process.argv.slice(2));
  const version = graphileVersion();
  const { makeWorkerUtils, runMigrations } = await import("graphile-worker");
  const logger = await quietLogger();

  // 1. Fresh schema: drop, then graphile-worker's own migrations.
  const boot = await makeWorkerUtils({ connectionString: o.url, logger });
  let serverVersion;
  try {
    await boot.withPgClient(async (c) => {
      await c.query("set client_min_messages = warning");
      await c.query(`drop schema if exists ${SCHEMA} cascade`);
      serverVersion = (await c.query("show server_version")).rows[0].server_version;
    });
  } finally {
    await boot.release();
  }
  await runMigrations({ connectionString: o.url, logger });

  const utils = await makeWorkerUtils({ connectionString: o.url, logger });
  const countJobs = () =>
    utils.withPgClient(async (c) => Number((await c.query(`select count(*) from ${SCHEMA}._private_jobs`)).rows[0].count));

  // 2. Enqueue N no-op jobs through addJobs (graphile_worker.add_jobs), one transaction per batch.
  const tEnq = performance.now();
  for (let done = 0; done < o.jobs; ) {
    const n = Math.min(o.batch, o.jobs - done);
    const specs = new Array(n);
    for (let i = 0; i < n; i++) specs[i] = { identifier: "noop", payload: {} };
    await utils.addJobs(specs);
    done += n;
  }
  const enqueueSecs = (performance.now() - tEnq) / 1000;
  const queued = await countJobs();
  if (queued !== o.jobs) throw new Error(`enqueued ${o.jobs} but the jobs table holds ${queued}`);
  await utils.withPgClient((c) => c.query(`analyze ${SCHEMA}._private_jobs`));
  console.error(`enqueued ${o.jobs} jobs in ${enqueueSecs.toFixed(3)} s`);

  // 3. Spawn the worker processes; each loads graphile-worker, then waits for "go".
  const kids = [];
  for (let w = 0; w < o.workers; w++) {
    const kid = fork(SELF, ["--child"], {
      env: { ...process.env, NO_LOG_SUCCESS: "1", BURN_OPTIONS: JSON.stringify(o) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const k = { proc: kid, succeeded: 0, failed: 0, exited: null };
    k.ready = new Promise((res) => kid.on("message", (m) => m?.t === "ready" && res()));
    k.started = new Promise((res) => kid.on("message", (m) => m?.t === "started" && res()));
    kid.on("message", (m) => {
      if (m?.t === "count") {
        k.succeeded = m.succeeded;
        k.failed = m.failed;
      }
    });
    k.exit = new Promise((res) =>
      kid.on("exit", (code, signal) => {
        k.exited = { code, signal };
        res();
      }),
    );
    kids.push(k);
  }
  await Promise.all(kids.map((k) => k.ready));

  // 4. Clock runs from "go" until all successes are reported and the table is empty.
  const t0 = performance.now();
  for (const k of kids) k.proc.send({ t: "go" });
  await Promise.all(kids.map((k) => k.started));
  const startSecs = (performance.now() - t0) / 1000;

  const deadline = t0 + o.timeout * 1000;
  let lastLog = t0;
  let burnSecs = null;
  for (;;) {
    await sleep(50);
    const now = performance.now();
    if (kids.some((k) => k.exited)) throw new Error("a worker process exited during the burn-down");
    const succeeded = kids.reduce((s, k) => s + k.succeeded, 0);
    const failed = kids.reduce((s, k) => s + k.failed, 0);
    if (failed > 0) throw new Error(`${failed} job(s) failed`);
    if (now - lastLog >= 5000) {
      lastLog = now;
      console.error(`  ${((now - t0) / 1000).toFixed(1)} s: ${succeeded} succeeded`);
    }
    if (now > deadline) throw new Error(`timed out after ${o.timeout} s with ${succeeded} succeeded`);
    // Only once every handler has returned do we pay for polling the table, for the
    // last completions to commit (they are deleted by a separate, possibly batched, query).
    if (succeeded >= o.jobs && (await countJobs()) === 0) {
      burnSecs = (performance.now() - t0) / 1000;
      break;
    }
  }
  const succeeded = kids.reduce((s, k) => s + k.succeeded, 0);

  // 5. Stop the workers cleanly.
  for (const k of kids) if (!k.exited) k.proc.send({ t: "stop" });
  const stopped = await Promise.race([Promise.all(kids.map((k) => k.exit)).then(() => true), sleepUnref(15000).then(() => false)]);
  if (!stopped) {
    for (const k of kids) if (!k.exited) k.proc.kill("SIGKILL");
    await Promise.all(kids.map((k) => k.exit));
    console.error("warning: a worker did not stop within 15 s and was killed");
  }
  const remaining = await countJobs();
  await utils.release();

  const out = {
    tool: "graphile-worker",
    version,
    jobs: o.jobs,
    workers: o.workers,
    concurrency: o.concurrency,
    enqueue_secs: +enqueueSecs.toFixed(3),
    burn_secs: +burnSecs.toFixed(3),
    jobs_per_sec: Math.round(o.jobs / burnSecs),
    enqueue_jobs_per_sec: Math.round(o.jobs / enqueueSecs),
    start_secs: +startSecs.toFixed(3),
    pool_per_worker: o.pool,
    poll_interval_ms: o.pollInterval,
    local_queue: o.localQueue > 1 ? o.localQueue : null,
    complete_job_batch_delay_ms: o.completeBatchDelay >= 0 ? o.completeBatchDelay : null,
    succeeded,
    remaining,
    node: process.version,
    postgres: serverVersion,
  };
  console.log(JSON.stringify(out));
  if (succeeded < o.jobs || remaining !== 0 || !stopped) process.exitCode = 1;
}

if (process.argv[2] === "--child") {
  child().catch((e) => {
    console.error(e?.stack ?? e);
    process.exit(1);
  });
} else {
  parent().catch((e) => {
    console.error(`burn.mjs: ${e?.stack ?? e}`);
    process.exit(1);
  });
}
