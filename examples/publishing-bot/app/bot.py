"""Shared helpers of the publishing bot's steps.

Each step of a workflow is a job: berth hands it {"input": ..., "parents": {...}} on
stdin (a `run` step) or in job.args (the pull worker), and a `run` step hands its result
on by writing JSON to the file named by $BERTH_RESULT.

The code runs from a release (releases/<id>/, made by `berth deploy`); what it
publishes is shared by every release: site/ beside berth.toml (BOT_ROOT overrides)."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# releases/<id>/bot.py -> the folder of berth.toml
ROOT = os.environ.get("BOT_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
SITE = os.path.join(ROOT, "site")
STATE = os.path.join(ROOT, "var")


def job():
    """The step's job args, from stdin."""
    return json.load(sys.stdin)


def result(value):
    """The step's result, which its children receive."""
    with open(os.environ["BERTH_RESULT"], "w") as f:
        json.dump(value, f)


def release():
    """The release this process runs (its directory's name), or `dev` outside berth."""
    return os.path.basename(os.environ.get("BERTH_RELEASE", "")) or "dev"


def version():
    with open(os.path.join(HERE, "VERSION")) as f:
        return f.read().strip()


def write(path, text):
    """Writes a file whole: a reader (the gateway) never sees half of it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def load_index():
    try:
        with open(os.path.join(SITE, "index.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return []
