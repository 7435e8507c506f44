"""Faults: the app process killed with SIGKILL while it trains from the API, then started again.

    python -m bench.faults [--data-root DIR] [--epochs 3]

Starts `python app.py` (bench.serving.start_app), starts a training through /train, kills the app
with SIGKILL once the training streams progress (after the first epoch's checkpoint with
--after-epoch), starts the app again on the same run folder and checks that it serves a prediction
and a new (short) training, and that the shipped checkpoints (checkpoints/*.pt) have the same sha256
before, after the kill and at the end. The CLI's own kill-mid-epoch-then-resume check is
tests/test_faults.py.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bad_inputs import checkpoint_hashes, healthy
from bench.latency import print_table, start_training
from bench.serving import api_client, running_app


def kill_app_during_training(proc: subprocess.Popen, url: str, workdir: Path,
                             data_root: str | None = None, request: dict | None = None,
                             after_epoch: bool = False, retrain_steps: int = 3) -> dict:
    """Kill the app `proc` (started by running_app on `workdir`) during a training, restart it,
    check it.

    Returns what was observed: checks as booleans, timings in seconds.
    """
    result = {}
    before = checkpoint_hashes()
    job = start_training(api_client(url), **(request or dict(epochs=3)))
    if after_epoch:
        while not any(workdir.glob("runs/run-*/*.pt")) and not job.done():
            time.sleep(0.1)
    result["killed while training"] = not job.done()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    result["exit by SIGKILL"] = proc.returncode == -signal.SIGKILL
    result["shipped checkpoints unchanged after the kill"] = checkpoint_hashes() == before
    t0 = time.perf_counter()
    with running_app(data_root, workdir, log=workdir / "app-restarted.log") as (proc, url):
        result["restart s"] = round(time.perf_counter() - t0, 1)
        client = api_client(url)
        result["serves a prediction after restart"] = healthy(client, workdir)
        t0 = time.perf_counter()
        outputs = client.submit(max_steps=retrain_steps, max_train_images=256, batch_size=64,
                                api_name="/train").result(timeout=300)
        report = next(o for o in outputs if isinstance(o, dict) and "train_seconds" in o)
        result["trains after restart"] = report["stopped"] is False and report["epoch"] == 1
        result["new training s"] = round(time.perf_counter() - t0, 1)
    result["shipped checkpoints unchanged at the end"] = checkpoint_hashes() == before
    result["tracebacks in the restarted app's log"] = (
        (workdir / "app-restarted.log").read_text().count("Traceback")
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs of the killed training (digitnet on MNIST)")
    p.add_argument("--after-epoch", action="store_true",
                   help="kill after its first epoch's checkpoint")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, running_app(args.data_root, Path(tmp)) as (proc,
                                                                                          url):
        result = kill_app_during_training(proc, url, Path(tmp), args.data_root,
                                          dict(epochs=args.epochs), args.after_epoch)
    print("\nThe app killed (SIGKILL) during a training from the API, then restarted on the same "
          "run folder\n")
    print_table(["check", "result"], [[k, v] for k, v in result.items()])
    passed = all(
        v for k, v in result.items() if not k.endswith(" s") and not k.startswith("tracebacks")
    )
    return 0 if passed and not result["tracebacks in the restarted app's log"] else 1


if __name__ == "__main__":
    sys.exit(main())
