"""Accuracy on real pen digits drawn the way the sketchpad draws them, and per-prediction CPU
latency.

    python -m bench.pen_accuracy [--checkpoint checkpoints/handwriting-digitnet.pt] [--every 1]
                                 [--misread docs/pen-misread.png]

Each of the 1,749 recorded digits is rendered on a 400x400 white canvas with a round black brush,
thin (8 px) or thick (24 px), either as recorded (small, off-centre) or big and centred, then goes
through the app's sketch preprocessing (core.preparation.sketch_to_digit) and the model. Latency is
preprocessing + forward for one sketch. `--misread` also prints the confusion pairs and draws each
misread digit as the model saw it (big, centred, 8 px), with its writer, label and answer.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pendigits  # noqa: E402
from bench.sheets import contact_sheet  # noqa: E402
from core.predictor import Predictor  # noqa: E402
from core.preparation import sketch_to_digit  # noqa: E402
from core.strokes import layout_strokes, render  # noqa: E402

CANVAS = 400
SETTINGS = [("as recorded (small, off-centre)", "recorded", 8), ("as recorded (small, off-centre)",
                                                                 "recorded", 24), ("big, centred",
                                                                                   "big",
                                                                                   8),
            ("big, centred", "big", 24)]


def seen(d: dict, layout: str, brush: float) -> np.ndarray | None:
    """The 28x28 the model sees for one recorded digit drawn on the sketchpad's canvas."""
    return sketch_to_digit({"composite": render(layout_strokes(d["strokes"], CANVAS, layout),
                                                CANVAS, brush)})


def predictions(predictor: Predictor, digits: list[dict], layout: str,
                brush: float) -> tuple[list, list[float]]:
    """(predicted label or None per digit, per-sketch latencies in ms); None when preprocessing
    found no ink."""
    preds, latencies = [], []
    for d in digits:
        canvas = render(layout_strokes(d["strokes"], CANVAS, layout), CANVAS, brush)
        t0 = time.perf_counter()
        x = sketch_to_digit({"composite": canvas})
        preds.append(None if x is None else int(np.argmax(predictor.probabilities(x))))
        latencies.append((time.perf_counter() - t0) * 1000)
    return preds, latencies


def accuracy(predictor: Predictor, digits: list[dict], layout: str,
             brush: float) -> tuple[float, list[float]]:
    """(accuracy, per-sketch latencies in ms); an empty result from preprocessing counts as
    wrong."""
    preds, latencies = predictions(predictor, digits, layout, brush)
    return sum(p == d["label"] for p, d in zip(preds, digits)) / len(digits), latencies


def evaluate_all(checkpoint: str | Path, every: int = 1) -> list[dict]:
    """One row per setting: accuracy, latency, and accuracy per writer (`writers`: writer ->
    accuracy)."""
    torch.set_num_threads(1)  # a web worker answers one sketch at a time
    predictor = Predictor.load(checkpoint)
    digits = pendigits.load()[::every]
    rows = []
    for label, layout, brush in SETTINGS:
        preds, lat = predictions(predictor, digits, layout, brush)
        right = [p == d["label"] for p, d in zip(preds, digits)]
        writers = sorted({d["writer"] for d in digits})
        per_writer = {
            w: float(np.mean([r for r, d in zip(right, digits) if d["writer"] == w]))
            for w in writers
        }
        wrong = [(d, p) for p, d in zip(preds, digits) if p != d["label"]]
        rows.append({"setting": label, "brush": brush, "n": len(digits), "wrong": wrong,
                     "acc": sum(right) / len(digits), "p50_ms": statistics.median(lat),
                     "p95_ms": float(np.percentile(lat, 95)), "writers": per_writer,
                     "writer_n": {w: sum(d["writer"] == w for d in digits) for w in writers}})
    return rows


def writer_table(rows: list[dict]) -> str:
    """Accuracy per writer, the mean over the settings."""
    writers = list(rows[0]["writers"])
    lines = ["| writer | digits | accuracy (mean of settings) |", "|---|---:|---:|"]
    for w in writers:
        acc = sum(r["writers"][w] for r in rows) / len(rows)
        lines.append(f"| {w} | {rows[0]['writer_n'][w]} | {acc:.4f} |")
    return "\n".join(lines)


def misread(rows: list[dict], picture: Path) -> str:
    """The confusion pairs over all settings (label -> answer: times), and a picture of every digit
    misread in any setting, drawn big and centred with an 8 px brush."""
    pairs: dict[tuple, int] = {}
    digits: dict[int, tuple[dict, set]] = {}
    for r in rows:
        for d, p in r["wrong"]:
            pairs[d["label"], p] = pairs.get((d["label"], p), 0) + 1
            digits.setdefault(id(d), (d, set()))[1].add(p)
    lines = ["| label -> answer | times (of 4 settings x digits) |", "|---|---:|"]
    lines += [f"| {a} -> {b} | {n} |" for (a, b), n in sorted(pairs.items(), key=lambda kv: -kv[1])]
    shown = sorted(digits.values(), key=lambda v: (v[0]["writer"], v[0]["label"]))
    contact_sheet([(seen(d, "big", 8), f"{d['writer']} {d['label']}>" + "/".join(
        "-" if a is None else str(a) for a in sorted(answers, key=str))) for d, answers in shown],
        picture)
    return "\n".join(lines) + f"\n\n{len(shown)} digits misread in some setting: {picture}"


def table(rows: list[dict]) -> str:
    lines = ["| drawn | brush px | digits | accuracy | latency p50 ms | p95 ms |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['setting']} | {r['brush']} | {r['n']} | {r['acc']:.4f} | {r['p50_ms']:.2f} | "
              f"{r['p95_ms']:.2f} |" for r in rows]
    mean = sum(r["acc"] for r in rows) / len(rows)
    lines.append(f"| **mean over settings** | | | **{mean:.4f}** | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/handwriting-digitnet.pt")
    p.add_argument("--every", type=int, default=1, help="use every n-th digit (1: all 1,749)")
    p.add_argument("--misread", type=Path, help="also list the confusions and draw the misread "
                   "digits into this PNG")
    args = p.parse_args(argv)
    rows = evaluate_all(args.checkpoint, args.every)
    print(table(rows))
    print()
    print(writer_table(rows))
    if args.misread:
        print()
        print(misread(rows, args.misread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
