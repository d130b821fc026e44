#!/usr/bin/env bash
# berth's HTTP gateway beside nginx and caddy as front proxies, in one run, with wrk on
# loopback: a proxied route (at 50 and 500 connections) to one shared origin (an nginx
# with one worker answering a fixed body) and static files of 1 KiB and 1 MiB. Prints
# one markdown table on stdout (progress on stderr), with each front's peak resident
# memory over its runs (VmHWM, summed over its processes), and the peak of the part of it
# that is anonymous (RssAnon summed, sampled every 0.5 s): what the front allocates
# itself, without the pages of code and libraries it maps, which nginx's processes
# share and each count. A second table gives each front's CPU time per request in each
# case (its processes' user + system time over the measured run, over its requests,
# with the user part beside it): wrk and the origin take their share of the same cores,
# so req/s moves with what else runs, while the CPU a request costs the front moves much
# less.
#
#   bench/gateway/run.sh [--berth PATH] [--duration 10s] [--skip-berth]
#
# --berth defaults to target/release/berth under the repo root (build it first:
# cargo build --release -p berth). --duration is each measured wrk run (wrk's syntax:
# 10s, 1m); every one follows a warm-up run of WARMUP (default 2s) on the same URL and
# connection count. Other knobs: WRK_THREADS (default 2), NGINX, CADDY, WRK (binaries;
# default from PATH). caddy is skipped if it is missing; nginx is required, since it is
# the origin.
#
# Every config is rendered from the templates beside this script into one `mktemp -d`
# directory, removed at the end together with every process the run started (each
# server runs in its own process group). Ports are picked free in 20000-32000. wrk, the
# front proxy and the origin share the machine's cores: the figures compare the three
# fronts on the same box, they are not any one's ceiling.
set -euo pipefail

DURATION=10s
WARMUP=${WARMUP:-2s}
WRK_THREADS=${WRK_THREADS:-2}
SKIP_BERTH=0

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BERTH=$root/target/release/berth

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
while [ $# -gt 0 ]; do
  case $1 in
    --berth) [ $# -ge 2 ] || { usage >&2; exit 2; }; BERTH=$2; shift 2 ;;
    --berth=*) BERTH=${1#*=}; shift ;;
    --duration) [ $# -ge 2 ] || { usage >&2; exit 2; }; DURATION=$2; shift 2 ;;
    --duration=*) DURATION=${1#*=}; shift ;;
    --skip-berth) SKIP_BERTH=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
for d in "$DURATION" "$WARMUP"; do
  [[ $d =~ ^[0-9]+[smh]?$ ]] || { echo "not a wrk duration: $d (e.g. 10s, 1m)" >&2; exit 2; }
done

# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
have() { [ -n "$1" ] && [ -x "$1" ]; }

