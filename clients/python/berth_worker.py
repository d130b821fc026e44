"""A berth pull worker in one file, standard library only (Python 3.8 or later).

Copy this file next to your code, or put its folder on PYTHONPATH. Then either run it:

    python3 berth_worker.py QUEUE myapp.tasks:handle

or use it from Python:

    from berth_worker import Worker

    def handle(job):            # job.id, job.kind, job.args, job.attempt, ...
        return {"ok": True}     # the job's result (any JSON value), or raise

    Worker("work", handle).run()

Where berth is: BERTH_URL, either `unix:PATH` (berth's admin socket, the default
`unix:.berth/berth.sock`, no token) or `http://HOST:PORT` (`[api] listen`, with the token
from BERTH_API_TOKEN).

How it talks to berth: one HTTP call records how the jobs in hand ended and leases the
next ones (`POST /v1/queues/NAME/report`), so a worker costs one round trip and one
commit per batch of jobs, not per job. While a job runs, a thread extends the leases of
every job in hand (`POST /v1/queues/NAME/heartbeat`) at a third of the lease, so a job may
run for hours. SIGTERM or SIGINT lets the job that runs finish, reports it, and hands
the jobs not yet started back to the queue without counting an attempt (a worker waiting
for work stops once its long poll ends, within `wait` seconds); a second signal stops at
once.

A handler ends a job by returning (completed, the value is its result) or by raising:
`Retry(after)` runs it again after `after` seconds without counting the attempt,
`Discard(reason)` ends it as discarded now, any other exception is a failed attempt
(retried after the queue's backoff until its attempts run out).

The module does one job at a time; run several processes for more.
"""

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback

__all__ = ["Worker", "Job", "Retry", "Discard", "BerthError"]


class Retry(Exception):
    """Raise to run the job again after `after` seconds, not counting this attempt."""

    def __init__(self, after=0, reason="retry requested"):
        super().__init__(reason)
        self.after = after
        self.reason = reason


class Discard(Exception):
    """Raise to end the job as discarded now, whatever attempts it has left."""


class BerthError(Exception):
    """berth refused a call; the message says why and what would be right."""

    def __init__(self, status, code, message):
        super().__init__(f"berth answered {status} {code}: {message}")
        self.status = status
        self.code = code


