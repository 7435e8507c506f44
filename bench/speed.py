"""Time-to-accuracy on MNIST: the default digit recipe against the seed nets' recipes, side by side
in one run.

    python -m bench.speed [--budget 60] [--repeats 3] [--data-root DIR]

The default recipe (digitnet, one epoch) runs `--repeats` times with different seeds; every other
recipe runs once for the same wall-clock budget (`max_seconds`) and is then evaluated on the full
test set. The table gives the median training time to finish, test accuracy, images/s, and the
time-to-99% ratio against the default (a lower bound where a recipe did not reach 99% within its
budget).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.train import TrainConfig, train  # noqa: E402

TARGET = 0.99
SEED_RECIPES = [("cnn, published (adam 1e-2, batch 10)", dict(model="cnn", optimizer="adam",
                                                              lr=1e-2, batch_size=10,
                                                              schedule="none",
                                                              augment=False)),
                ("cnn, default recipe", dict(model="cnn")), ("mlp, default recipe",
                                                             dict(model="mlp")),
                ("lenet, default recipe", dict(model="lenet")), ("vgg, default recipe",
                                                                 dict(model="vgg")),
                ("alexnet 96x96, default recipe", dict(model="alexnet")),]


def run(data_root: str | None, **overrides) -> dict:
    cfg = TrainConfig(dataset="mnist", data_root=data_root, download=False, **overrides)
    return [e for e in train(cfg) if e["type"] == "end"][0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=60.0,
                   help="wall seconds of training for each seed recipe")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of the default recipe (median reported)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--skip", default="",
                   help="comma-separated model names to leave out, e.g. vgg,alexnet")
    args = p.parse_args(argv)

    # Warm-up: thread pools, kernel selection
    run(args.data_root, model="digitnet", max_steps=20, test=False)
    default = [run(args.data_root, model="digitnet", seed=s) for s in range(args.repeats)]
    t_default = statistics.median(r["train_seconds"] for r in default)
    acc_default = statistics.median(r["test_acc"] for r in default)
    rows = [("digitnet, default recipe (1 epoch)", t_default, acc_default,
             statistics.median(r["images_per_s"] for r in default),
             "1.0x" if acc_default >= TARGET else "-")]
    skip = set(filter(None, args.skip.split(",")))
    for label, overrides in SEED_RECIPES:
        if overrides["model"] in skip:
            continue
        r = run(args.data_root, max_seconds=args.budget, **overrides)
        reached = r["test_acc"] >= TARGET
        ratio = (
            f"{r['train_seconds'] / t_default:.1f}x"
            if reached
            else f">{args.budget / t_default:.1f}x"
        )
        rows.append((label, r["train_seconds"], r["test_acc"], r["images_per_s"], ratio))

    print(f"\nMNIST, {args.repeats} default runs (median) and one {args.budget:.0f}s run per seed "
          f"recipe; time-to-{TARGET:.0%} ratio vs the default\n")
    print(f"| recipe | train s | test acc | img/s | time to {TARGET:.0%} vs default |")
    print("|---|---:|---:|---:|---:|")
    for label, secs, acc, ips, ratio in rows:
        print(f"| {label} | {secs:.1f} | {acc:.4f} | {ips:.0f} | {ratio} |")
    print(
        "\ndefault runs: "
        + ", ".join(f"{r['train_seconds']:.1f}s/{r['test_acc']:.4f}" for r in default)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
