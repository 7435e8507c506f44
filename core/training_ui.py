"""The Train tab's logic: bounded requests, a run that streams dashboard updates, and per-visitor models.

No gradio here. `TrainingService.run` turns `core.train.train`'s events into update dicts whose keys are `OUTPUTS`
(only what changed; the last update has them all), so app.py maps keys onto components and tests read them
directly. Everything a visitor sends is checked here: the hyper-parameters against `core.train.LIMITS`, folder
paths against the one root the app was started with, uploaded checkpoints against the model registry.
"""
from __future__ import annotations

import html
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from . import data as D
from . import datasets, models, plots
from . import train as T
from .export import ExportError, export_onnx
from .handlers import DIGITS, kind_of
from .inference import InputError, Predictor
from .own_classes import KINDS as OWN_KINDS
from .own_classes import ExampleSet, sweep_sessions

__all__ = ["TrainRequest", "TrainingService", "OUTPUTS", "TABLE_HEADERS", "LIMITS", "FAST", "recipe",
           "dataset_label", "dataset_kind", "is_folder_dataset", "check_checkpoint"]

LIMITS = T.LIMITS
# Folder datasets are read as 32x32 RGB, the photo models' input.
FOLDER_IMAGE_SIZE, FOLDER_CHANNELS = 32, 3
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "augment")
OUTPUTS = ("progress", "curves", "samples", "per_class", "confusion", "table", "log", "report", "checkpoint", "run")
TABLE_HEADERS = ["epoch", "train loss", "train acc", "val loss", "val acc", "test loss", "test acc", "seconds",
                 "img/s"]
RUN_MAX_AGE_S = 6 * 3600  # run folders older than this are removed when the next run starts
RUNS_KEPT = 20  # and never more than this many
SESSION_MODELS_KEPT = 4  # a visitor's own models held in memory at once
# A training runs in its own thread this much nicer than the app (Linux): visitors' predictions keep the CPU they
# need and the training takes what is left, instead of both slowing down alike.
TRAIN_NICENESS = 10
# The page is sent new figures at most this often, and progress lines at most this often (seconds). Drawing holds
# Python's lock for ~60 ms: at one set of figures every 2 s a prediction meets it rarely (docs/measurements.md).
PLOT_EVERY_S, PROGRESS_EVERY_S = 2.0, 0.25
SWEEP_EVERY_S = 60  # how often the visitors' own-classes folders are checked for removal


def dataset_kind(dataset: str) -> str:
    """The input kind of a dataset as the Train tab reads it (folders as FOLDER_CHANNELS-channel images)."""
    return datasets.get_dataset_spec(dataset).kind_for(FOLDER_CHANNELS)


def dataset_label(dataset: str) -> str:
    return datasets.get_dataset_spec(dataset).label


def is_folder_dataset(dataset: str) -> bool:
    """Whether the dataset is a folder the user names (kept inside the server's allowed folder); False for a name
    that is not registered."""
    return dataset in datasets.list_datasets() and datasets.get_dataset_spec(dataset).folder


def recipe(model: str, dataset: str) -> dict:
    """The form fields of `model`'s default recipe for `dataset`."""
    r = models.default_recipe(model, dataset_kind(dataset))
    return {k: r[k] for k in RECIPE_FIELDS}


# The fast preset: digitnet's recipe on MNIST (a run of seconds that reaches 99%).
FAST = {"dataset": "mnist", "model": "digitnet", **recipe("digitnet", "mnist")}


@dataclass
class TrainRequest:
    """What the form or an API caller asks for. The defaults are the fast preset: digitnet's recipe on MNIST."""
    dataset: str = FAST["dataset"]
    model: str = FAST["model"]
    epochs: int = FAST["epochs"]
    batch_size: int = FAST["batch_size"]
    lr: float = FAST["lr"]
    optimizer: str = FAST["optimizer"]
    val_split: float = 0.0
    augment: bool = FAST["augment"]
    amp: bool = True  # mixed precision when training on CUDA; ignored on CPU
    max_steps: int = 0  # 0: no step budget
    max_seconds: float = 0.0  # 0: no time budget (beyond the app's cap)
    max_train_images: int = 0  # 0: the whole training set
    folder: str = ""  # imagefolder only: a path inside the app's allowed folder root


