"""The end-to-end check of publishing-bot, run by examples/run_example.py after
`sh setup.sh` and `berth up` (it can also be run by hand in this folder, with berth up
and an SMTP sink writing .eml files to MAIL_DIR). It exits non-zero with the reason on
the first failure. What it proves, in order:

1. a dropped article starts `publish`: its `convert` step fails once and is retried,
   its long `render` step (a pull worker) heartbeats (its lease moves on while it runs,
   and it completes on its first attempt although it runs twice its heartbeat timeout),
   and the article is on the site, the file in incoming/done; an article without a DOI
   fails the workflow and ends in incoming/error with its log;
2. the five-minute schedule (`berth schedule run five-minute`) starts its workflow,
   which writes the feed and the sitemap;
3. a deploy while a workflow is mid-way: `berth deploy` of a new commit while an
   article's render runs; the render finishes in the old release, the next step runs
   in the new one, and the workflow completes (no step ran twice);
4. the admin digest: with its period shortened for the test (berth.toml, then
   `berth reload`), the digest mail arrives, counting completed and failed workflows.
"""

import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

BERTH = os.environ.get("BERTH", "berth")
SITE = "http://127.0.0.1:8550"             # run_example.py gives this port a free one
MAIL_DIR = os.environ.get("MAIL_DIR", "mail")


def step(text):
    print(f"check: {text}", flush=True)


def fail(text):
    sys.exit(f"check failed: {text}")


def run(*args, timeout=120):
    return subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=timeout)


