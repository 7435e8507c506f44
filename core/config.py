"""A training run's settings, each declared once: its default, bounds, choices and help.

`TrainConfig` is what core.train runs. Every field is an `option(...)`, and what is said about it
anywhere else is derived from that declaration: the command line of `python -m core.train`
(`add_arguments`), the checks every config goes through whoever sent it (`check`), the bounds the
web form shows and the form's fields (`FORM`, `LIMITS`). Unset fields (None) take the model's
recipe for the data's kind (`resolve_config`).

    cfg = resolve_config(TrainConfig(dataset="mnist", epochs=2), "sketch")
"""
from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from . import datasets, kinds, models
from .checkpoint import load_checkpoint

__all__ = ["TrainConfig", "Option", "option", "option_of", "OPTIMIZERS", "SCHEDULES", "LIMITS",
           "FORM", "check", "recorded", "resolve_config", "add_arguments", "config_from_args"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")
PEN_JITTERS = (0.0, 0.05, 0.1, 0.15, 0.2)


@dataclass(frozen=True)
class Option:
    """What is declared about a setting beside its default."""
    help: str
    bounds: tuple[float, float] | None = None  # enforced on every config, whoever sends it
    zero: str | None = None  # what 0 means, where it means something else than zero
    choices: tuple | Callable[[], list] | None = None  # the allowed values (or who lists them)
    unset: str | None = None  # what None means where a run may keep it (else a recipe fills it)
    flag: str | None = None  # the command line's flag when it is not --<name>; "" for none
    cli_values: dict[str, Any] | None = None  # command-line words -> values, where they differ
    metavar: str | None = None
    label: str | None = None  # the web form's label: the fields the form offers have one
    path: bool = False  # a file or folder of this machine: a run's record keeps its name only

    @property
    def allowed(self) -> tuple | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def described(self) -> str:
        """The help with the meaning of 0 and of an unset value."""
        extra = [" to ".join(map(_number, self.bounds))] if self.bounds else []
        extra += [f"0: {self.zero}"] if self.zero else []
        extra += [f"default: {self.unset}"] if self.unset else []
        return self.help + (f" ({'; '.join(extra)})" if extra else "")

    def form_label(self) -> str:
        return self.label + (f" (0 = {self.zero})" if self.zero else "")


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:g}"