NGINX=${NGINX:-$(command -v nginx || true)}
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
CADDY=${CADDY:-$(command -v caddy || true)}
WRK=${WRK:-$(command -v wrk || true)}
have "$WRK" || { echo "wrk not installed" >&2; exit 1; }
have "$NGINX" || { echo "nginx not installed: it is the origin every front proxies to" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not installed" >&2; exit 1; }
if [ "$SKIP_BERTH" = 0 ]; then
  [ -x "$BERTH" ] || { echo "no berth binary at $BERTH (build it, or pass --berth PATH or --skip-berth)" >&2; exit 1; }
  BERTH=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")
fi

work=$(mktemp -d -t berth-gateway.XXXXXX)
chmod 755 "$work" # nginx workers may run as another user than the master
wrk_pid='' # the wrk running now, if any
sampler='' # the sample_anon running now, if any

cleanup() {
  set +e
  [ -n "$wrk_pid" ] && kill -TERM "$wrk_pid" 2>/dev/null
  [ -n "$sampler" ] && kill -TERM "$sampler" 2>/dev/null
  stop_groups
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- configs -----------------------------------------------------------------------

nginx_options

start_nginx() { # DIR TEMPLATE PORT [UP]
  local dir=$1
  mkdir -p "$dir"
  render "$here/$2" "$dir/nginx.conf" USER="$nginx_user" DIR="$dir" PORT="$3" \
    UP="${4:-0}" WWW="$work/www"
  launch "$dir" "$dir/out.log" "$NGINX" -p "$dir/" -c nginx.conf ${nginx_e[@]+"${nginx_e[@]}"}
}
start_caddy() { # DIR PORT UP
  local dir=$1
  mkdir -p "$dir/xdg/config" "$dir/xdg/data"
  render "$here/Caddyfile" "$dir/Caddyfile" DIR="$dir" PORT="$2" UP="$3" WWW="$work/www"
  # HOME and XDG_* inside the work dir: caddy writes nothing outside it.
  launch "$dir" "$dir/out.log" env HOME="$dir" XDG_CONFIG_HOME="$dir/xdg/config" XDG_DATA_HOME="$dir/xdg/data" \
    "$CADDY" run --config "$dir/Caddyfile" --adapter caddyfile
}
start_berth() { # DIR PORT UP
  local dir=$1
  mkdir -p "$dir"
  render "$here/berth.toml" "$dir/berth.toml" PORT="$2" UP="$3" WWW="$work/www"
  launch "$dir" "$dir/out.log" "$BERTH" up
}

check_urls() { # BASE: the three URLs answer what they should; prints what is wrong
  local bad='' body size
  body=$(curl -s -m 5 "$1/proxy/hello" 2>/dev/null || true)
  [ "$body" = "hello from upstream" ] || bad+="/proxy/hello gave '${body:0:60}'; "
  size=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_download}' "$1/static/1k.bin" || true)
  [ "$size" = "200 1024" ] || bad+="/static/1k.bin gave '$size' (status, bytes); "
  size=$(curl -s -m 5 -o /dev/null -w '%{http_code} %{size_download}' "$1/static/1m.bin" || true)
  [ "$size" = "200 1048576" ] || bad+="/static/1m.bin gave '$size' (status, bytes); "
  printf '%s' "$bad"
}

# ---- wrk ---------------------------------------------------------------------------

to_ms() { # wrk's latency (e.g. 812.00us, 1.23ms, 2.01s, 1.50m) in milliseconds
  awk -v x="$1" 'BEGIN {
    n = x + 0; u = x; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.3f", n }'
}
fmt_ms() { awk -v x="$1" 'BEGIN { if (x < 10) printf "%.2f", x; else if (x < 100) printf "%.1f", x; else printf "%.0f", x }'; }

declare -A rps lat errs note peak anon cpu

HZ=$(getconf CLK_TCK)
group_pids() { # PGID: the processes of that group
  ps -e -o pid=,pgid= | awk -v g="$1" '$2 == g { print $1 }'
}
group_status_kb() { # PGID KEY: a /proc/PID/status figure (kB) of the group's processes, summed
  group_pids "$1" | while read -r p; do
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$p/status" 2>/dev/null || true
  done | awk '{ s += $1 } END { print s + 0 }'
}
group_ticks() { # PGID: the CPU time of the group's processes so far, in clock ticks,
  # summed (a process's counts hold all its threads'): "USER SYSTEM"
  group_pids "$1" | while read -r p; do
    # After "PID (COMM) ", utime and stime are the 12th and 13th fields.
    awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$p/stat" 2>/dev/null || true
  done | awk '{ u += $1; s += $2 } END { print u + 0, s + 0 }'
}

peak_rss() { # PID: the peak resident memory (VmHWM) of every process in PID's process
  # group, summed, in MB: nginx's master and workers, berth's one process
  local pgid
  pgid=$(ps -o pgid= -p "$1" | tr -d ' ')
  [ -n "$pgid" ] || { echo '-'; return; }
  awk -v k="$(group_status_kb "$pgid" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }'
}
sample_anon() { # PID OUT: every 0.5 s, the largest summed RssAnon of PID's group so far, in
  # OUT (kB): the memory a front allocates itself, without the code and libraries it maps
  local pgid max=0 now
  pgid=$(ps -o pgid= -p "$1" | tr -d ' ')
  [ -n "$pgid" ] || return 0
  while :; do
    now=$(group_status_kb "$pgid" RssAnon)
    if [ "$now" -gt "$max" ]; then max=$now; echo "$max" >"$2"; fi
    sleep 0.5
  done
}
cases=(proxy50 proxy500 static1k static1m)
declare -A case_label case_path case_conns
case_label[proxy50]="proxied, 50 conns";    case_path[proxy50]=/proxy/hello;    case_conns[proxy50]=50
case_label[proxy500]="proxied, 500 conns";  case_path[proxy500]=/proxy/hello;   case_conns[proxy500]=500
case_label[static1k]="static 1 KiB, 50 conns"; case_path[static1k]=/static/1k.bin; case_conns[static1k]=50
case_label[static1m]="static 1 MiB, 50 conns"; case_path[static1m]=/static/1m.bin; case_conns[static1m]=50

run_wrk() { # ARGS...: wrk in the background, so that a signal to this script ends it at once
  local rc=0
  "$WRK" "$@" &
  wrk_pid=$!
  wait "$wrk_pid" || rc=$?
  wrk_pid=''
  return "$rc"
}

measure() { # TOOL CASE BASE
  local tool=$1 c=$2 url=$3${case_path[$2]} n=${case_conns[$2]} out
  out=$work/wrk-$tool-$c.txt
  log "  $tool: ${case_label[$c]} (warm-up $WARMUP, then $DURATION)"
  run_wrk -t"$WRK_THREADS" -c"$n" -d"$WARMUP" "$url" >/dev/null 2>&1 || true
  local before after
  before=$(group_ticks "$front_pgid")
  if ! run_wrk -t"$WRK_THREADS" -c"$n" -d"$DURATION" --latency "$url" >"$out" 2>&1; then
    note[$tool]+="wrk failed on ${case_label[$c]}: $(tail -n 1 "$out"). "
    return
  fi
  after=$(group_ticks "$front_pgid")
  local r p50 p99 non2xx sock requests
  r=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  requests=$(awk '/ requests in / { print $1; exit }' "$out")
  if [ -n "$requests" ] && [ "$requests" -gt 0 ] && alive "$front_pid"; then
    # "total (user)": the user part is the front's own code; the rest is the kernel's
    # work on its sockets, which every front pays alike for the same syscalls.
    cpu[$tool,$c]=$(awk -v b="$before" -v a="$after" -v hz="$HZ" -v n="$requests" 'BEGIN {
      split(b, x, " "); split(a, y, " "); u = y[1] - x[1]; s = y[2] - x[2]
      if (u >= 0 && s >= 0) printf "%.1f (%.1f)", (u + s) * 1e6 / hz / n, u * 1e6 / hz / n }')
  fi
  p50=$(awk '$1 == "50%" { print $2; exit }' "$out")
  p99=$(awk '$1 == "99%" { print $2; exit }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  # "Socket errors: connect 0, read 3, write 0, timeout 12"
  sock=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' "$out")
  if [ -z "$r" ] || [ -z "$p50" ] || [ -z "$p99" ]; then
    note[$tool]+="could not read wrk's output on ${case_label[$c]}. "
    return
  fi
  rps[$tool,$c]=$r
  lat[$tool,$c]="$(fmt_ms "$(to_ms "$p50")") / $(fmt_ms "$(to_ms "$p99")") ms"
  errs[$tool,$c]="${non2xx:-0} non-2xx, ${sock:-0} socket errors"
  if [ "${non2xx:-0}" != 0 ] || [ "${sock:-0}" != 0 ]; then rps[$tool,$c]+=" (!)"; fi
  log "    $r req/s, p50/p99 ${lat[$tool,$c]}, ${errs[$tool,$c]}"
}

# ---- run ---------------------------------------------------------------------------

begin=$SECONDS
mkdir -p "$work/www/static"
head -c 1024 /dev/urandom >"$work/www/static/1k.bin"
head -c 1048576 /dev/urandom >"$work/www/static/1m.bin"
chmod -R a+rX "$work/www"

free_port
up_port=$port
log "origin: nginx on 127.0.0.1:$up_port (work dir $work)"
start_nginx "$work/upstream" upstream.nginx.conf "$up_port"
up_pid=$srv_pid
if ! wait_http "$up_pid" "http://127.0.0.1:$up_port/"; then
  log "the origin nginx did not come up:"
  tail -n 20 "$work/upstream/out.log" "$work/upstream/error.log" >&2 2>/dev/null || true
  exit 1
fi

declare -A version
version[nginx]=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
version[caddy]='not installed'
have "$CADDY" && version[caddy]=$("$CADDY" version 2>&1 | head -n 1)
version[berth]=skipped
if [ "$SKIP_BERTH" = 0 ]; then
  version[berth]=$("$BERTH" --version 2>&1 | head -n 1) || version[berth]="${version[berth]:-?} (--version failed)"
fi

tools=(berth nginx caddy)
for tool in "${tools[@]}"; do
  case $tool in
    berth) [ "$SKIP_BERTH" = 0 ] || { note[$tool]="skipped (--skip-berth). "; continue; } ;;
    caddy) have "$CADDY" || { note[$tool]="not installed. "; log "caddy: not installed"; continue; } ;;
  esac
  free_port
  dir=$work/$tool
  log "$tool on 127.0.0.1:$port"
  case $tool in
    berth) start_berth "$dir" "$port" "$up_port" ;;
    nginx) start_nginx "$dir" front.nginx.conf "$port" "$up_port" ;;
    caddy) start_caddy "$dir" "$port" "$up_port" ;;
  esac
  pid=$srv_pid
  base=http://127.0.0.1:$port
  if ! wait_http "$pid" "$base/proxy/hello"; then
    note[$tool]+="did not come up (exited, or no 200 on /proxy/hello within 15 s; its output went to stderr). "
    log "  $tool did not come up; its output:"
    tail -n 20 "$dir/out.log" >&2 2>/dev/null || true
    stop_server "$pid"
    continue
  fi
  bad=$(check_urls "$base")
  if [ -n "$bad" ]; then
    note[$tool]+="wrong answers, not measured: $bad"
    log "  $tool: $bad"
    stop_server "$pid"
    continue
  fi
  front_pid=$pid
  front_pgid=$(ps -o pgid= -p "$pid" | tr -d ' ' || true)
  sample_anon "$pid" "$work/anon-$tool" &
  sampler=$!
  for c in "${cases[@]}"; do measure "$tool" "$c" "$base"; done
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  sampler=''
  alive "$pid" || note[$tool]+="exited during the run. "
  peak[$tool]=$(peak_rss "$pid")
  [ -s "$work/anon-$tool" ] && anon[$tool]=$(awk '{ printf "%.1f", $1 / 1024 }' "$work/anon-$tool")
  stop_server "$pid"
