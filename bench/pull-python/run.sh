#!/usr/bin/env bash
# Python pull workers: berth's worker module (clients/python/berth_worker.py) beside
# Celery, Dramatiq and Huey, each draining N no-op jobs with two worker processes, in
# one run on this machine. The peers run twice, each time on a Redis started here for
# the run: with appendfsync always (each write on disk before it is answered, as
# berth's SQLite commits with synchronous=FULL), and in memory (Redis's default, what
# most teams run). Prints one table; details in docs/benchmarks.md.
#
#   bench/pull-python/run.sh [JOBS]        (default 30000)
#
# Needs: a release build of berth (cargo build --release -p berth), redis-server and
# python3 with venv; the peers are installed from PyPI into a venv (BENCH_VENV, default
# ~/.cache/berth-bench/pull-python) the first time.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
. bench/lib.sh
JOBS=${1:-30000}
BERTH=$root/target/release/berth
[ -x "$BERTH" ] || die "build berth first: cargo build --release -p berth"
command -v redis-server >/dev/null || die "redis-server is needed for the peers (apt-get install redis-server)"

venv=${BENCH_VENV:-$HOME/.cache/berth-bench/pull-python}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import celery, dramatiq, huey, redis, packaging' 2>/dev/null; then
  log "installing the peers into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'celery[redis]==5.7.0' 'kombu==5.7.0' 'dramatiq[redis]==2.2.1' 'huey==3.5.4' 'redis==8.2.0' 'packaging==26.3'
fi
PY=$venv/bin/python

work=$(mktemp -d)
trap 'stop_groups; rm -rf "$work"' EXIT


mkdir -p "$work/berth"
cat >"$work/berth/berth.toml" <<'TOML'
[app]
name = "pullbench"

[queue.bench]
handler = "pull"
TOML
launch "$work/berth" "$work/berth.log" env BERTH_LOG=warn "$BERTH" up
for _ in $(seq 100); do [ -S "$work/berth/.berth/berth.sock" ] && break; sleep 0.1; done
[ -S "$work/berth/.berth/berth.sock" ] || die "berth up did not start: $(cat "$work/berth.log")"
export BERTH_URL=unix:$work/berth/.berth/berth.sock BERTH_VERSION=$("$BERTH" --version | awk '{print $2}')
export WORKER_LOG=$work/workers.log

log "$(nproc) cores, $JOBS no-op jobs per system, two worker processes each"
rows=()
run() { # SYSTEM
  log "running $1 ($BROKER) ..."
  out=$("$PY" bench/pull-python/drive.py "$1" "$JOBS") || die "$1 failed; its workers' output: $(tail -n 20 "$WORKER_LOG")"
  rows+=("$out")
  log "  $out"
}
export BROKER="SQLite, synchronous=FULL"
run berth
# The peers twice: on a Redis that writes each change to disk before answering (as
# berth commits), and on Redis's default, which keeps the queue in memory only.
for mode in "appendfsync always" "in memory"; do
  free_port
  mkdir -p "$work/redis-$port"
  if [ "$mode" = "in memory" ]; then durable=(--appendonly no); else durable=(--appendonly yes --appendfsync always); fi
  launch "$work/redis-$port" "$work/redis.log" redis-server --port "$port" --bind 127.0.0.1 \
    --dir "$work/redis-$port" --save '' "${durable[@]}"
  wait_port "$srv_pid" "$port" || die "redis-server did not start: $(cat "$work/redis.log")"
  export REDIS_URL=redis://127.0.0.1:$port/0 BROKER="Redis $mode"
  for system in huey dramatiq celery; do run "$system"; done
  stop_server "$srv_pid"
done
printf '%s\n' "${rows[@]}" | "$PY" bench/pull-python/table.py
