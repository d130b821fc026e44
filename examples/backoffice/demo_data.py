"""Fills the back office's database with demo contracts, and attachments/ with their
signed documents. Run by setup.sh once the first release has created the tables;
running it again changes nothing.

Among the 40 contracts: 3 are terminated (not invoiced), 3 active ones have a data error
the invoicing batch stumbles on (C-0007 and C-0023 have no premium, C-0031 no email), and
C-0012 and C-0013 belong to one customer (version 3's broken migration trips on them).
"""

import os
import sqlite3

DATABASE = os.path.join("data", "backoffice.sqlite3")
PRODUCTS = ["home", "car", "health", "life"]
FIRST = ["Alice", "Bruno", "Chloe", "David", "Emma", "Farid", "Gaelle", "Hugo"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert"]

conn = sqlite3.connect(DATABASE)
with conn:
    for cid in range(1, 41):
        holder = f"{FIRST[cid % len(FIRST)]} {LAST[cid % len(LAST)]}"
        email = f"customer{cid}@example.org"
        if cid == 13:
            email, holder = "customer12@example.org", "Emma Bernard"  # C-0012's holder again
        if cid == 31:
            email = ""
        premium = None if cid in (7, 23) else 1500 + 250 * (cid % 9)
        status = "terminated" if cid in (10, 20, 30) else "active"
        conn.execute(
            "INSERT OR IGNORE INTO contracts"
            " (id, number, holder, email, product, monthly_premium_cents, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, f"C-{cid:04d}", holder, email, PRODUCTS[cid % 4], premium, status),
        )
        path = os.path.join("attachments", "contracts", f"C-{cid:04d}.txt")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(f"Signed {PRODUCTS[cid % 4]} insurance contract C-{cid:04d}, {holder}\n")
count = conn.execute("SELECT count(*) FROM contracts").fetchone()[0]
print(f"demo data: {count} contracts in {DATABASE}, their documents in attachments/contracts/")
