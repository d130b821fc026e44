"""The cloop web app (what gunicorn ran), standard library only.

berth's gateway stands in front of it ([gateway] in berth.toml): every page needs a login
(`auth = "login"`), /admin needs the `admin` role, and the gateway passes the user in
X-Berth-User and X-Berth-Roles. So the app has no login code of its own."""

import html
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lms

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:52rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
nav{display:flex;gap:1rem;align-items:center}footer{margin-top:2rem;color:#777;font-size:.9rem}
pre{background:#f6f6f6;padding:.5rem;white-space:pre-wrap}"""


def esc(v):
    return html.escape(str(v))


def table(id_, head, rows):
    out = [f'<table id="{id_}"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>")
    if not rows:
        out.append(f'<tr><td colspan="{len(head)}">nothing yet</td></tr>')
    return "".join(out) + "</table>"


class App(BaseHTTPRequestHandler):
    server_version = "cloop"

    def log_message(self, fmt, *args):  # one line per request in `berth logs web`
        if self.path == "/healthz":       # berth's ready and live checks
            return
        sys.stdout.write("%s %s\n" % (self.headers.get("X-Berth-User", "-"), fmt % args))
        sys.stdout.flush()

    def send(self, status, body, ctype="text/html; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def page(self, title, body):
        user = self.headers.get("X-Berth-User", "")
        roles = self.headers.get("X-Berth-Roles", "")
        db = lms.connect()
        schema = (lms.applied_migrations(db) or ["none"])[-1]
        admin_link = '<a href="/admin">Admin</a>' if "admin" in roles.split(",") else ""
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)} · cloop</title>
<style>{STYLE}</style></head><body>
<nav><strong>cloop</strong><a href="/">Courses</a>{admin_link}
<span style="margin-left:auto">Signed in as <b id="user">{esc(user)}</b></span>
<form method="post" action="/_berth/logout"><button id="logout">Log out</button></form></nav>
<h1>{esc(title)}</h1>{body}
<footer>release <span id="release">{esc(lms.release())}</span> · schema <span id="schema">{esc(schema)}</span></footer>
</body></html>"""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            db = lms.connect()
            schema = (lms.applied_migrations(db) or ["none"])[-1]
            return self.send(200, json.dumps({"ok": True, "schema": schema, "release": lms.release()}), "application/json")
        if path == "/":
            return self.home()
        if path == "/admin" or path == "/admin/":
            return self.admin()
        self.send(404, self.page("Not found", "<p>No such page.</p>"))

    def home(self):
        db = lms.connect()
        courses = [tuple(r) for r in db.execute("SELECT course, students, actions, updated_at FROM course_summary ORDER BY course")]
        imports = [tuple(r) for r in db.execute("SELECT file, rows, imported_at, release FROM imports ORDER BY id DESC LIMIT 20")]
        body = (
            "<h2>Course activity</h2><p>From the nightly summary.</p>"
            + table("courses", ["course", "active students", "actions", "summarized at"], courses)
            + "<h2>Latest imports</h2>"
            + table("imports", ["file", "rows", "imported at (UTC)", "release"], imports)
        )
        self.send(200, self.page("Courses", body))

    def admin(self):
        def files(sub):
            d = os.path.join(lms.IMPORT_DIR, sub) if sub else lms.IMPORT_DIR
            try:
                return sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)) and not f.endswith(".error.log"))
            except FileNotFoundError:
                return []

        rows = [(name or "import (waiting)", ", ".join(files(name)) or "-") for name in ["", "processing", "done", "error"]]
        logs = []
        for f in files("error"):
            log = os.path.join(lms.IMPORT_DIR, "error", f + ".error.log")
            if os.path.exists(log):
                with open(log, errors="replace") as fh:
                    logs.append(f'<h3>{esc(f)}</h3><pre class="error-log">{esc(fh.read()[-3000:])}</pre>')
        body = (
            "<p>The import folder: drop LMS exports (CSV) into <code>import/</code>.</p>"
            + table("folders", ["folder", "files"], rows)
            + '<h2>Failed imports</h2><div id="errors">' + ("".join(logs) or "<p>none</p>") + "</div>"
        )
        self.send(200, self.page("Admin", body))


def main():
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer(("127.0.0.1", port), App)
    print(f"cloop web (release {lms.release()}) on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
