#!/usr/bin/env bash
# berth's service supervision beside supervisord, circus and pm2, in one run: respawn
# latency after a crash, each supervisor's own resident memory, and its CPU while the
# processes it supervises sit idle. Prints one markdown table on stdout (progress on
# stderr); the method and every tool's settings are in docs/benchmarks.md.
#
#   bench/supervise/compare.sh                          (builds berth with cargo first)
#   BERTH=/path/to/berth bench/supervise/compare.sh     (uses that binary)
#
# Environment knobs: RESPAWNS (respawns sampled per tool, default 40), IDLE_SECS
# (default 30), SETTLE (seconds between the last process starting and reading memory,
# default 3), SUPERVISOR_VERSION, CIRCUS_VERSION, PM2_VERSION (the versions installed).
#
# Needs bash, python3 with venv, Node.js with npm, and PyPI and the npm registry. Every
# tool is installed under one `mktemp -d` directory (a venv, an npm prefix), removed at
# the end together with every process the run started. About 9 minutes on 2 cores.
set -euo pipefail

RESPAWNS=${RESPAWNS:-40}
IDLE_SECS=${IDLE_SECS:-30}
SETTLE=${SETTLE:-3}
SUPERVISOR_VERSION=${SUPERVISOR_VERSION:-4.3.0}
CIRCUS_VERSION=${CIRCUS_VERSION:-0.19.0}
PM2_VERSION=${PM2_VERSION:-7.0.4}

# The respawn schedule (see crash.sh): 8 crashing processes per supervisor, each with an
# exit slot every 10.5 s, so one crash every 1.3125 s and never two close together.
# Runs last at least 10.1 s under berth (its backoff resets after a 10 s run, so every
# restart measured is an immediate one) and at least 1 s under the others, which
# restart at once whatever a run lasted: with 10.1 s, one that takes more than 0.4 s to
# restart would skip a slot and the case would take twice as long.
SLOTS=8
PERIOD_US=10500000
MIN_RUN_BERTH_US=10100000
MIN_RUN_OTHERS_US=1000000

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${BERTH:-}" ]; then
  (cd "$root" && cargo build --release -p berth)
  BERTH=$root/target/release/berth
fi
[ -x "$BERTH" ] || { echo "no berth binary at $BERTH" >&2; exit 1; }
BERTH=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")

work=$(mktemp -d -t berth-supervise.XXXXXX)
# Every supervisor is started with this variable in its environment, which its children
# inherit: the final sweep kills whatever still carries it, orphans included.
tag=$(basename "$work")
started=()   # supervisors started by this script (and pm2 daemons), for the cleanup

log() { printf '%s\n' "$*" >&2; }

