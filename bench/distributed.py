"""Training throughput in 1 process and in N processes (torchrun, core.distributed), side by side.

    python -m bench.distributed [--processes 2] [--rounds 3] [--model digitnet] [--dataset mnist]
                                [--images 20000] [--batch-size 256] [--device cpu|cuda]
                                [--data-root DIR]

Each round trains one epoch over the same --images training images (the same global batch) once as a
single process and once under `torchrun --standalone --nproc_per_node=N`, alternating so that both
meet the same machine; the table gives the median training images/s (core.train's --json figure:
training steps only, not loading or evaluation). On the CPU a single process already uses every core
(torch's threads), and torchrun gives each of N processes 1/N of them: expect little or no gain
there. On a machine with N GPUs, N processes use all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(processes: int, args: argparse.Namespace, out: Path) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    cmd = [*launcher, "-m", "core.train", "--dataset", args.dataset, "--model", args.model,
           "--epochs", "1", "--max-train-images", str(args.images), "--batch-size",
           str(args.batch_size), "--no-download", "--out", str(out), "--json"]
    if args.device:
        cmd += ["--device", args.device]
    env = {**os.environ, **({"TINYVISION_DATA": args.data_root} if args.data_root else {})}
    # Torchrun's default is 1; say it: each gets its share of the cores
    if processes > 1 and args.device != "cuda":
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.distributed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model", default="digitnet")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default=None, help="cpu or cuda (default: what core.train picks)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    rates: dict[int, list[float]] = {1: [], args.processes: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for n in rates:
                rates[n].append(run(n, args, Path(tmp) / f"run-{n}.pt"))
                print(f"round {r + 1}: {n} process(es) {rates[n][-1]:.0f} img/s", file=sys.stderr,
                      flush=True)
    print(f"{args.model} on {args.dataset}, {args.images} images, global batch {args.batch_size}, "
          f"{os.cpu_count()} cores, median of {args.rounds}")
    print("| processes | images/s (median) | rounds |")
    print("|---:|---:|---|")
    for n, values in rates.items():
        print(
            f"| {n} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
