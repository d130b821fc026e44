"""The deploy's smoke test ([deploy] smoke): the web service answers /healthz, and it
runs with every migration of this release applied. Usage: smoke.py PORT…

The service's ports are a range: a new release starts on the instance's own port, or on
the spare one while the old release still holds it, so each port is tried."""

import json
import os
import sys
import urllib.request

import lms

want = sorted(f[:-4] for f in os.listdir(lms.MIGRATIONS) if f.endswith(".sql"))
errors = []
for port in sys.argv[1:]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            health = json.load(r)
    except OSError as e:
        errors.append(f"port {port}: {e}")
        continue
    if health["schema"] != want[-1]:
        sys.exit(f"the web service on port {port} reports schema {health['schema']}, this release needs {want[-1]}")
    print("smoke test passed:", health)
    sys.exit(0)
sys.exit("the web service does not answer: " + "; ".join(errors))
