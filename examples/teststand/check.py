"""Drives the teststand example with real clients once `berth up` runs; exits non-zero
with the reason on the first failure. Run by examples/run_example.py (which sets
BERTH and PORT_<original>), or by hand in this folder while berth runs:

    BERTH=berth python3 check.py
"""

import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.parse

import paho.mqtt.client as mqtt

BERTH = os.environ.get("BERTH", "berth")
HTTPS_PORT = int(os.environ.get("PORT_8451", "8451"))
TCP_PORT = int(os.environ.get("PORT_8483", "8483"))
WS_PORT = int(os.environ.get("PORT_8484", "8484"))
BASE = f"https://127.0.0.1:{HTTPS_PORT}"
CERT = os.path.join(".berth", "tls", "self-signed.crt")

SUCCESS, NOT_AUTHORIZED, PAYLOAD_INVALID = 0, 0x87, 0x99


def fail(msg):
    print(f"check failed: {msg}", flush=True)
    sys.exit(1)


def ok(msg):
    print(f"ok: {msg}", flush=True)


def berth(*args):
    p = subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail(f"`berth {' '.join(args)}` exited with {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def berth_json(*args):
    return json.loads(berth("--json", *args))


def poll(what, fn, limit=30.0, every=0.2):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    fail(f"timed out after {limit:.0f} s waiting for {what} (last: {last!r})")


def logins():
    values = {}
    with open("logins.env") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                values[k] = v
    return values


class Mqtt:
    """One MQTT 5 client, driven by hand (no background thread, no reconnects)."""

    def __init__(self, user, password, ws=False):
        self.name = f"{user} over {'WebSocket' if ws else 'TCP'}"
        self.connack = None
        self.acks = {}
        self.granted = {}
        self.received = []
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"check-{user}-{time.time_ns()}",
                        protocol=mqtt.MQTTv5, transport="websockets" if ws else "tcp")
        if ws:
            c.ws_set_options(path="/mqtt")
        c.username_pw_set(user, password)
        c.on_connect = lambda cl, ud, flags, rc, props: setattr(self, "connack", rc)
        c.on_publish = lambda cl, ud, mid, rc, props: self.acks.__setitem__(mid, rc)
        c.on_subscribe = lambda cl, ud, mid, rcs, props: self.granted.__setitem__(mid, rcs)
        c.on_message = lambda cl, ud, m: self.received.append((m.topic, m.payload))
        self.c = c
        c.connect("127.0.0.1", WS_PORT if ws else TCP_PORT)
        self.until(lambda: self.connack is not None, "the CONNACK", 15)

    def until(self, cond, what, limit=10.0):
        deadline = time.time() + limit
        while not cond():
            if time.time() > deadline:
                fail(f"{self.name}: no {what} within {limit:.0f} s")
            self.c.loop(0.05)

    def publish(self, topic, msg):
        payload = msg if isinstance(msg, (bytes, str)) else json.dumps(msg)
        info = self.c.publish(topic, payload, qos=1)
        self.until(lambda: info.mid in self.acks, f"PUBACK on {topic}")
        return self.acks[info.mid].value

    def subscribe(self, topic):
        _, mid = self.c.subscribe(topic, qos=1)
        self.until(lambda: mid in self.granted, f"SUBACK for {topic}")
        return [rc.value for rc in self.granted[mid]]

    def close(self):
        self.c.disconnect()
        self.c.loop(0.05)


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


