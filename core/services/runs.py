"""Training runs for the web app: one at a time in its own lower-priority thread, a folder per
run, a stop flag per visitor, and the dashboard's updates streamed to the page.

    trainer = Trainer(ServerSettings.make())
    for update in trainer.run(TrainRequest(epochs=2), session="..."):
        ...   # dicts keyed by core.services.dashboard.OUTPUTS
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import torch

from ..config import TrainConfig
from ..imagedata import DataError
from ..preparation import InputError
from ..train import pick_device, train
from .dashboard import Dashboard
from .settings import ServerSettings
from .training_requests import check_request, resume_config

__all__ = ["Trainer", "RunFolders", "in_background", "lower_thread_priority", "RUN_MAX_AGE_S"]

RUN_MAX_AGE_S = 6 * 3600  # run folders older than this are removed when the next run starts
RUNS_KEPT = 20  # and never more than this many
# A training runs in its own thread this much nicer than the app (Linux): visitors' predictions
# keep the CPU they need and the training takes what is left, instead of both slowing down alike.
TRAIN_NICENESS = 10
# The page is sent new figures at most this often, and progress lines at most this often
# (seconds). Drawing holds Python's lock for ~60 ms: at one set of figures every 2 s a prediction
# meets it rarely (docs/measurements.md).
PLOT_EVERY_S, PROGRESS_EVERY_S = 2.0, 0.25


class RunFolders:
    """A folder per run under `root`; those older than RUN_MAX_AGE_S, and the oldest beyond
    RUNS_KEPT, are removed when a new one is made (never one in use)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._lock = threading.Lock()
        self._active: set[Path] = set()

    def _cleanup(self) -> None:
        if not self.root.is_dir():
            return
        runs = sorted((p for p in self.root.glob("run-*") if p.is_dir() and p not in self._active),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        now = time.time()
        for i, run in enumerate(runs):
            if i >= RUNS_KEPT - 1 or now - run.stat().st_mtime > RUN_MAX_AGE_S:
                shutil.rmtree(run, ignore_errors=True)

    def new(self) -> Path:
        """A fresh run folder, kept from removal until `release`."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._cleanup()
            path = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
            self._active.add(path)
        return path

    def release(self, path: Path) -> None:
        with self._lock:
            self._active.discard(path)


class Trainer:
    """Runs trainings for the web app, one folder per run, a stop flag per visitor session."""

    def __init__(self, settings: ServerSettings, plot_every_s: float = PLOT_EVERY_S,
                 progress_every_s: float = PROGRESS_EVERY_S):
        self.settings = settings
        self.folders = RunFolders(settings.runs_root)
        self.plot_every_s, self.progress_every_s = plot_every_s, progress_every_s
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}

    @property
    def device(self) -> str:
        return pick_device().type

    @property
    def amp_available(self) -> bool:
        return self.device == "cuda"

    def device_note(self) -> str:
        if self.device == "cuda":
            return (f"Training runs on this machine's GPU ({torch.cuda.get_device_name()}); AMP "
                    "is available.")
        return (f"Training runs on this machine's {self.device.upper()} "
                f"({torch.get_num_threads()} threads); AMP needs a CUDA GPU.")

    def busy(self) -> bool:
        with self._lock:
            return bool(self._stops)

    def run(self, req: Any, session: str = "", resume_from: str | None = None) -> Iterator[dict]:
        """Train as asked (a TrainRequest), yielding update dicts (keys from OUTPUTS); the last one
        holds every key.

        With `resume_from` (a stopped run's checkpoint) the stored run continues and `req` is not
        used. Stop with `stop(session)`: the epoch in progress is dropped and the last completed
        epoch's checkpoint is kept.
        """
        if resume_from:
            cfg, history = resume_config(resume_from, self.settings)
        else:
            cfg, history = check_request(req, self.settings), []
        yield from self.stream(cfg, history, session)

    def stream(self, cfg: TrainConfig, history: list[dict], session: str) -> Iterator[dict]:
        """Run a checked config in a new run folder, streaming the dashboard's updates."""
        cfg.max_seconds = self.settings.run_seconds(cfg.max_seconds)
        dash = Dashboard(history, self.plot_every_s, self.progress_every_s)
        run_dir = self.folders.new()
        cfg.out = str(run_dir / f"{cfg.dataset}-{cfg.model}.pt")
        stop = threading.Event()
        with self._lock:
            self._stops[session] = stop

        def release() -> None:  # when the run is really over, even if its caller left before
            with self._lock:
                if self._stops.get(session) is stop:
                    del self._stops[session]
            self.folders.release(run_dir)

        def updates() -> Iterator[dict]:
            # In the training's own lower-priority thread, so that drawing the figures takes no
            # CPU from the predictions either.
            with closing(train(cfg, should_stop=stop.is_set)) as events:
                for event in events:
                    update = dash.update(event)
                    if update:
                        yield update

        try:
            with closing(in_background(updates(), on_end=release)) as stream:
                yield from stream
        except FloatingPointError as exc:
            raise InputError(f"training diverged: {exc}. The last completed epoch's checkpoint is "
                             "kept.") from None
        except (DataError, ValueError, torch.OutOfMemoryError) as exc:
            raise InputError(str(exc).strip().splitlines()[0]) from None

    def stop(self, session: str = "") -> bool:
        """Ask the session's running training to stop between batches; False when it has none."""
        with self._lock:
            flag = self._stops.get(session)
        if flag is None:
            return False
        flag.set()
        return True


def lower_thread_priority(niceness: int) -> bool:
    """Make the calling thread (and the threads it starts, such as torch's OpenMP workers)
    `niceness` nicer; False where that is not possible. Linux only: elsewhere the call would renice
    the whole process."""
    if not sys.platform.startswith("linux") or niceness <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid,
                       min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError:
        return False
    return True


def in_background(events: Iterator[dict], niceness: int = TRAIN_NICENESS,
                  on_end: Callable[[], None] | None = None) -> Iterator[dict]:
    """Step the generator `events` in its own lower-priority thread; yield its events (and raise
    its error) here.

    The thread is new for each run, so the priority never sticks to a thread that later serves
    predictions. It runs one step each time the caller asks for the next event, exactly as if the
    caller iterated `events` itself: a run never gets ahead of what its page has shown, so Stop
    keeps the epoch the page last reported. A caller that leaves (the page closed; the web
    framework closes the stream from its event loop) returns at once, and the thread closes
    `events`. `on_end` runs in the thread once `events` is over, before the caller sees the end.
    """
    done = object()
    # One worker thread for the whole run: it is started by the first step, at the lower priority.
    worker = ThreadPoolExecutor(1, "training", lower_thread_priority, (niceness,))
    left = False
    try:
        while (event := worker.submit(next, events, done).result()) is not done:
            yield event
    except GeneratorExit:  # the caller left: only a yield raises it
        left = True
        raise
    finally:
        # Closing a run that is over does nothing; when the caller left, it ends the run.
        worker.submit(events.close)
        ending = worker.submit(on_end) if on_end is not None else None
        worker.shutdown(wait=False)
        if ending is not None and not left:
            ending.result()
