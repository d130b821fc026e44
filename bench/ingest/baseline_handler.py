#!/usr/bin/env python3
"""The ingest shape teams write today, as the benchmark's baseline: a paho-mqtt
subscriber that validates each payload with jsonschema and inserts it into SQLite.

    python3 baseline_handler.py --port PORT --db FILE [--host 127.0.0.1]
        [--topic +/inbound] [--schema protocol.schema.json] [--batch 1]
        [--ready FILE]

Subscribes to TOPIC at QoS 1. Each message is parsed as JSON and validated by a
Draft202012Validator compiled once; a valid one goes into `messages` with its kind
(the value at the JSON pointer /type) and its device (the topic's first segment), an
invalid one (or one that is not UTF-8 JSON) into `dead_letters` with its errors.

SQLite runs in WAL mode with synchronous=FULL (berth's default durability). With
--batch 1 (the default) every message is its own transaction, committed before the
next is read: what a naive handler does. With --batch N, messages are committed N at
a time, or when none has arrived for 50 ms. Either way the PUBACK of a message is sent
only after the transaction holding it has committed (paho's manual_ack), so a message
the broker counts as delivered is on disk. The broker must therefore let at least N
messages be in flight to this client (mosquitto's max_inflight_messages), or a batch
only ever fills up to that window and is flushed by the idle timer.

Prints nothing per message; --ready FILE is created once the subscription is granted,
and a summary goes to stderr on exit (SIGTERM or SIGINT flush and stop cleanly).
"""
import argparse
import json
import os
import signal
import sqlite3
import sys
import time
from datetime import datetime, timezone

import jsonschema
import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
IDLE_FLUSH = 0.05  # seconds without a message after which a partial batch commits

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    device      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    kind        TEXT,
    payload     TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    device      TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    errors      TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""


def pointer(doc, ptr: str):
    """The value at a JSON pointer (RFC 6901) in doc, or None."""
    if ptr == "":
        return doc
    for raw in ptr.lstrip("/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return None
    return doc


class Handler:
    def __init__(self, args):
        with open(args.schema, encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        self.validator = jsonschema.Draft202012Validator(schema)
        self.classify = args.classify
        self.batch_size = max(1, args.batch)
        self.ready = args.ready
        self.topic = args.topic

        self.db = sqlite3.connect(args.db, isolation_level=None)  # explicit BEGIN/COMMIT
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            sys.exit(f"could not put {args.db} in WAL mode (got {mode})")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA_SQL)

        self.pending = []  # (mid, qos) of messages in the open transaction
        self.last_msg = 0.0
        self.stored = self.dead = self.commits = 0
        self.stop = False

    # ---- storage ---------------------------------------------------------------
    def store(self, msg) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        topic = msg.topic
        device = topic.split("/", 1)[0]
        raw = msg.payload
        try:
            doc = json.loads(raw)
            errors = [
                f"{'/' + '/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self.validator.iter_errors(doc)
            ]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            errors = [f"not JSON: {e}"]
        if not self.pending:
            self.db.execute("BEGIN")
        if errors:
            self.db.execute(
                "INSERT INTO dead_letters (device, topic, payload, errors, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (device, topic, bytes(raw), json.dumps(errors), now),
            )
            self.dead += 1
        else:
            kind = pointer(doc, self.classify)
            self.db.execute(
                "INSERT INTO messages (device, topic, kind, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (device, topic, kind if isinstance(kind, str) else None, raw.decode(), now),
            )
            self.stored += 1
        self.pending.append((msg.mid, msg.qos))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        self.db.execute("COMMIT")
        self.commits += 1
        acks, self.pending = self.pending, []
        for mid, qos in acks:  # only now is the message durable: acknowledge it
            if qos > 0:
                self.client.ack(mid, qos)

    # ---- MQTT ------------------------------------------------------------------
    def on_connect(self, client, _userdata, _flags, reason_code, _props):
        if reason_code.is_failure:
            print(f"connect refused: {reason_code}", file=sys.stderr)
            self.stop = True
            return
        client.subscribe(self.topic, qos=1)

    def on_subscribe(self, _client, _userdata, _mid, reason_codes, _props):
        if any(rc.is_failure for rc in reason_codes):
            print(f"subscribe refused: {reason_codes}", file=sys.stderr)
            self.stop = True
            return
        if self.ready:
            with open(self.ready, "w", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")

    def on_message(self, _client, _userdata, msg):
        self.last_msg = time.monotonic()
        self.store(msg)

    def run(self, host: str, port: int, client_id: str) -> int:
        self.client = client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            manual_ack=True,
        )
        client.on_connect = self.on_connect
        client.on_subscribe = self.on_subscribe
        client.on_message = self.on_message
        client.connect(host, port, keepalive=60)
        # One thread: the network loop, the inserts and the idle flush all run here, so
        # the SQLite connection is never shared.
        while not self.stop:
            rc = client.loop(timeout=IDLE_FLUSH)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                print(f"connection lost: {mqtt.error_string(rc)}", file=sys.stderr)
                break
            if self.pending and time.monotonic() - self.last_msg >= IDLE_FLUSH:
                self.flush()
        self.flush()
        client.loop(timeout=0.1)  # let the last PUBACKs out
        client.disconnect()
        self.db.close()
        print(
            f"baseline handler: stored {self.stored}, dead letters {self.dead}, "
            f"commits {self.commits} (batch {self.batch_size})",
            file=sys.stderr,
        )
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", required=True, help="SQLite file (created if missing)")
    ap.add_argument("--topic", default="+/inbound")
    ap.add_argument("--schema", default=os.path.join(HERE, "protocol.schema.json"))
    ap.add_argument("--classify", default="/type", help="JSON pointer giving the kind")
    ap.add_argument("--batch", type=int, default=1, help="commit every N messages (1: each)")
    ap.add_argument("--ready", help="file created once the subscription is granted")
    ap.add_argument("--client-id", default=f"baseline-{os.getpid()}")
    args = ap.parse_args()

    handler = Handler(args)

    def stop(_sig, _frame):
        handler.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return handler.run(args.host, args.port, args.client_id)


if __name__ == "__main__":
    sys.exit(main())
