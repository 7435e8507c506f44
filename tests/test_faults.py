"""Crash safety: a training killed with SIGKILL mid-epoch leaves a loadable checkpoint and
resumes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 8)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                # A bright or a dark square on a dark noisy ground (a folder of greyscale pictures
                # is read as the photo tab reads one: a light-bordered picture would be turned light
                # on dark).
                a = rng.integers(0, 100, (12, 12)).astype(np.uint8)
                a[3:9, 3:9] = 255 if label == "a" else 0
                Image.fromarray(a).save(root / split / label / f"{i}.png")
    return root


def _cli(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "core.train", "--dataset", "imagefolder", "--data-root",
            str(data), "--image-size", "16", "--channels", "1", "--model", "lenet", "--epochs",
            "12", "--batch-size", "1", "--lr", "0.001", "--out", str(out), "--json", *extra]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume(tmp_path):
    data, out = _folder(tmp_path / "data"), tmp_path / "run.pt"
    env = {**os.environ, "TINYVISION_CACHE": str(tmp_path / "cache")}
    log = open(tmp_path / "log.txt", "w")
    proc = subprocess.Popen(_cli(data, out), cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and ckpt.load_checkpoint(out)["epoch"] >= 2):
        time.sleep(0.05)
    time.sleep(0.2)  # into the next epoch, between checkpoint writes
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "log.txt").read_text()[-2000:]
    killed_at = ckpt.load_checkpoint(out)["epoch"]  # loads: the file was never half-written
    assert 2 <= killed_at < 12

    done = subprocess.run(_cli(data, out, "--resume", str(out)), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["epoch"] == 12 and summary["test_acc"] >= 0.9
    assert ckpt.load_checkpoint(out)["epoch"] == 12
    # A temp file left by the kill is cleaned by the next save
    assert not list(tmp_path.glob(".run.pt.*"))
