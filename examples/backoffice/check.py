#!/usr/bin/env python3
"""Drives the backoffice example with real clients once `berth up` runs: the berth CLI,
HTTP through the gateway, the app's SQLite database, and the mails berth sends.

Run by examples/run_example.py (env BERTH, PORT_8600, MAIL_DIR, EXAMPLE_DIR; the
current directory is the example's copy). Exits non-zero with the reason at the first
failure.

1. The web app (release v1) answers through the gateway.
2. The nightly invoicing batch (--job-size 10) over the active contracts: the failing
   chunks are split down to the three bad contracts, the exit status is 1 and they are
   listed; the team gets a mail. The data is fixed, `batch retry-failed` exits 0, and a
   fresh batch over every active contract (by the command, and by the schedule) too.
3. Queue inspection: with the queue paused, a batch's jobs wait, and `berth queue show`,
   `berth job list` and `berth status` count them; resumed, they run.
4. Upgrades: v2 (a migration) goes live; v3 with a failing migration and v3 with a web
   app that crashes are rolled back by berth, the database restored, v2 serving on;
   `berth rollback` goes back to v1, database included.
5. A backup made now holds the store, the database and attachments/, verifies, and the
   list shows what the daily/weekly/monthly/yearly tiers keep.
"""

import datetime
import glob
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zoneinfo

BERTH = os.environ.get("BERTH", "berth")
BASE = f"http://127.0.0.1:{os.environ.get('PORT_8600', '8600')}"
MAIL_DIR = os.environ.get("MAIL_DIR")
DATABASE = os.path.join("data", "backoffice.sqlite3")
ACTIVE_GOOD = 34  # 40 contracts, 3 terminated, 3 with a data error
BAD = {7, 23, 31}


def fail(message):
    print(f"check.py: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def step(message):
    print(f"check.py: {message}", flush=True)


def berth(*args, expect=0, timeout=120):
    """Runs `berth ARGS`; fails unless it exits with `expect`. Returns stdout + stderr."""
    try:
        p = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"`berth {' '.join(args)}` did not finish within {timeout}s")
    out = p.stdout + p.stderr
    if expect is not None and p.returncode != expect:
        fail(f"`berth {' '.join(args)}` exited with {p.returncode}, expected {expect}:\n{out}")
    return out


