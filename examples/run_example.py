#!/usr/bin/env python3
"""Runs one example end to end as a user would, for CI and by hand.

    python3 examples/run_example.py NAME [--keep]

1. Copies examples/NAME to a temporary directory (its sources: in a git checkout, not
   what .gitignore names, such as the state an earlier run left), and gives
   each port its `test.json` lists a free port of this machine (a range such as
   "8601-8603" gets consecutive ones): every whole-number occurrence in the copy's text
   files is replaced, so that a test never needs the example's own ports to be free.
2. Starts an SMTP sink (aiosmtpd) if `test.json` names an "smtp" port; each mail it
   accepts lands in MAIL_DIR as one .eml file.
3. Runs the example's install step, `sh setup.sh`, if it has one (the README's first
   command), then `berth up` (the second), and waits until `berth status` answers.
4. Runs `python3 check.py` in the copy, which drives the example with real clients and
   exits non-zero with the reason on the first failure. It gets, in its environment:
   BERTH (the binary), PORT_<original>=<free port> for each port, MAIL_DIR (if smtp),
   and EXAMPLE_DIR (the copy); examples/ is on PYTHONPATH, so `from browser import
   Driver` gives a headless Chromium over WebDriver.
5. Stops berth with SIGTERM and requires a clean exit (0) within 60 s.

BERTH names the berth binary (default: `berth` on PATH); its directory is put first on
PATH, so that `berth …` in setup.sh, check.py and the example's own scripts is the same
binary. On a failure, the tail of berth's log is printed. With --keep, the copy stays.
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SMTP_SINK = os.path.join(HERE, "..", "crates", "berth", "tests", "it", "smtp_sink.py")


def copy_sources(source, copy):
    """Copies the example's own files: in a git checkout, those git tracks or would
    track (not what an earlier run left and .gitignore names), else all but .berth."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "."],
        cwd=source,
        capture_output=True,
    )
    if listed.returncode != 0:
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".berth", "__pycache__"))
        return
    for rel in filter(None, listed.stdout.decode().split("\0")):
        if not os.path.exists(os.path.join(source, rel)):
            continue  # deleted in the working tree
        os.makedirs(os.path.dirname(os.path.join(copy, rel)), exist_ok=True)
        shutil.copy2(os.path.join(source, rel), os.path.join(copy, rel))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_block(count):
    """The first of `count` consecutive free ports, and their sockets, still bound."""
    for _ in range(200):
        first = free_port()
        if first + count > 65535:
            continue
        socks = []
        try:
            for i in range(count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", first + i))
            return first, socks
        except OSError:
            for s in socks:
                s.close()
    raise SystemExit(f"no {count} consecutive free ports")


def replace_ports(root, ports):
    """Replaces each original port by its free one in every text file under root."""
    if not ports:
        return
    # Not in `PORT_<original>`, the names check.py reads the free ports by.
    pattern = re.compile(r"(?<![0-9])(?<!PORT_)(" + "|".join(str(p) for p in ports) + r")(?![0-9])")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".berth", ".git")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except (UnicodeDecodeError, OSError):
                continue
            new = pattern.sub(lambda m: str(ports[int(m.group(1))]), text)
            if new != text:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(new)


