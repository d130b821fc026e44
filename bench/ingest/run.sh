#!/usr/bin/env bash
# MQTT ingest throughput: N messages of about 300 bytes (default 100,000) published by
# C clients (default 10) at QoS 1; counted are those validated and durably stored per
# second. Beside berth's embedded listener, the shape teams write today: Mosquitto plus
# a Python paho-mqtt handler validating with jsonschema and inserting into SQLite (WAL,
# synchronous=FULL), once committing each message and once in batches.
#
#   bash bench/ingest/run.sh [baseline|berth|all|publish]      (default: all)
#
# baseline: mosquitto_pub alone (no subscriber, the publishing floor), then the Python
#           handler committing per message, then batched (BATCH messages, or 50 ms idle).
# berth:    the run_berth section below (needs a berth binary: BERTH, default
#           target/release/berth under the repo root; build it with
#           cargo build --release -p berth).
# all:      both; berth is skipped with a note if its binary is missing.
# publish:  only the mosquitto_pub-alone floor.
#
# Knobs (environment): N (100000), CLIENTS (10), BATCH (100), PUB_INFLIGHT (20, the
# -M of mosquitto_pub, its own default), TIMEOUT (1200 s per run), STALL (30 s without
# a new row once every publisher is done ends a run as failed), BERTH.
#
# Each run gets a fresh broker or berth and a fresh database. The clock starts when the
# publishers are started and stops at the first 100 ms poll that finds all N rows; a run
# only counts if the final count is exactly N with no dead letters. Every process the
# script starts runs in its own process group and is stopped at exit, and everything it
# writes lives in one `mktemp -d` directory, removed at the end (KEEP=1 keeps it). Our
# mosquitto listens on a free port in 20000-32000 on 127.0.0.1, never on 1883.
# Prints one markdown table on stdout, progress on stderr.
set -euo pipefail

MODE=${1:-all}
case $MODE in
  baseline | berth | all | publish) ;;
  -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
  *) echo "usage: bash bench/ingest/run.sh [baseline|berth|all|publish]" >&2; exit 2 ;;
esac

N=${N:-100000}
CLIENTS=${CLIENTS:-10}
BATCH=${BATCH:-100}
PUB_INFLIGHT=${PUB_INFLIGHT:-20}
TIMEOUT=${TIMEOUT:-1200}
STALL=${STALL:-30}
for v in N CLIENTS BATCH PUB_INFLIGHT TIMEOUT STALL; do
  if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then
    echo "$v must be a positive integer" >&2
    exit 2
  fi
done
[ "$CLIENTS" -le 99 ] || { echo "CLIENTS must be at most 99" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BERTH=${BERTH:-$root/target/release/berth}

# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"

# ---- tools -------------------------------------------------------------------------

MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || true)}
[ -n "$MOSQUITTO" ] || { [ -x /usr/sbin/mosquitto ] && MOSQUITTO=/usr/sbin/mosquitto; }
need_apt="install it with: apt-get install mosquitto mosquitto-clients"
if [ "$MODE" != berth ]; then
  if [ -z "$MOSQUITTO" ] || [ ! -x "$MOSQUITTO" ]; then
    die "mosquitto (the broker) not found; $need_apt"
  fi
fi
command -v mosquitto_pub >/dev/null || die "mosquitto_pub not found; $need_apt"
command -v python3 >/dev/null || die "python3 not found"
if [ "$MODE" != berth ] && [ "$MODE" != publish ]; then
  python3 -c 'import paho.mqtt.client, jsonschema' 2>/dev/null ||
    die "python3 lacks paho-mqtt or jsonschema; install them with: pip install paho-mqtt jsonschema"
  python3 -c 'import sys, paho.mqtt; sys.exit(int(paho.mqtt.__version__.split(".")[0]) < 2)' ||
    die "paho-mqtt 2.x is needed (the handler uses CallbackAPIVersion.VERSION2): pip install -U paho-mqtt"
fi
SQLITE3=$(command -v sqlite3 || true) # polling falls back to python3's sqlite3 without it

