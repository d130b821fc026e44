"""Joyce's middleware: the chatbot's JSON API, one process per berth instance.

    python3 app.py PORT

GET  /healthz      ok (berth's ready and live checks)
GET  /api/hello    a greeting, and which instance and process answered (costs nothing)
POST /api/ask      {"question": "..."} -> {"answer", "intent", "instance", "pid", "cost"}

The real middleware sends each question to a paid cloud language service (Dialogflow)
and counts what that costs. That service cannot run here, so `ask_cloud` below FAKES
it: it matches keywords against a few canned intents, waits a little as a network call
would, and prices each answer at PRICE_PER_ANSWER dollars. The app reports that price
in the X-Cost response header; berth's gateway adds it to the monthly budget and
removes the header before the browser sees it. The app itself counts nothing.
"""

import json
import os
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTANCE = os.environ.get("BERTH_INSTANCE", "?")
PRICE = float(os.environ.get("PRICE_PER_ANSWER", "0.002"))

INTENTS = [
    ("apply", ("apply", "application", "deadline", "enrol", "enroll"),
     "Applications for the winter semester close on 15 July, for the summer semester "
     "on 15 January. You apply online through the student portal."),
    ("fees", ("fee", "fees", "cost", "pay", "tuition", "money"),
     "There is no tuition fee. Each semester you pay a contribution of about 180 euros, "
     "which includes the public transport ticket."),
    ("programmes", ("programme", "program", "course", "study", "degree", "bachelor", "master"),
     "We offer bachelor and master programmes in media, computer science, business "
     "and design. Ask me about one of them!"),
    ("exams", ("exam", "grade", "test", "credit"),
     "Exams take place in the last two weeks of each semester. You register for them "
     "in the student portal."),
    ("hello", ("hello", "hi", "hey", "morning"),
     "Hello! I am Joyce. Ask me about applying, fees, programmes or exams."),
]
FALLBACK = ("fallback", "Sorry, I did not get that. Try asking about applying, fees, "
            "programmes or exams.")


def ask_cloud(question):
    """FAKE cloud language service: (intent, answer, cost in dollars)."""
    time.sleep(0.05)  # the round trip to the cloud
    words = re.findall(r"[a-z]+", question.lower())

    def said(keyword):  # "fee" matches "fees"; short words only as themselves
        return any(w == keyword or (len(keyword) >= 4 and w.startswith(keyword)) for w in words)

    for intent, keywords, answer in INTENTS:
        if any(said(k) for k in keywords):
            return intent, answer, PRICE
    return FALLBACK[0], FALLBACK[1], PRICE


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def send_json(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/healthz":
            self.send_json(200, {"ok": True})
        elif self.path == "/api/hello":
            self.send_json(200, {"greeting": "Hello, I am Joyce. How can I help?",
                                 "instance": INSTANCE, "pid": os.getpid()})
        else:
            self.send_json(404, {"error": "not_found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != "/api/ask":
            self.send_json(404, {"error": "not_found"})
            return
        try:
            question = str(json.loads(raw or b"{}")["question"]).strip()
        except (ValueError, KeyError, TypeError):
            question = ""
        if not question:
            self.send_json(400, {"error": "expected {\"question\": \"...\"}"})
            return
        intent, answer, cost = ask_cloud(question)
        self.send_json(
            200,
            {"answer": answer, "intent": intent, "instance": INSTANCE,
             "pid": os.getpid(), "cost": cost},
            headers=[("X-Cost", f"{cost:.6f}")],
        )

    def log_message(self, fmt, *args):
        if self.path == "/healthz":
            return  # berth's checks, every 10 s: not worth a log line
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"instance {INSTANCE} (pid {os.getpid()}) listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
