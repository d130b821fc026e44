#!/usr/bin/env bash
# A deploy under load: wrk on a route the gateway proxies to a Python app (2 instances,
# the standard library's HTTP server), `run` jobs in flight, and `berth deploy` of a new
# commit in the middle. Beside it, the runbooks' way on the same app: stop the service,
# start it again (`berth stop web; berth start web`, as "stop everything, check out,
# start" does). Then `berth rollback`. Prints one markdown table on stdout: requests, failed requests (wrk's
# non-2xx and socket errors), jobs lost or run twice, and the switch's and rollback's
# time as berth recorded them. Progress on stderr.
#
#   bash bench/deploy/run.sh                  (builds berth with cargo first)
#   BERTH=/path/to/berth bash bench/deploy/run.sh
#
# Knobs (environment): DURATION (wrk seconds per case, default 12), CONNECTIONS (16),
# JOBS (200), BERTH. Needs git, python3, curl and wrk. Everything lives in one
# `mktemp -d` directory, removed at the end; berth runs in its own process group.
set -euo pipefail

DURATION=${DURATION:-12}
CONNECTIONS=${CONNECTIONS:-16}
JOBS=${JOBS:-200}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$root/bench/lib.sh"
for tool in git python3 curl wrk; do
  command -v "$tool" >/dev/null || die "this benchmark needs $tool"
done
berth_binary

work=$(mktemp -d -t berth-deploy.XXXXXX)
trap 'stop_groups; rm -rf "$work"' EXIT
cd "$work"

free_port; gw=$port
free_port; web=$port
while port_busy $((web + 1)) || port_busy $((web + 2)) || port_busy $((web + 3)); do free_port; web=$port; done

mkdir app
cat >app/app.py <<'EOF'
import http.server, signal, sys, threading
port = int(sys.argv[1])
version = open("VERSION").read().strip()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 1
    def do_GET(self):
        body = (version + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
s = S(("127.0.0.1", port), H)
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=s.shutdown).start())
s.serve_forever()
s.server_close()
EOF
cat >app/job.sh <<'EOF'
sleep 0.05
echo "$BERTH_JOB_ID" >> "$1"
EOF
echo v1 >app/VERSION
g() { git -C app -c user.name=bench -c user.email=bench@example.org "$@"; }
g init -q -b main && g add -A && g commit -qm v1

cat >berth.toml <<EOF
[app]
name = "deploybench"
shutdown_grace = "5s"

[gateway]
listen = "127.0.0.1:$gw"

[[gateway.route]]
service = "web"

[service.web]
command = "python3 app.py {port}"
instances = 2
ports = "$web-$((web + 3))"
ready = { http = "/" }
stop_grace = "5s"

[queue.work]
handler = { run = "sh job.sh $work/jobs.log" }
concurrency = 4

[deploy]
repo = "app"
ref = "main"
backup = false
health = "2s"
EOF

log "first release, then berth up"
"$BERTH" deploy >&2
launch "$work" "$work/berth.log" env BERTH_LOG=warn "$BERTH" up
berth_pid=$srv_pid
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$gw/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$gw/" >/dev/null || die "the app does not answer: $(tail -5 "$work/berth.log")"

# wrk's requests and failures (non-2xx/3xx plus socket errors) from its output.
wrk_row() { # FILE
  local req fail=0 n
  req=$(awk '/requests in/ {print $1}' "$1")
  n=$(awk -F'Non-2xx or 3xx responses: ' 'NF > 1 {print $2}' "$1"); fail=$((fail + ${n:-0}))
  n=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$1")
  for x in $n; do fail=$((fail + x)); done
  printf '%s %s' "$req" "$fail"
}

