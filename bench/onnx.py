"""The exported ONNX files (core.export) against the checkpoints they come from, with onnxruntime.

    python -m bench.onnx [--n 200] [--threads 1] [--accuracy] [--data-root DIR] [CHECKPOINT ...]

Latency: one prepared image at a time (a real test image), --n times after a warm-up, through
core.predictor.Predictor (torch) and through onnxruntime, both limited to --threads threads,
alternating so that both see the same machine; median and p95 in milliseconds. With --accuracy, the
top-1 accuracy of each ONNX file on its full test set beside core.evaluate's figure for the
checkpoint (they must be equal), on all cores. Default: every shipped checkpoint.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import checkpoint as ckpt  # noqa: E402
from core.calibration import tta_options  # noqa: E402
from core.evaluate import checkpoint_data, evaluate_model  # noqa: E402
from core.export import INPUT, export_onnx  # noqa: E402
from core.predictor import Predictor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def latency(predictor: Predictor, onnx, images: torch.Tensor, n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    as_app = [im[0].numpy() if im.shape[0] == 1 else im.permute(1, 2, 0).numpy() for im in images]
    as_onnx = [im[None].float().numpy() / 255.0 for im in images]
    for i in range(n + 5):  # the first five warm both up
        k = i % len(images)
        t0 = time.perf_counter()
        predictor.judge(as_app[k])
        t1 = time.perf_counter()
        onnx.run(None, {INPUT: as_onnx[k]})
        t2 = time.perf_counter()
        if i >= 5:
            times["torch"].append((t1 - t0) * 1000)
            times["onnxruntime"].append((t2 - t1) * 1000)
    return times


def onnx_accuracy(onnx, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    right = 0
    for i in range(0, len(images), batch):
        x = images[i:i + batch].float().numpy() / 255.0
        probs = onnx.run(["probabilities"], {INPUT: x})[0]
        right += int((probs.argmax(1) == labels[i:i + batch].numpy()).sum())
    return right / len(images)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.onnx", description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="*", type=Path,
                   default=sorted((ROOT / "checkpoints").glob("*.pt")))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--accuracy", action="store_true",
                   help="also compare top-1 on the full test sets")
    p.add_argument("--data-root", default=None,
                   help="data folder (default: $TINYVISION_DATA or ./data)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"one prepared image per call, {args.threads} thread(s), n={args.n}: median / p95 ms")
    print(f"| checkpoint | ONNX MB | torch p50 | torch p95 | onnxruntime p50 | onnxruntime p95 |"
          f"{' core.evaluate | ONNX top-1 |' if args.accuracy else ''}")
    print(f"|---|---:|---:|---:|---:|---:|{'---:|---:|' if args.accuracy else ''}")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.checkpoints:
            payload = ckpt.load_checkpoint(path)
            out = export_onnx(payload, Path(tmp) / f"{path.stem}.onnx")
            predictor, onnx = Predictor.from_payload(path, payload), session(out, args.threads)
            test = checkpoint_data(payload, "test", args.data_root, download=False)
            times = latency(predictor, onnx, test.images[:50], args.n)
            cells = [
                f"{statistics.median(t):.2f} | {np.percentile(t, 95):.2f}" for t in times.values()
            ]
            row = f"| {path.stem} | {out.stat().st_size / 2**20:.2f} | {' | '.join(cells)} |"
            if args.accuracy:  # on every core: a full test set one thread at a time takes long
                torch.set_num_threads(os.cpu_count() or 1)
                want = evaluate_model(predictor.model, test, batch_size=500,
                                      **tta_options(payload))["acc"]
                got = onnx_accuracy(session(out, os.cpu_count() or 1), test.images, test.labels)
                torch.set_num_threads(args.threads)
                row += f" {want:.4f} | {got:.4f}{'' if got == want else ' (differs)'} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
