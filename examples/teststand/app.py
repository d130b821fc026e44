"""The test-stand web app: the lab's status page, and what berth's jobs post to.

    python3 app.py PORT

berth takes the stands' MQTT messages, checks them against protocol.schema.json,
stores them per stand (or keeps them as dead letters), and posts one job per stored
message here. This app keeps its own small database (data/stands.db, SQLite):

POST /jobs/message       a job of queue stand-messages: a status updates the stand's
                         row; a result is judged (every measurement within its limits)
                         and stored. Safe to repeat: berth delivers at least once.
POST /jobs/mark-offline  the schedule `offline`: stands without a status for
                         OFFLINE_AFTER seconds are marked offline.
GET  /                   the status page (behind berth's login, role `lab`)
GET  /stands.json        what the page shows
GET  /healthz            berth's ready and live checks
"""

import json
import os
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DB = os.path.join("data", "stands.db")
OFFLINE_AFTER = float(os.environ.get("OFFLINE_AFTER", "120"))
LOCK = threading.Lock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS stands (
    name        TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    test        TEXT,
    temperature REAL,
    note        TEXT,
    sent_at     TEXT,              -- the stand's own time of its last status
    seen_at     REAL NOT NULL,     -- when that status was stored (unix time)
    message_id  INTEGER NOT NULL,  -- berth's id of that message: later ones win
    offline     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    message_id  INTEGER PRIMARY KEY,
    stand       TEXT NOT NULL,
    test        TEXT NOT NULL,
    sent_at     TEXT,
    verdict     TEXT NOT NULL,     -- pass or fail
    failed      TEXT NOT NULL,     -- JSON list of the measurements out of limits
    stored_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_stand ON results (stand, message_id);
"""


def db():
    conn = sqlite3.connect(DB, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def init_db():
    os.makedirs(os.path.dirname(DB), exist_ok=True)
    with LOCK, db() as conn:
        conn.executescript(SCHEMA)


def handle_message(args):
    """One stored message: {"device", "kind", "payload", "message_id", …}."""
    stand, kind, msg, mid = args["device"], args["kind"], args["payload"], args["message_id"]
    with LOCK, db() as conn:
        if kind == "status":
            conn.execute(
                """INSERT INTO stands (name, state, test, temperature, note, sent_at, seen_at,
                                       message_id, offline)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)
                   ON CONFLICT (name) DO UPDATE SET
                       state = excluded.state, test = excluded.test,
                       temperature = excluded.temperature, note = excluded.note,
                       sent_at = excluded.sent_at, seen_at = excluded.seen_at,
                       message_id = excluded.message_id, offline = 0
                   WHERE excluded.message_id > stands.message_id""",
                (stand, msg["state"], msg.get("test"), msg.get("temperature_c"),
                 msg.get("message"), msg["time"], time.time(), mid),
            )
            return {"stand": stand, "kind": kind, "state": msg["state"]}
        if kind == "result":
            failed = [m["name"] for m in msg["measurements"]
                      if not m["min"] <= m["value"] <= m["max"]]
            verdict = "fail" if failed else "pass"
            conn.execute(
                """INSERT OR IGNORE INTO results
                   (message_id, stand, test, sent_at, verdict, failed, stored_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (mid, stand, msg["test"], msg["time"], verdict, json.dumps(failed), time.time()),
            )
            return {"stand": stand, "kind": kind, "test": msg["test"], "verdict": verdict,
                    "failed": failed}
    raise ValueError(f"unknown kind {kind!r}")


def mark_offline():
    cutoff = time.time() - OFFLINE_AFTER
    with LOCK, db() as conn:
        checked = conn.execute("SELECT count(*) FROM stands").fetchone()[0]
        rows = conn.execute(
            "SELECT name FROM stands WHERE offline = 0 AND seen_at < ?", (cutoff,)).fetchall()
        names = [r["name"] for r in rows]
        conn.executemany("UPDATE stands SET offline = 1 WHERE name = ?", [(n,) for n in names])
    return {"checked": checked, "marked_offline": names, "offline_after_s": OFFLINE_AFTER}


