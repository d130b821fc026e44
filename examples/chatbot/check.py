"""Drives the chatbot example with real clients once `berth up` runs; exits non-zero
with the reason on the first failure. Run by examples/run_example.py (which sets
BERTH and PORT_<original>), or by hand in this folder while berth runs:

    BERTH=berth python3 check.py
"""

import http.client
import json
import os
import ssl
import subprocess
import sys
import time

BERTH = os.environ.get("BERTH", "berth")
HTTP_PORT = int(os.environ.get("PORT_8400", "8400"))
HTTPS_PORT = int(os.environ.get("PORT_8443", "8443"))
CERT = os.path.join(".berth", "tls", "self-signed.crt")
BASE = f"https://127.0.0.1:{HTTPS_PORT}"


def fail(msg):
    print(f"check failed: {msg}", flush=True)
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}", flush=True)


def berth(*args, check=True):
    p = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        fail(f"`berth {' '.join(args)}` exited with {p.returncode}: {p.stderr.strip()}")
    return p


def poll(what, fn, limit=30.0, every=0.2):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    fail(f"timed out after {limit:.0f} s waiting for {what}")


def tls_context():
    # The gateway's own self-signed certificate, checked properly (names 127.0.0.1).
    if not os.path.exists(CERT):
        fail(f"no {CERT}: berth did not make its self-signed certificate")
    return ssl.create_default_context(cafile=CERT)


CTX = None


def https(method, path, body=None):
    """(status, headers, text) over HTTPS, verifying berth's certificate."""
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, context=CTX, timeout=30)
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, text


def instances():
    p = berth("--json", "ps")
    return [s for s in json.loads(p.stdout)["services"] if s["service"] == "api"]


