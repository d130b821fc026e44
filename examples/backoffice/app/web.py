"""The back office's web app: contracts and invoices, read from the SQLite database.

    python3 web.py PORT

Pages: / (contracts), /invoices (every column of every invoice, so a migration's new
column shows up), /api/status and /api/invoices (JSON), /health (for berth's checks).
"""

import html
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import backoffice

SETTINGS = backoffice.settings()  # read once at start: a broken file stops the app here
VERSION = backoffice.version()
RELEASE = os.path.basename(os.environ.get("BERTH_RELEASE", backoffice.HERE))


def status(conn):
    return {
        "version": VERSION,
        "release": RELEASE,
        "schema": backoffice.schema_version(conn),
        "contracts": conn.execute("SELECT count(*) FROM contracts").fetchone()[0],
        "invoices": conn.execute("SELECT count(*) FROM invoices").fetchone()[0],
    }


def table(rows):
    if not rows:
        return "<p>None yet.</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0].keys())
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r) + "</tr>"
        for r in rows
    )
    return f"<table border=1 cellpadding=4><tr>{head}</tr>{body}</table>"


def page(title, conn, content):
    s = status(conn)
    return (
        f"<!doctype html><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(SETTINGS['company'])}: {html.escape(title)}</h1>"
        f"<p>version {s['version']} (release {s['release']}, schema {s['schema']}) · "
        f"{s['contracts']} contracts · {s['invoices']} invoices · "
        f"<a href='/'>contracts</a> · <a href='/invoices'>invoices</a></p>{content}"
    )


class Handler(BaseHTTPRequestHandler):
    def send(self, code, body, kind="text/html; charset=utf-8"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        conn = backoffice.connect()
        try:
            if url.path == "/health":
                s = status(conn)
                self.send(200, f"ok: version {s['version']}, schema {s['schema']}\n", "text/plain")
            elif url.path == "/api/status":
                self.send(200, json.dumps(status(conn)), "application/json")
            elif url.path == "/api/invoices":
                q = parse_qs(url.query)
                sql, args = "SELECT * FROM invoices", ()
                if "contract" in q:
                    sql, args = sql + " WHERE contract_id = ?", (int(q["contract"][0]),)
                rows = [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]
                self.send(200, json.dumps(rows), "application/json")
            elif url.path == "/invoices":
                rows = conn.execute("SELECT * FROM invoices ORDER BY id DESC LIMIT 200").fetchall()
                self.send(200, page("invoices", conn, table(rows)))
            elif url.path == "/":
                rows = conn.execute(
                    "SELECT c.number, c.holder, c.product, c.status,"
                    " printf('%.2f', c.monthly_premium_cents / 100.0) AS premium,"
                    " max(i.period) AS last_invoiced"
                    " FROM contracts c LEFT JOIN invoices i ON i.contract_id = c.id"
                    " GROUP BY c.id ORDER BY c.id"
                ).fetchall()
                self.send(200, page("contracts", conn, table(rows)))
            else:
                self.send(404, "not found\n", "text/plain")
        finally:
            conn.close()

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


if __name__ == "__main__":
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"back office version {VERSION} listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
