#!/usr/bin/env python3
"""Seeds a berth with jobs and dead letters, then times GET /metrics (and, beside it,
GET /v1/status) over the unix socket. Prints one line of JSON.

    scrape.py SOCKET JOBS SCRAPES"""
import http.client
import json
import socket
import sys
import time

sock_path, jobs, scrapes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class Unix(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("localhost", timeout=600)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
        self.sock = s


conn = Unix()


def call(method, path, body=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data


t = time.monotonic()
for start in range(0, jobs, 50_000):
    n = min(50_000, jobs - start)
    call("POST", "/v1/jobs/bulk", {"jobs": [{"queue": "bench", "kind": "noop"}] * n})
seeded = time.monotonic() - t


def timings(path):
    out = []
    for _ in range(scrapes):
        t0 = time.perf_counter()
        call("GET", path)
        out.append(time.perf_counter() - t0)
    out.sort()
    pick = lambda q: round(out[min(len(out) - 1, int(q * len(out)))] * 1000, 2)  # noqa: E731
    return {"p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(out[-1] * 1000, 2)}


text = call("GET", "/metrics").decode()
dead = [l for l in text.splitlines() if l.startswith('berth_messages{') and 'dead="true"' in l]
print(json.dumps({
    "jobs": jobs,
    "seed_secs": round(seeded, 1),
    "dead_letters": dead,
    "metrics_bytes": len(text),
    "metrics": timings("/metrics"),
    "status": timings("/v1/status"),
}))
