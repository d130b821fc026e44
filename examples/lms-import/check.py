"""The end-to-end check of lms-import, run by examples/run_example.py after `sh setup.sh`
and `berth up` (it can also be run by hand in this folder, with berth up and an SMTP
sink writing .eml files to MAIL_DIR). It exits non-zero with the reason on the first
failure. What it proves, in order:

1. login by default: a browser is sent to berth's login form; `teacher` signs in and
   sees the courses, but gets 403 from /admin; `admin` gets the admin area;
2. the import folder: a good export dropped into import/ is imported and ends in
   import/done; a broken one ends in import/error with its log, the admin area shows
   the error, and the import admins get a mail about it;
3. the scheduled job: `berth schedule run nightly-summary` fills the course summary;
4. maintenance mode: anonymous requests get 503, the admin still gets through;
5. a deploy with a migration: a new commit with migrations/0002_*.sql goes live with
   `berth deploy`; the app then runs the new release on the new schema, and its data is
   still there.
"""

import glob
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

from browser import Driver, wait

BERTH = os.environ.get("BERTH", "berth")
BASE = "https://127.0.0.1:8500"            # run_example.py gives this port a free one
MAIL_DIR = os.environ.get("MAIL_DIR", "mail")


def step(text):
    print(f"check: {text}", flush=True)


def fail(text):
    sys.exit(f"check failed: {text}")


