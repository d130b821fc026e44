#!/bin/sh
# The install step of publishing-bot, run once before `berth up` (running it again is
# harmless). It makes what the eLife runbook made by hand:
#   1. repo/: the bot's git repository (a stand-in for your git server), from app/ and
#      berth's Python worker module (clients/python/berth_worker.py);
#   2. the first release: `berth deploy` with berth down builds it and points
#      releases/current at it; `berth up` then starts the render workers on it.
set -eu
cd "$(dirname "$0")"
BERTH=${BERTH:-berth}

for tool in "$BERTH" python3 git; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup: \`$tool\` is not on PATH" >&2; exit 1; }
done

# 1. The git repository berth deploys from ([deploy] repo = "repo").
if [ ! -d repo/.git ]; then
    [ -f ../../clients/python/berth_worker.py ] || {
        echo "setup: ../../clients/python/berth_worker.py (berth's Python worker module) is missing; run this example from berth's repository" >&2
        exit 1
    }
    mkdir -p repo
    cp -R app/. repo/
    # The render workers use berth's worker module, shipped with each release.
    cp ../../clients/python/berth_worker.py repo/
    git -C repo init -q
    git -C repo add -A
    git -C repo -c user.name=setup -c user.email=setup@example.org commit -q -m "bot: first release"
    echo "setup: made the git repository repo/ from app/"
else
    echo "setup: repo/ exists"
fi

# 2. The first release (berth must not run yet: then `berth deploy` runs it itself).
if [ ! -e releases/current ]; then
    "$BERTH" deploy
else
    echo "setup: a release is live ($(basename "$(readlink releases/current)"))"
fi

mkdir -p site
echo "setup: done. Start berth with \`berth up\`, then drop an article:"
echo "       cp samples/elife-04395.xml incoming/"
