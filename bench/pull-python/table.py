"""Prints drive.py's JSON lines (stdin) as one table, each row against the fastest peer."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
best = max(r["jobs_per_sec"] for r in rows if r["system"] != "berth")
print(f"{'system':<10} {'version':<8} {'broker':<28} {'jobs':>7} {'secs':>7} {'jobs/s':>8}  vs fastest peer")
for r in rows:
    ratio = r["jobs_per_sec"] / best
    print(f"{r['system']:<10} {r['version']:<8} {r['broker']:<28} {r['jobs']:>7} {r['secs']:>7.2f} {r['jobs_per_sec']:>8}  {ratio:.2f}x")
