#!/usr/bin/python3
"""make bench, last step: the one table of every benchmark's headline figures, from the JSON lines the
benchmarks appended to $BENCH_SUMMARY (bench_publish.record)."""
import json
import os
import sys

COLUMNS = [("benchmark", "benchmark"), ("throughput", "throughput"), ("p50", "latency p50"),
           ("p99", "latency p99"), ("peak_rss", "peak RSS"), ("idle_rss", "idle RSS"),
           ("cpu", "daemon CPU per announcement")]


def main():
    rows = []
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    if not rows:
        print("no benchmark recorded a summary")
        return
    print()
    print("Summary (%s):" % sys.argv[2] if len(sys.argv) > 2 else "Summary:")
    print("| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "|".join("---" for _ in COLUMNS) + "|")
    for r in rows:
        print("| " + " | ".join(r.get(key) or "-" for key, _ in COLUMNS) + " |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    main()
