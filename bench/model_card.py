"""Write the model card of a shipped checkpoint from measurements (never typed by hand).

    python -m bench.model_card checkpoints/mnist-digitnet.pt [--data-root DIR] [--pen-every 1]
                               [--note TEXT]

Measures test accuracy overall and per class (as `python -m core.evaluate`), parameter count, file
size, CPU latency of one prediction, and for digit models the pen-digit accuracy
(bench.pen_accuracy); the training recipe, epochs and wall time come from the checkpoint's own
metadata. Writes `<checkpoint>.md` beside the file.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pen_accuracy  # noqa: E402
from core import checkpoint as ckpt  # noqa: E402
from core import datasets  # noqa: E402
from core.calibration import tta_options  # noqa: E402
from core.evaluate import evaluate_model  # noqa: E402
from core.models import count_parameters  # noqa: E402
from core.predictor import Predictor  # noqa: E402


def _jitters(runs: list[dict]) -> set[float]:
    """The pen jitters the members were trained with."""
    return {r.get("pen_jitter") or 0.0 for r in runs}


def _members(runs: list[dict]) -> str:
    """How an ensemble's members were trained: one recipe and its seeds, or what differs."""
    if len(_jitters(runs)) == 1:
        return "one recipe, seeds " + ", ".join(str(r["seed"]) for r in runs)
    return "one recipe but for the pen jitter: " + ", ".join(
        f"seed {r['seed']}" + (f" with pen jitter {r['pen_jitter']:g}" if r.get("pen_jitter")
                               else "") for r in runs)


def _jitter_words(runs: list[dict], cfg: dict) -> str:
    """The recipe's pen jitter, where every member shares one that is not 0."""
    shared = cfg.get("pen_jitter")
    return f"pen jitter {shared:g}, " if shared and _jitters(runs) == {shared} else ""


def latency_ms(predictor: Predictor, n: int = 200) -> tuple[float, float]:
    c, size, _ = predictor.input_shape
    rng = np.random.default_rng(0)
    shape = (size, size) if c == 1 else (size, size, 3)
    times = []
    for i in range(n + 10):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        t0 = time.perf_counter()
        predictor.probabilities(image)
        if i >= 10:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), float(np.percentile(times, 95))


def _tta_words(payload: dict) -> str:
    tta = tta_options(payload)
    views = (["flip"] if tta["tta_flip"] else []) + (
        [f"{tta['tta_shift']} px shifts"] if tta["tta_shift"] else []
    )
    return f", {' + '.join(views)} TTA" if views else ""


def write_card(path: Path, data_root: str | None, pen_every: int, note: str) -> Path:
    torch.set_num_threads(1)
    payload = ckpt.load_checkpoint(path)
    predictor = Predictor.load(path)
    spec = datasets.get_dataset_spec(payload["dataset"])
    c, size, _ = payload["input_shape"]
    test = datasets.load_dataset(payload["dataset"], "test", data_root, False, size, c)
    result = evaluate_model(predictor.model, test, **tta_options(payload))
    p50, p95 = latency_ms(predictor)
    cfg = payload.get("config", {})
    history = payload.get("history", [])
    runs = payload.get("member_runs") or [ckpt.run_summary(payload)]
    seconds = [r["train_seconds"] for r in runs]
    train_seconds = " + ".join(f"{t:.0f}" for t in seconds) + " s" if all(seconds) else "-"
    seeds = ", ".join(str(r["seed"]) for r in runs)
    what = (f"An ensemble of {len(runs)} `{payload['model']}` nets ({_members(runs)}; their "
            f"logits are averaged) trained on {payload['dataset']}." if len(runs) > 1 else
            f"`{payload['model']}` trained on {payload['dataset']}.")
    stored = [payload[k] for k in ("quantized", "stored_as") if payload.get(k)]
    lines = [f"# {path.stem}", "", f"{what} {note}".rstrip(), "", "| | |", "|---|---|",
             f"| test accuracy | **{result['acc']:.4f}** ({len(test)} "
             f"images{_tta_words(payload)}) |",
             *[f"| test: {name} | {acc:.4f} ({b - a} images) |"
               for name, acc in result.get("parts", {}).items()
               for a, b in [test.parts[name]]],
             f"| parameters | {count_parameters(predictor.model):,} |", "| file size | "
             f"{path.stat().st_size / 2**20:.2f} "
             f"MB{' (' + '; '.join(stored) + ')' if stored else ''} |",
             f"| CPU latency, one image (1 thread) | p50 {p50:.2f} ms, p95 {p95:.2f} ms |",
             f"| epochs | {payload.get('epoch', len(history))} |",
             f"| training wall time | {train_seconds} |",
             f"| trained on | {payload.get('trained_on', 'CPU, 2 cores')} |",
             f"| recipe | {cfg.get('optimizer')} lr {cfg.get('lr')} ({cfg.get('schedule')}), "
             f"batch {cfg.get('batch_size')}, momentum {cfg.get('momentum')}, weight decay "
             f"{cfg.get('weight_decay')}, label smoothing {cfg.get('label_smoothing')}, "
             f"augmentation {'on' if cfg.get('augment') else 'off'}, "
             f"{_jitter_words(runs, cfg)}"
             f"seed{'s' if len(runs) > 1 else ''} {seeds}, model kwargs "
             f"{payload.get('model_kwargs') or '{}'} |", "| libraries | torch "
             f"{payload['versions']['torch']}, torchvision {payload['versions']['torchvision']} |",
             "", f"Data: {spec.label}: {spec.notes} ({spec.source}).", "",
             "## Per-class test accuracy", "", "| class | accuracy |", "|---|---:|"]
    lines += [f"| {name} | {acc:.4f} |" for name, acc in result["per_class"].items()]
    if predictor.kind == "sketch":  # a Draw-tab model: how it reads real pen digits
        rows = pen_accuracy.evaluate_all(path, pen_every)
        lines += ["", "## Real pen digits (1,749 digits by 7 writers, never trained on)", "",
                  "Rendered as the sketchpad renders strokes, then the app's sketch preprocessing "
                  "(`python -m bench.pen_accuracy`):", "", pen_accuracy.table(rows), "",
                  "Per writer:", "", pen_accuracy.writer_table(rows)]
    lines += ["", f"Measured with `python -m bench.model_card {path}` on {platform.machine()} "
                  f"({os.cpu_count()} cores), torch {torch.__version__}."]
    out = path.with_suffix(".md")
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="+")
    p.add_argument("--data-root", default=None)
    p.add_argument("--pen-every", type=int, default=1)
    p.add_argument("--note", default="")
    args = p.parse_args(argv)
    for path in args.checkpoint:
        print(write_card(Path(path), args.data_root, args.pen_every, args.note).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
