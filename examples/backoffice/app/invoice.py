"""The invoicing batch's handler: invoices this month for a chunk of contracts.

berth runs it once per job with the job's args on stdin: {"items": [contract ids]}.
The whole chunk is one transaction: a contract that cannot be invoiced fails the chunk
(exit 1, the reason on stderr), and berth splits the chunk in halves until only the
contracts that fail on their own are left. Running it twice is harmless: an invoice is
made once per contract and month.
"""

import datetime
import json
import os
import sqlite3
import sys

import backoffice


def invoice(conn, cid, period, now):
    c = conn.execute("SELECT * FROM contracts WHERE id = ?", (cid,)).fetchone()
    if c is None:
        raise ValueError(f"contract {cid} does not exist")
    if c["status"] != "active":
        raise ValueError(f"contract {c['number']} is {c['status']}")
    if c["monthly_premium_cents"] is None:
        raise ValueError(f"contract {c['number']} has no premium")
    if not c["email"]:
        raise ValueError(f"contract {c['number']} has no email to send the invoice to")
    document = os.path.join("invoices", period, f"INV-{period}-{c['number']}.txt")
    path = os.path.join(backoffice.ATTACHMENTS, document)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(
            f"Invoice {period} for contract {c['number']} ({c['product']})\n"
            f"To: {c['holder']} <{c['email']}>\n"
            f"Amount: {c['monthly_premium_cents'] / 100:.2f}\n"
        )
    conn.execute(
        "INSERT OR IGNORE INTO invoices (contract_id, period, amount_cents, issued_at, document)"
        " VALUES (?, ?, ?, ?, ?)",
        (cid, period, c["monthly_premium_cents"], now, document),
    )


def main():
    items = json.load(sys.stdin)["items"]
    now = datetime.datetime.now(datetime.timezone.utc)
    period = now.strftime("%Y-%m")
    try:
        conn = backoffice.connect()
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        print(f"the database is busy ({e}); berth will try again", file=sys.stderr)
        return 75  # EX_TEMPFAIL: berth snoozes the job without counting the attempt
    errors = []
    for cid in items:
        try:
            invoice(conn, cid, period, now.isoformat(timespec="seconds"))
        except ValueError as e:
            errors.append(str(e))
    if errors:
        conn.execute("ROLLBACK")
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    conn.execute("COMMIT")
    print(f"invoiced {len(items)} contract(s) for {period}: {items}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
