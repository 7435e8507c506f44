"""Load: N concurrent gradio_client clients sending sketch predictions for S seconds, optionally while training.

    python -m bench.load --clients 32 --seconds 60 [--training] [--url URL] [--data-root DIR]

Without --url the app is started as `python app.py` (bench.serving.start_app). Each client is a gradio_client
Client in its own thread, sending /predict_digit (a drawn digit) back to back. With --training the fast preset
trains through /train (from another client) for the whole measurement and is stopped after it. The clients run on
the same machine as the app, so they take CPU from it too: the figures are for the machine, not the app alone.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.latency import payloads, print_table, start_training
from bench.serving import app_at


def hammer(url: str, sketch: dict, clients: int, seconds: float) -> tuple[list[float], Counter, float]:
    """Latencies (ms) of the successful requests, error messages counted, and the measured wall time."""
    from gradio_client import Client

    connected = [Client(url, verbose=False) for _ in range(clients)]
    latencies: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def worker(client) -> None:
        start.wait()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                client.predict(sketch, "mnist-digitnet", api_name="/predict_digit")
            except Exception as exc:  # counted and shown, never hidden
                with lock:
                    errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in connected]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline = t0 + seconds  # read by the workers once the barrier lets them go
    start.wait()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from gradio_client import Client

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--training", action="store_true", help="train the fast preset in the same app meanwhile")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with app_at(args.url, args.data_root, workdir) as (_, url):
            sketch = payloads(workdir)["/predict_digit"][0]
            Client(url, verbose=False).predict(sketch, "mnist-digitnet", api_name="/predict_digit")  # warm-up
            trainer = Client(url, verbose=False) if args.training else None
            job = start_training(trainer, epochs=50) if trainer else None
            latencies, errors, wall = hammer(url, sketch, args.clients, args.seconds)
            still_training = job is not None and not job.done()
            if job is not None:
                trainer.predict(api_name="/stop_training")
                job.result(timeout=300)

    q = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    condition = ("while training" + ("" if still_training else " (the training ended early!)")
                 if args.training else "idle")
    print(f"\n{args.clients} gradio_client clients, /predict_digit back to back for {wall:.0f} s, {condition}\n")
    print_table(["condition", "requests", "throughput req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"],
                [[condition, len(latencies) + sum(errors.values()), f"{len(latencies) / wall:.1f}",
                  *(f"{v:.0f}" for v in q), f"{max(latencies, default=float('nan')):.0f}", sum(errors.values())]])
    for message, n in errors.most_common(5):
        print(f"  {n} x {message}")
    return 0 if not errors and (still_training or not args.training) else 1


if __name__ == "__main__":
    sys.exit(main())
