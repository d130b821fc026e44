"""Prints contract ids, one per line: the items of the invoicing batch.

    python3 contracts.py            every contract
    python3 contracts.py --active   the active ones (what the nightly batch invoices)
"""

import sys

import backoffice

conn = backoffice.connect()
query = "SELECT id FROM contracts"
if "--active" in sys.argv[1:]:
    query += " WHERE status = 'active'"
for (cid,) in conn.execute(query + " ORDER BY id"):
    print(cid)