def option(default: Any = None, help: str = "", **declared: Any) -> Any:
    """A TrainConfig field: its default and its `Option`."""
    meta = {"option": Option(help, **declared)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


_RECIPE = "the model's recipe"


@dataclass
class TrainConfig:
    # What to train.
    dataset: str = option("mnist", "the dataset to train on", choices=datasets.list_datasets,
                          label="Dataset")
    model: str = option("digitnet", "one of the registered models", choices=models.list_models,
                        unset="the fast net for the dataset's kind of input", label="Model")
    # The recipe: None takes the model's recipe for the data's kind (core.models).
    epochs: int | None = option(None, "passes over the training images", bounds=(1, 200),
                                unset=_RECIPE, label="Epochs")
    batch_size: int | None = option(None, "images per optimizer step, across all processes",
                                    bounds=(1, 4096), unset=_RECIPE, label="Batch size")
    lr: float | None = option(None, "the peak learning rate", bounds=(1e-6, 20.0), unset=_RECIPE,
                              label="Learning rate")
    optimizer: str | None = option(None, "the optimizer", choices=OPTIMIZERS, unset=_RECIPE,
                                   label="Optimizer")
    schedule: str | None = option(None, "the learning rate's schedule", choices=SCHEDULES,
                                  unset=_RECIPE)
    weight_decay: float | None = option(None,
                                        "weight decay, of weights only (not of norms and biases)",
                                        bounds=(0.0, 0.1), unset=_RECIPE)
    momentum: float | None = option(None, "SGD's momentum", bounds=(0.0, 0.999), unset=_RECIPE)
    nesterov: bool = option(True, "Nesterov momentum (SGD)", flag="")
    label_smoothing: float | None = option(None, "label smoothing", bounds=(0.0, 0.5),
                                           unset=_RECIPE)
    val_split: float = option(0.0, "fraction of train held out for validation", bounds=(0.0, 0.5),
                              label="Validation split")
    augment: bool | None = option(None, "vary the training batches as the data's kind says",
                                  unset=_RECIPE, label="Augmentation")
    amp: bool | None = option(None, "mixed precision, on CUDA only", unset="auto: on when on CUDA",
                              cli_values={"auto": None, "on": True, "off": False},
                              label="Mixed precision (AMP)")
    # Budgets: a run stops at the first one reached, and still evaluates.
    max_steps: int = option(0, "stop after this many optimizer steps", bounds=(0, 10_000_000),
                            zero="no limit", label="Max steps")
    max_seconds: float = option(0.0, "stop after this much training time", bounds=(0.0, 86_400.0),
                                zero="no limit", label="Max seconds of training")
    max_train_images: int = option(0, "train on a seeded subset of this many images",
                                   bounds=(0, 10_000_000), zero="all",
                                   label="Train on at most N images")
    pen_jitter: float = option(0.0, "pen-stroke datasets: move each stroke of a training rendering "
                               "on its own, by up to this share of the digit's size (each value "
                               "renders the training set once more, so a few are offered)",
                               choices=PEN_JITTERS, zero="strokes unmoved")
    tta_shift: int | None = option(None, "photos: also average views shifted by this many pixels",
                                   bounds=(0, 4), zero="flip only", unset=_RECIPE)
    test: bool = option(True, "evaluate on the test split", flag="")
    eval_every: int = option(1, "evaluate every N epochs (always after the last)", bounds=(1, 200))
    seed: int = option(0, "seeds the split, the shuffling and the augmentation",
                       bounds=(0, 2**31 - 1))
    # Where it runs, and the data.
    device: str | None = option(None, "cuda, mps or cpu", unset="the best available")
    data_root: str | None = option(None, "data folder", unset="$TINYVISION_DATA or ./data",
                                   path=True)
    download: bool = option(True, "fetch a missing dataset")
    # Image folders: how their images are read (None: the --init-from checkpoint's input, else
    # the folder's record or its channels, core.kinds).
    kind: str | None = option(
        None, "image folders: how to read the images: sketch (dark strokes on a light ground: "
              "ink found, fitted and centred), greyscale or photo", choices=kinds.NAMES,
        unset="the folder's record, else photo for 3 channels, greyscale for 1")
    image_size: int | None = option(None, "image folders: resize images to this size",
                                    bounds=(8, 128), unset="the --init-from checkpoint's, else 28 "
                                    "for sketches and greyscale, 32 for photos")
    channels: int | None = option(None, "image folders: 1 (grey) or 3 (RGB)", choices=(1, 3),
                                  unset="the --init-from checkpoint's, else by kind")
    # Where it starts from: a checkpoint's features with a new output layer (core.transfer), and
    # another checkpoint's answers to learn as well (core.distill).
    init_from: str | None = option(
        None, "start from this checkpoint's weights with a new output layer for the data's "
              "classes (same model; the default model then is the checkpoint's) and the model's "
              "fine-tuning recipe", metavar="CHECKPOINT", path=True)
    freeze_backbone: bool = option(False, "with --init-from: train only the new output layer")
    teacher: str | None = option(None, "also learn this checkpoint's answers on the images it "
                                       "reads right (same classes and input)", metavar="CHECKPOINT",
                                 path=True)
    distill_weight: float = option(1.0, "with --teacher: the weight of its answers",
                                   bounds=(0.0, 10.0))
    pretrained: bool = option(False, "alexnet: start from ImageNet weights (online)")
    model_kwargs: dict = option({}, 'extra constructor arguments, e.g. \'{"widths": [32, 64, '
                                    '128]}\'', metavar="JSON")
    # The run's files.
    out: str | None = option(None, "checkpoint path", unset="runs/<dataset>-<model>.pt", path=True)
    resume: str | None = option(None, "continue from this checkpoint", path=True)


def option_of(name: str) -> Option:
    return _FIELDS[name].metadata["option"]


_FIELDS: dict[str, Field] = {f.name: f for f in fields(TrainConfig)}
_TYPES = get_type_hints(TrainConfig)
# Bounds enforced on every config, whoever sends it (command line, web form, API).
LIMITS = {name: option_of(name).bounds for name in _FIELDS if option_of(name).bounds}
# The settings the web form offers, in its order.
FORM = tuple(name for name in _FIELDS if option_of(name).label)


def recorded(cfg: TrainConfig) -> dict:
    """A config as a run's checkpoint and report keep it: files and folders by their names only
    (where they were on the machine that trained is nobody else's business, and a server's folders
    may name a visitor's session)."""
    values = asdict(cfg)
    for name, value in values.items():
        if option_of(name).path and value:
            values[name] = Path(value).name
    return values


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _base_type(name: str) -> type:
    """int for `int | None`, and so on."""
    hint = _TYPES[name]
    args = [a for a in getattr(hint, "__args__", ()) if a is not type(None)]
    return args[0] if args else hint


def check(name: str, value: Any) -> Any:
    """`value` checked as setting `name`, whole numbers made int; ValueError says what is wrong."""
    opt, kind = option_of(name), _base_type(name)
    if value is None:
        if _FIELDS[name].default is None:
            return None
        raise ValueError(f"{name} must be set")
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false (got {value!r})")
    elif kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number (got {value!r})")
        if kind is int and not math.isnan(value) and value != int(value):
            raise ValueError(f"{name} must be a whole number (got {value!r})")
        lo, hi = opt.bounds or (-math.inf, math.inf)
        if math.isnan(value) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a number between {lo} and {hi} (got {value!r})")
        value = kind(value)
    elif kind is str and isinstance(value, os.PathLike):
        value = os.fspath(value)
    elif not isinstance(value, kind):
        raise ValueError(f"{name} must be {kind.__name__} (got {type(value).__name__})")
    allowed = opt.allowed
    if allowed is not None and value not in allowed:
        what = "input kind" if name == "kind" else name.replace("_", " ")
        raise ValueError(f"unknown {what} {value!r}; choose one of: "
                         f"{', '.join(map(str, allowed))}")
    return value


def resolve_config(cfg: TrainConfig, kind: str) -> TrainConfig:
    """Fill unset fields from the model's recipe for data of this input kind (its fine-tuning recipe
    when starting from a checkpoint) and check every setting; returns a new config."""
    models.get_spec(cfg.model)
    datasets.get_dataset_spec(cfg.dataset)
    recipe = (models.transfer_recipe(cfg.model, kind) if cfg.init_from
              else models.default_recipe(cfg.model, kind))
    values = asdict(cfg)
    for key, value in recipe.items():
        if values.get(key) is None:
            values[key] = value
    unfilled = [name for name, value in values.items()
                if value is None and option_of(name).unset == _RECIPE]
    if unfilled:
        raise ValueError(f"{cfg.model}'s recipe for {kind} data does not set {', '.join(unfilled)}")
    return TrainConfig(**{name: check(name, value) for name, value in values.items()})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One command-line flag per setting (those with a flag), from its declaration."""
    for name, f in _FIELDS.items():
        opt = option_of(name)
        if opt.flag == "":
            continue
        kind, default = _base_type(name), _default(f)
        if name == "model":
            default = None  # the command line's default depends on the data (config_from_args)
        flag = opt.flag or f"--{name.replace('_', '-')}"
        spec: dict[str, Any] = {"dest": name, "help": opt.described()}
        if opt.cli_values:
            spec.update(choices=list(opt.cli_values), default=next(
                word for word, value in opt.cli_values.items() if value == default))
        elif kind is bool:
            if default is False:
                spec.update(action="store_true")
            else:  # on unless switched off (None: the recipe says)
                flag = opt.flag or f"--no-{name.replace('_', '-')}"
                spec.update(action="store_false", default=default, help=f"do not {opt.described()}")
        else:
            spec.update(type=json.loads if kind is dict else kind, default=default)
            if opt.choices is not None:
                spec["choices"] = opt.allowed
            if opt.metavar:
                spec["metavar"] = opt.metavar
        parser.add_argument(flag, **spec)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed command-line arguments (`add_arguments`); the model defaults to the
    fast net for the data's kind (to the --init-from checkpoint's model), the checkpoint to
    runs/<dataset>-<model>.pt."""
    values = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    for name, value in values.items():
        words = option_of(name).cli_values
        if words:
            values[name] = words[value]
    if not values.get("model"):
        if values.get("init_from"):
            values["model"] = load_checkpoint(values["init_from"])["model"]
        else:
            spec = datasets.get_dataset_spec(values["dataset"])
            kind = values.get("kind") or spec.kind_for(values.get("channels"))
            values["model"] = kinds.get_kind(kind).fast_model
    values["out"] = values.get("out") or f"runs/{values['dataset']}-{values['model']}.pt"
    return TrainConfig(**values)
