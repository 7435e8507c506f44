"""How often a model of your own drawn classes says "Not sure" to new drawings of its classes.

    python -m bench.own_unsure [--shots 3 10] [--held-out 60] [--seeds 0 1 2]

A few classes drawn as a visitor draws them (a circle, a cross, a triangle, a zigzag, a spiral:
each drawing its own size, place, slant, wobble and brush) are taught to the app's way (an
`ExampleSet` folder, `few_shot_config` from the shipped digit model, core.train), then asked more
drawings of the same classes it never saw, through the Draw tab's preparation. It prints, per
number of examples, the share of those held-out drawings flagged "Not sure" (they are all of its
classes: the lower the better) and the share read right, with what the model flags of scribbles
and digits (none of its classes: the higher the better).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pendigits  # noqa: E402
from bench.unsure import scribbles  # noqa: E402
from core import train as T  # noqa: E402
from core.predictor import Predictor  # noqa: E402
from core.preparation import sketch_to_digit  # noqa: E402
from core.services.own_classes import ExampleSet  # noqa: E402
from core.strokes import CANVAS, layout_strokes, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "checkpoints" / "handwriting-digitnet.pt"


def _wobble(points: list, rng: np.random.Generator, amount: float) -> list:
    return [(x + rng.normal(0, amount), y + rng.normal(0, amount)) for x, y in points]


def shape(name: str, rng: np.random.Generator) -> list:
    """One drawing of a shape in canvas pixels: a list of strokes."""
    size = rng.uniform(70, 170)
    cx, cy = rng.uniform(size + 10, CANVAS - size - 10, 2)
    tilt = rng.uniform(-0.3, 0.3)
    squash = rng.uniform(0.75, 1.25)

    def at(u: float, v: float) -> tuple[float, float]:  # shape coordinates in [-1, 1]
        u, v = u * squash, v / squash
        return (cx + size * (u * math.cos(tilt) - v * math.sin(tilt)),
                cy + size * (u * math.sin(tilt) + v * math.cos(tilt)))

    steps = np.linspace(0, 1, 24)
    if name == "circle":
        start = rng.uniform(0, 2 * math.pi)
        strokes = [[at(math.cos(start + 2.1 * math.pi * t), math.sin(start + 2.1 * math.pi * t))
                    for t in steps]]
    elif name == "cross":
        strokes = [[at(-1 + 2 * t, -1 + 2 * t) for t in steps],
                   [at(1 - 2 * t, -1 + 2 * t) for t in steps]]
    elif name == "triangle":
        corners = [(0, -1), (0.95, 0.8), (-0.95, 0.8), (0, -1)]
        strokes = [[at(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
                    for a, b in zip(corners, corners[1:]) for t in steps[:-1]] + [at(0, -1)]]
    elif name == "zigzag":
        strokes = [[at(-1 + 2 * t, -0.7 if int(t * 4.999) % 2 else 0.7) for t in steps]]
    else:  # spiral
        strokes = [[at(t * math.cos(5 * math.pi * t), t * math.sin(5 * math.pi * t))
                    for t in np.linspace(0.1, 1, 40)]]
    return [_wobble(s, rng, size * 0.025) for s in strokes]


def drawing(name: str, rng: np.random.Generator) -> np.ndarray:
    return render(shape(name, rng), CANVAS, rng.uniform(8, 20))


def measure(classes: list[str], shots: int, held_out: int, seed: int, folder: Path) -> dict:
    rng = np.random.default_rng(seed)
    examples = ExampleSet(folder / f"s{seed}-{shots}", "sketch")
    for name in classes:
        examples.add_class(name)
        for _ in range(shots):
            examples.add_sketch(name, {"composite": drawing(name, rng)})
    cfg = replace(examples.train_config(START, fine_tune=True), out=str(folder / "model.pt"))
    for _ in T.train(cfg):
        pass
    predictor = Predictor.load(cfg.out)
    order = sorted(classes)
    flagged, right = [], []
    for name in classes:
        for _ in range(held_out):
            j = predictor.judge(sketch_to_digit({"composite": drawing(name, rng)}))
            flagged.append(j.unsure)
            right.append(order[int(np.argmax(j.probs))] == name)
    others = [sketch_to_digit({"composite": a}) for a in scribbles(40, rng)]
    digits = pendigits.load()[::60]
    others += [sketch_to_digit({"composite": render(layout_strokes(d["strokes"], CANVAS, "big"),
                                                    CANVAS, 12)}) for d in digits]
    foreign = [predictor.judge(x).unsure for x in others if x is not None]
    return {"flagged": float(np.mean(flagged)), "right": float(np.mean(right)),
            "foreign_flagged": float(np.mean(foreign)), "threshold": predictor.unsure_threshold}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", type=int, nargs="+", default=[3, 10], help="examples per class")
    p.add_argument("--held-out", type=int, default=60, help="new drawings asked per class")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--classes", nargs="+", default=["circle", "cross", "triangle", "zigzag",
                                                    "spiral"])
    args = p.parse_args(argv)
    print(f"classes: {', '.join(args.classes)}; {args.held_out} new drawings of each asked\n")
    print("| examples per class | held-out drawings flagged 'Not sure' | read right | "
          "scribbles and digits flagged | per seed (flagged) |")
    print("|---:|---:|---:|---:|---|")
    for shots in args.shots:
        with tempfile.TemporaryDirectory() as tmp:
            runs = [measure(args.classes, shots, args.held_out, s, Path(tmp)) for s in args.seeds]
        mean = {k: statistics.mean(r[k] for r in runs) for k in ("flagged", "right",
                                                                  "foreign_flagged")}
        per_seed = " ".join(f"{r['flagged']:.3f}" for r in runs)
        print(f"| {shots} | {mean['flagged']:.1%} | {mean['right']:.1%} | "
              f"{mean['foreign_flagged']:.1%} | {per_seed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