SEQ = [time.time_ns() // 1_000_000]


def seq():
    SEQ[0] += 1
    return SEQ[0]


def status(state, **extra):
    return {"type": "status", "seq": seq(), "time": now(), "state": state, **extra}


def result(test, **values):
    limits = {"pressure": (2.0, 3.0), "flow": (10, 14)}
    return {"type": "result", "seq": seq(), "time": now(), "test": test,
            "measurements": [{"name": n, "value": v, "min": limits[n][0], "max": limits[n][1]}
                             for n, v in values.items()]}


def login_cookie(ctx, user, password):
    """Signs in through berth's login form; returns the session cookie."""
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, context=ctx, timeout=30)
    body = urllib.parse.urlencode({"user": user, "password": password, "next": "/"})
    conn.request("POST", "/_berth/login", body=body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie") or ""
    if r.status != 303 or "berth_session=" not in cookie:
        fail(f"login as {user}: expected 303 with a session cookie, got {r.status}")
    return cookie.split(";")[0]


def https(ctx, method, path, cookie=None):
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, context=ctx, timeout=30)
    headers = {"Cookie": cookie} if cookie else {}
    conn.request(method, path, headers=headers)
    r = conn.getresponse()
    return r.status, r.read().decode()


def main():
    secrets = logins()
    lab_pw = secrets["LAB_PASSWORD"]
    pw = {n: secrets[f"{n.upper()}_PASSWORD"] for n in ("teststand1", "teststand2", "teststand3")}

    def web_running():
        return any(s["service"] == "web" and s["state"] == "running"
                   for s in berth_json("ps")["services"])

    poll("the web service to run", web_running, limit=60)
    ok("berth ps: the web app runs")

    # 1. Logins: a wrong password and an unknown name are refused.
    bad = Mqtt("teststand2", "not-the-password")
    if not bad.connack.is_failure:
        fail(f"a wrong password was accepted: {bad.connack}")
    ok(f"MQTT/TCP with a wrong password is refused: {bad.connack}")
    bad = Mqtt("intruder", "whatever-password", ws=True)
    if not bad.connack.is_failure:
        fail(f"an unknown login was accepted over WebSocket: {bad.connack}")
    ok(f"MQTT/WebSocket with an unknown name is refused: {bad.connack}")

    # 2. The lab listens to every stand (mosquitto_sub -t '#'), over WebSocket.
    lab = Mqtt("lab", lab_pw, ws=True)
    if lab.connack.is_failure:
        fail(f"lab could not log in over WebSocket: {lab.connack}")
    granted = lab.subscribe("+/inbound")
    if granted[0] >= 0x80:
        fail(f"lab's subscription to +/inbound was refused: {granted}")
    ok("lab logged in over WebSocket and subscribed to +/inbound")

    # 3. Stands publish, over TCP and over WebSocket, with their own logins.
    s1 = Mqtt("teststand1", pw["teststand1"])
    s2 = Mqtt("teststand2", pw["teststand2"], ws=True)
    s3 = Mqtt("teststand3", pw["teststand3"])
    for s in (s1, s2, s3):
        if s.connack.is_failure:
            fail(f"{s.name}: login refused: {s.connack}")
    sent = [
        (s1, "teststand1/inbound", result("pump-pressure", pressure=2.4, flow=12.1)),
        (s1, "teststand1/inbound", status("running", test="valve-leak", temperature_c=31.5)),
        (s2, "teststand2/inbound", result("pump-pressure", pressure=3.6, flow=11.0)),
        (s2, "teststand2/inbound", status("idle", temperature_c=22.0)),
        (s3, "teststand3/inbound", status("maintenance", message="new pump fitted")),
    ]
    for s, topic, msg in sent:
        rc = s.publish(topic, msg)
        if rc != SUCCESS:
            fail(f"{s.name}: {msg['type']} on {topic} answered {rc:#x}, expected success")
    ok("teststand1 (TCP), teststand2 (WebSocket), teststand3 (TCP) published 5 messages, each acknowledged")

    lab.until(lambda: len(lab.received) >= len(sent), "the stands' messages at the lab's subscription")
    ok(f"the lab's subscription received {len(lab.received)} messages")

    # 4. Topic permissions: a stand publishes only on its own topic.
    rc = s1.publish("teststand2/inbound", status("idle"))
    if rc != NOT_AUTHORIZED:
        fail(f"teststand1 publishing on teststand2/inbound: expected 0x87 not authorized, got {rc:#x}")
    ok("teststand1 on teststand2/inbound is refused (0x87 not authorized)")

    # 5. A resend of the same seq is stored once (key = "/seq").
    again = status("maintenance", message="new pump fitted")
    for _ in range(2):
        if s3.publish("teststand3/inbound", again) != SUCCESS:
            fail("teststand3's resend was not acknowledged")

    # 6. A message that fails the schema: refused with 0x99, kept as a dead letter.
    rc = s3.publish("teststand3/inbound", {"type": "status", "seq": seq(), "time": now(),
                                           "state": "on fire"})
    if rc != PAYLOAD_INVALID:
        fail(f"a message failing the schema: expected 0x99 payload format invalid, got {rc:#x}")
    ok("a status with state \"on fire\" is refused (0x99 payload format invalid)")
    for s in (s1, s2, s3, lab):
        s.close()

    dead = berth_json("messages", "dead", "--ingest", "stands", "--device", "teststand3")["messages"]
    if len(dead) != 1:
        fail(f"berth messages dead: expected 1 dead letter from teststand3, got {dead}")
    shown = berth("messages", "show", str(dead[0]["id"]))
    if "on fire" not in shown or "/state" not in shown:
        fail(f"berth messages show {dead[0]['id']} should give the reason at /state:\n{shown}")
    ok(f"berth messages dead lists it; show says: {shown.splitlines()[1].strip()[:110]}")

    # 7. Messages are stored per stand, and the resend only once.
    stored = berth_json("messages", "list", "--ingest", "stands")["messages"]
    per_stand = {}
    for m in stored:
        per_stand.setdefault(m["device"], []).append(m["kind"])
    want = {"teststand1": ["result", "status"], "teststand2": ["result", "status"],
            "teststand3": ["status", "status"]}
    if {k: sorted(v) for k, v in per_stand.items()} != want:
        fail(f"stored messages per stand: expected {want}, got {per_stand}")
    first = max((m for m in stored if m["device"] == "teststand3"), key=lambda m: m["id"])
    dup = berth_json("messages", "show", str(first["id"]))
    if dup.get("duplicates") != 1:
        fail(f"the resend should count as 1 duplicate of message {first['id']}: {dup}")
    ok(f"berth messages list: {len(stored)} messages, per stand {dict(sorted(per_stand.items()))}; "
       "the resend counted as a duplicate")

    # 8. A job per message, posted to the app; the results are judged.
    def jobs_done():
        jobs = berth_json("job", "list", "--queue", "stand-messages")["jobs"]
        return jobs if len(jobs) == len(stored) and all(j["state"] == "completed" for j in jobs) else None

    jobs = poll("a completed job per stored message", jobs_done, limit=30)
    verdicts = {j["result"]["stand"]: j["result"]["verdict"]
                for j in (berth_json("job", "show", str(j["id"])) for j in jobs)
                if j["kind"] == "result"}
    if verdicts != {"teststand1": "pass", "teststand2": "fail"}:
        fail(f"result jobs: expected teststand1 pass and teststand2 fail, got {verdicts}")
    ok(f"{len(jobs)} jobs on stand-messages completed; results judged {verdicts}")

    # 9. The gateway: HTTPS, login required, a read-only view of berth's API.
    ctx = ssl.create_default_context(cafile=CERT)
    status_code, _ = https(ctx, "GET", "/stand-api/v1/messages")
    if status_code != 401:
        fail(f"/stand-api without a login: expected 401, got {status_code}")
    cookie = login_cookie(ctx, "lab", lab_pw)
    status_code, text = https(ctx, "GET", "/stand-api/v1/messages?ingest=stands&device=teststand2", cookie)
    if status_code != 200 or len(json.loads(text)["messages"]) != 2:
        fail(f"/stand-api/v1/messages for teststand2: {status_code} {text[:200]}")
    status_code, _ = https(ctx, "POST", f"/stand-api/v1/messages/{dead[0]['id']}/replay", cookie)
    if status_code != 405:
        fail(f"POST on the read-only /stand-api: expected 405, got {status_code}")
    status_code, text = https(ctx, "GET", "/stands.json", cookie)
    states = {s["name"]: s["state"] for s in json.loads(text)} if status_code == 200 else text
    if states != {"teststand1": "running", "teststand2": "idle", "teststand3": "maintenance"}:
        fail(f"/stands.json: unexpected states {states}")
    ok(f"HTTPS: /stand-api needs a login (401), reads messages as lab, refuses POST (405); "
       f"/stands.json {states}")

    # 10. The status page in a browser: berth's login form, then the stands.
    from browser import Driver, wait

    d = Driver()
    try:
        d.go(f"{BASE}/")
        wait("berth's login form", lambda: "/_berth/login" in d.js("return location.pathname"))
        d.type("input[name=user]", "lab")
        d.type("input[name=password]", lab_pw)
        d.click("button[type=submit]")
        wait("the status page", lambda: d.js("return location.pathname") == "/"
             and d.text("h1") == "Test stands")
        wait("three stands on the page", lambda: len(d.finds("#stands tr")) == 3)
        rows = {n: d.text(f"#stand-{n}") for n in ("teststand1", "teststand2", "teststand3")}
        expect = {"teststand1": ["running", "valve-leak", "pump-pressure: pass"],
                  "teststand2": ["idle", "pump-pressure: fail (pressure)"],
                  "teststand3": ["maintenance (new pump fitted)"]}
        for n, words in expect.items():
            for w in words:
                if w not in rows[n]:
                    fail(f"the page's row for {n} lacks {w!r}: {rows[n]!r}")
        wait("teststand3's rejected message on the page",
             lambda: d.text("#stand-teststand3 .rejected") == "1")
        if d.text("#user") != "lab":
            fail(f"the page should greet the signed-in user lab, shows {d.text('#user')!r}")
        errors = d.console_errors()
        if errors:
            fail(f"console errors on the status page: {errors}")
        ok("browser: signed in as lab; the page shows each stand's latest status, last "
           "result and teststand3's rejected message; no console errors")

        # 11. The periodic job, run now rather than at the next minute.
        out = berth("schedule", "run", "offline")
        m = re.search(r"started job (\d+)", out)
        if not m:
            fail(f"berth schedule run offline printed: {out!r}")
        job = poll("the offline job to complete",
                   lambda: (lambda j: j if j["state"] in ("completed", "discarded") else None)(
                       berth_json("job", "show", m.group(1))), limit=30)
        if job["state"] != "completed" or job["result"].get("checked") != 3:
            fail(f"the offline job: {job['state']} {job.get('result')} {job.get('errors')}")
        listed = berth("schedule", "list")
        if "completed" not in listed:
            fail(f"berth schedule list should show the run completed:\n{listed}")
        ok(f"berth schedule run offline: job {m.group(1)} completed with {job['result']}")

        # 12. The simulator, as a user runs it.
        before = len(stored)
        p = subprocess.run([sys.executable, "stand.py", "2", "--once", "--ws", "--interval", "0.2"],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0 or "Success" not in p.stdout:
            fail(f"python3 stand.py 2 --once --ws exited {p.returncode}:\n{p.stdout}{p.stderr}")
        total = poll("the simulator's 6 messages", lambda: (lambda n: n if n >= before + 6 else None)(
            berth_json("messages", "count", "--ingest", "stands")["total"]), limit=15)
        wait("the page to show teststand2 idle after the simulator's run",
             lambda: "idle" in d.text("#stand-teststand2") and "of 2" in d.text("#stand-teststand2"))
        ok(f"python3 stand.py 2 --once --ws: {total - before} more messages, and the page follows")
    finally:
        d.quit()

    print("teststand: every check passed", flush=True)


if __name__ == "__main__":
    main()