class Job:
    """A leased job: `id`, `queue`, `kind`, `args`, `attempt`, `max_attempts`,
    `priority`, `created_at`, `workflow_id` (None outside a workflow) and `lost`, which
    becomes true when berth no longer counts this attempt as running (cancelled, or
    rescued after its lease ran out): a long handler may check it and stop early."""

    __slots__ = (
        "id",
        "queue",
        "kind",
        "args",
        "attempt",
        "max_attempts",
        "priority",
        "created_at",
        "workflow_id",
        "lost",
    )

    def __init__(self, raw):
        self.id = raw["id"]
        self.queue = raw["queue"]
        self.kind = raw["kind"]
        self.args = raw.get("args")
        self.attempt = raw["attempt"]
        self.max_attempts = raw.get("max_attempts")
        self.priority = raw.get("priority", 0)
        self.created_at = raw.get("created_at")
        self.workflow_id = raw.get("workflow_id")
        self.lost = False

    def __repr__(self):
        return f"Job(id={self.id}, kind={self.kind!r}, attempt={self.attempt})"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _Client:
    """One keep-alive connection to berth's API."""

    def __init__(self, url, token, timeout):
        self.url = url
        self.token = token
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        if self.url.startswith("unix:"):
            return _UnixConnection(self.url[len("unix:"):], self.timeout)
        if self.url.startswith("http://"):
            hostport = self.url[len("http://"):].rstrip("/")
            return http.client.HTTPConnection(hostport, timeout=self.timeout)
        raise ValueError(
            f"BERTH_URL {self.url!r} is neither unix:PATH nor http://HOST:PORT"
        )

    def post(self, path, body):
        """POSTs JSON; returns the answer, raises BerthError on a refusal and OSError
        (or http.client's errors) when berth cannot be reached."""
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.request("POST", path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.close()
            raise
        answer = json.loads(raw) if raw else None
        if not 200 <= resp.status < 300:
            err = (answer or {}).get("error", {}) if isinstance(answer, dict) else {}
            raise BerthError(
                resp.status, err.get("code", "?"), err.get("message", raw.decode(errors="replace"))
            )
        return answer

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Worker:
    """Leases jobs from the pull queue `queue` and runs `handler(job)` on each.

    batch:  jobs leased per call (1-1000); they are run one after the other and
            reported together, so a batch should take seconds, not minutes.
    wait:   how long one call waits for work when the queue is empty (long poll).
    lease:  seconds each lease lasts; heartbeats renew it at a third of that.
    flush:  a finished job is reported at the latest this many seconds after it ended,
            even while the rest of its batch still runs.
    """

    def __init__(
        self,
        queue,
        handler,
        url=None,
        token=None,
        name=None,
        batch=50,
        wait=30,
        lease=60,
        flush=1.0,
        log=None,
    ):
        if not 1 <= batch <= 1000:
            raise ValueError("batch must be between 1 and 1000")
        if lease < 3:
            raise ValueError("lease must be at least 3 seconds")
        self.queue = queue
        self.handler = handler
        self.url = url or os.environ.get("BERTH_URL", "unix:.berth/berth.sock")
        self.token = token if token is not None else os.environ.get("BERTH_API_TOKEN")
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch
        self.wait = wait
        self.lease = lease
        self.flush = flush
        self.log = log or (lambda msg: print(f"berth_worker: {msg}", file=sys.stderr, flush=True))
        self.stopping = threading.Event()
        self.done = 0
        self.failed = 0
        self._client = _Client(self.url, self.token, timeout=wait + 30)
        self._held = {}  # id -> Job: leased, not yet reported
        self._held_lock = threading.Lock()
        self._pending = []  # outcomes not yet sent
        self._pending_since = None
        self._until_empty = False

    # -- the loop ----------------------------------------------------------------

    def run(self, until_empty=False):
        """Works until SIGTERM/SIGINT (or, with until_empty, until a lease call finds
        nothing). Returns the number of jobs that ended completed."""
        self._until_empty = until_empty
        self._install_signals()
        beat = threading.Thread(target=self._heartbeats, daemon=True)
        beat.start()
        jobs = []
        try:
            while True:
                if not jobs:
                    if self.stopping.is_set():
                        self._send(lease_next=False)
                        break
                    jobs = self._send(lease_next=True)
                    if not jobs and until_empty:
                        self._send(lease_next=False)
                        break
                    continue
                job = jobs.pop(0)
                if self.stopping.is_set():
                    self._give_back([job] + jobs)
                    jobs = []
                    continue
                self._run_one(job)
                if self._pending and time.monotonic() - self._pending_since >= self.flush and jobs:
                    self._send(lease_next=False)
        finally:
            self.stopping.set()
            self._client.close()
        return self.done

    def stop(self):
        """Asks the loop to stop after the job that runs."""
        self.stopping.set()

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return
        def first(*_):
            # The first signal stops after the running job; a second one stops now
            # (jobs in hand then go back to the queue when their leases run out).
            self.stopping.set()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_DFL)

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, first)

    def _run_one(self, job):
        if job.lost:
            self._forget(job)
            return
        try:
            result = self.handler(job)
            json.dumps(result)  # refuse a result berth could not store, as a failure
            outcome = {"id": job.id, "attempt": job.attempt}
            if result is not None:
                outcome["result"] = result
            self.done += 1
        except Retry as r:
            outcome = {
                "id": job.id,
                "attempt": job.attempt,
                "error": r.reason,
                "retry_after": f"{max(0, int(r.after))}s",
            }
        except Discard as d:
            self.failed += 1
            outcome = {"id": job.id, "attempt": job.attempt, "error": str(d) or "discarded", "retry": False}
        except Exception as e:  # noqa: BLE001 - every failure of a handler is reported
            self.failed += 1
            tail = traceback.format_exc().strip().splitlines()[-6:]
            outcome = {
                "id": job.id,
                "attempt": job.attempt,
                "error": f"{type(e).__name__}: {e}\n" + "\n".join(tail),
            }
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(outcome)

    def _give_back(self, jobs):
        """Hands jobs not started back to the queue now, without counting an attempt."""
        for job in jobs:
            if not job.lost:
                self._pending.append(
                    {"id": job.id, "attempt": job.attempt, "error": "worker stopped before running it", "retry_after": "0s"}
                )
        self._send(lease_next=False)

    def _send(self, lease_next):
        """Reports what is pending and, with lease_next, leases the next batch. Retries
        while berth cannot be reached (it may be restarting): the outcomes stay valid as
        long as their leases, which the heartbeat thread keeps extending."""
        body = {"worker": self.name, "done": self._pending}
        if lease_next:
            wait = 0 if self._until_empty else int(self.wait)
            body["lease"] = {"max": self.batch, "wait": f"{wait}s", "lease": f"{int(self.lease)}s"}
        delay = 0.5
        while True:
            try:
                answer = self._client.post(f"/v1/queues/{self.queue}/report", body)
                break
            except BerthError as e:
                if e.status >= 500:
                    self.log(f"{e}; trying again in {delay:.0f}s")
                else:
                    raise
            except (OSError, http.client.HTTPException) as e:
                if self.stopping.is_set() and not self._pending:
                    return []
                self.log(f"cannot reach berth at {self.url}: {e}; trying again in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 10)
        for sent, got in zip(self._pending, answer["done"]):
            if got.get("error") == "stale_attempt":
                self.log(f"job {sent['id']} attempt {sent['attempt']} was no longer running (cancelled or rescued); its outcome was not recorded")
        with self._held_lock:
            for sent in self._pending:
                self._held.pop(sent["id"], None)
            jobs = [Job(raw) for raw in answer["jobs"]]
            for job in jobs:
                self._held[job.id] = job
        self._pending = []
        self._pending_since = None
        return jobs

    def _forget(self, job):
        with self._held_lock:
            self._held.pop(job.id, None)

    # -- heartbeats ----------------------------------------------------------------

    def _heartbeats(self):
        client = _Client(self.url, self.token, timeout=30)
        every = self.lease / 3
        while not self.stopping.wait(every):
            with self._held_lock:
                held = list(self._held.values())
            if not held:
                continue
            body = {"jobs": [{"id": j.id, "attempt": j.attempt} for j in held], "lease": f"{int(self.lease)}s"}
            try:
                answer = client.post(f"/v1/queues/{self.queue}/heartbeat", body)
            except (OSError, http.client.HTTPException, BerthError) as e:
                self.log(f"heartbeat failed: {e}")
                continue
            # A job whose outcome is being reported (the report waits for the next
            # lease) is no longer running on berth's side: that is not a loss.
            reported = {p["id"] for p in list(self._pending)}
            for job, got in zip(held, answer["jobs"]):
                if got.get("error") == "stale_attempt" and not job.lost and job.id not in reported:
                    job.lost = True
                    self.log(f"job {job.id} attempt {job.attempt} is no longer ours (cancelled or rescued)")
        client.close()


def _load(spec):
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"handler {spec!r} must be MODULE:FUNCTION, e.g. myapp.tasks:handle")
    import importlib

    sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module), attr)


def main(argv=None):
    import argparse

    p = argparse.ArgumentParser(description="Run a berth pull worker.")
    p.add_argument("queue", help="the pull queue to work on")
    p.add_argument("handler", help="MODULE:FUNCTION called with each job")
    p.add_argument("--batch", type=int, default=50, help="jobs leased per call (default 50)")
    p.add_argument("--lease", type=int, default=60, help="lease in seconds (default 60)")
    p.add_argument("--wait", type=int, default=30, help="long poll in seconds (default 30)")
    p.add_argument("--name", help="worker name (default HOST:PID)")
    p.add_argument("--until-empty", action="store_true", help="exit once the queue is empty")
    a = p.parse_args(argv)
    worker = Worker(a.queue, _load(a.handler), name=a.name, batch=a.batch, lease=a.lease, wait=a.wait)
    try:
        worker.run(until_empty=a.until_empty)
    except BerthError as e:
        raise SystemExit(f"berth_worker: {e}")
    print(f"berth_worker: {worker.done} completed, {worker.failed} failed", file=sys.stderr)


if __name__ == "__main__":
    # Run as the module itself, so that a handler's `from berth_worker import Retry`
    # names the same class that the loop catches.
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import berth_worker

    berth_worker.main()