berth_ok=1
if [ "$MODE" = berth ] || [ "$MODE" = all ]; then
  if [ ! -x "$BERTH" ]; then
    [ "$MODE" = berth ] && die "no berth binary at $BERTH (cargo build --release -p berth, or set BERTH)"
    log "no berth binary at $BERTH: the berth row is skipped (cargo build --release -p berth)"
    berth_ok=0
  else
    BERTH=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")
  fi
fi

# ---- processes ---------------------------------------------------------------------

work=$(mktemp -d -t berth-ingest.XXXXXX)
chmod 755 "$work" # mosquitto started as root drops to its own user
pubs=()           # mosquitto_pub processes running now

stop_pubs() {
  local p
  for p in ${pubs[@]+"${pubs[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  for p in ${pubs[@]+"${pubs[@]}"}; do wait "$p" 2>/dev/null || true; done
  pubs=()
}
cleanup() {
  set +e
  stop_pubs
  stop_groups
  if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- timing ----------------------------------------------------------------------

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
secs() { # MICROSECONDS: as seconds with 2 decimals
  printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000))
}
rate() { # COUNT MICROSECONDS: messages per second, whole
  echo $(($1 * 1000000 / ($2 > 0 ? $2 : 1)))
}

count_rows() { # DB SQL: prints the number, or 0 while the file or table is not there yet
  local n
  [ -f "$1" ] || { echo 0; return; }
  if [ -n "$SQLITE3" ]; then
    n=$("$SQLITE3" -cmd '.timeout 2000' "$1" "$2" 2>/dev/null) || n=0
  else
    n=$(python3 - "$1" "$2" 2>/dev/null <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=2)
print(db.execute(sys.argv[2]).fetchone()[0])
EOF
    ) || n=0
  fi
  [[ $n =~ ^[0-9]+$ ]] || n=0
  echo "$n"
}

# ---- messages ----------------------------------------------------------------------

msgs=$work/messages
python3 "$here/make_messages.py" "$msgs" -n "$N" -c "$CLIENTS" >&2
stands=()
for ((k = 1; k <= CLIENTS; k++)); do stands+=("$(printf 'stand%02d' "$k")"); done

publish_start() { # PORT: starts one mosquitto_pub per stand file, QoS 1, one message a line
  local s
  pubs=()
  for s in "${stands[@]}"; do
    mosquitto_pub -h 127.0.0.1 -p "$1" -q 1 -M "$PUB_INFLIGHT" -i "pub-$s-$$" \
      -t "$s/inbound" -l <"$msgs/$s.jsonl" >"$work/pub-$s.log" 2>&1 &
    pubs+=("$!")
  done
}
pubs_running() { # true while any publisher is still running
  local p
  for p in "${pubs[@]}"; do alive "$p" && return 0; done
  return 1
}
pubs_reap() { # waits for the publishers; fails if any exited non-zero
  local p bad=0
  for p in "${pubs[@]}"; do wait "$p" || bad=1; done
  pubs=()
  return "$bad"
}

# measure PID DB SQL: publishers must be running already and t0 set. Polls SQL on DB
# every 100 ms until it reaches N; sets elapsed (µs), pub_elapsed (µs, when the last
# publisher was seen done) and final. Fails on timeout, a stall, or PID dying.
measure() {
  local pid=$1 db=$2 sql=$3 n last=-1 last_change t
  pub_elapsed=''
  last_change=$(now_us)
  while :; do
    n=$(count_rows "$db" "$sql")
    t=$(now_us)
    if [ -z "$pub_elapsed" ] && ! pubs_running; then pub_elapsed=$((t - t0)); fi
    if [ "$n" -ge "$N" ]; then
      elapsed=$((t - t0))
      break
    fi
    [ "$n" != "$last" ] && { last=$n; last_change=$t; }
    if ! alive "$pid"; then log "  the consumer exited with $n of $N rows stored"; final=$n; return 1; fi
    if [ $((t - t0)) -gt $((TIMEOUT * 1000000)) ]; then
      log "  timed out after ${TIMEOUT}s with $n of $N rows"; final=$n; return 1
    fi
    if [ -n "$pub_elapsed" ] && [ $((t - last_change)) -gt $((STALL * 1000000)) ]; then
      log "  stalled at $n of $N rows for ${STALL}s after publishing ended (messages dropped?)"
      final=$n; return 1
    fi
    sleep 0.1
  done
  [ -n "$pub_elapsed" ] || { while pubs_running; do sleep 0.05; done; pub_elapsed=$(($(now_us) - t0)); }
  pubs_reap || { log "  a publisher failed: $(cat "$work"/pub-*.log)"; final=$n; return 1; }
  sleep 0.5 # anything arriving late would show up as more than N
  final=$(count_rows "$db" "$sql")
}

