"""Shared helpers of the cloop stand-in: where the data lives, the database, the CSV
format of an LMS export.

The code runs from a release directory (releases/<id>/, made by `berth deploy`), while
the data is shared by every release: the SQLite database in var/ and the import folder
in import/, both beside berth.toml. LMS_ROOT overrides that folder."""

import os
import sqlite3

HERE = os.path.dirname(os.path.abspath(__file__))
# releases/<id>/lms.py -> the folder of berth.toml
ROOT = os.environ.get("LMS_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
DB = os.path.join(ROOT, "var", "lms.sqlite3")
IMPORT_DIR = os.path.join(ROOT, "import")
MIGRATIONS = os.path.join(HERE, "migrations")

# The columns of an activity export (Blackboard's "course activity" report, trimmed).
COLUMNS = ["course", "student", "resource", "action", "timestamp"]


def connect():
    os.makedirs(os.path.dirname(DB), exist_ok=True)
    db = sqlite3.connect(DB, timeout=30)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    return db


def applied_migrations(db):
    try:
        return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    except sqlite3.OperationalError:
        return []


def release():
    """The release this process runs (its directory's name), or `dev` outside berth."""
    return os.path.basename(os.environ.get("BERTH_RELEASE", "")) or "dev"
