"""A test-stand simulator: N stands publishing status and results to berth's broker.

    python3 stand.py 3              # teststand1..3 over MQTT/TCP (port 8483), until Ctrl-C
    python3 stand.py 3 --ws         # the same over MQTT/WebSocket (port 8484)
    python3 stand.py 2 --once       # each stand runs one test, then exits
    python3 stand.py 1 --bad        # teststand1 sends one message that fails the schema

Each stand logs in with its own login from logins.env (made by setup.sh), publishes
on STAND/inbound with QoS 1, and prints berth's answer to each message (MQTT 5: a
message that fails the schema is refused with reason code 0x99). It needs paho-mqtt
(`pip install paho-mqtt`); without it, it prints the equivalent mosquitto_pub lines.
"""

import argparse
import json
import os
import random
import sys
import threading
import time
from datetime import datetime, timezone

HOST = "127.0.0.1"
TCP_PORT = 8483
WS_PORT = 8484
TESTS = ["pump-pressure", "valve-leak", "motor-torque"]
# CONNACK reason codes that mean "try again": berth checks one password per CPU core
# at a time and answers the logins beyond that with "server unavailable" (0x88).
BUSY = (0x88, 0x89, 0x9F)


def logins():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logins.env")
    values = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    values[k] = v
    except FileNotFoundError:
        sys.exit("no logins.env: run `sh setup.sh` first")
    return values


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Seq:
    """A stand's message numbers: counting up, also across restarts of the stand
    (berth drops a second message with a seq it has seen from that stand)."""

    def __init__(self):
        self.n = time.time_ns() // 1_000_000

    def next(self):
        self.n += 1
        return self.n


def status(seq, state, test=None, note=None):
    msg = {"type": "status", "seq": seq.next(), "time": now(), "state": state,
           "temperature_c": round(random.uniform(20, 45), 1)}
    if test:
        msg["test"] = test
    if note:
        msg["message"] = note
    return msg


def result(seq, test):
    def m(name, lo, hi, unit, spread):
        mid = (lo + hi) / 2
        return {"name": name, "value": round(random.gauss(mid, (hi - lo) * spread), 2),
                "min": lo, "max": hi, "unit": unit}
    return {"type": "result", "seq": seq.next(), "time": now(), "test": test,
            "measurements": [m("pressure", 2.0, 3.0, "bar", 0.25),  # out of limits now and then
                             m("flow", 10, 14, "l/min", 0.2),
                             m("current", 0.5, 1.5, "A", 0.15)]}


def run_stand(name, password, args, stop):
    import paho.mqtt.client as mqtt

    transport = "websockets" if args.ws else "tcp"
    port = args.port or (WS_PORT if args.ws else TCP_PORT)
    acks = {}
    connected = threading.Event()
    refused = []

    def on_connect(client, userdata, flags, reason_code, properties):
        print(f"{name}: connect: {reason_code}", flush=True)
        if not reason_code.is_failure:
            connected.set()
        elif reason_code.value in BUSY:
            pass  # paho connects again after a pause
        else:
            refused.append(reason_code)
            connected.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        acks[mid] = reason_code

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-sim",
                    protocol=mqtt.MQTTv5, transport=transport)
    if args.ws:
        c.ws_set_options(path="/mqtt")
    c.username_pw_set(name, password)
    c.on_connect = on_connect
    c.on_publish = on_publish
    c.reconnect_delay_set(min_delay=1, max_delay=5)
    c.connect(args.host, port)
    c.loop_start()
    if not connected.wait(30) or refused:
        print(f"{name}: not connected, giving up", flush=True)
        c.loop_stop()
        return
    seq = Seq()

    def send(msg):
        info = c.publish(f"{name}/inbound", json.dumps(msg), qos=1)
        info.wait_for_publish(10)
        rc = acks.get(info.mid)
        what = msg.get("state") or msg.get("test") or "?"
        print(f"{name}: {msg.get('type')} {what} -> {rc}", flush=True)

    try:
        if args.bad:
            send({"type": "status", "seq": seq.next(), "time": now(), "state": "on fire"})
            return
        while not stop.is_set():
            test = random.choice(TESTS)
            send(status(seq, "running", test))
            stop.wait(args.interval)
            send(result(seq, test))
            send(status(seq, "idle"))
            if args.once:
                break
            stop.wait(args.interval)
    finally:
        c.loop_stop()
        c.disconnect()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stands", nargs="?", type=int, default=3, help="how many stands (teststand1..N)")
    p.add_argument("--ws", action="store_true", help="MQTT over WebSocket instead of TCP")
    p.add_argument("--once", action="store_true", help="one test per stand, then exit")
    p.add_argument("--bad", action="store_true", help="send one message that fails the schema")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between messages")
    p.add_argument("--host", default=HOST)
    p.add_argument("--port", type=int, help="default 8483, or 8484 with --ws")
    args = p.parse_args()

    secrets = logins()
    names = [f"teststand{i}" for i in range(1, args.stands + 1)]
    missing = [n for n in names if f"{n.upper()}_PASSWORD" not in secrets]
    if missing:
        sys.exit(f"no login for {', '.join(missing)} in logins.env: "
                 f"run `STANDS={args.stands} sh setup.sh` first")

    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        print("paho-mqtt is not installed (pip install paho-mqtt); with mosquitto_pub:\n")
        for n in names:
            msg = json.dumps(status(Seq(), "idle"))
            print(f"mosquitto_pub -h {args.host} -p {TCP_PORT} -V mqttv5 -q 1 -u {n} "
                  f"-P \"${n.upper()}_PASSWORD\" -t {n}/inbound -m '{msg}'")
        print("\n(after `. ./logins.env` for the passwords)")
        sys.exit(1)

    stop = threading.Event()
    threads = [threading.Thread(target=run_stand, args=(n, secrets[f"{n.upper()}_PASSWORD"], args, stop))
               for n in names]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join()


if __name__ == "__main__":
    main()
