"""Prediction round-trip latency through the API: the idle app, and while a training runs on the same machine.

    python -m bench.latency [--n 200] [--idle-only] [--url http://127.0.0.1:7860/] [--data-root DIR]

Without --url the app is started as `python app.py` in a subprocess on a free port (so the measuring client never
shares a Python process with the server). Each condition sends --n sequential /predict_digit (a drawn digit) and
/classify_image (an example photo) requests with gradio_client and reports the median (p50) and p95 round trip.
"Training" starts the fast preset (digitnet on MNIST, more epochs so it outlasts the measurement) through /train
from another client, measures once it is streaming progress, then stops it with /stop_training.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data_root: str | None, workdir: Path, args: tuple[str, ...] = (),
              log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py [args]` on a free port, runs in workdir/runs; stdout+stderr to `log` (default: discarded)."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "TINYVISION_RUNS": str(workdir / "runs"), "GRADIO_ANALYTICS_ENABLED": "False"}
    if data_root:
        env["TINYVISION_DATA"] = data_root
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    if log:
        out.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
                raise SystemExit(f"the app did not start\n{tail}")
            time.sleep(0.5)


@contextmanager
def running_app(data_root: str | None, workdir: Path, args: tuple[str, ...] = (),
                log: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """`start_app`, stopped (SIGTERM, then SIGKILL) on leaving, even when the body failed."""
    proc, url = start_app(data_root, workdir, args, log)
    try:
        yield proc, url
    finally:
        for stop in (proc.terminate, proc.kill):  # SIGKILL only if SIGTERM has not ended it in 30 s
            stop()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
                break


def app_at(url: str | None, data_root: str | None, workdir: Path):
    """A context giving (process or None, url): the app at `url`, else one started with `running_app`."""
    return nullcontext((None, url)) if url else running_app(data_root, workdir)


def payloads(workdir: Path) -> dict[str, tuple]:
    from gradio_client import handle_file

    canvas = np.full((400, 400, 3), 255, np.uint8)
    canvas[80:320, 185:215] = 0
    Image.fromarray(canvas).save(workdir / "one.png")
    sketch = {"background": handle_file(str(workdir / "one.png")), "layers": [],
              "composite": handle_file(str(workdir / "one.png"))}
    photo = sorted((ROOT / "examples" / "photos").glob("*.[jp][pn]g"))[0]
    return {"/predict_digit": (sketch,), "/classify_image": (handle_file(str(photo)),)}


def start_training(client, timeout: float = 300, **request):
    """Submit /train (the fast preset with `request`'s changes) and return its job once it streams progress."""
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
    from gradio_client import Client

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30, help="requests per endpoint and condition")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--idle-only", action="store_true", help="measure the idle app only (no training)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with app_at(args.url, args.data_root, workdir) as (_, url):
            client, trainer = Client(url, verbose=False), Client(url, verbose=False)
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
        print("| endpoint | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|")
        for name in calls:
            print(f"| {name} | {statistics.median(idle[name]):.0f} | {p95(idle[name]):.0f} | {max(idle[name]):.0f} |")
        return 0
    print("| endpoint | idle p50 ms | idle p95 ms | training p50 ms | training p95 ms | p50 ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in calls:
        a, b = statistics.median(idle[name]), statistics.median(busy[name])
        print(f"| {name} | {a:.0f} | {p95(idle[name]):.0f} | {b:.0f} | {p95(busy[name]):.0f} | {b / a:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
