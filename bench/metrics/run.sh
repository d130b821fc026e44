#!/usr/bin/env bash
# How fast GET /metrics answers with a large store: N jobs (default 1,000,000) and
# 100,000 dead letters in the embedded SQLite store, scraped 200 times in a row over the
# unix socket, beside GET /v1/status. Target: p99 <= 50 ms. Details in
# docs/benchmarks.md.
#
#   bench/metrics/run.sh [JOBS] [DEAD_LETTERS]
#
# Needs: a release build of berth (cargo build --release -p berth), mosquitto_pub.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
JOBS=${1:-1000000}
DEAD=${2:-100000}
BERTH=$PWD/target/release/berth
[ -x "$BERTH" ] || die "build berth first: cargo build --release -p berth"
command -v mosquitto_pub >/dev/null || die "mosquitto_pub is needed (apt-get install mosquitto-clients)"
work=$(mktemp -d)
trap 'stop_groups; rm -rf "$work"' EXIT
free_port
mqtt=$port
cat >"$work/berth.toml" <<TOML
[app]
name = "metricsbench"

[queue.bench]
handler = "pull"

[ingest.stands]
mqtt = { listen = "127.0.0.1:$mqtt", auth = "anonymous" }
topics = ["+/inbound"]
TOML
launch "$work" "$work/berth.log" env BERTH_LOG=warn "$BERTH" up
wait_port "$srv_pid" "$mqtt" || die "berth up did not start: $(cat "$work/berth.log")"
log "publishing $DEAD dead letters (payloads that are not JSON) over MQTT ..."
for stand in $(seq 1 10); do
  seq 1 $((DEAD / 10)) | sed 's/.*/{not json/' |
    mosquitto_pub -h 127.0.0.1 -p "$mqtt" -q 1 -t "stand$stand/inbound" -l
done
log "pushing $JOBS jobs and scraping ..."
python3 bench/metrics/scrape.py "$work/.berth/berth.sock" "$JOBS" 200
