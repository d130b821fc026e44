"""`manage.py migrate`: applies the migrations/*.sql files not applied yet, in name
order, each in one transaction. berth runs it once per deploy (`[deploy] migrate`),
after the backup and before the switch."""

import os
import sys

import lms


def main():
    db = lms.connect()
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = set(lms.applied_migrations(db))
    todo = sorted(f for f in os.listdir(lms.MIGRATIONS) if f.endswith(".sql") and f[:-4] not in done)
    if not todo:
        print("no migrations to apply")
    for name in todo:
        with open(os.path.join(lms.MIGRATIONS, name)) as f:
            sql = f.read()
        try:
            db.executescript("BEGIN;\n" + sql + "\nINSERT INTO schema_migrations VALUES ('%s', datetime('now'));\nCOMMIT;" % name[:-4])
        except Exception as e:
            db.rollback()
            sys.exit(f"migration {name} failed: {e}")
        print(f"applied {name}")
    print("schema is at", (lms.applied_migrations(db) or ["nothing"])[-1])


if __name__ == "__main__":
    main()