push_jobs() {
  local i body='{"jobs":['
  for ((i = 0; i < JOBS; i++)); do
    body+="{\"queue\":\"work\",\"kind\":\"bench\",\"args\":{\"n\":$i}}"
    [ $i -lt $((JOBS - 1)) ] && body+=','
  done
  body+=']}'
  curl -fsS --unix-socket .berth/berth.sock -H content-type:application/json \
    -d "$body" http://localhost/v1/jobs/bulk >/dev/null
}
jobs_done() { # expected count: waits, then prints "lost twice"
  local want=$1 i
  for ((i = 0; i < 600; i++)); do
    [ "$(wc -l <jobs.log 2>/dev/null || echo 0)" -ge "$want" ] && break
    sleep 0.1
  done
  sleep 1
  local lines uniq
  lines=$(wc -l <jobs.log)
  uniq=$(sort -u jobs.log | wc -l)
  printf '%s %s' $((want - uniq)) $((lines - uniq))
}

log "berth deploy of v2 under wrk ($DURATION s, $CONNECTIONS connections) with $JOBS jobs"
echo v2 >app/VERSION && g commit -qam v2
: >jobs.log
push_jobs
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$gw/" >wrk-deploy.txt 2>&1 &
wrk_pid=$!
sleep 2
"$BERTH" deploy >deploy.txt 2>&1 || { cat deploy.txt >&2; die "the deploy failed"; }
wait $wrk_pid
read -r d_req d_fail <<<"$(wrk_row wrk-deploy.txt)"
read -r d_lost d_twice <<<"$(jobs_done "$JOBS")"
switch=$("$BERTH" --json releases | python3 -c 'import json,sys; r=json.load(sys.stdin)["releases"][-1]; print(next(s["seconds"] for s in r["steps"] if s["name"]=="switch"))')
total=$("$BERTH" --json releases | python3 -c 'import json,sys,datetime as d; r=json.load(sys.stdin)["releases"][-1]; p=lambda t: d.datetime.fromisoformat(t.replace("Z","+00:00")); print(round((p(r["finished_at"])-p(r["created_at"])).total_seconds(),1))')
curl -fsS "http://127.0.0.1:$gw/" | grep -q v2 || die "v2 does not answer after the deploy"

log "the runbooks' way: stop, start, under the same wrk"
v1=$("$BERTH" --json releases | python3 -c 'import json,sys; print(json.load(sys.stdin)["releases"][0]["id"])')
: >jobs.log
push_jobs
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$gw/" >wrk-manual.txt 2>&1 &
wrk_pid=$!
sleep 2
start=$(date +%s.%N)
"$BERTH" stop web >/dev/null
"$BERTH" start web >/dev/null
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$gw/" >/dev/null 2>&1 && break; sleep 0.05; done
manual=$(python3 -c "import time; print(round(time.time() - $start, 1))")
wait $wrk_pid
read -r m_req m_fail <<<"$(wrk_row wrk-manual.txt)"
read -r m_lost m_twice <<<"$(jobs_done "$JOBS")"

log "berth rollback to v1 under wrk"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$gw/" >wrk-rollback.txt 2>&1 &
wrk_pid=$!
sleep 2
start=$(date +%s.%N)
"$BERTH" rollback "$v1" >/dev/null
rollback=$(python3 -c "import time; print(round(time.time() - $start, 1))")
wait $wrk_pid
read -r r_req r_fail <<<"$(wrk_row wrk-rollback.txt)"
curl -fsS "http://127.0.0.1:$gw/" | grep -q v1 || die "v1 does not answer after the rollback"
stop_server "$berth_pid"

cat <<EOF
| case | requests | failed requests | jobs lost | jobs run twice | time |
|---|---|---|---|---|---|
| \`berth deploy\` (fetch to health gate) | $d_req | $d_fail | $d_lost | $d_twice | switch ${switch}s, whole deploy ${total}s (2 s health gate) |
| stop, start (the runbooks) | $m_req | $m_fail | $m_lost | $m_twice | ${manual}s until it answers again |
| \`berth rollback\` | $r_req | $r_fail | - | - | ${rollback}s |
EOF
