"""The app's resident memory: after warm-up, through 1,000 predictions, after two short trainings.

    python -m bench.memory [--predictions 1000] [--steps 40] [--trainings 2] [--data-root DIR]

RSS is VmRSS of the `python app.py` subprocess (bench.serving.start_app) from /proc/<pid>/status.
Predictions alternate a drawn digit (/predict_digit) and a photo (/classify_image); the trainings
are the fast preset with a step budget (/train's max_steps). Growth that stops after the first
rounds is caches and allocator pools; growth in every round would be a leak.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.latency import measure, payloads, print_table
from bench.serving import api_client, running_app


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictions", type=int, default=1000,
                   help="total predictions, both endpoints together")
    p.add_argument("--rounds", type=int, default=4, help="RSS readings during the predictions")
    p.add_argument("--steps", type=int, default=40, help="max_steps of each training")
    p.add_argument("--trainings", type=int, default=2, help="short trainings after the predictions")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with running_app(args.data_root, workdir) as (proc, url):
            client = api_client(url)
            calls = payloads(workdir)
            measure(client, calls, 10)
            rows.append(["after warm-up (20 predictions)", 0, rss_mb(proc.pid)])
            per_round = args.predictions // (args.rounds * len(calls))
            for r in range(1, args.rounds + 1):
                measure(client, calls, per_round)
                rows.append([f"predictions, round {r}", r * per_round * len(calls),
                             rss_mb(proc.pid)])
            for t in range(1, args.trainings + 1):
                client.submit(max_steps=args.steps, max_train_images=args.steps * 128,
                              api_name="/train").result(timeout=600)
                rows.append([f"after training {t} ({args.steps} steps)", rows[-1][1],
                             rss_mb(proc.pid)])
            measure(client, calls, per_round)
            rows.append(["predictions after the trainings", rows[-1][1] + per_round * len(calls),
                         rss_mb(proc.pid)])

    base = rows[0][2]
    print("\nResident memory (VmRSS) of the app process\n")
    print_table(["stage", "predictions so far", "RSS MiB", "change vs warm-up MiB"],
                [[stage, n, f"{mb:.0f}", f"{mb - base:+.0f}"] for stage, n, mb in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
