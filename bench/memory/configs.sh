# The configs of berth's memory benchmarks (idle.sh, layout.sh), sourced: `config CASE
# DIR` prints the berth.toml of a case, for a data dir DIR (static files, a schema and
# the backup's media are written there). The cases: empty, services, queues, flows,
# gateway, ingest, notify, backup, all. free_port (bench/lib.sh) picks the listeners'
# ports. UPSTREAM (a port), set after sourcing this file, sends the gateway's budgeted
# route /api to an origin there and adds a route /proxy to it (layout.sh); unset, /api
# goes to port 9, where nothing answers (idle.sh).
# shellcheck shell=bash

UPSTREAM='' # not taken from the environment

app='[app]
name = "idle"
shutdown_grace = "2s"
'
services() {
  local i
  for i in 0 1 2 3 4 5 6 7 8 9; do printf '[service.s%d]\ncommand = "exec sleep 100000"\n\n' "$i"; done
}
queues='[queue.work]
handler = { run = "true" }
concurrency = 8

[queue.pull]
handler = "pull"
'
flows='[queue.default]
handler = { run = "true" }

[schedule.tick]
cron = "*/5 * * * *"
job = { queue = "default", kind = "tick" }

[workflow.publish.step.fetch]
handler = { run = "true" }

[workflow.publish.step.send]
handler = { run = "true" }
parents = ["fetch"]
'
gateway() {
  free_port
  mkdir -p "$1/dist"
  echo '<h1>hello</h1>' >"$1/dist/index.html"
  mkdir -p "$1/dist/static"
  head -c 1024 /dev/zero >"$1/dist/static/1k.bin"
  head -c 1048576 /dev/zero >"$1/dist/static/1m.bin"
  local proxied=''
  if [ -n "${UPSTREAM:-}" ]; then
    proxied=$(printf '[[gateway.route]]\npath = "/proxy"\nproxy = "http://127.0.0.1:%s"\n' "$UPSTREAM")
  fi
  cat <<EOT
[gateway]
listen = "127.0.0.1:$port"

[[gateway.route]]
path = "/"
static = "dist"

[[gateway.route]]
path = "/api"
proxy = "http://127.0.0.1:${UPSTREAM:-9}"
budget = "nlu"

$proxied

[budget.nlu]
limit = 10.0
period = "month"
cost_per_request = 0.002
EOT
}
ingest() {
  free_port
  cp "$root/bench/ingest/protocol.schema.json" "$1/"
  cat <<EOT
[ingest.stands]
mqtt = { listen = "127.0.0.1:$port", auth = "anonymous" }
topics = ["+/inbound"]
schema = "protocol.schema.json"
device = 1
EOT
}
notify='[notify.ops]
webhook = "http://127.0.0.1:9/hook"
on = ["*"]
'
backup() {
  mkdir -p "$1/media"
  cat <<EOT
[backup]
dir = "backups"
schedule = "0 3 * * *"
include = ["media"]
EOT
}

config() { # CASE DIR: the config of a case
  local dir=$2
  printf '%s\n' "$app"
  case $1 in
    empty) ;;
    services) services ;;
    queues) printf '%s\n' "$queues" ;;
    flows) printf '%s\n' "$flows" ;;
    gateway) gateway "$dir" ;;
    ingest) ingest "$dir" ;;
    notify) printf '%s\n' "$notify" ;;
    backup) backup "$dir" ;;
    all)
      services
      printf '%s\n%s\n%s\n' "$queues" "$flows" "$notify"
      gateway "$dir"
      ingest "$dir"
      backup "$dir"
      ;;
  esac
}
