# shellcheck shell=bash
# Shell helpers the benchmarks share: servers in process groups of their own, stopped
# whatever happens, and free ports. Sourced by bench/*/run.sh (bash).

log() { printf '%s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

groups=() # process groups started here (each server leads its own)

berth_binary() { # sets BERTH: as given (made absolute), else a release build made now in $root
  if [ -z "${BERTH:-}" ]; then
    (cd "$root" && cargo build --release -p berth >&2)
    BERTH=$root/target/release/berth
  fi
  [ -x "$BERTH" ] || die "no berth binary at $BERTH"
  BERTH=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")
}

alive() { # PID: exists and is not a zombie
  local s
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
  s=${s##*) }
  [ "${s%% *}" != Z ]
}
group_alive() { # PGID: any process of that group left
  local f s
  for f in /proc/[0-9]*/stat; do
    { read -r s <"$f"; } 2>/dev/null || continue
    s=${s##*) }
    read -r -a s <<<"$s"
    [ "${s[0]}" != Z ] && [ "${s[2]}" = "$1" ] && return 0
  done
  return 1
}
stop_group() { # PGID: SIGTERM to the group, up to 10 s of grace, then SIGKILL
  local i
  kill -TERM -- "-$1" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do group_alive "$1" || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_groups() { # every group started here
  local g
  for g in ${groups[@]+"${groups[@]}"}; do stop_group "$g"; done
  groups=()
}
launch() { # DIR LOG CMD...: starts a server in its own process group, cwd DIR; sets srv_pid
  local dir=$1 out=$2
  shift 2
  (cd "$dir" && exec setsid "$@") >"$out" 2>&1 </dev/null &
  srv_pid=$!
  groups+=("$srv_pid")
}
stop_server() { # PID
  local g keep=()
  stop_group "$1"
  for g in "${groups[@]}"; do [ "$g" = "$1" ] || keep+=("$g"); done
  groups=(${keep[@]+"${keep[@]}"})
}

picked=" "
port_busy() { # PORT: something listens or is connected on it locally, or we took it
  case $picked in *" $1 "*) return 0 ;; esac
  if command -v ss >/dev/null; then
    [ -n "$(ss -Htan "( sport = :$1 )" 2>/dev/null)" ]
  else
    (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}
free_port() { # sets port: a free one in 20000-32000
  local i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12001))
    port_busy "$port" || { picked+="$port "; return 0; }
  done
  die "no free port found in 20000-32000"
}
wait_port() { # PID PORT: until PORT accepts connections (up to 15 s) while PID lives
  local i
  for ((i = 0; i < 150; i++)); do
    alive "$1" || return 1
    (: <"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

render() { # TEMPLATE OUT KEY=VALUE...: copies TEMPLATE with every @KEY@ replaced
  local tpl=$1 out=$2 kv k v script=''
  shift 2
  for kv in "$@"; do
    k=${kv%%=*}
    v=${kv#*=}
    v=${v//\\/\\\\}
    v=${v//&/\\&}
    v=${v//|/\\|}
    script+="s|@${k}@|${v}|g;"
  done
  sed -e "$script" "$tpl" >"$out"
  if grep -q '@[A-Z_]*@' "$out"; then
    echo "unfilled field in $out: $(grep -o '@[A-Z_]*@' "$out" | sort -u | tr '\n' ' ')" >&2
    exit 1
  fi
}

nginx_options() { # sets nginx_user (for a template's @USER@) and nginx_e, for $NGINX
  # As root, nginx's workers switch to `nobody` (the Debian build has no --user) unless
  # told otherwise; they would then be unable to write their temp dirs in the work dir.
  if [ "$(id -u)" = 0 ]; then
    nginx_user='user root;'
  else
    nginx_user='# not root: the workers keep the current user'
  fi
  # Its early error log in its own directory, where the build can be told so.
  nginx_e=()
  if "$NGINX" -h 2>&1 | grep -q -- '-e filename'; then nginx_e=(-e error.log); fi
}
wait_http() { # PID URL [SECONDS]: until URL answers 200 (default up to 15 s) while PID lives
  local i
  for ((i = 0; i < ${3:-15} * 10; i++)); do
    alive "$1" || return 1
    [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$2" 2>/dev/null)" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}