def berth(*args, timeout=120):
    p = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        fail(f"`berth {' '.join(args)}` exited with {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def until(what, check, limit=60.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    fail(f"timed out after {limit:.0f}s waiting for {what} (last: {last!r})")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def anonymous_get(path):
    """A plain client without a session: (status, body)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)
    req = urllib.request.Request(BASE + path, headers={"Accept": "text/html"})
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def url(d):
    return d.s("GET", "/url")


def body(d):
    return d.text("body")


def login(d, user, password, then):
    d.go(BASE + then)
    wait("the login form", lambda: "/_berth/login" in url(d))
    d.type("input[name=user]", user)
    d.type("input[name=password]", password)
    d.click("button[type=submit]")
    wait(f"{user} to be signed in", lambda: d.finds("#user") and d.text("#user") == user)


def drop(name, source):
    """Drops a file the safe way: written under a dot name, then renamed."""
    with open(source) as f:
        data = f.read()
    with open(os.path.join("import", "." + name), "w") as f:
        f.write(data)
    os.rename(os.path.join("import", "." + name), os.path.join("import", name))


def mails():
    out = []
    for path in glob.glob(os.path.join(MAIL_DIR, "*.eml")):
        with open(path, errors="replace") as f:
            out.append(f.read())
    return out


def main():
    d = Driver()
    try:
        run(d)
    finally:
        d.quit()


def run(d):
    step("the web service is up behind the gateway")
    until("the gateway to answer", lambda: anonymous_get("/")[0] == 303, limit=60)

    # 1. Login by default, and an admin area.
    step("a visitor is sent to the login form")
    d.go(BASE + "/")
    wait("the redirect to the login form", lambda: "/_berth/login" in url(d))
    step("teacher signs in and sees the courses, but not the admin area")
    login(d, "teacher", "teacher-password", "/")
    wait("the courses page", lambda: d.text("h1") == "Courses")
    if d.finds("a[href='/admin']"):
        fail("teacher's page links to the admin area")
    d.go(BASE + "/admin")
    wait("403 for teacher on /admin", lambda: "lacks the role" in body(d), limit=10)
    step("teacher logs out; admin signs in and gets the admin area")
    d.go(BASE + "/")
    wait("the courses page", lambda: d.finds("#logout"))
    d.click("#logout")
    wait("the login form after logout", lambda: "/_berth/login" in url(d))
    login(d, "admin", "admin-password", "/admin")
    wait("the admin area", lambda: d.text("h1") == "Admin")
    release_before = d.text("#release")

    # 2. The import folder.
    step("a good and a broken export are dropped into import/")
    drop("week1.csv", "samples/week1.csv")
    drop("broken.csv", "samples/broken.csv")
    until("import/done/week1.csv", lambda: os.path.exists("import/done/week1.csv"))
    step("week1.csv was imported and moved to import/done")
    d.go(BASE + "/")
    wait("week1.csv in the latest imports", lambda: "week1.csv 6" in d.text("#imports"))
    until("import/error/broken.csv and its log", lambda: os.path.exists("import/error/broken.csv.error.log"))
    with open("import/error/broken.csv.error.log") as f:
        log = f.read()
    if "last tuesday" not in log:
        fail(f"the error log does not say what is wrong with broken.csv:\n{log}")
    step("broken.csv ended in import/error with its log; the admin area shows it")
    d.go(BASE + "/admin")
    wait("the error in the admin area", lambda: "is not an ISO 8601 time" in d.text("#errors"))

    step("the import admins get a mail about broken.csv")
    mail = until(
        "the ingest.file_failed mail in MAIL_DIR",
        lambda: next((m for m in mails() if "ingest.file_failed" in m and "broken.csv" in m), None),
        limit=60,
    )
    if "imports@example.org" not in mail.split("\n\n")[0]:
        fail(f"the mail did not go to imports@example.org:\n{mail[:600]}")
    if "last tuesday" not in mail:
        fail(f"the mail does not quote the import's error:\n{mail[:1500]}")

    # 3. The scheduled job, now rather than at 02:00.
    step("berth schedule run nightly-summary")
    out = berth("schedule", "run", "nightly-summary")
    job = out.strip().split()[-1]
    until(f"job {job} to complete", lambda: "completed" in berth("job", "show", job).split("\n")[1])
    d.go(BASE + "/")
    wait("the course summary", lambda: "EDU101 3 4" in d.text("#courses") and "STAT200 2 2" in d.text("#courses"))

    # 4. Maintenance mode: everyone gets 503 but admins.
    step("maintenance mode: anonymous 503, admin passes")
    berth("maintenance", "on", "--message", "Importing the new semester; back at 11:00.")
    until("the 503 page", lambda: anonymous_get("/")[0] == 503 and "new semester" in anonymous_get("/")[1], limit=10)
    d.go(BASE + "/")
    wait("the admin's page during maintenance", lambda: d.text("h1") == "Courses")
    berth("maintenance", "off")
    until("maintenance off", lambda: anonymous_get("/")[0] == 303, limit=10)

    # 5. A deploy with a migration.
    step("a new commit with a migration, then berth deploy")
    with open("repo/migrations/0002_course_events.sql", "w") as f:
        f.write("-- Events defined throughout a course (census date, exams, ...).\n"
                "CREATE TABLE course_events (id INTEGER PRIMARY KEY, course TEXT NOT NULL,\n"
                "                            name TEXT NOT NULL, at TEXT NOT NULL);\n")
    git = ["git", "-C", "repo", "-c", "user.name=check", "-c", "user.email=check@example.org"]
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "course events"], check=True)
    out = berth("deploy", timeout=300)
    for line in ("backup", "maintenance on", "migrate", "switch", "health", "is live"):
        if line not in out:
            fail(f"`berth deploy` did not show `{line}`:\n{out}")
    step("the new release is live on the new schema, with the imported data")
    d.go(BASE + "/")
    wait("schema 0002_course_events", lambda: d.text("#schema") == "0002_course_events", limit=30)
    if d.text("#release") == release_before:
        fail(f"the app still runs release {release_before}")
    if "week1.csv" not in d.text("#imports"):
        fail("the imported data is gone after the deploy")
    releases = berth("releases")
    if "live" not in releases or "previous" not in releases:
        fail(f"`berth releases` does not show a live and a previous release:\n{releases}")
    d.console_errors()  # the 403 and 503 pages above logged theirs; a clean page logs none
    d.go(BASE + "/admin")
    wait("the admin area", lambda: d.text("h1") == "Admin")
    errors = d.console_errors()
    if errors:
        fail(f"the browser logged errors on the admin page: {errors}")
    step("all good")


if __name__ == "__main__":
    main()
