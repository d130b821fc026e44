"""Imports one LMS activity export (a CSV file) into the database.

berth runs it as a job for each file dropped into import/ ([ingest.imports] and
[queue.imports]): the file is already in import/processing, and berth moves it to
import/done when this exits 0, or to import/error with NAME.error.log beside it once
every attempt failed (and mails the import admins). So this script only imports, and
says clearly what is wrong with a bad file."""

import csv
import datetime
import os
import sys

import lms


def fail(msg):
    print(f"{os.path.basename(sys.argv[1])}: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    path = sys.argv[1]
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != lms.COLUMNS:
            fail(f"line 1: expected the columns {','.join(lms.COLUMNS)}, found {','.join(header or [])!r}")
        rows = []
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(lms.COLUMNS):
                fail(f"line {n}: expected {len(lms.COLUMNS)} fields, found {len(row)}")
            try:
                datetime.datetime.fromisoformat(row[4])
            except ValueError:
                fail(f"line {n}: timestamp {row[4]!r} is not an ISO 8601 time")
            rows.append(row)
    db = lms.connect()
    with db:
        cur = db.execute(
            "INSERT INTO imports (file, rows, imported_at, release) VALUES (?, ?, datetime('now'), ?)",
            (os.path.basename(path), len(rows), lms.release()),
        )
        db.executemany(
            "INSERT INTO activity (course, student, resource, action, at, import_id) VALUES (?, ?, ?, ?, ?, ?)",
            [r + [cur.lastrowid] for r in rows],
        )
    print(f"imported {len(rows)} rows from {os.path.basename(path)}")


if __name__ == "__main__":
    main()
