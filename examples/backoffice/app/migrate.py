"""Applies the migrations of this release that the database has not seen yet.

Each file of migrations/ (001_name.sql, 002_name.sql, ...) runs once, in order, in a
transaction of its own, and is recorded in schema_migrations. berth runs this as the
deploy's `migrate` step, after the deploy's backup; a failure rolls the deploy back.
"""

import os
import sys

import backoffice


def main():
    os.makedirs(os.path.dirname(backoffice.DATABASE), exist_ok=True)
    conn = backoffice.connect()
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = backoffice.schema_version(conn)
    folder = os.path.join(backoffice.HERE, "migrations")
    pending = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".sql") and int(name.split("_", 1)[0]) > done:
            pending.append(name)
    if not pending:
        print(f"the database is at schema {done}: nothing to migrate")
        return 0
    for name in pending:
        with open(os.path.join(folder, name)) as f:
            sql = f.read()
        number = int(name.split("_", 1)[0])
        try:
            conn.executescript(
                "BEGIN;\n" + sql + "\n;INSERT INTO schema_migrations VALUES "
                f"({number}, '{name}', datetime('now'));\nCOMMIT;"
            )
        except Exception as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            print(f"migration {name} failed: {e}", file=sys.stderr)
            return 1
        print(f"applied {name}")
    print(f"the database is at schema {backoffice.schema_version(conn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
