#!/usr/bin/env bash
# Backup speed and size: berth backup save / verify beside the script teams write today
# (sqlite3's .backup, then tar with gzip, then sha256sum for a check), on the same data:
# a berth store of JOBS jobs (default 300,000) and a media directory of FILES files
# (default 200) of 512 KiB each, half random bytes, half text.
#
#   bash bench/backup/run.sh            (BERTH: default target/release/berth)
#
# Knobs (environment): JOBS, FILES, DIR (where the data lives; default a mktemp -d in
# the current directory, so that fsync hits the disk berth would use; KEEP=1 keeps it).
# Each step is timed with /usr/bin/time (wall seconds and peak RSS). Prints one markdown
# table on stdout, progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh

BERTH=${BERTH:-$root/target/release/berth}
JOBS=${JOBS:-300000}
FILES=${FILES:-200}
[ -x "$BERTH" ] || die "no berth binary at $BERTH; cargo build --release -p berth"
for tool in sqlite3 tar gzip sha256sum python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || die "needs $tool"
done

work=${DIR:-$(mktemp -d "$PWD/berth-backup-bench.XXXXXX")}
cleanup() {
  stop_groups
  [ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/berth.toml" <<TOML
[app]
name = "bench"
shutdown_grace = "2s"

[queue.work]
handler = "pull"

[backup]
dir = "backups"
include = ["media"]
TOML

log "making $FILES media files"
python3 - "$work/media" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
line = b"invoice 2026-12-05 item 42 qty 3 price 19.90 EUR customer ACME GmbH\n"
for i in range(n):
    with open(os.path.join(d, f"f{i:04}.bin"), "wb") as f:
        if i % 2:
            f.write(os.urandom(512 * 1024))
        else:
            f.write((line * (512 * 1024 // len(line) + 1))[: 512 * 1024])
PY

log "pushing $JOBS jobs"
python3 - "$work/jobs.jsonl" "$JOBS" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"queue": "work", "kind": "import",
                            "args": {"file": f"exports/{i}.csv", "customer": i % 977}}) + "\n")
PY
launch "$work" "$work/up.log" "$BERTH" up
for _ in $(seq 100); do "$BERTH" -c "$work/berth.toml" status >/dev/null 2>&1 && break; sleep 0.1; done
split -l 100000 "$work/jobs.jsonl" "$work/part."
for part in "$work"/part.*; do "$BERTH" -c "$work/berth.toml" job push-many "$part" >/dev/null; done
stop_server "$srv_pid"

timed() { # NAME CMD...: runs in $work, prints "NAME|seconds|peak MiB"
  local name=$1
  shift
  (cd "$work" && /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null 2>"$work/err.out") \
    || { cat "$work/err.out" >&2; die "$name failed"; }
  read -r secs kib <"$work/time.out"
  printf '%s|%s|%s\n' "$name" "$secs" "$((kib / 1024))"
}

db_bytes=$(stat -c %s "$work/.berth/berth.db")
media_bytes=$(du -sb "$work/media" | cut -f1)
log "store $((db_bytes / 1048576)) MiB, media $((media_bytes / 1048576)) MiB"
sync

rows=()
rows+=("$(timed 'berth backup save' "$BERTH" backup save)")
archive=$(ls "$work"/backups/berth-*.tar.zst)
rows+=("$(timed 'berth backup verify' "$BERTH" backup verify "$archive")")
rows+=("$(timed 'script: sqlite3 .backup' sqlite3 .berth/berth.db '.backup snap.db')")
rows+=("$(timed 'script: tar czf' tar czf script.tar.gz snap.db media)")
rows+=("$(timed 'script: sha256sum (manifest)' sh -c 'sha256sum snap.db media/* > script.sha256')")
rows+=("$(timed 'script: gzip -t (check)' gzip -t script.tar.gz)")

echo "| step | seconds | peak RSS (MiB) |"
echo "|---|---|---|"
for r in "${rows[@]}"; do
  IFS='|' read -r name secs mib <<<"$r"
  echo "| $name | $secs | $mib |"
done
echo
echo "store $((db_bytes / 1048576)) MiB + media $((media_bytes / 1048576)) MiB;" \
  "berth archive $(($(stat -c %s "$archive") / 1048576)) MiB," \
  "script archive $(($(stat -c %s "$work/script.tar.gz") / 1048576)) MiB"