def _number(name: str, value: Any, integer: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number (got {value!r})")
    if integer:
        if value != value or value != int(value):
            raise InputError(f"{name} must be a whole number (got {value!r})")
        return int(value)
    return float(value)


def check_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint someone sent (weights-only) and check its weights fit the registered architecture
    (core.checkpoint.check_architecture). Raises InputError with the reason; returns the payload."""
    try:
        payload = ckpt.load_checkpoint(path)
        ckpt.check_architecture(payload)
    except ckpt.CheckpointError as exc:
        raise InputError(f"not a usable checkpoint: {exc}") from None
    return payload


def _hwc(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, H, W) for grey or (N, H, W, 3), as the sample grid draws them."""
    a = images.numpy()
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


def progress_html(fraction: float, text: str) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    return (f'<div class="tv-progress"><progress max="1" value="{fraction:.4f}" style="width:100%"></progress>'
            f'<div class="tv-progress-text">{html.escape(text)}</div></div>')


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else ""


def _clean_history(history: Any) -> list[dict]:
    """The numeric per-epoch entries of a stored history (an uploaded file's history is not trusted to be tidy)."""
    if not isinstance(history, list):
        return []
    return [{k: v for k, v in h.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for h in history if isinstance(h, dict) and isinstance(h.get("epoch"), int)]


class _Dashboard:
    """What the page shows about one run, updated event by event.

    Figures take a fraction of a second to draw, and a run of many short epochs (a few examples of your own
    classes) would spend more time drawing than training: they are drawn at most every `plot_every_s` seconds
    (and at the end), other updates (progress lines, epoch reports) at most every `progress_every_s`; a skipped
    update is an empty dict, and what it held comes with the next one sent.
    """

    def __init__(self, history: list[dict], plot_every_s: float = 0.0, progress_every_s: float = 0.0):
        self.history = list(history)
        self.log: list[str] = []
        self.classes: list[str] = []
        self.latest: dict[str, Any] = {}
        self.plot_every_s, self.progress_every_s = plot_every_s, progress_every_s
        self._plotted = self._progressed = -math.inf
        self._unplotted: dict | None = None  # the last epoch report whose figures were not drawn
        self.live: list[tuple[float, float, float]] = []  # (fractional epoch, running loss, running accuracy)

    def table(self) -> list[list[str]]:
        return [[str(h["epoch"]), _fmt(h.get("train_loss")), _fmt(h.get("train_acc")), _fmt(h.get("val_loss")),
                 _fmt(h.get("val_acc")), _fmt(h.get("test_loss")), _fmt(h.get("test_acc")),
                 _fmt(h.get("seconds"), 1), _fmt(h.get("images_per_s"), 0)] for h in self.history]

    def _set(self, **values: Any) -> dict:
        self.latest.update(values)
        return values

    def start(self, e: dict) -> dict:
        self.classes = e["classes"]
        self.log.append(T.start_line(e))
        out = self._set(progress=progress_html(0.0, f"epoch {e['start_epoch']}/{e['config']['epochs']} starting on "
                                                    f"{e['device']}"),
                        log="\n".join(self.log), table=self.table())
        if self.history:  # resumed: show the curves so far at once
            out.update(self._set(curves=plots.curves(self.history)))
        return out

    def progress(self, e: dict) -> dict:
        self.live.append((e["epoch"] - 1 + e["batch"] / e["batches"], e["train_loss"], e["train_acc"]))
        now = time.monotonic()
        if now - self._progressed < self.progress_every_s:
            return {}
        self._progressed = now
        text = (f"epoch {e['epoch']}/{e['epochs']} · batch {e['batch']}/{e['batches']} · step {e['step']}/"
                f"{e['steps']} · loss {e['loss']:.3f} · {e['images_per_s']:,.0f} img/s · "
                f"epoch ETA {e['eta_s']:.0f} s")
        out = self._set(progress=progress_html(e["batch"] / e["batches"], text))
        if now - self._plotted >= self.plot_every_s:  # the curves move within an epoch
            self._plotted = now
            out.update(self._set(curves=plots.curves(self.history, self.live)))
        return out

    def _figures(self, e: dict) -> dict:
        self._plotted, self._unplotted = time.monotonic(), None
        out = self._set(curves=plots.curves(self.history, self.live))
        if "samples" in e:
            s = e["samples"]
            out.update(self._set(samples=plots.sample_grid(_hwc(s["images"]), s["true"], s["pred"], self.classes),
                                 per_class=plots.per_class_bars(e["per_class"]),
                                 confusion=plots.confusion_matrix(e["confusion"], self.classes)))
        return out

    def epoch(self, e: dict) -> dict:
        self.history.append({k: v for k, v in e.items() if k not in ("confusion", "samples", "type")})
        self.log.append(T.epoch_line(e))
        acc = e.get("test_acc", e.get("val_acc"))
        text = f"epoch {e['epoch']}/{e['epochs']} done" + (f" · accuracy {acc:.2%}" if acc is not None else "")
        now = time.monotonic()
        figures = now - self._plotted >= self.plot_every_s
        if not figures and now - self._progressed < self.progress_every_s:
            self._unplotted = e  # nothing sent now: the next update (the end's at the latest) brings it all
            self.latest.update(progress=progress_html(1.0, text), report=T.summarize(e))
            return {}
        self._progressed = now
        out = self._set(progress=progress_html(1.0, text), table=self.table(), log="\n".join(self.log),
                        report=T.summarize(e))
        if figures:
            out.update(self._figures(e))
        else:
            self._unplotted = e
        return out

    def end(self, e: dict, checkpoint: str | None, resumable: bool) -> dict:
        if self._unplotted is not None:
            self._figures(self._unplotted)
        if e["stopped"]:
            line = (f"stopped; the checkpoint of epoch {e['epoch']} is kept" if checkpoint else
                    "stopped before the first epoch finished; no checkpoint to keep")
        else:
            line = f"done: {e.get('train_seconds', 0.0):.1f} s of training"
        self.log.append(line)
        report = {**T.summarize(e), "checkpoint": checkpoint}
        self._set(progress=progress_html(1.0, line), log="\n".join(self.log), report=report, checkpoint=checkpoint,
                  run={"checkpoint": checkpoint, "resumable": resumable}, table=self.table())
        return {k: self.latest.get(k) for k in OUTPUTS}


class TrainingService:
    """Runs trainings for the web app: one folder per run, a stop flag per visitor session, old runs cleaned up.

    `folder_root` enables the image-folder dataset for paths inside it; `max_seconds` caps every run's training
    time (0: no cap), which keeps a shared Space responsive.
    """

    def __init__(self, runs_root: str | Path | None = None, data_root: str | Path | None = None,
                 folder_root: str | Path | None = None, max_seconds: float = 0.0,
                 plot_every_s: float = PLOT_EVERY_S, progress_every_s: float = PROGRESS_EVERY_S):
        default_runs = Path(tempfile.gettempdir()) / "tinyvision-runs"
        self.runs_root = Path(runs_root or os.environ.get("TINYVISION_RUNS") or default_runs)
        self.data_root = str(data_root) if data_root else None
        self.folder_root = Path(folder_root).resolve() if folder_root else None
        if self.folder_root is not None and not self.folder_root.is_dir():
            raise ValueError(f"allowed folder root {folder_root} is not a folder")
        self.max_seconds = _number("max_seconds", max_seconds, integer=False)
        self.plot_every_s, self.progress_every_s = plot_every_s, progress_every_s
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}
        self._active_dirs: set[Path] = set()
        self._ended: dict[str, float] = {}  # session -> when it ended (its own classes are removed later)
        self._swept = -math.inf

    # -- what the form offers ---------------------------------------------------------------------------------

    @property
    def datasets(self) -> list[str]:
        """The registered datasets this server offers: folder datasets only with an allowed folder root."""
        return [d for d in datasets.list_datasets() if self.folder_root is not None or not is_folder_dataset(d)]

    @property
    def device(self) -> str:
        return T.pick_device().type

    @property
    def amp_available(self) -> bool:
        return self.device == "cuda"

    def device_note(self) -> str:
        if self.device == "cuda":
            return f"Training runs on this machine's GPU ({torch.cuda.get_device_name()}); AMP is available."
        return (f"Training runs on this machine's {self.device.upper()} ({torch.get_num_threads()} threads); "
                "AMP needs a CUDA GPU.")

    def busy(self) -> bool:
        with self._lock:
            return bool(self._stops)

    # -- requests ---------------------------------------------------------------------------------------------

    def _folder(self, folder: Any) -> str:
        if self.folder_root is None:
            raise InputError("training on a folder of images is not enabled on this server (start the app with "
                             "--allow-folders DIR)")
        if not isinstance(folder, str) or not folder.strip():
            raise InputError("give the image folder as a path inside the allowed folder")
        path = (self.folder_root / folder.strip()).resolve()
        if not path.is_relative_to(self.folder_root):
            raise InputError(f"the folder {folder!r} is outside the allowed folder; refused")
        if not path.is_dir():
            raise InputError(f"the folder {folder!r} does not exist inside the allowed folder")
        return str(path)

    def make_config(self, req: TrainRequest, **extra: Any) -> T.TrainConfig:
        """The checked, recipe-completed TrainConfig for a request; InputError says what is out of bounds."""
        if req.dataset not in datasets.list_datasets():  # a folder dataset this server does not allow: _folder says so
            raise InputError(f"unknown dataset {req.dataset!r}; choose one of: {', '.join(self.datasets)}")
        if req.model not in models.list_models():
            raise InputError(f"unknown model {req.model!r}; choose one of: {', '.join(models.list_models())}")
        if req.optimizer not in T.OPTIMIZERS:
            raise InputError(f"unknown optimizer {req.optimizer!r}; choose one of: {', '.join(T.OPTIMIZERS)}")
        for name in ("augment", "amp"):
            if not isinstance(getattr(req, name), bool):
                raise InputError(f"{name} must be true or false (got {getattr(req, name)!r})")
        values = {name: _number(name, getattr(req, name), integer)
                  for name, integer in (("epochs", True), ("batch_size", True), ("lr", False), ("val_split", False),
                                        ("max_steps", True), ("max_seconds", False), ("max_train_images", True))}
        if self.max_seconds:
            asked = values["max_seconds"]
            values["max_seconds"] = self.max_seconds if not asked else min(asked, self.max_seconds)
        data_root = self._folder(req.folder) if is_folder_dataset(req.dataset) else self.data_root
        cfg = T.TrainConfig(dataset=req.dataset, model=req.model, optimizer=req.optimizer, augment=req.augment,
                            amp=None if req.amp else False, data_root=data_root, image_size=FOLDER_IMAGE_SIZE,
                            channels=FOLDER_CHANNELS, **values)
        try:
            return T.resolve_config(replace(cfg, **extra), dataset_kind(req.dataset))
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def _resume_config(self, path: str) -> tuple[T.TrainConfig, list[dict]]:
        """The stored run of a stopped checkpoint, re-checked as if a visitor had asked for it."""
        payload = check_checkpoint(path)
        if "train_state" not in payload:
            raise InputError("this checkpoint ended its run (it holds no optimizer state): nothing to resume; "
                             "start a new run instead")
        c = payload["config"] if isinstance(payload.get("config"), dict) else {}
        asked = {"dataset": payload["dataset"], "model": payload["model"],
                 **{f.name: c[f.name] for f in fields(TrainRequest) if f.name in c and f.name not in ("amp", "folder")}}
        folder = ""
        if is_folder_dataset(payload["dataset"]):
            stored = Path(str(c.get("data_root") or "")).resolve()
            if self.folder_root is None or not stored.is_relative_to(self.folder_root):
                raise InputError("this checkpoint was trained on a folder this server does not allow")
            folder = str(stored.relative_to(self.folder_root))
        # The recipe details the form does not show travel with the run, so the resumed run replays it exactly.
        kept = {k: c[k] for k in ("schedule", "weight_decay", "label_smoothing", "momentum", "nesterov", "seed",
                                  "eval_every", "model_kwargs", "tta_shift") if k in c}
        if not isinstance(kept.get("seed", 0), int) or not 0 <= kept.get("seed", 0) < 2 ** 31 or \
                not isinstance(kept.get("nesterov", True), bool):
            raise InputError("this checkpoint's stored run settings are invalid (seed, nesterov)")
        req = TrainRequest(**asked, amp=c.get("amp") is not False, folder=folder)
        return self.make_config(req, resume=str(path), **kept), _clean_history(payload.get("history"))

    # -- runs -------------------------------------------------------------------------------------------------

    def _cleanup(self) -> None:
        """Remove run folders older than RUN_MAX_AGE_S, and the oldest beyond RUNS_KEPT (never a running one)."""
        if not self.runs_root.is_dir():
            return
        runs = sorted((p for p in self.runs_root.glob("run-*") if p.is_dir() and p not in self._active_dirs),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        now = time.time()
        for i, run in enumerate(runs):
            if i >= RUNS_KEPT - 1 or now - run.stat().st_mtime > RUN_MAX_AGE_S:
                shutil.rmtree(run, ignore_errors=True)

    def _new_run_dir(self) -> Path:
        self.runs_root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._cleanup()
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.runs_root))
            self._active_dirs.add(run_dir)
        return run_dir

    def run(self, req: TrainRequest, session: str = "", resume_from: str | None = None) -> Iterator[dict]:
        """Train as asked, yielding update dicts (keys from OUTPUTS); the last one holds every key.

        With `resume_from` (a stopped run's checkpoint) the stored run continues and `req` is not used. Stop with
        `stop(session)`: the epoch in progress is dropped and the last completed epoch's checkpoint is kept.
        """
        cfg, history = self._resume_config(resume_from) if resume_from else (self.make_config(req), [])
        yield from self._stream(cfg, history, session)

    def run_own(self, examples: ExampleSet, init_from: str | Path | None, fine_tune: bool = True,
                session: str = "") -> Iterator[dict]:
        """Teach a model a visitor's own classes (core.own_classes), streaming the same updates as `run`."""
        if not isinstance(fine_tune, bool):
            raise InputError(f"fine_tune must be true or false (got {fine_tune!r})")
        cfg = examples.train_config(init_from, fine_tune)
        if self.max_seconds:
            cfg = replace(cfg, max_seconds=self.max_seconds)
        yield from self._stream(cfg, [], session)

    def _stream(self, cfg: T.TrainConfig, history: list[dict], session: str) -> Iterator[dict]:
        dash = _Dashboard(history, self.plot_every_s, self.progress_every_s)
        run_dir = self._new_run_dir()
        cfg.out = str(run_dir / f"{cfg.dataset}-{cfg.model}.pt")
        stop = threading.Event()
        with self._lock:
            self._stops[session] = stop

        def release() -> None:  # when the run is really over, even if its caller left before
            with self._lock:
                if self._stops.get(session) is stop:
                    del self._stops[session]
                self._active_dirs.discard(run_dir)

        def updates() -> Iterator[dict]:
            # Run in the training's own lower-priority thread, so that drawing the figures takes no CPU from the
            # predictions either.
            with closing(T.train(cfg, should_stop=stop.is_set)) as events:
                for event in events:
                    kind = event["type"]
                    if kind != "end":
                        update = getattr(dash, kind)(event)
                        if update:
                            yield update
                        continue
                    yield dash.end(event, event["checkpoint"], event["stopped"] and event["resumable"])

        try:
            with closing(in_background(updates(), on_end=release)) as stream:
                yield from stream
        except FloatingPointError as exc:
            raise InputError(f"training diverged: {exc}. The last completed epoch's checkpoint is kept.") from None
        except (D.DataError, ValueError, torch.OutOfMemoryError) as exc:
            raise InputError(str(exc).strip().splitlines()[0]) from None

    def stop(self, session: str = "") -> bool:
        """Ask the session's running training to stop between batches; False when it has none."""
        with self._lock:
            flag = self._stops.get(session)
        if flag is None:
            return False
        flag.set()
        return True

    # -- a visitor's own classes ------------------------------------------------------------------------------

    @property
    def classes_root(self) -> Path:
        return self.runs_root / "classes"

    def examples(self, session: str, kind: str) -> ExampleSet:
        """The visitor's own classes of `kind` ("sketch" or "photo"), in their session's folder."""
        if kind not in OWN_KINDS:
            raise InputError(f"the kind of examples is one of: {', '.join(OWN_KINDS)} (got {kind!r})")
        with self._lock:
            if time.monotonic() - self._swept >= SWEEP_EVERY_S:  # a walk of every visitor's folder: not per click
                self._swept = time.monotonic()
                sweep_sessions(self.classes_root, self._ended)
        name = session if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", session or "") else "shared"
        return ExampleSet(self.classes_root / name / kind, kind)

    def session_ended(self, session: str) -> None:
        """Remember that a visitor left; their classes are removed an hour later (core.own_classes)."""
        with self._lock:
            self._ended[session] = time.time()

    # -- a visitor's own models -------------------------------------------------------------------------------

    def use_checkpoint(self, path: str | None, session_models: dict | None) -> tuple[dict, str, str, str]:
        """Offer a checkpoint in the predictor tabs for one session: (new session models, kind, key, message)."""
        if not path:
            raise InputError("there is no checkpoint yet: train (at least one epoch) or upload one first")
        try:
            predictor = Predictor.load(path)
        except ckpt.CheckpointError as exc:
            raise InputError(f"this checkpoint cannot be used ({exc}); runs are kept {RUN_MAX_AGE_S // 3600} hours"
                             ) from None
        return _offer(predictor, session_models)

    def adopt_upload(self, path: str | None, session_models: dict | None) -> tuple[dict, str, str, dict, str]:
        """Check an uploaded checkpoint, keep a copy as this session's run and offer it in the predictor tabs.

        Returns (session models, kind, key, run state, message); a bad file is an InputError and nothing of it runs.
        """
        if not path:
            raise InputError("no file was uploaded")
        payload = check_checkpoint(path)
        try:
            predictor = Predictor.from_payload(path, payload)
        except ckpt.CheckpointError as exc:
            raise InputError(f"not a usable checkpoint: {exc}") from None
        run_dir = self._new_run_dir()
        try:
            copy = run_dir / f"uploaded-{payload['dataset']}-{payload['model']}.pt"
            shutil.copyfile(path, copy)
        finally:
            with self._lock:
                self._active_dirs.discard(run_dir)
        own, kind, key, message = _offer(replace(predictor, path=copy), session_models)
        return own, kind, key, {"checkpoint": str(copy), "resumable": "train_state" in payload}, message

    def onnx_file(self, path: str | None) -> str:
        """A run's checkpoint (or an uploaded copy) as ONNX (core.export), written beside it once."""
        if not path:
            raise InputError("there is no checkpoint yet: train (at least one epoch) or upload one first")
        out = Path(path).with_suffix(".onnx")
        try:
            if not (out.is_file() and out.stat().st_mtime >= Path(path).stat().st_mtime):
                export_onnx(path, out)
        except (ckpt.CheckpointError, FileNotFoundError) as exc:
            raise InputError(f"this checkpoint cannot be exported ({exc}); runs are kept "
                             f"{RUN_MAX_AGE_S // 3600} hours") from None
        except ExportError as exc:
            raise InputError(str(exc)) from None
        return str(out)


