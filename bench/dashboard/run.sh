#!/usr/bin/env bash
# The dashboard under load, on the embedded SQLite store (issue 19's targets):
# 1. the queue's burn-down (Python pull workers, bench/pull-python/drive.py) with and
#    without two dashboard pages open with live updates (A B B A A B B A), and berth's
#    CPU time at rest with and without them: the pages may cost at most 5 %;
# 2. with JOBS (default 1,000,000) available jobs and DEAD (default 100,000) dead letters
#    in the store, each dashboard page and /metrics asked 200 times in a row: p99 <= 50 ms.
# Details in docs/benchmarks.md.
#
#   bench/dashboard/run.sh [JOBS] [DEAD] [BURN_JOBS]
#
# BLOCKS (default 2) sets how many A B B A blocks the burn-down runs; ONLY_BURN=1 stops
# after the burn-down and the CPU at rest.
#
# Needs: a release build of berth (cargo build --release -p berth), curl, mosquitto_pub.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
JOBS=${1:-1000000}
DEAD=${2:-100000}
BURN=${3:-100000}
BERTH=$PWD/target/release/berth
[ -x "$BERTH" ] || die "build berth first: cargo build --release -p berth"
command -v mosquitto_pub >/dev/null || die "mosquitto_pub is needed (apt-get install mosquitto-clients)"
work=$(mktemp -d)
trap 'stop_groups; rm -rf "$work"' EXIT
free_port
mqtt=$port
free_port
http=$port
cat >"$work/berth.toml" <<TOML
[app]
name = "dashbench"

[queue.bench]
handler = "pull"

[ingest.stands]
mqtt = { listen = "127.0.0.1:$mqtt", auth = "anonymous" }
topics = ["+/inbound"]

[gateway]
listen = "127.0.0.1:$http"

[[gateway.route]]
path = "/admin"
dashboard = true
TOML
(cd "$work" && echo "bench-password" | "$BERTH" user add ada --role admin --password-stdin >/dev/null)
launch "$work" "$work/berth.log" env BERTH_LOG=warn "$BERTH" up
wait_port "$srv_pid" "$http" || die "berth up did not start: $(cat "$work/berth.log")"
base=http://127.0.0.1:$http
curl -sf -c "$work/jar" -o /dev/null -d "user=ada&password=bench-password&next=/admin/" "$base/_berth/login" ||
  die "cannot log in to the dashboard"
export BERTH_URL=unix:$work/.berth/berth.sock BERTH_VERSION=$("$BERTH" --version | awk '{print $2}')
export WORKER_LOG=$work/workers.log

log "burn-down of $BURN jobs by two Python pull workers, without and with two live pages ..."
burn() { # LABEL
  local out
  out=$(python3 bench/pull-python/drive.py berth "$BURN") || die "the burn-down failed: $(tail -n 20 "$WORKER_LOG")"
  printf '{"run": "%s", "result": %s}\n' "$1" "$out"
}
live_on() {
  curl -s -N -b "$work/jar" -o /dev/null "$base/admin/live?view=/" &
  live1=$!
  curl -s -N -b "$work/jar" -o /dev/null "$base/admin/live?view=/queues" &
  live2=$!
}
live_off() { kill "$live1" "$live2" 2>/dev/null || true; wait "$live1" "$live2" 2>/dev/null || true; }
# A B B A A B B A: a drift over the runs (the store grows by BURN completed jobs each)
# weighs on both sides alike.
orders=()
for _ in $(seq 1 "${BLOCKS:-2}"); do orders+=("no live" "live no"); done
for order in "${orders[@]}"; do
  for side in $order; do
    if [ "$side" = live ]; then live_on; burn "live pages"; live_off; else burn "no page"; fi
  done
done
# What the two live pages cost berth at rest: its CPU time over 20 s windows with them
# open and without, alternated (what the burn-downs left behind settles meanwhile):
# utime + stime of berth up.
cpu() { awk '{print $14 + $15}' "/proc/$srv_pid/stat"; }
tick=$(getconf CLK_TCK)
for side in no live no live; do
  [ "$side" = live ] && live_on
  sleep 2
  before=$(cpu)
  sleep 20
  after=$(cpu)
  [ "$side" = live ] && live_off
  printf '{"idle_cpu": "%s", "cpu_ms_per_sec": %s}\n' "$side" \
    "$(awk -v d=$((after - before)) -v t="$tick" 'BEGIN { printf "%.2f", d * 1000 / t / 20 }')"
done
[ "${ONLY_BURN:-0}" = 1 ] && exit 0

log "publishing $DEAD dead letters (payloads that are not JSON) over MQTT ..."
for stand in $(seq 1 10); do
  seq 1 $((DEAD / 10)) | sed 's/.*/{not json/' |
    mosquitto_pub -h 127.0.0.1 -p "$mqtt" -q 1 -t "stand$stand/inbound" -l
done
log "pushing $JOBS jobs and asking each page 200 times ..."
python3 bench/dashboard/pages.py "$work/.berth/berth.sock" "$base" "$(awk '$6 == "berth_session" {print $7}' "$work/jar")" "$JOBS" 200
