"""A small WebDriver client (chromedriver driving Debian's headless Chromium), standard
library only, for the examples' checks: `from browser import Driver, wait`.

    d = Driver()                  # starts chromedriver and a headless Chromium session
    d.go("https://127.0.0.1:8443/")
    wait("the page", lambda: d.text("h1") == "Hello")
    d.quit()

CHROMIUM names the browser binary (default /usr/bin/chromium). Certificates are not
checked (the examples' gateways use self-signed ones).
"""

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """The few WebDriver commands these checks need."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["chromedriver", f"--port={self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                self.call("GET", "/status")
                break
            except OSError:
                time.sleep(0.05)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1280,900",
                    "--ignore-certificate-errors",
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "acceptInsecureCerts": True,
        }
        answer = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
        self.session = f"/session/{answer['sessionId']}"

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode()[:500]}")

    def s(self, method, path, body=None):
        return self.call(method, self.session + path, body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        return next(iter(el.values()))

    def finds(self, css):
        return self.s("POST", "/elements", {"using": "css selector", "value": css})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def text(self, css):
        return self.s("GET", f"/element/{self.find(css)}/text")

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def console_errors(self):
        entries = self.s("POST", "/se/log", {"type": "browser"}) or []
        return [e for e in entries if e.get("level") == "SEVERE"]

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        try:
            self.go("about:blank")
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def wait(what, check, limit=15.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except RuntimeError as e:
            last = e
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what} (last: {last!r})")