def berth_json(*args):
    out = subprocess.run([BERTH, "--json", *args], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail(f"`berth --json {' '.join(args)}` exited with {out.returncode}: {out.stderr}")
    return json.loads(out.stdout)


def get(path, timeout=5):
    """GET through the gateway: (status, body)."""
    try:
        with urllib.request.urlopen(BASE + path, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return None, str(e)


def app_status():
    code, body = get("/api/status")
    if code != 200:
        fail(f"GET /api/status answered {code}: {body[:300]}")
    return json.loads(body)


def wait_for(what, probe, timeout=60, interval=0.2):
    """Polls probe() until it returns something true; fails after timeout."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def query(sql, args=()):
    conn = sqlite3.connect(DATABASE, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def columns(table):
    return {row[1] for row in query(f"PRAGMA table_info({table})")}


def mail_with(*words):
    """The first mail in MAIL_DIR that contains every word."""
    for path in sorted(glob.glob(os.path.join(MAIL_DIR, "*.eml"))):
        with open(path) as f:
            text = f.read()
        if all(w in text for w in words):
            return text
    return None


def failed_items(batch):
    return sorted(tuple(f["items"]) for f in batch["failures"])


# 1. The web app behind the gateway ---------------------------------------------------

def check_web():
    step("the web app (v1) answers through the gateway")
    wait_for("GET /health through the gateway", lambda: get("/health")[0] == 200, timeout=60)
    s = app_status()
    if (s["version"], s["schema"], s["contracts"], s["invoices"]) != ("1", 1, 40, 0):
        fail(f"expected release v1, schema 1, 40 contracts, 0 invoices; got {s}")
    code, body = get("/")
    if code != 200 or "C-0007" not in body:
        fail(f"GET / answered {code} without the contracts: {body[:300]}")
    code, _ = get("/berth/")
    if code not in (302, 303, 401):
        fail(f"the dashboard route /berth/ should ask for a login, answered {code}")


# 2. Batches --------------------------------------------------------------------------

def check_batches():
    step("nightly invoicing batch: --job-size 10 over the active contracts, 3 of them bad")
    out = berth(
        "batch", "run", "invoice", "--queue", "invoicing",
        "--from-command", "python3 releases/current/contracts.py --active",
        "--job-size", "10", "--wait", expect=1,
    )
    m = re.search(r"batch (\d+): 37 items in 4 jobs of up to 10 on queue invoicing", out)
    if not m:
        fail(f"expected 37 items in 4 jobs of 10:\n{out}")
    batch_id = m.group(1)
    if "34 of 37 items done, 3 failed" not in out:
        fail(f"expected 34 of 37 done and 3 failed:\n{out}")
    listed = set(int(x) for x in re.findall(r"^\s+(\d+)\s+\(job \d+, discarded\)", out, re.M))
    if listed != BAD:
        fail(f"the failed items listed are {sorted(listed)}, expected {sorted(BAD)}:\n{out}")

    batch = berth_json("batch", "show", batch_id)
    if batch["state"] != "failed" or failed_items(batch) != [(7,), (23,), (31,)]:
        fail(f"batch {batch_id}: expected failed with the single items 7, 23, 31: {batch}")
    # The chunks that held a bad contract were split, not discarded whole.
    split = berth_json("job", "list", "--queue", "invoicing", "--state", "split")["jobs"]
    if len(split) < 3 or any(len(j["args"]["items"]) < 2 for j in split):
        fail(f"expected the failing chunks of 10 to be split (state split): {split}")
    discarded = berth_json("job", "list", "--queue", "invoicing", "--state", "discarded")["jobs"]
    if sorted(j["args"]["items"] for j in discarded) != [[7], [23], [31]]:
        fail(f"`job list --state discarded` should hold the 3 bad contracts alone: {discarded}")
    # `berth job show` is the runbook's `./coog redis celery j`: the reason is there.
    job7 = next(j["id"] for j in discarded if j["args"]["items"] == [7])
    shown = berth("job", "show", str(job7))
    if "contract C-0007 has no premium" not in shown:
        fail(f"`berth job show {job7}` does not say why contract 7 failed:\n{shown}")
    counts = berth_json("queue", "show", "invoicing")["counts"]
    if counts["discarded"] != 3 or counts["split"] != len(split):
        fail(f"`berth queue show invoicing` counts {counts}: expected 3 discarded, {len(split)} split")
    invoiced = query("SELECT count(*) FROM invoices")[0][0]
    if invoiced != ACTIVE_GOOD:
        fail(f"{invoiced} invoices in the database, expected {ACTIVE_GOOD} (the bad ones' chunks too)")
    documents = glob.glob(os.path.join("attachments", "invoices", "*", "INV-*.txt"))
    if len(documents) != ACTIVE_GOOD:
        fail(f"{len(documents)} invoice documents in attachments/, expected {ACTIVE_GOOD}")
    if MAIL_DIR:
        wait_for("the mail about the failed batch",
                 lambda: mail_with("batch.failed", "invoice"), timeout=30)

    step("the data fixed, `berth batch retry-failed --wait` exits 0")
    conn = sqlite3.connect(DATABASE, timeout=30)
    with conn:
        conn.execute("UPDATE contracts SET monthly_premium_cents = 2000 WHERE id IN (7, 23)")
        conn.execute("UPDATE contracts SET email = 'customer31@example.org' WHERE id = 31")
    conn.close()
    out = berth("batch", "retry-failed", batch_id, "--wait", expect=0)
    if "37 of 37 items done, 0 failed" not in out:
        fail(f"retry-failed should complete the batch:\n{out}")
    if query("SELECT count(*) FROM invoices")[0][0] != 37:
        fail("after the retry, every active contract should have its invoice")

    step("an all-good batch exits 0, run again it invoices nothing twice")
    out = berth(
        "batch", "run", "invoice", "--queue", "invoicing",
        "--from-command", "python3 releases/current/contracts.py --active",
        "--job-size", "10", "--wait", expect=0,
    )
    if "completed — 37 of 37 items done, 0 failed" not in out:
        fail(f"expected a completed batch of 37:\n{out}")
    if query("SELECT count(*) FROM invoices")[0][0] != 37:
        fail("a second run of the batch must not invoice a contract twice in a month")

    step("the schedule runs the same batch (as cron did), its job completes")
    out = berth("schedule", "run", "nightly-invoicing")
    m = re.search(r"started job (\d+)", out)
    if not m:
        fail(f"`berth schedule run` did not say which job it started: {out}")
    job = wait_for(
        "the nightly-invoicing job to finish",
        lambda: (lambda j: j if j["state"] in ("completed", "discarded") else None)(
            berth_json("job", "show", m.group(1))),
        timeout=90, interval=0.5,
    )
    if job["state"] != "completed":
        fail(f"the scheduled batch's job ended {job['state']}:\n{berth('job', 'show', m.group(1))}")
    listing = berth("schedule", "list")
    if not re.search(r"nightly-invoicing .* completed", listing):
        fail(f"`berth schedule list` should show the last run completed:\n{listing}")


# 3. Queue inspection -----------------------------------------------------------------

def check_queue_inspection():
    step("queue inspection: a paused queue's waiting jobs are counted")
    berth("queue", "pause", "invoicing")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(i) for i in range(1, 21) if i not in (10, 20)) + "\n")
        items = f.name
    try:
        out = berth("batch", "run", "invoice", "--queue", "invoicing", "--items", items,
                    "--job-size", "5")
    finally:
        os.unlink(items)
    m = re.search(r"batch (\d+): 18 items in 4 jobs of up to 5", out)
    if not m:
        fail(f"expected 18 items in 4 jobs of 5:\n{out}")
    batch_id = m.group(1)
    q = berth_json("queue", "show", "invoicing")
    if not q["paused"] or q["counts"]["available"] != 4 or q["oldest_available_at"] is None:
        fail(f"`berth queue show invoicing` (qcount, qtime): expected paused, 4 available: {q}")
    text = berth("queue", "show", "invoicing")
    if "(paused)" not in text or "available 4" not in text:
        fail(f"`berth queue show invoicing` should say paused and available 4:\n{text}")
    waiting = berth_json("job", "list", "--queue", "invoicing", "--state", "available")["jobs"]
    if sorted(len(j["args"]["items"]) for j in waiting) != [3, 5, 5, 5]:
        fail(f"`berth job list --state available` (qlist) should list the 4 chunks: {waiting}")
    status = berth_json("status")
    row = next(q for q in status["queues"] if q["name"] == "invoicing")
    if row["counts"]["available"] != 4:
        fail(f"`berth status` counts {row['counts']['available']} available, expected 4")
    if berth_json("batch", "show", batch_id)["done_items"] != 0:
        fail("nothing should run while the queue is paused")
    berth("queue", "resume", "invoicing")
    wait_for(f"batch {batch_id} to complete once the queue is resumed",
             lambda: berth_json("batch", "show", batch_id)["state"] == "completed",
             timeout=60, interval=0.3)
    if berth_json("queue", "show", "invoicing")["counts"]["available"] != 0:
        fail("the queue should be empty again")


# 4. Upgrades and rollbacks -----------------------------------------------------------

class Watcher(threading.Thread):
    """GETs /api/status through the gateway during a deploy: which versions answered."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.versions = set()
        self.other = {}

    def run(self):
        while not self.stop.is_set():
            code, body = get("/api/status", timeout=2)
            if code == 200:
                self.versions.add(json.loads(body)["version"])
            elif code == 503 and '"error":"maintenance"' in body.replace(" ", ""):
                pass  # the deploy's maintenance mode: expected while it migrates or restores
            else:
                self.other[code] = self.other.get(code, 0) + 1
            time.sleep(0.05)

    def only_v2(self, what):
        if self.versions != {"2"} or self.other:
            fail(f"only v2 may answer during {what}; answered: {self.versions}, "
                 f"other answers: {self.other}")

    def done(self):
        self.stop.set()
        self.join()
        return self


def releases():
    """`berth releases`, by id: {"state": the state shown, "ref": the git ref}."""
    return {
        r["id"]: {"state": r["shown_state"], "ref": r["source"].get("git_ref")}
        for r in berth_json("releases")["releases"]
    }


def check_deploys():
    step("upgrade: `berth deploy v2` migrates (due dates) and goes live")
    out = berth("deploy", "v2", expect=0, timeout=180)
    if "is live" not in out:
        fail(f"`berth deploy v2` should end with the release live:\n{out}")
    s = app_status()
    if (s["version"], s["schema"]) != ("2", 2):
        fail(f"after the deploy of v2, expected version 2 and schema 2; got {s}")
    code, body = get("/api/invoices?contract=1")
    invoices = json.loads(body) if code == 200 else None
    if not invoices or not invoices[0].get("due_date"):
        fail(f"v2's migration should give invoices a due date: {code} {body[:300]}")
    v2 = s["release"]
    if releases()[v2]["state"] != "live":
        fail(f"`berth releases` should show {v2} live: {releases()[v2]}")

    step("a broken upgrade: v3's migration fails half-way, berth rolls back and restores")
    watch = Watcher()
    watch.start()
    out = berth("deploy", "v3-broken-migration", expect=1, timeout=180)
    watch.done()
    if "migration 004_one_contract_per_email.sql failed" not in out or "restored" not in out:
        fail(f"expected the failed migration and the restore in the deploy's output:\n{out}")
    s = app_status()
    if (s["version"], s["release"], s["schema"]) != ("2", v2, 2):
        fail(f"after the rollback, v2 should serve with schema 2; got {s}")
    if "reference" in columns("contracts"):
        fail("migration 003 changed the database and the rollback did not restore it")
    watch.only_v2("the failed migration")
    bad = [r for r in releases().values() if r["ref"] == "v3-broken-migration"]
    if not bad or bad[-1]["state"] != "rolled back":
        fail(f"`berth releases` should show v3-broken-migration rolled back: {bad}")

    step("a broken upgrade: v3's web app crashes at start, the switch is rolled back")
    watch = Watcher()
    watch.start()
    out = berth("deploy", "v3-crashing-web", expect=1, timeout=180)
    watch.done()
    if "switch" not in out or "rolled back" not in out:
        fail(f"expected a failed switch and a rollback in the deploy's output:\n{out}")
    s = app_status()
    if (s["version"], s["release"]) != ("2", v2):
        fail(f"after the rollback, v2 should serve; got {s}")
    watch.only_v2("the failed switch")
    ps = berth_json("ps")["services"]
    web = [i for i in ps if i["service"] == "web"]
    if not web or any(i["state"] != "running" for i in web):
        fail(f"`berth ps` should show web running: {ps}")

    if MAIL_DIR:
        crashed = [i for i, r in releases().items() if r["ref"] == "v3-crashing-web"]
        wait_for("the mails about the failed and rolled-back deploy",
                 lambda: mail_with("deploy.failed", crashed[-1], "v3-crashing-web")
                 and mail_with("deploy.rolled_back: " + crashed[-1]), timeout=30)

    step("`berth rollback` by hand: back to v1, the database too")
    invoices_before = query("SELECT count(*) FROM invoices")[0][0]
    out = berth("rollback", expect=0, timeout=120)
    if "restored" not in out:
        fail(f"`berth rollback` should restore the database of v1:\n{out}")
    s = app_status()
    if (s["version"], s["schema"]) != ("1", 1):
        fail(f"after `berth rollback`, expected v1 with schema 1; got {s}")
    if "due_date" in columns("invoices"):
        fail("after the rollback to v1 the invoices should have no due_date column")
    if query("SELECT count(*) FROM invoices")[0][0] != invoices_before:
        fail("the invoices made before the upgrade should be back")
    states = [r["state"] for r in releases().values()]
    if states.count("live") != 1 or releases()[v2]["state"] != "rolled back":
        fail(f"`berth releases`: expected v2 rolled back and one live release: {releases()}")


# 5. Backups --------------------------------------------------------------------------

def expected_kept(archives, keep, tz):
    """The documented rule: the first archive of each of the last N days, ISO weeks,
    months and years that have one, and the newest."""
    archives = sorted(archives, key=lambda a: (a["created"], a["id"]))
    kept = {archives[-1]["id"]}
    tiers = [
        (keep["daily"], lambda d: (d.year, d.month, d.day)),
        (keep["weekly"], lambda d: d.isocalendar()[:2]),
        (keep["monthly"], lambda d: (d.year, d.month)),
        (keep["yearly"], lambda d: d.year),
    ]
    for count, period in tiers:
        first = {}
        for a in archives:
            when = datetime.datetime.fromisoformat(a["created"].replace("Z", "+00:00"))
            first.setdefault(period(when.astimezone(tz).date()), a["id"])
        kept |= {first[p] for p in sorted(first)[-count:]} if count else set()
    return kept


def check_backup():
    step("backup: `berth backup save` holds the store, the database and attachments/")
    out = berth("backup", "save")
    m = re.search(r"backup (\S+) made", out)
    if not m:
        fail(f"`berth backup save` did not name its archive:\n{out}")
    backup_id = m.group(1)
    out = berth("backup", "verify", backup_id)
    if "every checksum matches" not in out or "databases/backoffice.sqlite" not in out:
        fail(f"`berth backup verify` should pass and name the database:\n{out}")
    listing = berth_json("backup", "list")["backups"]
    mine = next((b for b in listing if b["id"] == backup_id), None)
    if mine is None:
        fail(f"`berth backup list` does not show {backup_id}")
    parts = mine["parts"]
    if parts["includes"] != ["attachments"] or parts["databases"] != [
            {"format": "sqlite", "name": "backoffice"}]:
        fail(f"the archive should hold attachments/ and the SQLite database: {parts}")

    zstd = shutil.which("zstd")
    if zstd:  # look inside: the invoices and their documents are there
        with tempfile.TemporaryDirectory() as tmp:
            tar = subprocess.run(f'"{zstd}" -dc "{mine["path"]}" | tar -xf - -C "{tmp}"',
                                 shell=True, capture_output=True, text=True)
            if tar.returncode != 0:
                fail(f"cannot unpack {mine['path']}: {tar.stderr}")
            db = sqlite3.connect(os.path.join(tmp, "databases", "backoffice.sqlite"))
            n = db.execute("SELECT count(*) FROM invoices").fetchone()[0]
            db.close()
            if n != 37:
                fail(f"the archived database holds {n} invoices, expected 37")
            docs = glob.glob(os.path.join(tmp, "files", "0", "invoices", "*", "INV-*.txt"))
            contracts = glob.glob(os.path.join(tmp, "files", "0", "contracts", "C-*.txt"))
            if len(docs) != 37 or len(contracts) != 40:
                fail(f"the archive holds {len(docs)} invoice and {len(contracts)} contract "
                     "documents, expected 37 and 40")
    else:
        step("(zstd is not installed: the archive's contents are checked by verify only)")

    step("retention: the tiers keep the first archive of each day/week/month/year, "
         "and the releases' backups that a rollback restores")
    keep = {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}
    expected = expected_kept(listing, keep, zoneinfo.ZoneInfo("Europe/Paris"))
    for_rollbacks = {r["backup"] for r in berth_json("releases")["releases"] if r.get("backup")}
    expected |= for_rollbacks & {b["id"] for b in listing}
    kept = {b["id"] for b in listing if b["kept"]}
    if kept != expected:
        fail(f"`berth backup list` keeps {sorted(kept)}, the tiers say {sorted(expected)}")
    tiers_only = expected_kept(listing, keep, zoneinfo.ZoneInfo("Europe/Paris"))
    beyond = kept - tiers_only
    if len(listing) < 5 or not beyond or not beyond <= for_rollbacks:
        fail("expected the deploys' archives of today that the tiers alone would prune to be "
             f"kept for the releases' rollbacks: kept beyond the tiers {sorted(beyond)}, "
             f"the releases' backups {sorted(for_rollbacks)}")
    text = berth("backup", "list")
    if not re.search(re.escape(backup_id) + r".*keep", text):
        fail(f"`berth backup list` should mark each archive keep or prune:\n{text}")
    if kept != {b["id"] for b in listing} and "prune" not in text:
        fail(f"`berth backup list` should mark the archives it would prune:\n{text}")
    dry = berth("backup", "prune", "--dry-run")
    would = set(re.findall(r"^would remove (\d{8}T\d{6}Z\S*)$", dry, re.M))
    if would != {b["id"] for b in listing} - expected:
        fail(f"`berth backup prune --dry-run` would remove {sorted(would)}:\n{dry}")
    if len(berth_json("backup", "list")["backups"]) != len(listing):
        fail("a dry run must remove nothing")


def main():
    started = time.time()
    check_web()
    check_batches()
    check_queue_inspection()
    check_deploys()
    check_backup()
    step(f"all checks passed in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