def main():
    global CTX

    # 1. Four API instances, like gunicorn -w 4.
    def four_running():
        running = [s for s in instances() if s["state"] == "running"]
        return running if len(running) == 4 else None

    running = poll("4 running instances of `api` in `berth ps`", four_running, limit=60)
    ok(f"berth ps: 4 instances of api running, pids {sorted(s['pid'] for s in running)}")

    # 2. HTTPS with berth's certificate; plain HTTP redirects (nginx's `return 301`).
    CTX = tls_context()
    status, headers, text = https("GET", "/")
    if status != 200 or "<title>Joyce" not in text:
        fail(f"GET / over HTTPS: expected the app's index.html, got {status}: {text[:200]}")
    ok("GET / over HTTPS (certificate verified) serves the single-page app")

    conn = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=10)
    conn.request("GET", "/about?from=link", headers={"Host": f"127.0.0.1:{HTTP_PORT}"})
    r = conn.getresponse()
    r.read()
    want = f"https://127.0.0.1:{HTTPS_PORT}/about?from=link"
    if r.status not in (301, 308) or r.getheader("Location") != want:
        fail(f"plain HTTP: expected a redirect to {want}, got {r.status} "
             f"Location={r.getheader('Location')}")
    ok(f"http://…:{HTTP_PORT}/about?from=link answers {r.status} → {want}")

    # 3. Static files and the SPA fallback.
    status, headers, text = https("GET", "/app.js")
    if status != 200 or "javascript" not in headers.get("content-type", ""):
        fail(f"GET /app.js: expected JavaScript, got {status} {headers.get('content-type')}")
    for route in ("/about", "/chat/history/7"):
        status, _, text = https("GET", route)
        if status != 200 or "<title>Joyce" not in text:
            fail(f"GET {route}: expected index.html (spa = true), got {status}")
    ok("client-side routes /about and /chat/history/7 get index.html (spa)")

    # 4. Requests are spread over the four instances (round robin).
    seen = {}
    for _ in range(12):
        status, _, text = https("GET", "/api/hello")
        if status != 200:
            fail(f"GET /api/hello: {status} {text[:200]}")
        body = json.loads(text)
        seen[body["instance"]] = body["pid"]
    pids = {s["pid"] for s in running}
    if len(seen) != 4 or set(seen.values()) != pids:
        fail(f"expected answers from 4 instances with the pids {sorted(pids)}, got {seen}")
    ok(f"12 requests answered by 4 distinct instances: {dict(sorted(seen.items()))}")

    # 5. A dead instance is restarted (supervisor's autorestart).
    victim = running[1]
    os.kill(victim["pid"], 9)

    def replaced():
        for s in instances():
            if (s["instance"] == victim["instance"] and s["state"] == "running"
                    and s["pid"] != victim["pid"]):
                return s
        return None

    new = poll(f"instance {victim['instance']} to be restarted", replaced, limit=30)
    ok(f"killed instance {victim['instance']} (pid {victim['pid']}); berth restarted it "
       f"as pid {new['pid']} (restarts {new['restarts']}, last exit: {new['last_exit']})")

    def answered_by_new():
        for _ in range(4):
            status, _, text = https("GET", "/api/hello")
            if status == 200 and json.loads(text)["pid"] == new["pid"]:
                return True
        return False

    poll("the new process to answer through the gateway", answered_by_new, limit=15)
    ok("the gateway sends requests to the new process")

    # 6. The cost of an answer goes to the budget, and the client never sees X-Cost.
    status, headers, text = https("POST", "/api/ask", {"question": "Is there a tuition fee?"})
    if status != 200 or json.loads(text).get("intent") != "fees":
        fail(f"POST /api/ask: expected the fees answer, got {status}: {text[:200]}")
    if "x-cost" in headers:
        fail("the X-Cost header reached the client; the gateway should remove it")
    ok("POST /api/ask answers (the faked cloud call reports its cost; X-Cost is removed)")

    # 7. The browser: the SPA at a client-side route, then a question.
    from browser import Driver, wait

    d = Driver()
    try:
        d.go(f"{BASE}/about")
        wait("the about view at /about", lambda: d.text("#about-view h2") == "About Joyce")
        d.click("nav a[data-route='/']")
        wait("the chat view", lambda: d.js("return location.pathname") == "/"
             and d.js("return !document.getElementById('chat-view').hidden"))
        wait("the API greeting", lambda: "Online" in d.text("#status"))
        d.type("#question", "How do I apply for the winter semester?")
        d.click("#send")
        answer = wait("Joyce's answer", lambda: d.text("#log li.joyce"), limit=20)
        if "Applications" not in answer:
            fail(f"the browser shows an unexpected answer: {answer!r}")
        errors = d.console_errors()
        if errors:
            fail(f"console errors in the browser: {errors}")
        ok(f"browser: /about loads, the chat answers: {answer.splitlines()[0][:60]}…; no console errors")

        # 8. Spend the $10: the gateway answers 402 without calling the app.
        spent_before = None
        for i in range(60):
            status, headers, text = https("POST", "/api/ask", {"question": "Which programmes are there?"})
            if status == 402:
                spent_before = i
                break
            if status != 200:
                fail(f"POST /api/ask while spending: {status} {text[:200]}")
        if spent_before is None:
            fail("60 answers at $0.25 did not exhaust the $10 budget")
        body = json.loads(text)
        if body.get("error") != "budget_exhausted" or body.get("budget") != "cloud":
            fail(f"the 402 should name the budget: {text[:300]}")
        ok(f"after {spent_before} more answers the budget is spent: 402 {body['message']}")

        status, _, text = https("GET", "/api/hello")
        if status != 402:
            fail(f"GET /api/hello with the budget spent: expected 402, got {status}")

        budgets = json.loads(berth("--json", "budget", "list").stdout)
        cloud = next(b for b in budgets if b["name"] == "cloud")
        if cloud["spent"] < 10:
            fail(f"berth budget list: expected at least 10 spent, got {cloud}")
        ok(f"berth budget list: cloud spent {cloud['spent']} of {cloud['limit']}")

        poll("the budget.100 event", lambda: "budget.100" in berth(
            "events", "--source", "budget").stdout, limit=10)
        ok("berth events --source budget records budget.100")

        # The SPA tells its user.
        d.type("#question", "What about exams?")
        d.click("#send")
        blocked = wait("the budget message in the browser", lambda: d.text("#log li.blocked"))
        if "budget" not in blocked:
            fail(f"the browser should say the budget is spent: {blocked!r}")
        others = [e for e in d.console_errors() if "402" not in e.get("message", "")]
        if others:
            fail(f"console errors in the browser: {others}")
        ok(f"browser shows: {blocked.splitlines()[0]}")

        # 9. Reset by command (was: redis-cli `set queries 0`), and it answers again.
        out = berth("budget", "reset", "cloud").stdout.strip()
        ok(f"berth budget reset cloud: {out}")

        def answers_again():
            status, _, _ = https("POST", "/api/ask", {"question": "hello"})
            return status == 200

        poll("/api/ask to answer again after the reset", answers_again, limit=10)
        d.type("#question", "And the fees?")
        d.click("#send")
        wait("a second answer in the browser", lambda: len(d.finds("#log li.joyce")) >= 2)
        ok("after the reset, /api answers again (curl and the browser)")
    finally:
        d.quit()

    print("chatbot: every check passed", flush=True)


if __name__ == "__main__":
    main()
