#!/usr/bin/env python3
"""Enqueues N no-op jobs into one system, starts its workers (two processes), and
measures how fast they drain the queue: from the first job taken to the last one
acknowledged (berth: recorded completed), polling what the queue still holds. Prints
one line of JSON.

    drive.py SYSTEM JOBS    (SYSTEM: berth, celery, dramatiq, huey)

berth: BERTH_URL names its API (unix:PATH); the pull queue is `bench`.
Peers: REDIS_URL names the Redis started for this run."""
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "..", "..", "clients", "python")
sys.path.insert(0, CLIENTS)
SYSTEM, JOBS = sys.argv[1], int(sys.argv[2])
PY = sys.executable
POLL = 0.02


def berth_client():
    from berth_worker import _Client

    return _Client(os.environ["BERTH_URL"], os.environ.get("BERTH_API_TOKEN"), 60)


def berth_get_remaining(c):
    # GET through the same keep-alive connection.
    c.conn = c.conn or c._connect()
    c.conn.request("GET", "/v1/queues")
    r = c.conn.getresponse()
    q = next(q for q in json.loads(r.read())["queues"] if q["name"] == "bench")
    return q["counts"]["available"] + q["counts"]["running"] + q["counts"].get("retryable", 0)


def setup():
    """Enqueues the jobs (not timed); returns (remaining(), worker commands, version)."""
    if SYSTEM == "berth":
        c = berth_client()
        for start in range(0, JOBS, 1000):
            batch = [{"queue": "bench", "kind": "noop", "args": {"i": i}} for i in range(start, min(JOBS, start + 1000))]
            c.post("/v1/jobs/bulk", {"jobs": batch})
        cmd = [PY, os.path.join(CLIENTS, "berth_worker.py"), "bench", "noop:handle", "--batch", "100", "--wait", "1"]
        return (lambda: berth_get_remaining(c)), [cmd, cmd], os.environ.get("BERTH_VERSION", "?")
    os.environ["PEER"] = SYSTEM
    import redis

    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    r.flushall()
    import peers

    if SYSTEM == "celery":
        import celery

        for i in range(JOBS):
            peers.noop.apply_async((i,))
        remaining = lambda: r.llen("celery") + r.hlen("unacked")  # noqa: E731
        cmd = [PY, "-m", "celery", "-A", "peers", "worker", "--pool", "prefork", "--concurrency", "2",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"]
        return remaining, [cmd], celery.__version__
    if SYSTEM == "dramatiq":
        import dramatiq

        for i in range(JOBS):
            peers.noop.send(i)
        remaining = lambda: r.hlen("dramatiq:default.msgs")  # noqa: E731
        cmd = [PY, "-m", "dramatiq", "peers", "--processes", "2", "--threads", os.environ.get("DRAMATIQ_THREADS", "8")]
        return remaining, [cmd], dramatiq.__version__
    if SYSTEM == "huey":
        import huey

        for i in range(JOBS):
            peers.noop(i)
        remaining = lambda: r.llen("huey.redis.bench")  # noqa: E731
        cmd = [PY, "-m", "huey.bin.huey_consumer", "peers.huey", "-w", "2", "-k", "process", "-q"]
        return remaining, [cmd], huey.__version__
    raise SystemExit(f"unknown system {SYSTEM}")


def main():
    remaining, cmds, version = setup()
    left = remaining()
    if left != JOBS:
        raise SystemExit(f"{SYSTEM}: {left} jobs queued, expected {JOBS}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, CLIENTS]), PEER=SYSTEM)
    log = open(os.environ.get("WORKER_LOG", os.devnull), "ab")
    procs = [subprocess.Popen(c, cwd=HERE, env=env, start_new_session=True, stdout=log, stderr=log) for c in cmds]
    start = end = None
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            left = remaining()
            now = time.monotonic()
            if start is None and left < JOBS:
                start = now
            if left == 0:
                end = now
                break
            if any(p.poll() not in (None, 0) for p in procs):
                raise SystemExit(f"{SYSTEM}: a worker exited with {[p.poll() for p in procs]}")
            time.sleep(POLL)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    if end is None:
        raise SystemExit(f"{SYSTEM}: {left} jobs left after 600 s")
    secs = max(end - start, POLL)
    broker = os.environ.get("BROKER", "")
    print(json.dumps({"system": SYSTEM, "version": version, "broker": broker, "jobs": JOBS, "secs": round(secs, 3),
                      "jobs_per_sec": round(JOBS / secs)}))


if __name__ == "__main__":
    main()
