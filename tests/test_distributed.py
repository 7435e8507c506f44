"""Training across processes (core.distributed) with torchrun and gloo on the CPU, two processes.

The weights of a 2-process run with global batch B equal those of a 1-process run with batch B up to
float32 rounding: each rank's mean loss over its half of a batch is averaged by DDP's all-reduce,
which adds the same products in another order (about 1e-7 relative per step). TOLERANCE, 1e-5
absolute after a dozen SGD steps, is a hundred times what that gives and a thousand times less than
one step changes a weight. The net is LeNet without augmentation: each rank augments its own part
with its own random draws, and BatchNorm statistics are per rank on the CPU (PyTorch synchronises
them on GPUs only), so a BatchNorm net or augmented batches are not the same run.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import checkpoint as ckpt
from core import distributed, models
from core import imagedata as D
from core import train as T

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
# 500 images in batches of 64: seven full batches and one of 52, split 26 / 26.
RUN = ["--dataset", "mnist", "--model", "lenet", "--max-train-images", "500", "--batch-size", "64",
       "--no-augment", "--optimizer", "sgd", "--lr", "0.05", "--no-download", "--json"]


def command(processes: int, *args: str) -> list[str]:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
    return [*launcher, "-m", "core.train", *RUN, *args]


def environment(data_root) -> dict:
    return {**os.environ, "TINYVISION_DATA": str(data_root), "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def train(processes: int, data_root, *args: str, timeout: float = 240) -> dict:
    done = subprocess.run(command(processes, *args), cwd=ROOT, env=environment(data_root),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def weights(path: Path) -> dict:
    return ckpt.load_checkpoint(path)["state_dict"]


def test_two_processes_train_the_same_weights_as_one(data_root, tmp_path):
    one = train(1, data_root, "--epochs", "2", "--out", str(tmp_path / "one.pt"))
    two = train(2, data_root, "--epochs", "2", "--out", str(tmp_path / "two.pt"))
    a, b = weights(tmp_path / "one.pt"), weights(tmp_path / "two.pt")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= TOLERANCE
    torch.manual_seed(0)  # the starting weights, as core.train draws them
    start = models.create_model("lenet", 10, 1, 28).state_dict()
    # Training moved them
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 1000 * TOLERANCE
    # Rank 0 evaluated the whole test set
    assert two["test_acc"] == pytest.approx(one["test_acc"], abs=2e-4)
    # Every rank's images counted once
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)


def test_every_image_once_per_epoch_in_equal_parts():
    g = torch.Generator().manual_seed(0)
    world = [distributed.World(rank, 2, rank, "gloo") for rank in range(2)]
    for n, batch in ((500, 64), (513, 64), (130, 64)):
        parts = [[], []]
        for index in D.iterate_batches(n, batch, g, min_last=2):
            for w in world:
                part, share = distributed.rank_part(index, w)
                assert abs(len(part) - len(index) / 2) <= 0.5
                assert share == pytest.approx(len(part) * 2 / len(index))
                parts[w.rank].append(part)
        seen = torch.cat([torch.cat(p) for p in parts])
        # None twice, none left out; 513: a last 1 joins the 64
        assert sorted(seen.tolist()) == list(range(n))
        assert len(D.batch_starts(n, batch, 2)) == len(parts[0])


def test_a_batch_that_does_not_divide_among_the_processes_is_refused_with_the_fix(data_root,
                                                                                  monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: distributed.World(0, 2, 0, "gloo"))
    cfg = T.TrainConfig(dataset="mnist", model="lenet", batch_size=63, max_train_images=100,
                        data_root=str(data_root), download=False)
    with pytest.raises(ValueError, match="does not divide among 2 processes: use 62 or 64"):
        T.build_run(cfg)


def workers(launcher: subprocess.Popen) -> dict[int, int]:
    """{rank: pid} of torchrun's worker processes."""
    found = {}
    for pid in subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True,
                              text=True).stdout.split():
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = next((int(v[5:]) for v in env if v.startswith(b"RANK=")), None)
        if rank is not None:
            found[rank] = int(pid)
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return False


def start_long_run(data_root, out: Path) -> subprocess.Popen:
    """A 2-process run that lasts long enough to be stopped; returns once its first epoch is
    written."""
    launcher = subprocess.Popen(command(2, "--epochs", "200", "--out", str(out)), cwd=ROOT,
                                env=environment(data_root), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while not out.exists():
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stderr.read()[
            -2000:
        ]
        time.sleep(0.2)
    return launcher


def test_a_killed_rank_fails_the_job_and_its_last_epoch_resumes_in_one_process(data_root, tmp_path):
    out = tmp_path / "run.pt"
    launcher = start_long_run(data_root, out)
    try:
        os.kill(workers(launcher)[1], signal.SIGKILL)
        # Not a hang: the survivor's collective fails, torchrun ends the job
        code = launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert code != 0
    kept = ckpt.load_checkpoint(out)
    assert "train_state" in kept and kept["epoch"] >= 1  # the last completed epoch, resumable
    epoch = kept["epoch"]
    end = train(1, data_root, "--epochs", str(epoch + 2), "--resume", str(out), "--out",
                str(tmp_path / "on.pt"))
    assert end["epoch"] == epoch + 2 and not end["stopped"]
    assert ckpt.load_checkpoint(tmp_path / "on.pt")["history"][-1]["epoch"] == epoch + 2


def test_sigterm_to_torchrun_stops_every_rank_and_keeps_the_checkpoint(data_root, tmp_path):
    out = tmp_path / "run.pt"
    launcher = start_long_run(data_root, out)
    ranks = workers(launcher)
    try:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=60)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert not any(running(pid) for pid in ranks.values())
    assert "train_state" in ckpt.load_checkpoint(out)
    assert not list(tmp_path.glob(".*.tmp"))
