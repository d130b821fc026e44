#!/usr/bin/env bash
# berth's PostgreSQL burn-down beside graphile-worker's, on one throwaway PostgreSQL
# cluster (stock settings, fsync on), in one run. Prints one table; details in
# docs/benchmarks.md.
#
#   bench/compare-postgres.sh [JOBS]          (default 100000)
#   NODE=/path/to/node-22 bench/compare-postgres.sh
#
# Needs: a release build of berth (cargo build --release -p berth), the PostgreSQL server
# binaries, Node.js >= 22.18 for graphile-worker 0.18 (set NODE to pick one) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${1:-100000}
NODE=${NODE:-node}
BERTH=./target/release/berth
[ -x "$BERTH" ] || { echo "build berth first: cargo build --release -p berth" >&2; exit 1; }

bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=$(mktemp -d)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
base="postgres://postgres@127.0.0.1:$port"
# Every run gets a database of its own: a table full of dead rows from the run before
# would measure vacuum, not the queue.
fresh_db() {
  local name="bench_${RANDOM}${RANDOM}"
  "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $name"
  echo "$base/$name"
}
echo "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on port $port, fsync=$("$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc 'show fsync')" >&2

if [ ! -d bench/graphile/node_modules ]; then (cd bench/graphile && npm ci --silent); fi

rows=()
berth_row() {
  local nodes=$1 out rate secs
  out=$("$BERTH" --json bench --store "$(fresh_db)" --only burn-inproc --jobs "$JOBS" --nodes "$nodes" 2>/dev/null)
  rate=$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; print(round(r["jobs_per_sec"]), round(r["secs"],2))')
  rows+=("berth $($BERTH --version | awk '{print $2}')|$nodes node(s), concurrency 1000 each|$rate")
}
graphile_row() {
  local workers=$1 label=$2 out rate; shift 2
  local url; url=$(fresh_db)
  out=$(cd bench/graphile && "$NODE" burn.mjs --url "$url" --jobs "$JOBS" --workers "$workers" "$@" 2>/dev/null)
  rate=$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read().strip().splitlines()[-1]); print(round(r["jobs_per_sec"]), round(r["burn_secs"],2))')
  rows+=("graphile-worker $(cd bench/graphile && "$NODE" -p 'require("./node_modules/graphile-worker/package.json").version')|$workers worker(s), $label|$rate")
}

berth_row 1
berth_row 2
graphile_row 1 "concurrency 24, defaults (unbatched)" --concurrency 24
graphile_row 2 "concurrency 24, defaults (unbatched)" --concurrency 24
graphile_row 1 "concurrency 24, local queue 200, batched completions" --concurrency 24 --local-queue 200 --complete-batch-delay 0
graphile_row 2 "concurrency 24, local queue 200, batched completions" --concurrency 24 --local-queue 200 --complete-batch-delay 0

printf '%s\n' "burn-down of $JOBS no-op jobs, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
printf '%-24s %-56s %10s %8s\n' TOOL SETUP "JOBS/S" SECONDS
for r in "${rows[@]}"; do
  IFS='|' read -r tool setup rs <<<"$r"
  read -r rate secs <<<"$rs"
  printf '%-24s %-56s %10s %8s\n' "$tool" "$setup" "$rate" "$secs"
done