def lower_thread_priority(niceness: int) -> bool:
    """Make the calling thread (and the threads it starts, such as torch's OpenMP workers) `niceness` nicer;
    False where that is not possible. Linux only: elsewhere the call would renice the whole process."""
    if not sys.platform.startswith("linux") or niceness <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError:
        return False
    return True


def in_background(events: Iterator[dict], niceness: int = TRAIN_NICENESS,
                  on_end: Callable[[], None] | None = None) -> Iterator[dict]:
    """Step the generator `events` in its own lower-priority thread; yield its events (and raise its error) here.

    The thread is new for each run, so the priority never sticks to a thread that later serves predictions. It
    runs one step each time the caller asks for the next event, exactly as if the caller iterated `events` itself:
    a run never gets ahead of what its page has shown, so Stop keeps the epoch the page last reported. A caller that
    leaves (the page closed; Gradio closes the stream from its event loop) returns at once, and the thread closes
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
        worker.submit(events.close)  # nothing to do once the run is over; when the caller left, it ends the run
        ending = worker.submit(on_end) if on_end is not None else None
        worker.shutdown(wait=False)
        if ending is not None and not left:
            ending.result()


def _offer(predictor: Predictor, session_models: dict | None) -> tuple[dict, str, str, str]:
    """Add a model to one session's own models (once per file, the oldest dropped beyond SESSION_MODELS_KEPT)."""
    own = dict(session_models or {})
    key = next((k for k, p in own.items() if str(p.path) == str(predictor.path)), None)
    if key is None:
        number = max((int(k.rsplit("-", 1)[1]) for k in own), default=0) + 1
        key = f"yours-{number}"
        own[key] = predictor
        while len(own) > SESSION_MODELS_KEPT:
            own.pop(next(iter(own)))
    kind = kind_of(predictor)
    tab = "Draw a digit" if kind == DIGITS else "Classify a photo"
    return own, kind, key, (f"**{predictor.name}** is now selected in the *{tab}* tab — for you only; "
                            "other visitors keep the shipped models.")
