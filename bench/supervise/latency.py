#!/usr/bin/env python3
"""Respawn latencies from a record written by crash.sh (bench/supervise/compare.sh).

    latency.py RECORD [CUTOFF_US]

Each sample is the start stamp of an ID's next run minus the exit stamp of its run
before. Prints one line: samples, median, p90 (nearest rank), max, all in
milliseconds, and how many exits before CUTOFF_US (µs since the epoch; default: none)
were never followed by a start, that is, were not restarted in time or at all.
"""

import math
import statistics
import sys


def main(path, cutoff):
    events = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] in ("S", "E"):
                events.append((int(parts[2]), parts[0], parts[1]))
    events.sort()
    pending = {}
    samples = []
    for at, kind, ident in events:
        if kind == "E":
            pending[ident] = at
        elif ident in pending:
            samples.append((at - pending.pop(ident)) / 1000.0)
    lost = sum(1 for at in pending.values() if at < cutoff)
    if not samples:
        print(f"0 - - - {lost}")
        return
    samples.sort()
    p90 = samples[math.ceil(0.9 * len(samples)) - 1]
    print(
        f"{len(samples)} {statistics.median(samples):.1f} {p90:.1f} "
        f"{samples[-1]:.1f} {lost}"
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
