"""A tiny trial for the local runner's tests. Behaviour by start order, not by parameters, so
tests are deterministic whatever the service suggests.

``DCSA_TEST_SLEEP`` (seconds) overrides ``--sleep`` without changing the Experiment's spec.
Each start takes the next sequence number (an O_EXCL file in ``--record``), appends a JSON line
at start and one with its times, argv, env and interpreter at the end to ``<record>/runs.jsonl``,
then:
- seq in ``--fail``: prints ``loss=...`` once, exits 3 (a failed trial);
- seq in ``--silent``: prints text without the metric, exits 0 (MetricsUnavailable);
- seq in ``--nan``: prints ``loss=nan`` twice, exits 0 (MetricsUnavailable, with what was seen);
- otherwise prints ``loss`` several times (minimum ``1 / (seq + 1) + x / 1000``), exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def take_seq(record: str) -> int:
    seq = 0
    while True:
        try:
            os.close(os.open(os.path.join(record, f"seq-{seq}"), os.O_CREAT | os.O_EXCL))
            return seq
        except FileExistsError:
            seq += 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float, required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--sleep", type=float, default=0.2)
    p.add_argument("--fail", default="")
    p.add_argument("--silent", default="")
    p.add_argument("--nan", default="")
    p.add_argument("--metrics-file", default="", help="write metrics here instead of stdout")
    p.add_argument("--json", action="store_true", help="metrics file in Katib's JSON format")
    args = p.parse_args()
    seq = take_seq(args.record)
    start = time.time()
    log_path = os.path.join(args.record, "runs.jsonl")
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(
            json.dumps(
                {
                    "event": "start",
                    "seq": seq,
                    "pid": os.getpid(),
                    "trial": os.environ.get("KATIB_TRIAL_NAME"),
                }
            )
            + "\n"
        )
    print(f"seq={seq} started", flush=True)
    time.sleep(float(os.environ.get("DCSA_TEST_SLEEP", args.sleep)))
    fail = {int(s) for s in args.fail.split(",") if s}
    silent = {int(s) for s in args.silent.split(",") if s}
    nan = {int(s) for s in args.nan.split(",") if s}
    best = 1.0 / (seq + 1) + args.x / 1000
    if seq in silent:
        print("training finished but I forgot to print the metric", flush=True)
    elif seq in nan:
        print("loss=nan other=1", flush=True)
        print("loss=nan other=1", flush=True)
    else:
        # a time series: latest is not the best, so the min strategy matters
        for value in (best + 0.5, best, best + 0.25):
            line = f"2026-01-01T00:00:0{seq % 10}Z loss={value:.6f} other=1"
            if args.json:
                line = json.dumps({"loss": f"{value:.6f}", "other": "1"})
            if args.metrics_file:
                with open(args.metrics_file, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            else:
                print(line, flush=True)
    end = time.time()
    entry = {
        "event": "end",
        "seq": seq,
        "pid": os.getpid(),
        "start": start,
        "end": end,
        "argv": sys.argv[1:],
        "trial": os.environ.get("KATIB_TRIAL_NAME"),
        "env": os.environ.get("DCSA_TEST_ENV"),
        "python": sys.executable,
        "cwd": os.getcwd(),
    }
    with open(log_path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
    return 3 if seq in fail else 0


if __name__ == "__main__":
    sys.exit(main())
