"""Load: N concurrent clients sending sketch predictions for S seconds, optionally while training.

    python -m bench.load --clients 32 --seconds 60 [--training] [--http] [--ssl-verify]
                         [--url URL] [--data-root DIR]

Without --url the app is started as `python app.py` (bench.serving.start_app). Each client sends
/predict_digit (a drawn digit) back to back from its own thread: by default a gradio_client Client
(bench.serving.api_client: certificate verification off for a plain-HTTP URL; --ssl-verify keeps
gradio_client's default, which loads a CA bundle for each of its requests); with --http a lighter
client that speaks the page's own HTTP protocol (bench.serving.PageSession: upload the canvas, join
the queue, read the event stream, fetch the answer's image). With --training the fast preset trains
through /train (from another client) for the whole measurement and is stopped after it. The clients
run on the same machine as the app, so they take CPU from it too: the table gives the CPU seconds
the app and this process used per request.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.latency import payloads, print_table, start_training
from bench.serving import PageSession, api_client, app_at


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gradio_client_caller(url: str, sketch: dict, ssl_verify: bool = False) -> Callable[[], None]:
    """One gradio_client Client (bench.serving.api_client) sending the drawn digit to
    /predict_digit."""
    client = api_client(url, ssl_verify)
    return lambda: client.predict(sketch, "mnist-digitnet", api_name="/predict_digit")


def page_caller(url: str, png: Path) -> Callable[[], None]:
    """One page's session doing what the page does for a stroke: upload the canvas, run the event
    through the queue, fetch the answer's image."""
    page = PageSession(url)
    event = page.event(api_name="predict_digit")
    canvas = png.read_bytes()

    def call() -> None:
        image = page.upload(png, canvas)
        success, output = page.call(event, [{"background": image, "layers": [], "composite": image},
                                            "mnist-digitnet", None])
        if not success:
            raise RuntimeError(str(output))
        page.http.get(output[1]["url"]).raise_for_status()
    return call


def hammer(callers: list[Callable[[], None]], seconds: float) -> tuple[list[float], Counter, float]:
    """Each caller in its own thread, back to back for `seconds`: latencies (ms) of the successful
    calls, error messages counted, and the measured wall time."""
    latencies: list[float] = []
    errors: Counter = Counter()
    lock = threading.Lock()
    start = threading.Barrier(len(callers) + 1)

    def worker(call) -> None:
        start.wait()
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                call()
            except Exception as exc:  # counted and shown, never hidden
                with lock:
                    errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in callers]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline = t0 + seconds  # read by the workers once the barrier lets them go
    start.wait()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--training", action="store_true",
                   help="train the fast preset in the same app meanwhile")
    p.add_argument("--http", action="store_true",
                   help="the page's HTTP protocol instead of gradio_client")
    p.add_argument("--ssl-verify", action="store_true", help="gradio_client's default: load the CA "
                   "bundle for every request, even over plain HTTP")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with app_at(args.url, args.data_root, workdir) as (proc, url):
            sketch = payloads(workdir)["/predict_digit"][0]
            api_client(url).predict(sketch, "mnist-digitnet", api_name="/predict_digit")  # warm-up
            trainer = api_client(url) if args.training else None
            job = start_training(trainer, epochs=50) if trainer else None
            callers = [
                page_caller(url, Path(sketch["composite"]["path"]))
                if args.http
                else gradio_client_caller(url, sketch, args.ssl_verify)
                for _ in range(args.clients)
            ]
            app_cpu, own_cpu = (
                (cpu_seconds(proc.pid) if proc else float("nan")),
                cpu_seconds(os.getpid()),
            )
            latencies, errors, wall = hammer(callers, args.seconds)
            app_cpu = (cpu_seconds(proc.pid) if proc else float("nan")) - app_cpu
            own_cpu = cpu_seconds(os.getpid()) - own_cpu
            still_training = job is not None and not job.done()
            if job is not None:
                trainer.predict(api_name="/stop_training")
                job.result(timeout=300)

    q = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    condition = ("while training" + ("" if still_training else " (the training ended early!)")
                 if args.training else "idle")
    kind = ("HTTP (the page's protocol)" if args.http else
            "gradio_client, ssl_verify on" if args.ssl_verify else "gradio_client")
    requests = len(latencies) + sum(errors.values())
    print(f"\n{args.clients} {kind} clients, /predict_digit back to back for {wall:.0f} s, "
          f"{condition}\n")
    print_table(["clients", "condition", "requests", "throughput req/s", "p50 ms", "p95 ms",
                 "p99 ms", "max ms", "errors", "app CPU ms/req", "clients' CPU ms/req"],
                [[kind, condition, requests, f"{len(latencies) / wall:.1f}",
                  *(f"{v:.0f}" for v in q), f"{max(latencies, default=float('nan')):.0f}",
                  sum(errors.values()), f"{1000 * app_cpu / max(requests, 1):.0f}",
                  f"{1000 * own_cpu / max(requests, 1):.0f}"]])
    for message, n in errors.most_common(5):
        print(f"  {n} x {message}")
    return 0 if not errors and (still_training or not args.training) else 1


if __name__ == "__main__":
    sys.exit(main())