def berth(*args, timeout=120):
    p = run(*args, timeout=timeout)
    if p.returncode != 0:
        fail(f"`berth {' '.join(args)}` exited with {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def berth_json(*args):
    return json.loads(berth("--json", *args))


def until(what, check, limit=60.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    fail(f"timed out after {limit:.0f}s waiting for {what} (last: {last!r})")


def get(path):
    try:
        with urllib.request.urlopen(SITE + path, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def drop(name):
    """Drops a sample article the safe way: written under a dot name, then renamed."""
    with open(os.path.join("samples", name)) as f:
        data = f.read()
    with open(os.path.join("incoming", "." + name), "w") as f:
        f.write(data)
    os.rename(os.path.join("incoming", "." + name), os.path.join("incoming", name))


def workflow_for(name):
    """The id of the workflow the dropped file `name` started."""
    def find():
        for w in berth_json("workflow", "list", "--name", "publish", "--limit", "100")["workflows"]:
            if w["input"].get("name") == name:
                return w["id"]
    return until(f"a workflow for {name}", find, limit=30)


def show(wid):
    return berth_json("workflow", "show", str(wid))


def steps(w):
    return {s["name"]: s for s in w["steps"]}


def finished(wid, limit=90):
    w = until(f"workflow {wid} to end", lambda: (lambda w: w if w["state"] != "running" else None)(show(wid)), limit)
    return w


def running_render(wid):
    return until(f"the render step of workflow {wid} to run",
                 lambda: (lambda s: s if s["state"] == "running" else None)(steps(show(wid))["render"]), limit=60)


def mails():
    out = []
    for path in glob.glob(os.path.join(MAIL_DIR, "*.eml")):
        with open(path, errors="replace") as f:
            out.append(f.read())
    return out


def main():
    step("both render workers run")
    until("2 running render workers",
          lambda: sum(1 for i in berth_json("ps")["services"] if i["state"] == "running") == 2, limit=60)

    # 1. A dropped article, retries and heartbeats; a bad article.
    step("an article dropped into incoming/ starts `publish`")
    drop("elife-04395.xml")
    wid = workflow_for("elife-04395.xml")
    render = running_render(wid)
    job = str(render["job_id"])
    step(f"workflow {wid}: render (job {job}) runs; its worker heartbeats")
    first = berth_json("job", "show", job)["lease_expires_at"]

    def moved_or_done():
        now = berth_json("job", "show", job)
        return now["state"] != "running" or now["lease_expires_at"] > first

    # The worker renews every 2 s; a loaded machine gets up to 10 s.
    until("the render job's lease to move on (a heartbeat)", moved_or_done, limit=10)
    w = finished(wid)
    if w["state"] != "completed":
        fail(f"workflow {wid} ended {w['state']}: {w.get('error')}")
    s = steps(w)
    if s["convert"]["attempt"] != 2:
        fail(f"convert took {s['convert']['attempt']} attempts; expected a failure, then a retry")
    errors = berth_json("job", "show", str(s["convert"]["job_id"]))["errors"]
    if not errors or "converter did not answer" not in (errors[0].get("output") or ""):
        fail(f"convert's first attempt did not keep its error: {errors}")
    step("convert failed once and was retried; render completed on its first attempt")
    if s["render"]["attempt"] != 1 or w["result"]["render"]["seconds"] < 10:
        fail(f"render: attempt {s['render']['attempt']}, {w['result']['render']['seconds']} s; "
             "expected one attempt longer than its 6 s heartbeat timeout")
    status, page = get("/articles/04395.html")
    if status != 200 or "flagellar motor" not in page:
        fail(f"the article is not on the site: {status} {page[:300]}")
    until("incoming/done/elife-04395.xml", lambda: os.path.exists("incoming/done/elife-04395.xml"), limit=10)

    step("an article without a DOI fails `publish` and ends in incoming/error")
    drop("no-doi.xml")
    bad = finished(workflow_for("no-doi.xml"))
    if bad["state"] != "failed":
        fail(f"the workflow for no-doi.xml ended {bad['state']}")
    until("incoming/error/no-doi.xml.error.log", lambda: os.path.exists("incoming/error/no-doi.xml.error.log"), limit=10)
    with open("incoming/error/no-doi.xml.error.log") as f:
        if "no doi in <front>" not in f.read():
            fail("the error log does not say what is wrong with no-doi.xml")

    # 2. The five-minute workflow, now.
    step("berth schedule run five-minute")
    out = berth("schedule", "run", "five-minute")
    m = re.search(r"started workflow (\d+)", out)
    if not m:
        fail(f"unexpected answer from `berth schedule run`: {out}")
    w = finished(m.group(1), limit=60)
    if w["state"] != "completed" or w["started_by"] != "schedule:five-minute":
        fail(f"the five-minute workflow {m.group(1)} ended {w['state']} (started by {w['started_by']})")
    status, feed = get("/feed.xml")
    if status != 200 or "flagellar motor" not in feed:
        fail(f"the feed does not list the published article: {status} {feed[:300]}")
    status, sitemap = get("/sitemap.xml")
    if status != 200 or "/articles/04395.html" not in sitemap:
        fail(f"the sitemap does not list the article: {status} {sitemap[:300]}")

    # 3. A deploy while a workflow is mid-way.
    step("a new commit (version 2); an article is dropped; berth deploy while its render runs")
    old = os.path.basename(os.readlink("releases/current"))
    with open("repo/VERSION", "w") as f:
        f.write("2\n")
    git = ["git", "-C", "repo", "-c", "user.name=check", "-c", "user.email=check@example.org"]
    subprocess.run(git + ["commit", "-q", "-a", "-m", "version 2"], check=True)
    drop("elife-05224.xml")
    wid = workflow_for("elife-05224.xml")
    running_render(wid)
    p = run("deploy", timeout=300)
    if p.returncode != 0 or "is live" not in p.stdout:
        fail(f"`berth deploy` exited with {p.returncode}:\n{p.stdout}{p.stderr}")
    new = os.path.basename(os.readlink("releases/current"))
    if new == old:
        fail("releases/current did not move")
    w = finished(wid)
    if w["state"] != "completed":
        fail(f"workflow {wid} ended {w['state']} after the deploy: {w.get('error')}")
    r = w["result"]
    step(f"workflow {wid} completed: render in release {r['render']['release']}, deposit in {r['deposit']['release']}")
    if r["render"]["release"] != old:
        fail(f"render ran in {r['render']['release']}, expected the old release {old} (it was mid-way)")
    if r["deposit"]["release"] != new or r["deposit"]["version"] != "2":
        fail(f"deposit ran in {r['deposit']}, expected the new release {new}, version 2")
    again = [name for name, s in steps(w).items() if name != "convert" and s["attempt"] != 1]
    if again:
        fail(f"steps ran more than once across the deploy: {again}")
    status, page = get("/articles/05224.html")
    if f"published by release {new}" not in page:
        fail(f"the article page does not name the new release: {page[:400]}")

    # 4. The digest, without waiting four hours.
    step("the admin digest: period shortened to 10 s for the test, berth reload")
    with open("berth.toml") as f:
        config = f.read()
    if 'digest = "every 4h"' not in config:
        fail("berth.toml has no `digest = \"every 4h\"` line to shorten")
    try:
        with open("berth.toml", "w") as f:
            f.write(config.replace('digest = "every 4h"', 'digest = "every 10s"'))
        berth("reload")
        mail = until("the digest mail in MAIL_DIR",
                     lambda: next((m for m in mails() if "digest:" in m.split("\n\n")[0]), None), limit=60)
    finally:
        with open("berth.toml", "w") as f:
            f.write(config)
        run("reload")
    head = mail.split("\n\n")[0]
    if "bot-admins@example.org" not in head or "workflows completed" not in head:
        fail(f"the digest does not count completed workflows, or went elsewhere:\n{head}")
    if "workflows failed" not in mail or "workflow publish" not in mail:
        fail(f"the digest does not list the workflows:\n{mail[:2000]}")
    step("all good")


if __name__ == "__main__":
    main()
