//! The commented starter config that `berth init` writes.
//!
//! It must parse and validate as it stands, and every option it shows in a
//! comment carries its default, so that uncommenting a line changes nothing
//! until the value is edited. The integration tests hold it to both.

/// A commented starter `berth.toml`, written by `berth init`.
pub const STARTER: &str = r#"# berth.toml: the back office of one application.
# Every commented-out line shows an option with its default value.
# Durations are strings such as "30s", "5m", "1h 30m" or "7d".

[app]
# Letters, digits, `_` and `-`.
name = "myapp"

# Where berth keeps its state (the job database, logs). A relative path is
# resolved against the directory of this file.
# data_dir = ".berth"

# "full": a committed job survives a power cut (SQLite synchronous=FULL).
# "normal": faster on slow disks, but the last commits may be lost on a power cut.
# durability = "full"

# How long running jobs may carry on after SIGTERM or Ctrl-C before they are
# stopped and released to run again on the next start.
# shutdown_grace = "30s"

# Where berth keeps its state: "sqlite" (a file in data_dir, nothing to install),
# or a PostgreSQL database that several berth nodes share, given by its URL
# "postgres://berth:PASSWORD@db.example.org:5432/berth". BERTH_STORE in the
# environment overrides this line, so the password need not sit in this file.
# store = "sqlite"
# How long the leader lease lasts unless renewed (nodes sharing PostgreSQL).
# leader_ttl = "15s"
# How long a running job's lease lasts without a heartbeat: the jobs of a node
# that died run again elsewhere after about this long.
# lease_ttl = "60s"

# The admin and worker API. The `berth` commands reach it over a unix socket
# in data_dir; a TCP listener is optional.
# [api]
# listen = "127.0.0.1:7070"
# Name of the environment variable that holds the bearer token required on
# TCP. The token itself never goes in this file.
# token_env = "BERTH_API_TOKEN"

# A queue: jobs enqueued on "default" run here.
[queue.default]
# A process per job, started with `sh -c`. The job's args arrive as JSON on
# stdin; BERTH_JOB_ID, BERTH_JOB_KIND and BERTH_ATTEMPT are in the environment.
# Exit 0 completes the job, exit 75 asks for a retry, anything else fails the attempt.
handler = { run = "echo job $BERTH_JOB_ID" }
# Or an HTTP POST per job, with the args as the body (2xx completes it):
# handler = { post = "http://127.0.0.1:8000/jobs" }
# Or long-lived workers that lease jobs over the API (the default):
# handler = "pull"

# Jobs of this queue running at once (1 to 10000).
# concurrency = 10
# Attempts before a job is discarded (1 to 1000).
# max_attempts = 25
# How long one attempt may run before it is stopped and counts as failed.
# timeout = "30m"
# Delay before a retry: initial * factor^(failures - 1), at most max,
# randomly varied by +-jitter (a fraction of the delay).
# backoff = { initial = "1s", max = "1h", factor = 2.0, jitter = 0.1 }
# How long finished jobs are kept before they are pruned.
# retention = { completed = "1d", discarded = "7d", cancelled = "7d" }

# A second queue, so that slow work does not hold up the default one.
[queue.emails]
# `cat` prints the job's args (the JSON on stdin) into the job's output.
handler = { run = "cat" }
concurrency = 2
max_attempts = 5
timeout = "1m"

# A service: a long-running process of the application (a web server, a
# consumer), started with `sh -c` by `berth up` and restarted when it exits.
# {port} in the command, and PORT in its environment, is the instance's port:
# `port` for the first instance, one more for each further instance.
# More options (cwd, env, env_file, user, ports, live, backoff, crash_loop): see
# docs/config.md.
# [service.web]
# command = "python3 -m http.server {port} --bind 127.0.0.1"
# port = 8000
# Ready once GET / answers 2xx or 3xx (or { tcp = true }, { command = "..." });
# services that depend on it start only then, and a rolling restart waits for it.
# ready = { http = "/" }
# How long a started instance may take to become ready before it is restarted.
# start_timeout = "60s"
# Processes running the command (1 to 64).
# instances = 1
# When an exited instance is started again: "always", "on-failure" or "never".
# restart = "always"
# Services started first and stopped last, such as ["api"].
# depends_on = []
# How an instance is asked to stop, and how long it has before SIGKILL.
# stop_signal = "SIGTERM"
# stop_grace = "10s"
# Each instance logs to a file in data_dir, rotated at this size; old files kept.
# log_max_size = "10MiB"
# log_keep = 5

# A schedule: a cron expression (5 fields, 6 with seconds first, or @hourly,
# @daily, ...) read in `timezone`, starting a job, a command or a workflow once
# per planned time, across restarts and DST changes. See docs/flows.md.
# [schedule.cleanup]
# cron = "*/5 * * * *"
# timezone = "UTC"
# job = { queue = "default", kind = "cleanup", args = { days = 30 } }
# (or command = "python3 manage.py clearsessions", or workflow = "publish")
# A run due while the previous one still runs: "skip", "allow" or "queue".
# overlap = "skip"
# Runs missed while berth was down: "skip", "once" or "all" (catch_up_limit).
# catch_up = "once"

# A workflow: steps that run when their parents have finished and receive
# their results (a `run` step writes its result as JSON to $BERTH_RESULT).
# [workflow.publish]
# timeout = "1h"
# [workflow.publish.step.fetch]
# handler = { run = "echo '{\"pages\": 3}' > \"$BERTH_RESULT\"" }
# [workflow.publish.step.render]
# parents = ["fetch"]
# handler = { run = "cat" }
# max_attempts = 3
# heartbeat_timeout = "1m"

# The HTTP gateway: TLS, static files, your services, logins, budgets.
# See docs/gateway.md.
# [gateway]
# listen = "0.0.0.0:8443"
# tls = "self-signed"    # or { cert = "fullchain.pem", key = "privkey.pem" },
#                        # or { acme = "you@example.org", domains = ["example.org"] }
# [[gateway.route]]
# path = "/"
# static = "dist"
# spa = true
# [[gateway.route]]
# path = "/api"
# service = "web"        # a [service.NAME] with a port
# auth = "login"         # users: berth user add NAME
# budget = "nlu"

# A spending limit for routes that call a paid API.
# [budget.nlu]
# limit = 10.0
# period = "month"
# cost_per_request = 0.002
"#;
