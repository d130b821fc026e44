#!/usr/bin/env python3
"""What a kept-alive client connection costs berth's gateway in memory.

Starts `berth up` with one proxy route (to a small HTTP/1.1 origin this script runs),
opens CONNECTIONS client connections, sends one proxied request on each and keeps them
open, then reads berth's anonymous resident memory (RssAnon) before and after: the
difference over the count is the cost of one idle kept-alive connection, buffers and
task included (the kernel's socket buffers are not in it). Run once with the access log
off and once with it on (its default). Prints a markdown table on stdout.

    python3 bench/gateway/connections.py [--berth PATH] [--connections 2000]

--berth defaults to target/release/berth under the repo root (cargo build --release -p
berth). Everything lives in a temporary directory, removed at the end, and berth runs in
a process group of its own, stopped at exit.
"""

import argparse
import http.server
import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the standard library's name)
        body = b"hello from upstream\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit(f"no {key} in /proc/{pid}/status")


def measure(berth, work, origin_port, count, access_log):
    port = free_port()
    work.mkdir()
    log_line = 'access_log = "off"' if not access_log else ""
    (work / "berth.toml").write_text(
        f"""[app]
name = "connections"

[gateway]
listen = "127.0.0.1:{port}"
max_connections_per_address = 0
{log_line}

[[gateway.route]]
path = "/proxy"
proxy = "http://127.0.0.1:{origin_port}"
"""
    )
    out = open(work / "out.log", "w")
    proc = subprocess.Popen(
        [berth, "up"], cwd=work, stdout=out, stderr=out, start_new_session=True
    )
    socks = []
    try:
        deadline = time.time() + 15
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"berth exited: see {work / 'out.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("berth did not listen within 15 s")
                time.sleep(0.1)
        request = b"GET /proxy/hello HTTP/1.1\r\nHost: bench\r\n\r\n"

        def one():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            got = b""
            while not got.endswith(b"hello from upstream\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("a connection closed before its answer")
                got += chunk
            if not got.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {got[:80]!r}")
            return s

        # Warm up: the first requests load code and fill the upstream pool.
        for _ in range(20):
            one().close()
        time.sleep(1)
        before = status(proc.pid, "RssAnon")
        for _ in range(count):
            socks.append(one())
        time.sleep(1)
        after = status(proc.pid, "RssAnon")
        return before, after
    finally:
        for s in socks:
            s.close()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--berth", default=str(ROOT / "target/release/berth"))
    parser.add_argument("--connections", type=int, default=2000)
    args = parser.parse_args()
    if not os.access(args.berth, os.X_OK):
        raise SystemExit(f"no berth binary at {args.berth} (cargo build --release -p berth)")
    if args.connections < 1:
        raise SystemExit("--connections must be at least 1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 100
    if soft < want:
        if hard < want:
            raise SystemExit(f"open files are limited to {hard}: {want} are needed (ulimit -n)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="berth-connections."))
    rows = []
    try:
        for access_log in (False, True):
            work = tmp / ("log" if access_log else "nolog")
            print(f"access log {'on' if access_log else 'off'}: {args.connections} connections", file=sys.stderr)
            before, after = measure(args.berth, work, origin.server_address[1], args.connections, access_log)
            rows.append((access_log, before, after))
    finally:
        origin.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    version = subprocess.run([args.berth, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{version}, {args.connections} kept-alive connections after one proxied request each, Linux {os.uname().release}")
    print()
    print("| access log | RssAnon before | after | per connection |")
    print("|---|---|---|---|")
    for access_log, before, after in rows:
        per = (after - before) * 1024 / args.connections / 1000
        print(f"| {'on' if access_log else 'off'} | {before / 1024:.1f} MiB | {after / 1024:.1f} MiB | {per:.1f} kB |")


if __name__ == "__main__":
    main()