rows=()
failed=0
row() { # SHAPE MESSAGES SECONDS RATE NOTES; a run without a rate has failed
  rows+=("| $1 | $2 | $3 | $4 | $5 |")
  [ "$4" != - ] || failed=1
}

# ---- mosquitto ---------------------------------------------------------------------

start_mosquitto() { # DIR: sets mq_pid, mq_port, mq_log
  local dir=$1
  mkdir -p "$dir"
  free_port
  mq_port=$port
  mq_log=$dir/mosquitto.log
  # Queue without limit: with the default max_queued_messages 1000, a subscriber that
  # falls behind has every message past that silently dropped. max_inflight_messages 0
  # lets a batching handler, which acknowledges only after its commit, hold a whole
  # batch unacknowledged.
  cat >"$dir/mosquitto.conf" <<EOF
listener $mq_port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 0
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages true
EOF
  launch "$dir" "$mq_log" "$MOSQUITTO" -c "$dir/mosquitto.conf"
  mq_pid=$srv_pid
  wait_port "$mq_pid" "$mq_port" || die "mosquitto did not come up on $mq_port: $(cat "$mq_log")"
}
mosquitto_drops() { # LOG: prints how many times mosquitto said it dropped messages
  grep -c -i 'dropped' "$1" || true
}

run_publish_only() {
  local dir=$work/publish
  log "publish only: mosquitto_pub x$CLIENTS, QoS 1, no subscriber"
  start_mosquitto "$dir"
  t0=$(now_us)
  publish_start "$mq_port"
  pubs_reap || die "a publisher failed: $(cat "$work"/pub-*.log)"
  elapsed=$(($(now_us) - t0))
  stop_server "$mq_pid"
  log "  published $N in $(secs "$elapsed") s"
  row "mosquitto_pub alone, no subscriber (publishing floor)" "$N" "$(secs "$elapsed")" \
    "$(rate "$N" "$elapsed")" "nothing stored"
}

run_baseline() { # BATCH LABEL
  local batch=$1 label=$2 dir=$work/baseline-$1 hpid dead drops note
  log "baseline, $label: mosquitto + paho-mqtt + jsonschema + SQLite"
  start_mosquitto "$dir"
  launch "$dir" "$dir/handler.log" python3 "$here/baseline_handler.py" --host 127.0.0.1 \
    --port "$mq_port" --db "$dir/baseline.db" --batch "$batch" --ready "$dir/ready"
  hpid=$srv_pid
  local i
  for ((i = 0; i < 150; i++)); do
    [ -f "$dir/ready" ] && break
    alive "$hpid" || die "the handler exited: $(cat "$dir/handler.log")"
    sleep 0.1
  done
  [ -f "$dir/ready" ] || die "the handler did not subscribe within 15 s: $(cat "$dir/handler.log")"

  t0=$(now_us)
  publish_start "$mq_port"
  if ! measure "$hpid" "$dir/baseline.db" 'SELECT count(*) FROM messages'; then
    stop_pubs
    row "Mosquitto + Python handler, $label" "$N" "-" "-" "FAILED: $final of $N stored"
    stop_server "$hpid"; stop_server "$mq_pid"
    return 0
  fi
  stop_server "$hpid"
  stop_server "$mq_pid"
  dead=$(count_rows "$dir/baseline.db" 'SELECT count(*) FROM dead_letters')
  drops=$(mosquitto_drops "$mq_log")
  note="publishing took $(secs "$pub_elapsed") s; $final rows, $dead dead letters"
  [ "$final" = "$N" ] || { note="COUNT MISMATCH: $note"; failed=1; }
  [ "$dead" = 0 ] || failed=1
  [ "$drops" = 0 ] || note="$note; mosquitto logged $drops drop warnings"
  log "  $final rows in $(secs "$elapsed") s ($(rate "$N" "$elapsed") msg/s); $(tail -n 1 "$dir/handler.log")"
  row "Mosquitto + Python handler, $label" "$N" "$(secs "$elapsed")" "$(rate "$N" "$elapsed")" "$note"
}

