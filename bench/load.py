"""Load: N concurrent clients sending sketch predictions for S seconds, optionally while training.

    python -m bench.load --clients 32 --seconds 60 [--training] [--http] [--url URL] [--data-root DIR]

Without --url the app is started as `python app.py` (bench.serving.start_app). Each client sends /predict_digit (a
drawn digit) back to back: by default a gradio_client Client in its own thread; with --http a lighter client that
speaks the page's own HTTP protocol (upload the canvas, join the queue, read the event stream, fetch the answer's
image), all clients in one asyncio loop. With --training the fast preset trains through /train (from another
client) for the whole measurement and is stopped after it. The clients run on the same machine as the app, so they
take CPU from it too: the table gives the CPU seconds the app and this process used per request.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from bench.latency import payloads, print_table, start_training
from bench.serving import app_at


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def hammer_http(url: str, png: Path, clients: int, seconds: float) -> tuple[list[float], Counter, float]:
    """`hammer` with clients that do what the page does for a stroke, over plain HTTP, in one event loop."""
    import httpx

    api = url.rstrip("/") + "/gradio_api"
    config = httpx.get(url.rstrip("/") + "/config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "predict_digit")
    body = png.read_bytes()
    latencies: list[float] = []
    errors: Counter = Counter()

    async def one(http, session: str) -> None:
        r = await http.post(f"{api}/upload", files=[("files", ("sketch.png", body, "image/png"))])
        r.raise_for_status()
        image = {"path": r.json()[0], "meta": {"_type": "gradio.FileData"}}
        sketch = {"background": image, "layers": [], "composite": image}
        r = await http.post(f"{api}/queue/join", json={"data": [sketch, "mnist-digitnet", None],
                                                        "fn_index": fn_index, "session_hash": session})
        r.raise_for_status()
        event = r.json()["event_id"]
        async with http.stream("GET", f"{api}/queue/data", params={"session_hash": session}) as stream:
            async for line in stream.aiter_lines():
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("event_id") == event and msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(str(msg.get("output"))[:120])
                    seen = msg["output"]["data"][1]
                    break
            else:
                raise RuntimeError("the event stream ended without the answer")
        (await http.get(seen["url"])).raise_for_status()

    async def worker(i: int, deadline: float) -> None:
        session = f"load-client-{i}"  # one session per client, as one open page (or one gradio_client) has
        async with httpx.AsyncClient(timeout=120) as http:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    await one(http, session)
                except Exception as exc:  # counted and shown, never hidden
                    errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

    async def run() -> None:
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(worker(i, deadline) for i in range(clients)))

    t0 = time.perf_counter()
    asyncio.run(run())
    return latencies, errors, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    from gradio_client import Client

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--training", action="store_true", help="train the fast preset in the same app meanwhile")
    p.add_argument("--http", action="store_true", help="the page's HTTP protocol instead of gradio_client")
    p.add_argument("--url", default=None, help="a running app (default: start one)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with app_at(args.url, args.data_root, workdir) as (proc, url):
            sketch = payloads(workdir)["/predict_digit"][0]
            Client(url, verbose=False).predict(sketch, "mnist-digitnet", api_name="/predict_digit")  # warm-up
            trainer = Client(url, verbose=False) if args.training else None
            job = start_training(trainer, epochs=50) if trainer else None
            app_cpu, own_cpu = (cpu_seconds(proc.pid) if proc else float("nan")), cpu_seconds(os.getpid())
            if args.http:
                latencies, errors, wall = hammer_http(url, workdir / "one.png", args.clients, args.seconds)
            else:
                latencies, errors, wall = hammer(url, sketch, args.clients, args.seconds)
            app_cpu = (cpu_seconds(proc.pid) if proc else float("nan")) - app_cpu
            own_cpu = cpu_seconds(os.getpid()) - own_cpu
            still_training = job is not None and not job.done()
            if job is not None:
                trainer.predict(api_name="/stop_training")
                job.result(timeout=300)

    q = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    condition = ("while training" + ("" if still_training else " (the training ended early!)")
                 if args.training else "idle")
    kind = "HTTP (the page's protocol)" if args.http else "gradio_client"
    requests = len(latencies) + sum(errors.values())
    print(f"\n{args.clients} {kind} clients, /predict_digit back to back for {wall:.0f} s, {condition}\n")
    print_table(["clients", "condition", "requests", "throughput req/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "errors", "app CPU ms/req", "clients' CPU ms/req"],
                [[kind, condition, requests, f"{len(latencies) / wall:.1f}", *(f"{v:.0f}" for v in q),
                  f"{max(latencies, default=float('nan')):.0f}", sum(errors.values()),
                  f"{1000 * app_cpu / max(requests, 1):.0f}", f"{1000 * own_cpu / max(requests, 1):.0f}"]])
    for message, n in errors.most_common(5):
        print(f"  {n} x {message}")
    return 0 if not errors and (still_training or not args.training) else 1


if __name__ == "__main__":
    sys.exit(main())