done

# ---- report ------------------------------------------------------------------------

model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "HTTP gateway beside nginx and caddy: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores (${model:-unknown CPU}), Linux $(uname -r)"
echo "berth: ${version[berth]}"
echo "nginx: ${version[nginx]} (worker_processes auto, upstream keepalive 64, sendfile on)"
echo "caddy: ${version[caddy]} (reverse_proxy and file_server, defaults)"
echo "origin: nginx, 1 worker, 'return 200' of 20 bytes; wrk $("$WRK" -v 2>&1 | awk 'NR == 1 { print $2 }'), -t$WRK_THREADS, $DURATION per case after a $WARMUP warm-up, all on loopback"
echo
echo "| case | berth req/s | berth p50/p99 | nginx req/s | nginx p50/p99 | caddy req/s | caddy p50/p99 |"
echo "|---|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  row="| ${case_label[$c]}"
  for tool in "${tools[@]}"; do
    row+=" | ${rps[$tool,$c]:--} | ${lat[$tool,$c]:--}"
  done
  echo "$row |"
done
row="| peak RSS over the run (MB)"
for tool in "${tools[@]}"; do row+=" | ${peak[$tool]:--} | "; done
echo "$row |"
row="| of it anonymous, peak (MB)"
for tool in "${tools[@]}"; do row+=" | ${anon[$tool]:--} | "; done
echo "$row |"
echo
echo "CPU per request, µs: the front's processes' user + system time over each measured run,"
echo "divided by the requests it answered (steadier than req/s on a machine that wrk and the"
echo "origin share; 1 clock tick is $((1000 / HZ)) ms); in brackets, the user time alone (the"
echo "front's own code; the rest is the kernel's work for its syscalls):"
echo
echo "| case | berth | nginx | caddy |"
echo "|---|---|---|---|"
for c in "${cases[@]}"; do
  row="| ${case_label[$c]}"
  for tool in "${tools[@]}"; do row+=" | ${cpu[$tool,$c]:--}"; done
  echo "$row |"
done
echo
echo "wrk's error counts (a (!) in the table marks a run with any):"
for tool in "${tools[@]}"; do
  line='' any=0 ran=0
  for c in "${cases[@]}"; do
    [ -n "${errs[$tool,$c]:-}" ] || continue
    ran=1
    line+=" ${case_label[$c]}: ${errs[$tool,$c]};"
    case ${rps[$tool,$c]} in *'(!)') any=1 ;; esac
  done
  [ $ran = 1 ] || continue
  if [ $any = 1 ]; then echo "- $tool:${line%;}"; else echo "- $tool: none in any case"; fi
done
for tool in "${tools[@]}"; do
  [ -n "${note[$tool]:-}" ] && echo "- note, $tool: ${note[$tool]}"
done
echo
echo "whole run: $((SECONDS - begin)) s"
