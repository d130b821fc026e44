#!/usr/bin/env python3
"""Sends an exact number of GET requests to an HTTP/1.1 server over kept-alive
connections, one at a time on each, and checks every answer (status 200, the whole body
by its Content-Length). Used by bench/gateway/instructions.sh, which counts what a
front executes for a known number of requests; wrk runs for a time, not a count.

    requests.py URL CONNECTIONS PER_CONNECTION

Exits 1, saying what was wrong, at the first answer that is not a whole 200.
"""

import socket
import sys
import threading
from urllib.parse import urlsplit


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url = urlsplit(sys.argv[1])
    try:
        conns, per = int(sys.argv[2]), int(sys.argv[3])
    except ValueError:
        print("CONNECTIONS and PER_CONNECTION are whole numbers", file=sys.stderr)
        return 2
    if url.scheme != "http" or not url.hostname or not url.port:
        print(f"not an http://HOST:PORT/PATH URL: {sys.argv[1]}", file=sys.stderr)
        return 2
    target = url.path or "/"
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        "User-Agent: berth-bench\r\nAccept: */*\r\n\r\n"
    ).encode()
    failures: list[str] = []

    def run() -> None:
        try:
            with socket.create_connection((url.hostname, url.port), timeout=60) as s:
                answers = s.makefile("rb")
                for _ in range(per):
                    s.sendall(request)
                    status = answers.readline()
                    if not status.startswith(b"HTTP/1.1 200 "):
                        raise ValueError(f"answer {status!r}")
                    length = None
                    while (line := answers.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if length is None:
                        raise ValueError("an answer without Content-Length")
                    if len(answers.read(length)) != length:
                        raise ValueError("the connection closed mid-body")
        except (OSError, ValueError) as e:
            failures.append(str(e))

    threads = [threading.Thread(target=run) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        print(f"{len(failures)} connection(s) failed: {failures[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
