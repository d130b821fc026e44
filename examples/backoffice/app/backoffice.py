"""Shared by the back office's programs: where the data lives, and the settings.

A release runs in releases/<id>/ of the project (berth's `[deploy]` puts it there), so
the project's data folder is two levels up: data/backoffice.sqlite3 and attachments/.
"""

import json
import os
import sqlite3

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATABASE = os.path.join(PROJECT, "data", "backoffice.sqlite3")
ATTACHMENTS = os.path.join(PROJECT, "attachments")


def version():
    with open(os.path.join(HERE, "VERSION")) as f:
        return f.read().strip()


def settings():
    """settings.json of the release; a broken one stops the program at once."""
    with open(os.path.join(HERE, "settings.json")) as f:
        return json.load(f)


def connect():
    conn = sqlite3.connect(DATABASE, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def schema_version(conn):
    try:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    except sqlite3.OperationalError:
        return 0
    return row[0] or 0
