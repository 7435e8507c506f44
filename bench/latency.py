"""Prediction round-trip latency through the API: the idle app, and while a training runs on the
same machine.

    python -m bench.latency [--n 200] [--idle-only] [--url http://127.0.0.1:7860/] [--data-root DIR]

Without --url the app is started as `python app.py` in a subprocess on a free port (so the measuring
client never shares a Python process with the server). Each condition sends --n sequential
/predict_digit (a drawn digit) and /classify_image (an example photo) requests with gradio_client
and reports the median (p50) and p95 round trip. "Training" starts the fast preset (digitnet on
MNIST, more epochs so it outlasts the measurement) through /train from another client, measures once
it is streaming progress, then stops it with /stop_training.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import ROOT, api_client, app_at  # noqa: E402


def sketch_payload(png: Path) -> dict:
    """A sketchpad value for gradio_client: the image file as background and composite, no
    layers."""
    from gradio_client import handle_file

    return {"background": handle_file(str(png)), "layers": [], "composite": handle_file(str(png))}


def payloads(workdir: Path) -> dict[str, tuple]:
    from gradio_client import handle_file

    canvas = np.full((400, 400, 3), 255, np.uint8)
    canvas[80:320, 185:215] = 0
    Image.fromarray(canvas).save(workdir / "one.png")
    sketch = sketch_payload(workdir / "one.png")
    photo = sorted((ROOT / "examples" / "photos").glob("*.[jp][pn]g"))[0]
    return {"/predict_digit": (sketch,), "/classify_image": (handle_file(str(photo)),)}


def start_training(client, timeout: float = 300, **request):
    """Submit /train (the fast preset with `request`'s changes) and return its job once it streams
    progress."""
    job = client.submit(api_name="/train", **request)
    deadline = time.monotonic() + timeout
    while not any("img/s" in str(o[0]) for o in job.outputs()):
        if job.done() or time.monotonic() > deadline:
            raise SystemExit(f"the training did not start streaming: {job.exception()}")
        time.sleep(0.2)
    return job


def measure(client, calls: dict[str, tuple], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, args in calls.items():
            t0 = time.perf_counter()
            client.predict(*args, api_name=name)
            times[name].append((time.perf_counter() - t0) * 1000)
    return times


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def print_table(headers: list[str], rows: list[list]) -> None:
    """A markdown table: the first column left-aligned, the others right-aligned."""
    print("| " + " | ".join(headers) + " |")
    print("|---|" + "---:|" * (len(headers) - 1))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30, help="requests per endpoint and condition")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--idle-only", action="store_true",
                   help="measure the idle app only (no training)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with app_at(args.url, args.data_root, workdir) as (_, url):
            client, trainer = api_client(url), api_client(url)
            calls = payloads(workdir)
            measure(client, calls, 3)  # warm-up: connections, model caches
            idle = measure(client, calls, args.n)
            if args.idle_only:
                return _report(calls, idle, None, args.n, False)

            job = start_training(trainer, epochs=5)
            busy = measure(client, calls, args.n)
            training_running = not job.done()
            trainer.predict(api_name="/stop_training")
            job.result(timeout=120)

    return _report(calls, idle, busy, args.n, training_running)


def _report(calls, idle: dict, busy: dict | None, n: int, training_running: bool) -> int:
    print(f"\nPrediction round trips through gradio_client, {n} sequential requests per row"
          + (f" (training still running at the end: {training_running})" if busy else "") + "\n")
    if busy is None:
        print_table(["endpoint", "p50 ms", "p95 ms", "max ms"],
                    [[name, f"{statistics.median(t):.0f}", f"{p95(t):.0f}", f"{max(t):.0f}"]
                     for name, t in idle.items()])
        return 0
    rows = []
    for name in calls:
        a, b = statistics.median(idle[name]), statistics.median(busy[name])
        rows.append([name, f"{a:.0f}", f"{p95(idle[name]):.0f}", f"{b:.0f}",
                     f"{p95(busy[name]):.0f}", f"{b / a:.1f}x"])
    print_table(["endpoint", "idle p50 ms", "idle p95 ms", "training p50 ms", "training p95 ms",
                 "p50 ratio"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
