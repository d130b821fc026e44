#!/bin/sh
# The install step of the backoffice example (run it once, in this folder; running it
# again changes nothing):
#   1. repo/: the app's code as a git repository, the one berth deploys from, with its
#      versions as tags: v1 (app/), v2 (+ upgrades/v2: a migration), and two broken
#      upgrades of v2, v3-broken-migration and v3-crashing-web;
#   2. the first release, v1, made by `berth deploy v1` while berth is down: its
#      migration creates the database, data/backoffice.sqlite3;
#   3. demo contracts in the database, and their documents in attachments/.
set -eu
cd "$(dirname "$0")"

if ! command -v berth >/dev/null 2>&1; then
    echo "setup.sh: berth is not on PATH; install it first (see berth's README)" >&2
    exit 1
fi

mkdir -p data attachments

if [ ! -d repo/.git ]; then
    rm -rf repo.partial
    git init -q -b main repo.partial
    version() {  # version TAG DIR MESSAGE: copy DIR over the tree, commit, tag
        cp -R "$2/." repo.partial/
        git -C repo.partial add -A
        git -C repo.partial -c user.name="Back office dev" -c user.email=dev@example.org \
            commit -q -m "$3"
        git -C repo.partial tag "$1"
    }
    version v1 app "v1: contracts, invoices, the invoicing batch"
    version v2 upgrades/v2 "v2: invoices get a due date"
    git -C repo.partial checkout -q --detach v2
    version v3-broken-migration upgrades/v3-broken-migration "v3: one contract per email (fails on real data)"
    git -C repo.partial checkout -q --detach v2
    version v3-crashing-web upgrades/v3-crashing-web "v3: an invoice footer (settings.json with a typo)"
    git -C repo.partial checkout -q main
    mv repo.partial repo
    echo "repo/: the app's git repository, with the tags $(git -C repo tag | tr '\n' ' ')"
fi

if [ ! -e releases/current ]; then
    # The deploy backs the database up (empty: it does not exist yet), then its
    # migration creates it.
    berth deploy v1
fi

python3 demo_data.py