tagged() { # pids of the processes carrying the tag
  { grep -lzxF "BENCH_SUPERVISE_TAG=$tag" /proc/[0-9]*/environ 2>/dev/null || true; } |
    while IFS=/ read -r _ _ pid _; do echo "$pid"; done
}
sweep() { local p; for p in $(tagged); do kill -KILL "$p" 2>/dev/null || true; done; }
alive() { # PID: exists and is not a zombie
  local s
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}
cleanup() {
  local p i
  set +e
  for p in ${started[@]+"${started[@]}"}; do alive "$p" && kill -TERM "$p" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    local any=0
    for p in ${started[@]+"${started[@]}"}; do alive "$p" && any=1; done
    [ $any = 0 ] && break
    sleep 0.1
  done
  sweep
  sleep 0.2
  sweep
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

count_procs() { # COMM: tagged processes whose command name is COMM
  local p c n=0
  for p in $(tagged); do
    { read -r c <"/proc/$p/comm"; } 2>/dev/null || continue
    [ "$c" = "$1" ] && n=$((n + 1))
  done
  echo "$n"
}
wait_procs() { # COMM N: waits (up to 120 s) until N tagged processes named COMM run
  local i
  for ((i = 0; i < 1200; i++)); do
    [ "$(count_procs "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  log "  only $(count_procs "$1") of $2 $1 processes came up"
}
rss_kib() { # PID
  local k v rest
  while read -r k v rest; do
    [ "$k" = VmRSS: ] && { echo "$v"; return; }
  done <"/proc/$1/status"
  echo 0
}
cpu_ticks() { # PID...: utime + stime, summed
  local p s sum=0
  for p in "$@"; do
    read -r s <"/proc/$p/stat"
    s=${s##*) }
    read -r -a f <<<"$s"
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}
now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
stop_pid() { # PID: SIGTERM, up to 15 s of grace, then SIGKILL
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do alive "$1" || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
launch() { # LOG CMD...: starts a supervisor in the background, tagged; sets sup_pid
  local out=$1
  shift
  env BENCH_SUPERVISE_TAG="$tag" "$@" >"$out" 2>&1 &
  sup_pid=$!
  started+=("$sup_pid")
}

# ---- tools -------------------------------------------------------------------------

log "installing supervisor $SUPERVISOR_VERSION, circus $CIRCUS_VERSION (venv) and pm2 $PM2_VERSION (npm) under $work"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check \
  "supervisor==$SUPERVISOR_VERSION" "circus==$CIRCUS_VERSION" >&2
npm install --prefix "$work/npm" --no-audit --no-fund --loglevel=error "pm2@$PM2_VERSION" >&2
PM2=$work/npm/node_modules/.bin/pm2
cp "$here/crash.sh" "$work/crash.sh"
SLEEP=$(command -v sleep)

v_berth=$("$BERTH" --version | awk '{print $2}')
v_supervisord=$("$work/venv/bin/supervisord" --version)
v_circus=$("$work/venv/bin/circusd" --version)
v_pm2=$(node -p "require('$work/npm/node_modules/pm2/package.json').version")

# Each start_TOOL DIR KIND [SERVICES INSTANCES] writes the tool's config into DIR and
# starts it, setting sup_pid to the process whose memory and CPU are measured. KIND is
# `crash` (SLOTS processes of crash.sh) or `sleep` (SERVICES services of INSTANCES
# processes of `sleep 100000` each).

start_berth() {
  local dir=$1 kind=$2 s
  {
    printf '[app]\nname = "bench"\ndata_dir = ".berth"\nshutdown_grace = "2s"\n'
    if [ "$kind" = crash ]; then
      printf '\n[service.crash]\ncommand = "exec bash %s %s $BERTH_INSTANCE %s %s %s"\n' \
        "$work/crash.sh" "$dir/rec" "$SLOTS" "$PERIOD_US" "$MIN_RUN_BERTH_US"
      printf 'instances = %s\nrestart = "always"\n' "$SLOTS"
      printf 'crash_loop = { max_exits = 1000, window = "60s" }\nstop_grace = "2s"\n'
    else
      for ((s = 0; s < $3; s++)); do
        printf '\n[service.s%s]\ncommand = "exec sleep 100000"\ninstances = %s\n' "$s" "$4"
        printf 'restart = "always"\nstop_grace = "2s"\n'
      done
    fi
  } >"$dir/berth.toml"
  launch "$dir/berth.log" "$BERTH" -c "$dir/berth.toml" up
}

start_supervisord() {
  local dir=$1 kind=$2 s
  {
    printf '[supervisord]\nnodaemon=true\nlogfile=%s\npidfile=%s\nchildlogdir=%s\n' \
      "$dir/supervisord.log" "$dir/supervisord.pid" "$dir"
    if [ "$kind" = crash ]; then
      printf '\n[program:crash]\ncommand=bash %s %s %%(process_num)d %s %s %s\n' \
        "$work/crash.sh" "$dir/rec" "$SLOTS" "$PERIOD_US" "$MIN_RUN_OTHERS_US"
      printf 'numprocs=%s\nprocess_name=%%(program_name)s_%%(process_num)d\n' "$SLOTS"
      printf 'autorestart=true\nstartsecs=0\nstopasgroup=true\nkillasgroup=true\nstopwaitsecs=2\n'
    else
      for ((s = 0; s < $3; s++)); do
        printf '\n[program:s%s]\ncommand=%s 100000\nnumprocs=%s\n' "$s" "$SLEEP" "$4"
        printf 'process_name=%%(program_name)s_%%(process_num)d\nautorestart=true\nstopwaitsecs=2\n'
      done
    fi
  } >"$dir/supervisord.conf"
  launch "$dir/out.log" "$work/venv/bin/supervisord" -c "$dir/supervisord.conf"
}

start_circus() { # DIR KIND [S I] with CHECK_DELAY set
  local dir=$1 kind=$2 s
  {
    # No multicast endpoint: circus would otherwise join a multicast group on every
    # interface for its cluster discovery.
    printf '[circus]\ncheck_delay = %s\nendpoint = ipc://%s\npubsub_endpoint = ipc://%s\nmulticast_endpoint =\n' \
      "$CHECK_DELAY" "$dir/ctrl.sock" "$dir/pubsub.sock"
    if [ "$kind" = crash ]; then
      printf '\n[watcher:crash]\ncmd = bash\nargs = %s %s $(circus.wid) %s %s %s\n' \
        "$work/crash.sh" "$dir/rec" "$SLOTS" "$PERIOD_US" "$MIN_RUN_OTHERS_US"
      printf 'numprocesses = %s\n' "$SLOTS"
      printf 'respawn = true\ncheck_flapping = false\nwarmup_delay = 0\ncopy_env = true\nstop_children = true\ngraceful_timeout = 2\n'
    else
      for ((s = 0; s < $3; s++)); do
        printf '\n[watcher:s%s]\ncmd = %s\nargs = 100000\nnumprocesses = %s\n' "$s" "$SLEEP" "$4"
        printf 'respawn = true\ncheck_flapping = false\nwarmup_delay = 0\ncopy_env = true\ngraceful_timeout = 2\n'
      done
    fi
  } >"$dir/circus.ini"
  launch "$dir/out.log" "$work/venv/bin/circusd" "$dir/circus.ini"
}
start_circus5() { CHECK_DELAY=5 start_circus "$@"; }
start_circus01() { CHECK_DELAY=0.1 start_circus "$@"; }

start_pm2() {
  local dir=$1 kind=$2 s i sep=''
  {
    printf '{"apps": ['
    if [ "$kind" = crash ]; then
      for ((i = 0; i < SLOTS; i++)); do
        printf '%s\n {"name": "crash%s", "script": "%s", "interpreter": "bash", "args": ["%s", "%s", "%s", "%s", "%s"]}' \
          "$sep" "$i" "$work/crash.sh" "$dir/rec" "$i" "$SLOTS" "$PERIOD_US" "$MIN_RUN_OTHERS_US"
        sep=,
      done
    else
      for ((s = 0; s < $3; s++)); do
        for ((i = 0; i < $4; i++)); do
          printf '%s\n {"name": "s%s-%s", "script": "%s", "interpreter": "none", "args": ["100000"]}' \
            "$sep" "$s" "$i" "$SLEEP"
          sep=,
        done
      done
    fi
    printf '\n]}\n'
  } >"$dir/ecosystem.json"
  env PM2_HOME="$dir/home" BENCH_SUPERVISE_TAG="$tag" "$PM2" start "$dir/ecosystem.json" \
    >"$dir/out.log" 2>&1
  sup_pid=$(cat "$dir/home/pm2.pid")
  started+=("$sup_pid")
}

stop_tool() { # TOOL DIR
  if [ "$1" = pm2 ]; then
    PM2_HOME="$2/home" "$PM2" kill >>"$2/out.log" 2>&1 || true
  else
    stop_pid "$sup_pid"
  fi
  sweep
}

# berth's watchdog: the child of berth that runs the watchdog script.
berth_watchdog() {
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    grep -qa 'while read op pg' "/proc/$c/cmdline" 2>/dev/null && { echo "$c"; return; }
  done
}

# ---- cases -------------------------------------------------------------------------

declare -A respawn rss10 rss10_extra rss100 cpu100 note

respawn_case() { # TOOL
  local tool=$1 dir=$work/$1-respawn n=0 k rest deadline cutoff
  mkdir -p "$dir"
  : >"$dir/rec"
  log "respawn: $tool"
  "start_$tool" "$dir" crash
  deadline=$(( $(now_us) + (PERIOD_US * 2 + PERIOD_US / SLOTS * (RESPAWNS + 2) * 2) ))
  while [ "$n" -lt $((SLOTS + RESPAWNS)) ]; do
    if [ "$(now_us)" -gt "$deadline" ]; then
      note[$tool]+="respawn case timed out with $((n - SLOTS)) restarts. "
      break
    fi
    sleep 0.5
    n=0
    while read -r k rest; do [ "$k" = S ] && n=$((n + 1)); done <"$dir/rec"
  done
  # An exit more than 6 s old (circus's default check_delay is 5 s) should have been
  # restarted by now; younger ones may still be waiting for it.
  cutoff=$(( $(now_us) - 6000000 ))
  stop_tool "$tool" "$dir"
  respawn[$tool]=$(python3 "$here/latency.py" "$dir/rec" "$cutoff")
}

floor_case() { # the probe re-run by a bare bash loop: what no supervisor can beat
  local dir=$work/floor i
  mkdir -p "$dir"
  : >"$dir/rec"
  log "respawn: no supervisor (bash loop)"
  for ((i = 0; i <= RESPAWNS; i++)); do
    bash "$work/crash.sh" "$dir/rec" 0 1 100000 50000 || true
  done
  respawn[floor]=$(python3 "$here/latency.py" "$dir/rec")
}

memory_case() { # TOOL: 10 services of one process each
  local tool=$1 dir=$work/$1-memory wd
  mkdir -p "$dir"
  log "memory, 10 services: $tool"
  "start_$tool" "$dir" sleep 10 1
  wait_procs sleep 10
  sleep "$SETTLE"
  rss10[$tool]=$(rss_kib "$sup_pid")
  if [ "$tool" = berth ]; then
    wd=$(berth_watchdog "$sup_pid")
    [ -n "$wd" ] && rss10_extra[$tool]=$(rss_kib "$wd")
  fi
  [ "$(count_procs sleep)" = 10 ] || note[$tool]+="$(count_procs sleep) of 10 processes ran in the memory case. "
  stop_tool "$tool" "$dir"
}

idle_case() { # TOOL: 10 services × 10 processes, idle for IDLE_SECS
  local tool=$1 dir=$work/$1-idle t0 t1 c0 c1 pids running
  mkdir -p "$dir"
  log "idle CPU, 100 processes, ${IDLE_SECS}s: $tool"
  "start_$tool" "$dir" sleep 10 10
  wait_procs sleep 100
  sleep 5
  pids=("$sup_pid")
  if [ "$tool" = berth ]; then
    local wd
    wd=$(berth_watchdog "$sup_pid")
    [ -n "$wd" ] && pids+=("$wd")
  fi
  c0=$(cpu_ticks "${pids[@]}")
  t0=$(now_us)
  sleep "$IDLE_SECS"
  c1=$(cpu_ticks "${pids[@]}")
  t1=$(now_us)
  running=$(count_procs sleep)
  cpu100[$tool]=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v us=$((t1 - t0)) \
    'BEGIN { printf "%.2f %%", d / hz / (us / 1e6) * 100 }')
  rss100[$tool]=$(mib "$(rss_kib "$sup_pid")")
  [ "$running" = 100 ] || note[$tool]+="$running of 100 processes ran in the idle case. "
  stop_tool "$tool" "$dir"
}

tools=(berth supervisord circus5 circus01 pm2)
begin=$(now_us)
floor_case
for t in "${tools[@]}"; do respawn_case "$t"; done
for t in "${tools[@]}"; do memory_case "$t"; done
for t in "${tools[@]}"; do idle_case "$t"; done

# ---- report ------------------------------------------------------------------------

declare -A label setup
label[floor]="no supervisor"
setup[floor]="bash loop re-running the probe"
label[berth]="berth $v_berth"
setup[berth]="backoff defaults, crash_loop max_exits 1000"
label[supervisord]="supervisord $v_supervisord"
setup[supervisord]="autorestart=true, startsecs=0"
label[circus5]="circus $v_circus"
setup[circus5]="check_delay 5 s (default), flapping off"
label[circus01]="circus $v_circus"
setup[circus01]="check_delay 0.1 s, flapping off"
label[pm2]="pm2 $v_pm2"
setup[pm2]="defaults (fork mode, restart_delay 0)"

fmt_ms() { [ "$1" = - ] && { echo -; return; }; awk -v x="$1" 'BEGIN { if (x < 100) printf "%.1f ms", x; else printf "%.0f ms", x }'; }

cores=$(nproc)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo "services beside supervisord, circus and pm2: $(date -u +%Y-%m-%dT%H:%MZ), $cores cores ($cpu), Linux $(uname -r)"
echo "probe: bash $BASH_VERSION; supervisord and circus on $("$work/venv/bin/python" --version); pm2 on Node.js $(node --version)"
echo "respawn: $SLOTS crashing processes per supervisor, one crash every $(awk -v p=$PERIOD_US -v s=$SLOTS 'BEGIN { printf "%.2f", p / s / 1e6 }') s; idle: ${IDLE_SECS} s; memory read ${SETTLE} s after the last process started"
echo
echo "| tool | setup | respawn median | p90 | max | respawns | RSS, 10 services | RSS, 100 processes | idle CPU, 100 processes |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in floor "${tools[@]}"; do
  read -r n med p90 max lost <<<"${respawn[$t]:-0 - - - 0}"
  r10=-
  if [ -n "${rss10[$t]:-}" ]; then
    r10="$(mib "${rss10[$t]}") MiB"
    if [ -n "${rss10_extra[$t]:-}" ]; then
      r10="$r10 + $(mib "${rss10_extra[$t]}") MiB watchdog = $(mib $((rss10[$t] + rss10_extra[$t]))) MiB"
    fi
  fi
  r100=-; [ -n "${rss100[$t]:-}" ] && r100="${rss100[$t]} MiB"
  c=${cpu100[$t]:--}
  resp="$n"; [ "$lost" != 0 ] && resp="$n ($lost exits not restarted)"
  echo "| ${label[$t]} | ${setup[$t]} | $(fmt_ms "$med") | $(fmt_ms "$p90") | $(fmt_ms "$max") | $resp | $r10 | $r100 | $c |"
done
for t in "${tools[@]}"; do
  [ -n "${note[$t]:-}" ] && echo && echo "note, ${label[$t]} (${setup[$t]}): ${note[$t]}"
done
echo
echo "whole run: $(( ($(now_us) - begin) / 1000000 )) s after the installs"