def stands():
    with LOCK, db() as conn:
        out = []
        for s in conn.execute("SELECT * FROM stands ORDER BY name"):
            last = conn.execute(
                "SELECT test, verdict, failed, sent_at FROM results WHERE stand = ? "
                "ORDER BY message_id DESC LIMIT 1", (s["name"],)).fetchone()
            total, passed = conn.execute(
                "SELECT count(*), coalesce(sum(verdict = 'pass'), 0) FROM results WHERE stand = ?",
                (s["name"],)).fetchone()
            out.append({
                "name": s["name"],
                "state": "offline" if s["offline"] else s["state"],
                "test": s["test"],
                "temperature_c": s["temperature"],
                "message": s["note"],
                "sent_at": s["sent_at"],
                "seen_secs_ago": round(time.time() - s["seen_at"], 1),
                "last_result": dict(last, failed=json.loads(last["failed"])) if last else None,
                "results": total,
                "passed": passed,
            })
        return out


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Test stands</title>
<link rel="icon" href="data:,">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
header { display: flex; justify-content: space-between; align-items: baseline; }
table { border-collapse: collapse; margin-top: 1rem; min-width: 60rem; }
th, td { text-align: left; padding: 0.4rem 0.8rem; border-bottom: 1px solid #ddd; }
.state { font-weight: bold; }
.running { color: #06c; } .idle { color: #080; } .error { color: #c00; }
.offline, .maintenance { color: #888; }
.pass { color: #080; } .fail { color: #c00; }
#note { color: #666; font-size: 0.9rem; }
</style>
</head>
<body>
<header>
  <h1>Test stands</h1>
  <form method="post" action="/_berth/logout">
    signed in as <b id="user">__USER__</b> <button type="submit">Sign out</button>
  </form>
</header>
<p id="note">Loading…</p>
<table>
  <thead><tr><th>Stand</th><th>Status</th><th>Test</th><th>Temperature</th>
    <th>Last status</th><th>Last result</th><th>Results passed</th>
    <th>Rejected messages</th><th>Raw</th></tr></thead>
  <tbody id="stands"></tbody>
</table>
<script>
// The stands come from this app's database (fed by berth's jobs); the rejected
// messages (dead letters) straight from berth, through the read-only /stand-api route.
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
async function refresh() {
  const note = document.getElementById("note");
  try {
    const [r1, r2] = await Promise.all([
      fetch("/stands.json"),
      fetch("/stand-api/v1/messages/counts?ingest=stands&dead=true"),
    ]);
    if (!r1.ok || !r2.ok) throw new Error(`HTTP ${r1.status}/${r2.status} (signed out?)`);
    const list = await r1.json();
    const dead = {};
    for (const c of (await r2.json()).counts) dead[c.device] = (dead[c.device] || 0) + c.count;
    const body = document.getElementById("stands");
    body.replaceChildren();
    for (const s of list) {
      const tr = document.createElement("tr");
      tr.id = "stand-" + s.name;
      cell(tr, s.name);
      cell(tr, s.state + (s.message ? ` (${s.message})` : ""), "state " + s.state);
      cell(tr, s.test || "-");
      cell(tr, s.temperature_c == null ? "-" : s.temperature_c.toFixed(1) + " °C");
      cell(tr, `${s.seen_secs_ago} s ago`);
      const r = s.last_result;
      cell(tr, r ? `${r.test}: ${r.verdict}` + (r.failed.length ? ` (${r.failed.join(", ")})` : "") : "-",
           r ? "result " + r.verdict : "result");
      cell(tr, `${s.passed} of ${s.results}`);
      cell(tr, String(dead[s.name] || 0), "rejected");
      const a = document.createElement("a");
      a.href = `/stand-api/v1/messages?ingest=stands&device=${encodeURIComponent(s.name)}&limit=20`;
      a.textContent = "messages";
      cell(tr, "").appendChild(a);
      body.appendChild(tr);
    }
    note.textContent = `${list.length} stands · updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    note.textContent = "Cannot load the stands: " + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            self.send(200, {"ok": True})
        elif path == "/stands.json":
            self.send(200, stands())
        elif path == "/":
            user = self.headers.get("X-Berth-User", "?")
            html = PAGE.replace("__USER__", user.replace("&", "&amp;").replace("<", "&lt;"))
            self.send(200, html.encode(), "text/html; charset=utf-8")
        else:
            self.send(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            if self.path == "/jobs/message":
                self.send(200, handle_message(json.loads(raw)))
            elif self.path == "/jobs/mark-offline":
                self.send(200, mark_offline())
            else:
                self.send(404, {"error": "not_found"})
        except (ValueError, KeyError, TypeError) as e:
            # Any other status than 2xx fails the job's attempt; berth keeps this body.
            self.send(422, {"error": f"{type(e).__name__}: {e}"})

    def log_message(self, fmt, *args):
        if self.path == "/healthz":
            return
        sys.stdout.write("%s\n" % (fmt % args))
        sys.stdout.flush()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["PORT"])
    init_db()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"test-stand app on 127.0.0.1:{port}, database {DB}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
