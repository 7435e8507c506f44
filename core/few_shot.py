"""Training on a few examples of new classes: how many steps, from which start.

Few examples make short epochs, so a run is set by its number of optimiser steps (the kind's
`few_shot_steps`, core.kinds) rather than by epochs. It starts from a trained checkpoint's
features with a fresh output layer (core.transfer), or from scratch with the kind's fast net.

    cfg = few_shot_config("my_classes/", "sketch", n_train=40,
                          init_from="checkpoints/handwriting-digitnet.pt")
"""
from __future__ import annotations

import math
from pathlib import Path

from . import models
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .kinds import get_kind

__all__ = ["FEW_SHOT_BATCH", "DATASET", "few_shot_config"]

FEW_SHOT_BATCH = 32  # at most this many images a step
DATASET = "imagefolder"  # the registry's folder dataset, which a folder of classes is


def few_shot_config(folder: str | Path, kind: str, n_train: int, init_from: str | Path | None,
                    fine_tune: bool = True, seed: int = 0) -> TrainConfig:
    """Training on an image folder of few examples: from `init_from` (a trained checkpoint; None:
    from scratch, the kind's fast net) with a fresh output layer (`fine_tune` False: that layer
    alone learns), the model's fine-tuning recipe, and as many epochs of `n_train` images as make
    about the kind's `few_shot_steps` optimiser steps (sketches: the fine-tuning recipe's 30 epochs
    of 200 images at batch 32; docs/own-classes.md)."""
    batch = min(FEW_SHOT_BATCH, n_train)
    steps = get_kind(kind).few_shot_steps
    epochs = max(1, min(200, math.ceil(steps / math.ceil(n_train / batch))))
    common = dict(dataset=DATASET, data_root=str(folder), kind=kind, seed=seed, epochs=epochs,
                  batch_size=batch)
    if init_from is None:
        model = get_kind(kind).fast_model
        recipe = {k: v for k, v in models.transfer_recipe(model, kind).items() if k not in common}
        return TrainConfig(model=model, **common, **recipe)
    return TrainConfig(model=load_checkpoint(init_from)["model"], init_from=str(init_from),
                       freeze_backbone=not fine_tune, **common)
