#!/usr/bin/env bash
# Records which of berth's functions a running daemon executes, and writes their names
# to crates/berth/layout.txt, from which the release build links that code as one block
# (crates/berth/build.rs; docs/benchmarks.md, "code at rest").
#
# Every page of code that berth touches stays resident, and the kernel maps each fault's
# neighbourhood with it (64 KiB or more): code run at start and on every request, spread
# over the whole binary, kept most of it resident. The runs: `berth up` under valgrind's
# callgrind with each config of the memory benchmarks (bench/memory/configs.sh) in turn,
# and what a day asks of it: first `[app]` alone (its start, the API's `berth status`,
# `job list`, 20 s idle), then the gateway (a static, a budgeted and a proxied route to
# an nginx origin; requests over kept-alive connections with wrk), a run queue and a
# pull queue (pushed jobs), a schedule and a workflow (one started), an MQTT ingest with
# a schema (messages over MQTT 3.1.1 and 5), 10 services, a webhook channel, the backup
# schedule. The list holds what the first run executed, then what each next one added,
# so that the code of one workload lies together and a config without it leaves that
# part of the block untouched. What runs rarely (a backup, a deploy, a reload, the first
# TLS certificate) is left out on purpose: it would make the block larger, and the
# block is resident for the daemon's life.
#
#   bash bench/memory/layout.sh [--berth PATH] [--out FILE]
#
# --berth (or BERTH in the environment): a release build of the same sources (default:
# cargo build --release -p berth first). --out: where the list goes (default crates/berth/layout.txt). Needs valgrind,
# nginx, wrk, curl, mosquitto_pub, nm and python3. Takes about ten minutes; everything
# it starts runs in its own process group and is stopped at exit, in one `mktemp -d`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
BERTH=${BERTH:-}
OUT=$root/crates/berth/layout.txt
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
while [ $# -gt 0 ]; do
  case $1 in
    --berth) [ $# -ge 2 ] || { usage >&2; exit 2; }; BERTH=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; OUT=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for tool in valgrind wrk curl mosquitto_pub nm python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (this script needs it)"
done
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || die "nginx is not installed (the origin of the proxied route)"
berth_binary

work=$(mktemp -d -t berth-layout.XXXXXX)
chmod 755 "$work"
trap 'stop_groups; rm -rf "$work"' EXIT

# shellcheck source=configs.sh
. "$here/configs.sh"

# The origin: the gateway benchmark's nginx, answering 20 bytes to anything.
free_port
UPSTREAM=$port
mkdir -p "$work/origin"
nginx_user='# not root: the workers keep the current user'
[ "$(id -u)" = 0 ] && nginx_user='user root;'
sed -e "s|@USER@|$nginx_user|; s|@DIR@|$work/origin|g; s|@PORT@|$UPSTREAM|" \
  "$root/bench/gateway/upstream.nginx.conf" >"$work/origin/nginx.conf"
nginx_e=()
"$NGINX" -h 2>&1 | grep -q -- '-e filename' && nginx_e=(-e error.log)
launch "$work/origin" "$work/origin/out.log" "$NGINX" -p "$work/origin/" -c nginx.conf ${nginx_e[@]+"${nginx_e[@]}"}
wait_port "$srv_pid" "$UPSTREAM" || die "the origin nginx did not come up: $(tail -3 "$work/origin/out.log")"

listen() { # the port of DIR's listener KEY (`listen = "…:PORT"`)
  sed -n "s/.*$2 = \"127.0.0.1:\([0-9]*\)\".*/\1/p" "$1/berth.toml" | head -1
}

exercise() { # CASE DIR: what a day asks of that config
  local dir=$2 web mqtt f i
  b() { (cd "$dir" && "$BERTH" "$@" >/dev/null) || die "berth $* failed"; }
  case $1 in
    empty)
      b status
      b job list
      sleep 20
      ;;
    gateway)
      web=$(listen "$dir" listen)
      wait_port "$vg" "$web" || die "the gateway did not listen"
      wrk -t2 -c50 -d10s "http://127.0.0.1:$web/proxy" >/dev/null
      wrk -t2 -c200 -d5s "http://127.0.0.1:$web/proxy" >/dev/null
      wrk -t2 -c20 -d5s "http://127.0.0.1:$web/api/x" >/dev/null
      wrk -t2 -c50 -d5s "http://127.0.0.1:$web/static/1k.bin" >/dev/null
      wrk -t2 -c10 -d5s "http://127.0.0.1:$web/static/1m.bin" >/dev/null
      for f in / /missing /proxy/a?b=1; do
        curl -s -o /dev/null "http://127.0.0.1:$web$f"
        curl -s -o /dev/null -I "http://127.0.0.1:$web$f"
      done
      ;;
    queues)
      for ((i = 0; i < 20; i++)); do b job push work resize "{\"n\": $i}"; done
      sleep 5
      ;;
    flows)
      b workflow start publish
      sleep 5
      b workflow list
      ;;
    ingest)
      mqtt=$(listen "$dir" listen)
      wait_port "$vg" "$mqtt" || die "the MQTT listener did not listen"
      python3 "$root/bench/ingest/make_messages.py" "$dir/messages" -n 200 -c 2 >/dev/null ||
        die "make_messages.py failed"
      for f in "$dir"/messages/*.jsonl; do
        for v in mqttv311 mqttv5; do
          mosquitto_pub -h 127.0.0.1 -p "$mqtt" -V "$v" -q 1 -t "$(basename "$f" .jsonl)/inbound" -l <"$f" ||
            die "mosquitto_pub ($v) failed"
        done
      done
      sleep 5
      ;;
    *) sleep 10 ;;
  esac
}

record() { # CASE: berth up under callgrind with that config, exercised, then stopped
  local dir=$work/$1 i
  mkdir -p "$dir"
  config "$1" "$dir" >"$dir/berth.toml"
  (cd "$dir" && "$BERTH" check >/dev/null) || die "$1: berth check refused the config"
  log "$1: berth up under callgrind (about 50 times slower than without)…"
  launch "$dir" "$dir/up.log" env BERTH_LOG=info valgrind --tool=callgrind --demangle=no \
    --dump-instr=no --trace-children=no --callgrind-out-file="$work/$1.callgrind" "$BERTH" up
  vg=$srv_pid
  for ((i = 0; i < 1800; i++)); do
    grep -q "berth is up" "$dir/up.log" 2>/dev/null && break
    alive "$vg" || die "$1: berth up exited: $(tail -5 "$dir/up.log")"
    sleep 0.1
  done
  grep -q "berth is up" "$dir/up.log" || die "$1: berth up did not come up in 3 minutes"
  exercise "$1" "$dir"
  # callgrind writes its record at exit.
  kill -TERM "$vg"
  for ((i = 0; i < 600; i++)); do alive "$vg" || break; sleep 0.1; done
  alive "$vg" && die "$1: berth under callgrind did not stop in 60 s"
  [ -s "$work/$1.callgrind" ] || die "$1: callgrind wrote no record: $(tail -5 "$dir/up.log")"
  records+=("$work/$1.callgrind")
}

records=()
for c in empty gateway queues flows ingest services notify backup; do record "$c"; done
python3 "$here/layout.py" "$BERTH" "${records[@]}" >"$work/layout.txt"
mv "$work/layout.txt" "$OUT"
log "wrote $OUT"
