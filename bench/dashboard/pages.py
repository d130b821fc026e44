#!/usr/bin/env python3
"""Seeds a berth with jobs, then times each dashboard page (over the gateway, with a
login session) and /metrics and /v1/status (over the unix socket), 200 requests each in a
row. Prints one JSON line per request, and the jobs and dead letters the store holds.

    pages.py SOCKET GATEWAY_URL SESSION JOBS REQUESTS"""
import http.client
import json
import socket
import sys
import time
import urllib.parse

sock_path, gateway, session, jobs, requests = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])


class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=600)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        self.sock = s


api = Unix()
g = urllib.parse.urlsplit(gateway)
web = http.client.HTTPConnection(g.hostname, g.port, timeout=600)


def call(conn, method, path, body=None, headers=None):
    headers = dict(headers or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data


t = time.monotonic()
for start in range(0, jobs, 50_000):
    n = min(50_000, jobs - start)
    call(api, "POST", "/v1/jobs/bulk", {"jobs": [{"queue": "bench", "kind": "noop", "args": {"i": start}}] * n})
seeded = time.monotonic() - t
status = json.loads(call(api, "GET", "/v1/status"))
held = sum(sum(q["counts"].values()) for q in status["queues"])
metrics = call(api, "GET", "/metrics").decode()
dead = sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
           if l.startswith("berth_messages{") and 'dead="true"' in l)
print(json.dumps({"jobs_pushed": jobs, "seed_secs": round(seeded, 1), "jobs_in_store": held, "dead_letters": dead}))

cookie = {"Cookie": f"berth_session={session}"}
middle = max(1, held // 2)
targets = [
    ("/metrics", api, {}),
    ("/v1/status", api, {}),
    ("/admin/", web, cookie),
    ("/admin/queues", web, cookie),
    ("/admin/jobs", web, cookie),
    ("/admin/jobs?state=available", web, cookie),
    (f"/admin/jobs?before={middle}", web, cookie),
    ("/admin/jobs/1", web, cookie),
    ("/admin/messages?dead=true", web, cookie),
    ("/admin/services", web, cookie),
    ("/admin/events", web, cookie),
]
for path, conn, headers in targets:
    out = []
    size = 0
    for _ in range(requests):
        t0 = time.perf_counter()
        size = len(call(conn, "GET", path, headers=headers))
        out.append(time.perf_counter() - t0)
    out.sort()
    pick = lambda q: round(out[min(len(out) - 1, int(q * len(out)))] * 1000, 2)  # noqa: E731
    print(json.dumps({"path": path, "bytes": size, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                      "max_ms": round(out[-1] * 1000, 2)}))