# ==== run_berth =====================================================================
# berth's embedded MQTT listener with the same schema, topics and classification
# (anonymous, as the baseline's mosquitto; no job per message).
run_berth() {
  local dir=$work/berth bpid data note dead
  log "berth: embedded MQTT ingest ($BERTH)"
  mkdir -p "$dir"
  data=$dir/data
  free_port
  cp "$here/protocol.schema.json" "$dir/protocol.schema.json"
  cat >"$dir/berth.toml" <<EOF
[app]
name = "bench"
data_dir = "$data"

[ingest.stands]
# auth: berth's default is "password"; mosquitto_pub logs in with nothing here, as it
# does against the baseline's mosquitto (allow_anonymous true).
mqtt = { listen = "127.0.0.1:$port", auth = "anonymous" }
topics = ["+/inbound"]
schema = "protocol.schema.json"
classify = "/type"
device = 1     # topic segment (1-based) naming the device
EOF
  launch "$dir" "$dir/berth.log" "$BERTH" -c "$dir/berth.toml" up
  bpid=$srv_pid
  if ! wait_port "$bpid" "$port"; then
    log "  berth did not listen on $port; its log ends with:"
    tail -n 20 "$dir/berth.log" >&2
    stop_server "$bpid"
    row "berth (embedded MQTT, SQLite store)" "$N" "-" "-" "FAILED: did not start"
    return 0
  fi

  t0=$(now_us)
  publish_start "$port"
  if ! measure "$bpid" "$data/berth.db" 'SELECT count(*) FROM messages WHERE dead = 0'; then
    stop_pubs
    tail -n 20 "$dir/berth.log" >&2
    row "berth (embedded MQTT, SQLite store)" "$N" "-" "-" "FAILED: $final of $N stored"
    stop_server "$bpid"
    return 0
  fi
  # The peak of berth's resident memory over the whole run (the kernel's high-water mark).
  local peak
  peak=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$bpid/status" 2>/dev/null || echo "?")
  stop_server "$bpid"
  dead=$(count_rows "$data/berth.db" 'SELECT count(*) FROM messages WHERE dead <> 0')
  note="publishing took $(secs "$pub_elapsed") s; $final rows, $dead dead; peak RSS $peak MiB"
  [ "$final" = "$N" ] || { note="COUNT MISMATCH: $note"; failed=1; }
  [ "$dead" = 0 ] || failed=1
  log "  $final rows in $(secs "$elapsed") s ($(rate "$N" "$elapsed") msg/s)"
  row "berth (embedded MQTT, SQLite store)" "$N" "$(secs "$elapsed")" "$(rate "$N" "$elapsed")" "$note"
}
# ==== end run_berth =================================================================

case $MODE in
  publish) run_publish_only ;;
  baseline)
    run_publish_only
    run_baseline 1 "commit per message"
    run_baseline "$BATCH" "commit per $BATCH or 50 ms idle"
    ;;
  berth) run_berth ;;
  all)
    run_publish_only
    run_baseline 1 "commit per message"
    run_baseline "$BATCH" "commit per $BATCH or 50 ms idle"
    if [ "$berth_ok" = 1 ]; then run_berth; fi
    ;;
esac

echo
echo "Ingest: $N messages of ~300 B from $CLIENTS mosquitto_pub clients at QoS 1 (-M $PUB_INFLIGHT), $(date -u +%Y-%m-%d), $(nproc) cores"
echo
echo "| shape | messages | seconds | stored msg/s | notes |"
echo "| --- | ---: | ---: | ---: | --- |"
printf '%s\n' "${rows[@]}"
[ "$failed" = 0 ] # the exit status: 1 if any run failed
