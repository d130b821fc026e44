#!/usr/bin/env python3
"""Writes the ingest benchmark's messages: N test-stand messages split over C files,
one compact JSON message per line (what `mosquitto_pub -l` publishes, one per line).

    python3 make_messages.py OUTDIR [-n 100000] [-c 10] [--check]

File k (1-based) is OUTDIR/standKK.jsonl and holds the messages of stand `standKK`
(published on `standKK/inbound`). Each message is about 300 bytes, valid against
protocol.schema.json beside this script, and `type` alternates status/result. The
content is deterministic (seeded), so every run publishes the same bytes.
--check validates every message against the schema (needs jsonschema) before writing.
"""
import argparse
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
STATES = ["warmup", "running", "running", "running", "cooldown", "idle"]


def message(stand: str, seq: int, rng: random.Random, t0: datetime) -> dict:
    kind = "status" if seq % 2 == 0 else "result"
    ts = (t0 + timedelta(milliseconds=100 * seq)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    data = {
        "temperature": round(rng.uniform(20, 95), 3),
        "oil_temperature": round(rng.uniform(40, 130), 3),
        "pressure": round(rng.uniform(95, 350), 3),
        "rpm": rng.randrange(800, 6500),
        "voltage": round(rng.uniform(220, 240), 3),
        "current": round(rng.uniform(2, 40), 3),
        "torque": round(rng.uniform(-50, 480), 3),
        "vibration": round(rng.uniform(0, 12), 4),
        "flow": round(rng.uniform(0, 60), 3),
        "humidity": round(rng.uniform(20, 80), 2),
        "state": STATES[seq % len(STATES)],
    }
    if kind == "result":
        data["verdict"] = "pass" if rng.random() < 0.97 else "fail"
        data["run_id"] = f"{stand}-r{seq // 2:07d}"
    return {"type": kind, "stand": stand, "seq": seq, "ts": ts, "data": data}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("-n", "--messages", type=int, default=100_000, help="total messages")
    ap.add_argument("-c", "--clients", type=int, default=10, help="files (one per client)")
    ap.add_argument("--check", action="store_true", help="validate each against the schema")
    args = ap.parse_args()
    if args.messages < 1 or not 1 <= args.clients <= 99:
        ap.error("need N >= 1 and 1 <= C <= 99")

    validator = None
    if args.check:
        import jsonschema

        with open(os.path.join(HERE, "protocol.schema.json"), encoding="utf-8") as f:
            validator = jsonschema.Draft202012Validator(json.load(f))

    os.makedirs(args.outdir, exist_ok=True)
    rng = random.Random(20261122)
    t0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=timezone.utc)
    total = size = 0
    base, extra = divmod(args.messages, args.clients)
    for k in range(1, args.clients + 1):
        stand = f"stand{k:02d}"
        count = base + (1 if k <= extra else 0)
        with open(os.path.join(args.outdir, f"{stand}.jsonl"), "w", encoding="utf-8") as f:
            for seq in range(count):
                msg = message(stand, seq, rng, t0)
                if validator is not None:
                    validator.validate(msg)
                line = json.dumps(msg, separators=(",", ":"))
                f.write(line + "\n")
                total += 1
                size += len(line)
    print(
        f"wrote {total} messages in {args.clients} files under {args.outdir}, "
        f"{size / total:.0f} bytes each on average",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
