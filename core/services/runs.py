"""Training runs for the web app: one at a time in its own lower-priority thread, a folder per
run, a stop flag per visitor, and the dashboard's updates streamed to the page.

    trainer = Trainer(ServerSettings.make())
    for update in trainer.run(TrainRequest(epochs=2), session="..."):
        ...   # dicts keyed by core.services.dashboard.OUTPUTS
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import torch

from ..config import TrainConfig
from ..imagedata import DataError
from ..preparation import InputError
from ..train import pick_device, train
from . import texts
from .dashboard import Dashboard
from .run_folders import RunFolders
from .settings import ServerSettings
from .training_requests import check_request, resume_config

__all__ = ["Trainer", "in_background", "lower_thread_priority", "MAX_WAITING"]

log = logging.getLogger("tinyvision.runs")
# A training runs in its own thread this much nicer than the app (Linux): visitors' predictions
# keep the CPU they need and the training takes what is left, instead of both slowing down alike.
TRAIN_NICENESS = 10
# The page is sent new figures at most this often, and progress lines at most this often
# (seconds). Drawing holds Python's lock for ~60 ms: at one set of figures every 2 s a prediction
# meets it rarely (docs/measurements.md).
PLOT_EVERY_S, PROGRESS_EVERY_S = 2.0, 0.25
# Trainings waiting for the one running, at most; one more is refused (texts.TRAINER_FULL).
MAX_WAITING = 4
WAIT_POLL_S = 1.0  # a waiting run tells its page its place in the line this often
# The cap counts training time; evaluating and saving come on top. A run is stopped anyway once its
# wall time passes the cap by this factor and margin (a run of one batch an epoch and a large test
# set would otherwise hold the trainer for hours at a few seconds of "training").
WALL_FACTOR, WALL_MARGIN_S = 1.5, 60.0


class Trainer:
    """Runs trainings for the web app: one at a time, the others waiting in a bounded line (at most
    one per visitor session); a folder per run (RunFolders) and a stop flag per session."""

    def __init__(self, settings: ServerSettings, plot_every_s: float = PLOT_EVERY_S,
                 progress_every_s: float = PROGRESS_EVERY_S, max_waiting: int = MAX_WAITING):
        self.settings = settings
        self.folders = RunFolders(settings.runs_root)
        self.plot_every_s, self.progress_every_s = plot_every_s, progress_every_s
        self.max_waiting = max_waiting
        self._turn = threading.Condition()
        self._line: list[str] = []  # sessions: the one training first, then those waiting
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
        with self._turn:
            return bool(self._line)

    def run(self, req: Any, session: str = "", resume_from: str | None = None,
            listening: Callable[[], bool] | None = None) -> Iterator[dict]:
        """Train as asked (a TrainRequest), yielding update dicts (keys from OUTPUTS); the last one
        holds every key.

        With `resume_from` (a stopped run's checkpoint) the stored run continues with the stored
        settings (`req` gives the image folder only). Stop with `stop(session)`: the epoch in
        progress is dropped and the last completed epoch's checkpoint is kept. `listening` says
        whether anyone still reads the updates: a run nobody reads stops as if stopped.
        """
        if resume_from:
            cfg, history = resume_config(resume_from, self.settings, getattr(req, "folder", ""))
        else:
            cfg, history = check_request(req, self.settings), []
        yield from self.stream(cfg, history, session, listening)

    def stream(self, cfg: TrainConfig, history: list[dict], session: str,
               listening: Callable[[], bool] | None = None) -> Iterator[dict]:
        """Run a checked config in a new run folder when its turn comes, streaming the dashboard's
        updates (while it waits: its place in the line)."""
        stop = self._join(session)
        try:
            yield from self._wait(session, stop, listening)
            if stop.is_set():
                self._leave(session, stop)
                yield {"progress": texts.progress_html(0.0, texts.STOPPED_WAITING)}
                return
            run_dir = self.folders.new(session)
        except BaseException:
            self._leave(session, stop)  # refused, or the caller left while waiting
            raise
        cfg.max_seconds = self.settings.run_seconds(cfg.max_seconds)
        cfg.out = str(run_dir / f"{cfg.dataset}-{cfg.model}.pt")
        dash = Dashboard(history, self.plot_every_s, self.progress_every_s)
        deadline = None
        if cfg.max_seconds:
            deadline = threading.Timer(cfg.max_seconds * WALL_FACTOR + WALL_MARGIN_S, stop.set)
            deadline.daemon = True
            deadline.start()

        def release() -> None:  # when the run is really over, even if its caller left before
            if deadline is not None:
                deadline.cancel()
            self._leave(session, stop)
            self.folders.release(run_dir)

        def updates() -> Iterator[dict]:
            # In the training's own lower-priority thread, so that drawing the figures takes no
            # CPU from the predictions either.
            with closing(train(cfg, should_stop=stop.is_set)) as events:
                for event in events:
                    update = dash.update(event)
                    if update:
                        yield update
                    if listening is not None and not stop.is_set() and not listening():
                        log.info("a training nobody reads is stopped (%s)", cfg.dataset)
                        stop.set()

        try:
            with closing(in_background(updates(), on_end=release)) as stream:
                yield from stream
        except FloatingPointError as exc:
            raise InputError(f"training diverged: {exc}. The last completed epoch's checkpoint is "
                             "kept.") from None
        except torch.OutOfMemoryError:
            raise InputError(texts.OUT_OF_MEMORY) from None
        except (DataError, ValueError) as exc:
            raise InputError(str(exc).strip().splitlines()[0]) from None

    # -- the line ----------------------------------------------------------------------------------

    def check_room(self, session: str) -> None:
        """InputError when the session could not join the line now (it already has a training in
        it, or the line is full): asked before costly preparation, such as importing an archive."""
        with self._turn:
            if session in self._line:
                raise InputError(texts.ONE_TRAINING_EACH)
            if len(self._line) > self.max_waiting:
                raise InputError(texts.TRAINER_FULL)

    def _join(self, session: str) -> threading.Event:
        """A place at the end of the line, and the session's stop flag; InputError when the
        session already has a training in it, or the line is full."""
        with self._turn:
            self.check_room(session)
            self._line.append(session)
            stop = self._stops[session] = threading.Event()
            return stop

    def _wait(self, session: str, stop: threading.Event,
              listening: Callable[[], bool] | None) -> Iterator[dict]:
        """Until the session is first in line (or stopped), its place every WAIT_POLL_S. A caller
        that leaves closes this generator at a yield: `stream` then takes it out of the line; one
        that is not reading gives up its place."""
        while True:
            if listening is not None and not listening():
                stop.set()
            with self._turn:
                place = self._line.index(session)
                if place == 0 or stop.is_set():
                    return
                self._turn.wait(WAIT_POLL_S)
                place = self._line.index(session)
                if place == 0 or stop.is_set():
                    return
            yield {"progress": texts.progress_html(0.0, texts.waiting(place))}

    def _leave(self, session: str, stop: threading.Event) -> None:
        with self._turn:
            if self._stops.get(session) is stop:
                del self._stops[session]
                self._line.remove(session)
                self._turn.notify_all()

    def stop(self, session: str = "") -> bool:
        """Ask the session's training to stop between batches (or, while it waits, to give up its
        place); False when it has none."""
        with self._turn:
            flag = self._stops.get(session)
            if flag is not None:
                flag.set()
                self._turn.notify_all()
        return flag is not None


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
