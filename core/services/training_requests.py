"""What a visitor may ask the trainer for, checked on the server whoever sends it.

The form's fields are core.config's (`FORM`): `TrainRequest` is derived from those declarations,
with the fast preset as its defaults and an image folder's path beside them. `check_request`
turns a request into a run's config (bounds, choices, the allowed folder, the server's time cap);
`resume_config` re-checks a stopped run's stored config as if a visitor had asked for it.
"""
from __future__ import annotations

from dataclasses import field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt
from .. import datasets, models
from ..config import FORM, TrainConfig, check, resolve_config
from ..preparation import InputError
from .dashboard import clean_history
from .settings import ServerSettings

__all__ = ["TrainRequest", "FAST", "RECIPE_FIELDS", "recipe", "dataset_label", "dataset_kind",
           "is_folder_dataset", "offered_datasets", "check_request", "resume_config",
           "check_checkpoint"]

# Folder datasets are read as 32x32 RGB, the photo models' input.
FOLDER_IMAGE_SIZE, FOLDER_CHANNELS = 32, 3
# The form's fields a model's recipe fills in when the model or dataset changes.
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "optimizer", "augment")
# The recipe details the form does not show: they travel with a resumed run, so it replays exactly.
# (Its architecture settings are the weights' own, never the stored config's: see resume_config.)
KEPT_ON_RESUME = ("schedule", "weight_decay", "label_smoothing", "momentum", "nesterov", "seed",
                  "eval_every", "tta_shift", "pen_jitter")


def dataset_kind(dataset: str) -> str:
    """The input kind of a dataset as the Train tab reads it (folders as FOLDER_CHANNELS-channel
    images)."""
    return datasets.get_dataset_spec(dataset).kind_for(FOLDER_CHANNELS)


def dataset_label(dataset: str) -> str:
    return datasets.get_dataset_spec(dataset).label


def is_folder_dataset(dataset: str) -> bool:
    """Whether the dataset is a folder the user names (kept inside the server's allowed folder);
    False for a name that is not registered."""
    return dataset in datasets.list_datasets() and datasets.get_dataset_spec(dataset).folder


def offered_datasets(settings: ServerSettings) -> list[str]:
    """The registered datasets the server offers: folder datasets only with an allowed folder."""
    return [d for d in datasets.list_datasets()
            if settings.folder_root is not None or not is_folder_dataset(d)]


def recipe(model: str, dataset: str) -> dict:
    """The form fields of `model`'s default recipe for `dataset`."""
    r = models.default_recipe(model, dataset_kind(dataset))
    return {k: r[k] for k in RECIPE_FIELDS}


# The fast preset: digitnet's recipe on MNIST (a run of seconds that reaches 99%).
FAST = {"dataset": "mnist", "model": "digitnet", **recipe("digitnet", "mnist"), "amp": True}
_CONFIG_FIELDS = {f.name: f for f in fields(TrainConfig)}
TrainRequest = make_dataclass(
    "TrainRequest",
    [(name, _CONFIG_FIELDS[name].type, field(default=FAST.get(name, _CONFIG_FIELDS[name].default)))
     for name in FORM] + [("folder", "str", field(default=""))])
TrainRequest.__doc__ = (
    "What the form or an API caller asks for: the settings of core.config.FORM (the fast preset "
    "by default) and, for an image folder, its path inside the server's allowed folder.")
TrainRequest.__module__ = __name__


def _folder(settings: ServerSettings, folder: Any) -> str:
    if settings.folder_root is None:
        raise InputError("training on a folder of images is not enabled on this server (start "
                         "the app with --allow-folders DIR)")
    if not isinstance(folder, str) or not folder.strip():
        raise InputError("give the image folder as a path inside the allowed folder")
    path = (settings.folder_root / folder.strip()).resolve()
    if not path.is_relative_to(settings.folder_root):
        raise InputError(f"the folder {folder!r} is outside the allowed folder; refused")
    if not path.is_dir():
        raise InputError(f"the folder {folder!r} does not exist inside the allowed folder")
    return str(path)


def check_request(req: Any, settings: ServerSettings, **extra: Any) -> TrainConfig:
    """The checked, recipe-completed TrainConfig for a request; InputError says what is out of
    bounds. `extra` sets config fields the form does not offer (a resumed run's)."""
    if req.dataset not in datasets.list_datasets():  # a folder dataset the server does not offer:
        offered = ", ".join(offered_datasets(settings))  # _folder says so
        raise InputError(f"unknown dataset {req.dataset!r}; choose one of: {offered}")
    try:
        values = {name: check(name, getattr(req, name)) for name in FORM}
    except ValueError as exc:
        raise InputError(str(exc)) from None
    folder = is_folder_dataset(req.dataset)
    data_root = _folder(settings, req.folder) if folder else settings.data_root
    cfg = TrainConfig(**values, data_root=data_root, image_size=FOLDER_IMAGE_SIZE,
                      channels=FOLDER_CHANNELS)
    try:
        return resolve_config(replace(cfg, **extra), dataset_kind(req.dataset))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def check_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint someone sent (weights-only) and check its weights fit the registered
    architecture (core.checkpoint.check_architecture). Raises InputError with the reason; returns
    the payload."""
    try:
        payload = ckpt.load_checkpoint(path)
        ckpt.check_architecture(payload)
    except ckpt.CheckpointError as exc:
        raise InputError(f"not a usable checkpoint: {exc}") from None
    return payload


def resume_config(path: str, settings: ServerSettings,
                  folder: str = "") -> tuple[TrainConfig, list[dict]]:
    """The stored run of a stopped checkpoint, re-checked as if a visitor had asked for it, and its
    history so far. The model is built as its weights say (the payload's `model_kwargs`, checked
    against the weights), whatever the stored config asks; a run on an image folder continues on
    `folder` (inside the allowed folder), as checkpoints keep no server paths."""
    payload = check_checkpoint(path)
    if "train_state" not in payload:
        raise InputError("this checkpoint ended its run (it holds no optimizer state): nothing to "
                         "resume; start a new run instead")
    c = payload["config"] if isinstance(payload.get("config"), dict) else {}
    asked = {name: c[name] for name in FORM if name in c}
    asked.update(dataset=payload["dataset"], model=payload["model"], amp=c.get("amp") is not False)
    if is_folder_dataset(payload["dataset"]) and not (isinstance(folder, str) and folder.strip()):
        raise InputError("this run trained on an image folder: name that folder (inside the "
                         "allowed folder) to resume it")
    try:
        kept = {k: check(k, c[k]) for k in KEPT_ON_RESUME if k in c}
    except ValueError as exc:
        raise InputError(f"this checkpoint's stored run settings are invalid: {exc}") from None
    cfg = check_request(TrainRequest(**asked, folder=folder), settings, resume=str(path),
                        model_kwargs=dict(payload["model_kwargs"]), **kept)
    return cfg, clean_history(payload.get("history"))
