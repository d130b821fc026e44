#!/usr/bin/env bash
# berth's resident memory at rest: `berth up` with an empty config, then with each
# capability on its own, then with all of them, each in a fresh data dir. The figures are
# the daemon's VmRSS (shared pages of its binary and libraries included, as `ps` shows
# it), split into anonymous and file-backed memory: first SETTLE seconds after it logged
# "berth is up" with nothing asked of it ("at rest"), then SETTLE seconds after one
# `berth status` (the API's code paths loaded too); the median of RUNS starts. berth's
# watchdog (a `sh` started with the first service) is not counted. Prints one markdown
# table on stdout, progress on stderr.
#
#   bash bench/memory/idle.sh                     (builds berth with cargo first)
#   BERTH=/path/to/berth bash bench/memory/idle.sh
#
# Knobs (environment): SETTLE (seconds, default 5), RUNS (default 3), BERTH. Everything
# it writes lives in one `mktemp -d` directory, removed at the end; every berth it starts
# runs in its own process group and is stopped at exit. Ports come from 20000-32000.
set -euo pipefail

SETTLE=${SETTLE:-5}
RUNS=${RUNS:-3}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
berth_binary

work=$(mktemp -d -t berth-memory.XXXXXX)
trap 'stop_groups; rm -rf "$work"' EXIT

# shellcheck source=configs.sh
. "$here/configs.sh"

rss() { # PID: "rss anon file" in KiB
  awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 } END { print r, a, f }' "/proc/$1/status"
}

measure() { # CASE RUN: prints "rss anon file" at rest, then the same after `berth status`
  local dir=$work/$1-$2 i
  mkdir -p "$dir"
  config "$1" "$dir" >"$dir/berth.toml"
  (cd "$dir" && "$BERTH" check >/dev/null) || die "$1: berth check refused the config"
  launch "$dir" "$dir/up.log" env BERTH_LOG=info "$BERTH" up
  for ((i = 0; i < 150; i++)); do
    grep -q "berth is up" "$dir/up.log" 2>/dev/null && break
    alive "$srv_pid" || die "$1: berth up exited: $(tail -3 "$dir/up.log")"
    sleep 0.1
  done
  grep -q "berth is up" "$dir/up.log" || die "$1: berth up did not come up: $(tail -3 "$dir/up.log")"
  sleep "$SETTLE"
  local rest
  rest=$(rss "$srv_pid")
  (cd "$dir" && "$BERTH" status >/dev/null) || die "$1: berth status failed"
  sleep "$SETTLE"
  echo "$rest $(rss "$srv_pid")"
  stop_server "$srv_pid"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "| config | at rest: VmRSS | anonymous | file-backed | after \`berth status\`: VmRSS | anonymous | file-backed |"
echo "|---|---|---|---|---|---|---|"
for c in empty services queues flows gateway ingest notify backup all; do
  rows=()
  for ((r = 1; r <= RUNS; r++)); do
    log "$c: run $r of $RUNS…"
    rows+=("$(measure "$c" "$r")")
  done
  cells=""
  for col in 1 2 3 4 5 6; do
    cells+=" $(mib "$(printf '%s\n' "${rows[@]}" | awk -v c=$col '{print $c}' | median)") |"
  done
  label=$c
  case $c in
    empty) label="empty (\`[app]\` only)" ;;
    services) label="10 services of \`sleep\`" ;;
    queues) label="a run queue and a pull queue" ;;
    flows) label="a schedule and a 2-step workflow" ;;
    gateway) label="gateway: a static and a proxy route, a budget" ;;
    ingest) label="ingest: an MQTT listener with a schema" ;;
    notify) label="a webhook notification channel" ;;
    backup) label="scheduled backups" ;;
    all) label="all of the above" ;;
  esac
  echo "| $label |$cells"
done
