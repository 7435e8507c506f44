"""A visitor's own models: a finished run or an uploaded checkpoint, offered in the predictor tabs
for that visitor's session only, and exported to ONNX on request.

Memory is bounded: a session holds at most SESSION_MODELS_KEPT models and SESSION_MODELS_BYTES of
weights (its oldest dropped first), and all sessions together at most MODELS_MAX_BYTES (past it an
upload is refused until others' models are let go). A model is counted from the moment it is
loaded until it is garbage: the page's state dropping it (the session ending, or its time to live)
is what frees it. An uploaded file is copied into a run folder of the session's (RunFolders'
quotas), once per file content.
"""
from __future__ import annotations

import gc
import hashlib
import shutil
import threading
import weakref
from pathlib import Path

from .. import checkpoint as ckpt
from ..export import ExportError, onnx_file
from ..predictor import Predictor
from ..preparation import InputError
from .run_folders import RUN_MAX_AGE_S, RUNS_PER_SESSION, RunFolders
from .shelf import OWN_PREFIX, tab_of
from .texts import offered
from .training_requests import check_checkpoint

__all__ = ["VisitorModels", "offer", "model_bytes", "SESSION_MODELS_KEPT", "SESSION_MODELS_BYTES",
           "MODELS_MAX_BYTES", "SESSION_MODELS_TTL_S"]

SESSION_MODELS_KEPT = 4  # a visitor's own models held in memory at once
SESSION_MODELS_BYTES = 512 << 20  # their weights together (two AlexNets)
MODELS_MAX_BYTES = 2 << 30  # every visitor's models together
SESSION_MODELS_TTL_S = 2 * 3600  # the page's state of a visitor's models is dropped after this
NO_CHECKPOINT = "there is no checkpoint yet: train (at least one epoch) or upload one first"
RUN_GONE = (f"this run's files are gone (a visitor keeps their {RUNS_PER_SESSION} newest runs and "
            f"uploads, for {RUN_MAX_AGE_S // 3600} hours): train again or upload the checkpoint")
MODELS_FULL = ("the server holds as many visitors' models as it can right now; try again in a few "
               "minutes")


def model_bytes(predictor: Predictor) -> int:
    """The bytes of a loaded model's weights (its stacked copy too, for an ensemble)."""
    nets = {id(predictor.model): predictor.model, id(predictor.net): predictor.net}
    return sum(t.numel() * t.element_size() for net in nets.values()
               for t in [*net.parameters(), *net.buffers()])


def _held(own: dict | None, path: str | Path) -> Predictor | None:
    """The session's model read from the file at `path`, if it holds one."""
    return next((p for p in (own or {}).values() if str(p.path) == str(path)), None)


def offer(predictor: Predictor, own: dict | None,
          max_bytes: int = SESSION_MODELS_BYTES) -> tuple[dict, str, str, str]:
    """Add a model to one session's own models (once per file, the oldest dropped beyond
    SESSION_MODELS_KEPT or `max_bytes`): (the session's models, the model's tab, its key, a
    note)."""
    own = dict(own or {})
    key = next((k for k, p in own.items() if str(p.path) == str(predictor.path)), None)
    if key is None:
        number = max((int(k.rsplit("-", 1)[1]) for k in own), default=0) + 1
        key = f"{OWN_PREFIX}{number}"
        own[key] = predictor
        while len(own) > 1 and (len(own) > SESSION_MODELS_KEPT or
                                sum(map(model_bytes, own.values())) > max_bytes):
            own.pop(next(iter(own)))
    tab = tab_of(predictor)
    return own, tab, key, offered(predictor.name, tab)


class VisitorModels:
    """Runs' checkpoints and uploads made into a visitor's models; uploads are copied into a run
    folder of the session's own (`folders`)."""

    def __init__(self, folders: RunFolders, max_bytes: int = MODELS_MAX_BYTES):
        self.folders, self.max_bytes = folders, max_bytes
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # id of a live Predictor -> its bytes
        self._copies: dict[tuple[str, str], Path] = {}  # (session, file digest) -> its copy

    def held_bytes(self) -> int:
        with self._lock:
            return sum(self._held.values())

    def load(self, path: str | Path, payload: dict | None = None) -> Predictor:
        """A Predictor, counted while it lives; InputError (MODELS_FULL) when there is no room."""
        try:
            predictor = (Predictor.load(path) if payload is None
                         else Predictor.from_payload(path, payload))
        except ckpt.CheckpointError as exc:
            raise InputError(f"not a usable checkpoint: {exc}") from None
        size = model_bytes(predictor)
        if self.held_bytes() + size > self.max_bytes:
            gc.collect()  # models let go of but not yet freed (reference cycles)
            if self.held_bytes() + size > self.max_bytes:
                raise InputError(MODELS_FULL)
        key = id(predictor)
        with self._lock:
            self._held[key] = size
        weakref.finalize(predictor, self._forget, key)
        return predictor

    def _forget(self, key: int) -> None:
        with self._lock:
            self._held.pop(key, None)

    def use(self, path: str | None, own: dict | None,
            session: str = "") -> tuple[dict, str, str, str]:
        """Offer a run's checkpoint in the predictor tabs for one session (`offer`)."""
        if not path:
            raise InputError(NO_CHECKPOINT)
        if not Path(path).is_file():
            raise InputError(RUN_GONE)
        self.folders.touch(session)
        return offer(_held(own, path) or self.load(path), own)

    def adopt(self, path: str | None, own: dict | None,
              session: str = "") -> tuple[dict, str, str, dict, str]:
        """Check an uploaded checkpoint, keep a copy as this session's run and offer it in the
        predictor tabs: (session models, tab, key, run state, note). A bad file is an InputError
        and nothing of it runs."""
        if not path:
            raise InputError("no file was uploaded")
        payload = check_checkpoint(path)
        digest = _digest(path)
        with self._lock:
            copy = self._copies.get((session, digest))
        known = copy is not None and copy.is_file()
        predictor = _held(own, copy) if known else None
        if predictor is None:
            predictor = self.load(path, payload)  # room in memory first, then on disk
        if not known:
            run_dir = self.folders.new(session)
            try:
                copy = run_dir / f"uploaded-{payload['dataset']}-{payload['model']}.pt"
                shutil.copyfile(path, copy)
            finally:
                self.folders.release(run_dir)
            with self._lock:
                self._copies = {k: v for k, v in self._copies.items() if v.is_file()}
                self._copies[(session, digest)] = copy
        else:
            self.folders.touch(session)
        predictor.path = copy
        own, tab, key, note = offer(predictor, own)
        return own, tab, key, {"checkpoint": str(copy), "resumable": "train_state" in payload}, note

    def onnx(self, path: str | None) -> str:
        """A run's checkpoint (or an uploaded copy) as ONNX (core.export), written beside it
        once."""
        if not path:
            raise InputError(NO_CHECKPOINT)
        if not Path(path).is_file():
            raise InputError(RUN_GONE)
        try:
            out = onnx_file(path, Path(path).with_suffix(".onnx"))
        except (ckpt.CheckpointError, FileNotFoundError):
            raise InputError(RUN_GONE) from None
        except ExportError as exc:
            raise InputError(str(exc)) from None
        return str(out)


def _digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
