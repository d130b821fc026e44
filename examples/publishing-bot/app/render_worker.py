"""Step 3 of `publish`, run by long-lived workers (what SWF's activity workers were):
render the article's pages. It takes a while, so the worker heartbeats: berth_worker's
thread renews the job's lease every third of it (2 s of a 6 s lease, the step's
heartbeat_timeout). A worker that dies stops heartbeating, and berth gives the step to
another worker about 6 s later; one that is stopped for a deploy (SIGTERM) finishes its
page run first.

Run as a service ([service.render-worker]): python3 render_worker.py"""

import os
import time

import bot
from berth_worker import Worker

PAGES = int(os.environ.get("RENDER_PAGES", "12"))


def handle(job):
    convert = job.args["parents"]["convert"]
    started = time.time()
    for page in range(1, PAGES + 1):
        if job.lost:                      # berth gave the job to another worker
            raise RuntimeError("lost the lease; stopping")
        time.sleep(1)                     # rendering one page
        print(f"job {job.id}: article {convert['id']}, page {page} of {PAGES}", flush=True)
    return {
        "id": convert["id"],
        "html": convert["html"],
        "pages": PAGES,
        "seconds": round(time.time() - started, 1),
        "release": bot.release(),
        "worker": os.getpid(),
    }


if __name__ == "__main__":
    print(f"render worker {os.getpid()} (release {bot.release()}, version {bot.version()})", flush=True)
    Worker("workflow.publish.render", handle, batch=1, lease=6, wait=5).run()
