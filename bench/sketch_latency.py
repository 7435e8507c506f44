"""Where a sketch's time goes: the ink map, the whole preprocessing, the model's forward pass and
the answer.

    python -m bench.sketch_latency [--checkpoint checkpoints/handwriting-digitnet.pt] [--every 7]
                                   [--rounds 3] [--against DIR]

Pen digits (bench.pendigits) are drawn on the 400 px canvas as bench.pen_accuracy draws them (big
and centred, the thick brush) and each stage is timed on one thread; the p50 of every round is
printed. "sketch" is what bench.pen_accuracy and the app pay per drawing: preprocessing
(core.preparation.sketch_to_digit) plus the answer (Predictor.judge: normalising, the forward pass,
probabilities and the energy score).

With --against DIR, another checkout of this project (`git worktree add DIR <commit>`) is measured
in the same process, the two taking turns on every drawing, after checking that both prepare the
same 28x28 images.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pendigits  # noqa: E402
from core.strokes import CANVAS, layout_strokes, render  # noqa: E402

STAGES = ("ink map", "preprocessing", "forward", "answer", "sketch")


def sketch_code() -> SimpleNamespace:
    """What a sketch goes through, in this checkout: its preparation (and ink map) and predictor."""
    from core import predictor, preparation

    return SimpleNamespace(sketch_to_digit=preparation.sketch_to_digit,
                           _ink_map=preparation._ink_map, Predictor=predictor.Predictor)


def sketch_code_of(root: Path) -> SimpleNamespace:
    """`sketch_code` as another checkout at `root` has it, imported beside this checkout's own
    (a checkout from before core.preparation kept all three in core.inference)."""
    ours = {k: m for k, m in sys.modules.items() if k == "core" or k.startswith("core.")}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, str(root))
    try:
        if (root / "core" / "preparation.py").is_file():
            return sketch_code()
        old = importlib.import_module("core.inference")
        return SimpleNamespace(sketch_to_digit=old.sketch_to_digit, _ink_map=old._ink_map,
                               Predictor=old.Predictor)
    finally:
        sys.path.remove(str(root))
        for k in [k for k in sys.modules if k == "core" or k.startswith("core.")]:
            del sys.modules[k]
        sys.modules.update(ours)


def stage_calls(module: SimpleNamespace, predictor,
                canvases: list[np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """The images `module` prepares from the canvases, and each stage as a function of a canvas's
    index (its prepared image and tensor made here, outside any timing)."""
    images = [module.sketch_to_digit({"composite": c}) for c in canvases]
    tensors = [
        torch.from_numpy(x)[None, None].contiguous(memory_format=torch.channels_last)
        for x in images
    ]

    def forward(i: int) -> None:
        with torch.no_grad():
            predictor.net(tensors[i])

    return images, {
        "ink map": lambda i: module._ink_map(canvases[i]),
        "preprocessing": lambda i: module.sketch_to_digit({"composite": canvases[i]}),
        "forward": forward,
        "answer": lambda i: predictor.judge(images[i]),
        "sketch": lambda i: predictor.judge(module.sketch_to_digit({"composite": canvases[i]})),
    }


def measure(calls: dict[str, dict], n: int) -> dict[str, dict[str, float]]:
    """p50 ms per version and stage over `n` canvases. The versions take turns on every canvas (the
    order swapped each time), so a shared machine's slow and quick spells fall on both alike."""
    times = {name: {stage: [] for stage in STAGES} for name in calls}
    names = list(calls)
    for stage in STAGES:
        for name in names:
            calls[name][stage](0)  # warm-up
        for i in range(n):
            for name in names[::1 if i % 2 == 0 else -1]:
                t0 = time.perf_counter()
                calls[name][stage](i)
                times[name][stage].append((time.perf_counter() - t0) * 1000)
    return {
        name: {stage: statistics.median(t) for stage, t in stages.items()}
        for name, stages in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "handwriting-digitnet.pt"))
    p.add_argument("--every", type=int, default=7, help="every n-th recorded digit (7: 250 digits)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--against", type=Path, default=None,
                   help="another checkout to measure side by side")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # a web worker answers one sketch at a time
    versions = {"this checkout": sketch_code()}
    if args.against:
        versions[f"{args.against}"] = sketch_code_of(args.against.resolve())
    canvases = [render(layout_strokes(d["strokes"], CANVAS, "big"), CANVAS, 24)
                for d in pendigits.load()[::args.every]]
    prepared = {name: stage_calls(m, m.Predictor.load(args.checkpoint),
                                  canvases) for name, m in versions.items()}
    images = [imgs for imgs, _ in prepared.values()]
    if any(not np.array_equal(x, y) for other in images[1:] for x, y in zip(images[0], other)):
        raise SystemExit("the two checkouts prepare different images; their latencies are not "
                         "comparable")
    calls = {name: stages for name, (_, stages) in prepared.items()}
    rounds = [measure(calls, len(canvases)) for _ in range(args.rounds)]
    print(f"{len(canvases)} sketches, p50 ms of each round, 1 thread "
          f"({Path(args.checkpoint).name})\n")
    print("| code | " + " | ".join(STAGES) + " |")
    print("|---|" + "---:|" * len(STAGES))
    for name in versions:
        print(
            f"| {name} | "
            + " | ".join(" / ".join(f"{r[name][s]:.2f}" for r in rounds) for s in STAGES)
            + " |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