def tail(path, lines=60):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    keep = "--keep" in sys.argv
    if len(args) != 1:
        sys.exit(__doc__)
    name = args[0]
    source = os.path.join(HERE, name)
    if not os.path.isfile(os.path.join(source, "berth.toml")):
        sys.exit(f"no example `{name}`: expected {source}/berth.toml")
    with open(os.path.join(source, "test.json")) as f:
        manifest = json.load(f)

    berth = os.environ.get("BERTH") or shutil.which("berth")
    if not berth:
        sys.exit("set BERTH to the berth binary (or put berth on PATH)")
    berth = os.path.abspath(berth)
    work = tempfile.mkdtemp(prefix=f"berth-example-{name}-")
    # The repository's layout, so that an example reaches berth's Python worker module
    # as ../../clients/python, as it does in the checkout.
    copy = os.path.join(work, "examples", name)
    copy_sources(source, copy)
    os.symlink(os.path.join(HERE, "..", "clients"), os.path.join(work, "clients"))

    # Each port stays bound until all are chosen, so that none is chosen twice.
    held = []
    ports = {}
    wanted = list(manifest.get("ports", []))
    smtp = manifest.get("smtp")
    if smtp is not None and int(smtp) not in [p for p in wanted if not isinstance(p, str)]:
        wanted.append(int(smtp))
    for p in wanted:
        if isinstance(p, str) and "-" in p:
            # A range ("8601-8603", a service's `ports`): consecutive free ports.
            first, last = (int(x) for x in p.split("-"))
            block, socks = free_block(last - first + 1)
            held.extend(socks)
            ports.update({first + i: block + i for i in range(last - first + 1)})
        else:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            ports[int(p)] = sock.getsockname()[1]
    for sock in held:
        sock.close()
    replace_ports(copy, ports)

    env = dict(os.environ)
    env["BERTH"] = berth
    env["PATH"] = os.path.dirname(berth) + os.pathsep + env.get("PATH", "")
    env["EXAMPLE_DIR"] = copy
    # check.py may `import browser` (examples/browser.py, a small WebDriver client).
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("BERTH_CONFIG", None)
    for original, port in ports.items():
        env[f"PORT_{original}"] = str(port)

    children = []
    up = None
    log_path = os.path.join(work, "berth-up.log")
    ok = False
    try:
        if smtp is not None:
            mail_dir = os.path.join(work, "mail")
            os.mkdir(mail_dir)
            env["MAIL_DIR"] = mail_dir
            sink = subprocess.Popen(
                [sys.executable, SMTP_SINK, str(ports[int(smtp)]), mail_dir],
                stdout=subprocess.PIPE,
                text=True,
            )
            children.append(sink)
            ready, _, _ = select.select([sink.stdout], [], [], 30)
            if not ready or sink.stdout.readline().strip() != "READY":
                raise SystemExit("the SMTP sink did not start within 30 s")

        if os.path.exists(os.path.join(copy, "setup.sh")):
            print(f"[{name}] sh setup.sh", flush=True)
            subprocess.run(["sh", "setup.sh"], cwd=copy, env=env, check=True, timeout=600)

        print(f"[{name}] berth up", flush=True)
        log = open(log_path, "w")
        up = subprocess.Popen([berth, "up"], cwd=copy, env=env, stdout=log, stderr=log)
        deadline = time.time() + 60
        while True:
            if up.poll() is not None:
                raise SystemExit(f"berth up exited with {up.returncode}")
            probe = subprocess.run(
                [berth, "status"], cwd=copy, env=env, capture_output=True, timeout=30
            )
            if probe.returncode == 0:
                break
            if time.time() > deadline:
                raise SystemExit("berth status did not answer within 60 s")
            time.sleep(0.3)

        print(f"[{name}] python3 check.py", flush=True)
        subprocess.run([sys.executable, "check.py"], cwd=copy, env=env, check=True, timeout=900)

        print(f"[{name}] stopping berth", flush=True)
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
        if code != 0:
            raise SystemExit(f"berth up exited with {code} after SIGTERM")
        ok = True
        print(f"[{name}] passed", flush=True)
    except subprocess.CalledProcessError as e:
        print(f"[{name}] FAILED: {' '.join(map(str, e.cmd))} exited with {e.returncode}", flush=True)
    except subprocess.TimeoutExpired as e:
        print(f"[{name}] FAILED: {' '.join(map(str, e.cmd))} timed out", flush=True)
    except SystemExit as e:
        print(f"[{name}] FAILED: {e}", flush=True)
    finally:
        if up is not None and up.poll() is None:
            up.kill()
            up.wait()
        for child in children:
            child.terminate()
            child.wait()
        if not ok:
            print(f"--- berth's log, last lines ({log_path}) ---\n{tail(log_path)}", flush=True)
        if keep or not ok:
            print(f"[{name}] the copy stays in {copy}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
