"""A visitor's own models: a finished run or an uploaded checkpoint, offered in the predictor tabs
for that visitor's session only, and exported to ONNX on request."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from .. import checkpoint as ckpt
from ..export import ExportError, export_onnx
from ..predictor import Predictor
from ..preparation import InputError
from .runs import RUN_MAX_AGE_S, RunFolders
from .shelf import tab_of
from .texts import offered
from .training_requests import check_checkpoint

__all__ = ["VisitorModels", "offer", "SESSION_MODELS_KEPT"]

SESSION_MODELS_KEPT = 4  # a visitor's own models held in memory at once
NO_CHECKPOINT = "there is no checkpoint yet: train (at least one epoch) or upload one first"


def offer(predictor: Predictor, own: dict | None) -> tuple[dict, str, str, str]:
    """Add a model to one session's own models (once per file, the oldest dropped beyond
    SESSION_MODELS_KEPT): (the session's models, the model's tab, its key, a note)."""
    own = dict(own or {})
    key = next((k for k, p in own.items() if str(p.path) == str(predictor.path)), None)
    if key is None:
        number = max((int(k.rsplit("-", 1)[1]) for k in own), default=0) + 1
        key = f"yours-{number}"
        own[key] = predictor
        while len(own) > SESSION_MODELS_KEPT:
            own.pop(next(iter(own)))
    tab = tab_of(predictor)
    return own, tab, key, offered(predictor.name, tab)


class VisitorModels:
    """Runs' checkpoints and uploads made into a visitor's models; uploads are copied into a run
    folder of their own (`folders`)."""

    def __init__(self, folders: RunFolders):
        self.folders = folders

    def use(self, path: str | None, own: dict | None) -> tuple[dict, str, str, str]:
        """Offer a run's checkpoint in the predictor tabs for one session (`offer`)."""
        if not path:
            raise InputError(NO_CHECKPOINT)
        try:
            predictor = Predictor.load(path)
        except ckpt.CheckpointError as exc:
            raise InputError(f"this checkpoint cannot be used ({exc}); runs are kept "
                             f"{RUN_MAX_AGE_S // 3600} hours") from None
        return offer(predictor, own)

    def adopt(self, path: str | None, own: dict | None) -> tuple[dict, str, str, dict, str]:
        """Check an uploaded checkpoint, keep a copy as this session's run and offer it in the
        predictor tabs: (session models, tab, key, run state, note). A bad file is an InputError
        and nothing of it runs."""
        if not path:
            raise InputError("no file was uploaded")
        payload = check_checkpoint(path)
        try:
            predictor = Predictor.from_payload(path, payload)
        except ckpt.CheckpointError as exc:
            raise InputError(f"not a usable checkpoint: {exc}") from None
        run_dir = self.folders.new()
        try:
            copy = run_dir / f"uploaded-{payload['dataset']}-{payload['model']}.pt"
            shutil.copyfile(path, copy)
        finally:
            self.folders.release(run_dir)
        own, tab, key, note = offer(replace(predictor, path=copy), own)
        return own, tab, key, {"checkpoint": str(copy), "resumable": "train_state" in payload}, note

    def onnx(self, path: str | None) -> str:
        """A run's checkpoint (or an uploaded copy) as ONNX (core.export), written beside it
        once."""
        if not path:
            raise InputError(NO_CHECKPOINT)
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
