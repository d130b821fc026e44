#!/bin/sh
# The install step of lms-import, run once before `berth up` (running it again is
# harmless). It makes what the cloop runbook made by hand:
#   1. repo/: the app's git repository (a stand-in for your git server), from app/;
#   2. var/, where the app keeps its database;
#   3. the first release: `berth deploy` with berth down builds it, backs up, runs the
#      migrations (they create var/lms.sqlite3 and its tables: the runbook's CREATE
#      DATABASE), and points releases/current at it;
#   4. two logins: `admin` (role admin) and `teacher` (no role).
set -eu
cd "$(dirname "$0")"
BERTH=${BERTH:-berth}

for tool in "$BERTH" python3 git; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup: \`$tool\` is not on PATH" >&2; exit 1; }
done

# 1. The git repository berth deploys from ([deploy] repo = "repo").
if [ ! -d repo/.git ]; then
    mkdir -p repo
    cp -R app/. repo/
    git -C repo init -q
    git -C repo add -A
    git -C repo -c user.name=setup -c user.email=setup@example.org commit -q -m "cloop: first release"
    echo "setup: made the git repository repo/ from app/"
else
    echo "setup: repo/ exists"
fi

# 2. Where the database goes: the first deploy's migrations create it (its backup, taken
#    before, holds it empty).
mkdir -p var

# 3. The first release (berth must not run yet: then `berth deploy` runs it itself).
if [ ! -e releases/current ]; then
    "$BERTH" deploy
else
    echo "setup: a release is live ($(basename "$(readlink releases/current)"))"
fi

# 4. Users live in berth's store; `berth user` works before `berth up`.
add_user() {
    if "$BERTH" user list | awk 'NR > 1 { print $1 }' | grep -qx "$1"; then
        echo "setup: user $1 exists"
    else
        name=$1; password=$2; shift 2
        printf '%s\n' "$password" | "$BERTH" user add "$name" "$@" --password-stdin
    fi
}
add_user admin admin-password --role admin
add_user teacher teacher-password

echo "setup: done. Start berth with \`berth up\`, then open https://127.0.0.1:8500/"
echo "       (logins: admin / admin-password, teacher / teacher-password; change them with \`berth user passwd NAME\`)"
