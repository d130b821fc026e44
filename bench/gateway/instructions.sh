#!/usr/bin/env bash
# The instructions a front executes per request, berth's gateway beside nginx in one
# run: each front runs under valgrind's callgrind (nginx as one process, master_process
# off), and bench/gateway/requests.py sends an exact number of requests (10 kept-alive
# connections, one request at a time on each) to a proxied route (to one shared origin,
# an nginx answering a fixed body, not under valgrind) and to a static 1 KiB file. The
# counts are zeroed after a warm-up and read after the measured requests: the
# instructions of the front's own code and its libraries, per request. They do not
# count the kernel's work for its syscalls, which bench/gateway/run.sh's CPU table
# shows (the rest of a request's CPU time beside its user time). Unlike req/s and CPU
# time, these counts are the same from run to run, whatever else the machine does, so
# they show a change to the request path that timing cannot.
#
#   bench/gateway/instructions.sh [--berth PATH] [--requests N]
#
# --berth defaults to a release build made now (cargo build --release -p berth);
# --requests is the measured requests per case (default 10000), after 1000 of warm-up.
# Needs valgrind (callgrind_control), nginx, python3 and curl. Takes about 2 minutes.
# Everything runs in one `mktemp -d` directory, removed at the end with every process
# started here.
set -euo pipefail

REQUESTS=10000
CONNS=10
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
BERTH=${BERTH:-}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
while [ $# -gt 0 ]; do
  case $1 in
    --berth) [ $# -ge 2 ] || { usage >&2; exit 2; }; BERTH=$2; shift 2 ;;
    --berth=*) BERTH=${1#*=}; shift ;;
    --requests) [ $# -ge 2 ] || { usage >&2; exit 2; }; REQUESTS=$2; shift 2 ;;
    --requests=*) REQUESTS=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ $REQUESTS =~ ^[0-9]+$ ]] && [ "$REQUESTS" -ge "$CONNS" ] ||
  { echo "--requests takes a whole number of at least $CONNS, not '$REQUESTS'" >&2; exit 2; }
PER=$((REQUESTS / CONNS))
REQUESTS=$((PER * CONNS))

# shellcheck source=SCRIPTDIR/../lib.sh
. "$here/../lib.sh"
NGINX=${NGINX:-$(command -v nginx || true)}
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; }
[ -n "$NGINX" ] && [ -x "$NGINX" ] || die "nginx not installed: it is the origin, and the front beside berth"
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || die "$tool not installed (valgrind brings callgrind_control)"
done
berth_binary
nginx_options

work=$(mktemp -d -t berth-instructions.XXXXXX)
chmod 755 "$work"
cleanup() {
  set +e
  stop_groups
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/www/static"
head -c 1024 /dev/urandom >"$work/www/static/1k.bin"
chmod -R a+rX "$work/www"


free_port
up_port=$port
mkdir -p "$work/upstream"
render "$here/upstream.nginx.conf" "$work/upstream/nginx.conf" USER="$nginx_user" \
  DIR="$work/upstream" PORT="$up_port" UP=0 WWW="$work/www"
launch "$work/upstream" "$work/upstream/out.log" "$NGINX" -p "$work/upstream/" -c nginx.conf \
  ${nginx_e[@]+"${nginx_e[@]}"}
wait_http "$srv_pid" "http://127.0.0.1:$up_port/" || die "the origin nginx did not come up"

callgrind() { # DIR CMD...: CMD under callgrind in DIR, counting from the start
  local dir=$1
  shift
  launch "$dir" "$dir/out.log" valgrind --tool=callgrind \
    "--callgrind-out-file=$dir/callgrind.%p" "$@"
}

# Instructions per request: zeroed, the requests sent, dumped, read.
declare -A per_request
measure() { # TOOL PID PATH CASE
  local tool=$1 pid=$2 url=http://127.0.0.1:$port$3 c=$4 dump total
  log "  $tool: $c ($REQUESTS requests after 1000 of warm-up)"
  python3 "$here/requests.py" "$url" "$CONNS" 100 || die "$tool: the warm-up failed on $url"
  callgrind_control -z "$pid" >/dev/null 2>&1
  python3 "$here/requests.py" "$url" "$CONNS" "$PER" || die "$tool: the requests failed on $url"
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=$(ls -t "$dir"/callgrind."$pid".* | head -n 1)
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  [ -n "$total" ] || die "no total in $dump"
  per_request[$tool,$c]=$((total / REQUESTS))
}

for tool in berth nginx; do
  free_port
  dir=$work/$tool
  mkdir -p "$dir"
  log "$tool under callgrind on 127.0.0.1:$port"
  case $tool in
    berth)
      render "$here/berth.toml" "$dir/berth.toml" PORT="$port" UP="$up_port" WWW="$work/www"
      callgrind "$dir" "$BERTH" up
      ;;
    nginx)
      render "$here/front.nginx.conf" "$dir/nginx.conf" USER="$nginx_user" DIR="$dir" \
        PORT="$port" UP="$up_port" WWW="$work/www"
      # One process, so that one count holds all its work.
      callgrind "$dir" "$NGINX" -p "$dir/" -c nginx.conf -g 'master_process off;' \
        ${nginx_e[@]+"${nginx_e[@]}"}
      ;;
  esac
  pid=$srv_pid
  # valgrind starts slowly.
  if ! wait_http "$pid" "http://127.0.0.1:$port/proxy/hello" 120; then
    tail -n 20 "$dir/out.log" >&2 2>/dev/null || true
    die "$tool did not come up under valgrind"
  fi
  measure "$tool" "$pid" /proxy/hello proxied
  measure "$tool" "$pid" /static/1k.bin static
  stop_server "$pid"
done

echo "Instructions per request under callgrind: $(date -u +%Y-%m-%dT%H:%MZ), $REQUESTS requests per case"
echo "over $CONNS kept-alive connections; berth: $("$BERTH" --version 2>&1 | head -n 1);"
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (one process); valgrind: $(valgrind --version)"
echo
echo "| case | berth | nginx | berth / nginx |"
echo "|---|---|---|---|"
for c in proxied static; do
  b=${per_request[berth,$c]} n=${per_request[nginx,$c]}
  label=$([ "$c" = proxied ] && echo "proxied" || echo "static 1 KiB")
  echo "| $label | $b | $n | $(awk -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", b / n }') |"
done
