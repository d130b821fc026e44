"""Drives berth's dashboard in a real headless Chromium over WebDriver (chromedriver),
with the standard library only. Called by dashboard.rs with a running `berth up`.

    dashboard_browser.py GATEWAY_URL SCREENSHOT_DIR DISCARDED_JOB_ID CANCEL_JOB_ID

Logs in as `ada` (admin), opens every page and fails on any console error, retries a
discarded job from its page and waits for the page to show its new state without a
reload, restarts the service `web` and waits for its log to show the new instances, and
submits a form from another origin (another port) that tries to cancel a job. Prints one
JSON line of what it saw; exits non-zero with the reason on the first failure.
"""

import http.server
import json
import os
import sys
import threading
import time

PAGES = [
    "/",
    "/jobs",
    "/jobs?state=discarded",
    "/queues",
    "/schedules",
    "/batches",
    "/workflows",
    "/services",
    "/services/web",
    "/gateway",
    "/messages",
    "/messages?dead=true",
    "/notifications",
    "/events",
    "/releases",
    "/backups",
]


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "examples"))
from browser import Driver, free_port, wait  # noqa: E402  (the examples' WebDriver client)


def main():
    base, shots, discarded, cancel = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    dash = base + "/admin"
    os.makedirs(shots, exist_ok=True)
    seen = {"pages": [], "screenshots": [], "seconds": {}}
    started = time.time()

    def took(step):
        seen["seconds"][step] = round(time.time() - started, 2)

    d = Driver()
    took("driver")
    try:
        # The login form, reached by opening the dashboard.
        d.go(dash + "/")
        wait("the login form", lambda: "/_berth/login" in d.s("GET", "/url"))
        d.type("input[name=user]", "ada")
        d.type("input[name=password]", "s3cret-pass")
        d.click("form [type=submit]")
        wait("the overview after login", lambda: d.s("GET", "/url").rstrip("/").endswith("/admin"))

        for page in PAGES:
            d.go(dash + page)
            title = wait(f"{page} to render", lambda: d.js("return document.querySelector('main#main') && document.title"))
            errors = d.console_errors()
            if errors:
                raise SystemExit(f"console errors on {page}: {errors}")
            heading = d.text("h1")
            seen["pages"].append({"page": page, "title": title, "h1": heading})
            name = (page.strip("/").replace("/", "-").replace("?", "-").replace("=", "-") or "overview") + ".png"
            d.screenshot(os.path.join(shots, name))
            seen["screenshots"].append(name)

        took("pages")
        # Retry a discarded job from its page; the page shows the new state by itself.
        d.go(f"{dash}/jobs/{discarded}")
        wait("the discarded job's page", lambda: d.text("main .state") == "discarded")
        d.js("document.body.dataset.marker = 'same page'")
        d.click('button[data-path$="/retry"]')
        wait("the retried job to show `available`", lambda: d.text("main .state") == "available")
        assert d.js("return document.body.dataset.marker") == "same page", "the page was reloaded"
        seen["flash_after_retry"] = d.text("#flash")
        seen["retried"] = True

        took("retry")
        # Restart the service and follow its log until the new instances speak.
        d.go(dash + "/services/web")
        before = wait("the log", lambda: d.text("#log").count("Serving HTTP") or None)
        d.js("window.confirm = () => true")
        d.click('button[data-path$="/restart"]')
        wait("the restart to finish", lambda: "restart: done" in d.text("#flash"), 30)
        after = wait(
            "the log to show the restarted instances",
            lambda: (n := d.text("#log").count("Serving HTTP")) >= before + 2 and n,
            20,
        )
        seen["log_lines_before"], seen["log_lines_after"] = before, after
        d.screenshot(os.path.join(shots, "services-web-after-restart.png"))
        errors = d.console_errors()
        if errors:
            raise SystemExit(f"console errors after the actions: {errors}")

        took("restart")
        # A form on another origin (same host, another port) posts to the API with the
        # session cookie but cannot send the CSRF header.
        attack_port = free_port()
        page = (
            f'<form id="f" method="post" action="{dash}/v1/jobs/{cancel}/cancel">'
            '<input name="x" value="1"></form><script>document.getElementById("f").submit()</script>'
        ).encode()

        class Attack(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        # Threads: an idle connection Chromium opens ahead must not hold up the rest.
        server = http.server.ThreadingHTTPServer(("127.0.0.1", attack_port), Attack)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        d.go(f"http://127.0.0.1:{attack_port}/")
        body = wait("the cross-site post's answer", lambda: d.js(
            "return location.pathname.endsWith('/cancel') && document.body.innerText"))
        seen["cross_site_answer"] = body
        took("cross_site")
        server.shutdown()
        if "csrf" not in body:
            raise SystemExit(f"the cross-site post was not refused for its CSRF token: {body}")
    finally:
        d.quit()
    took("quit")
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
