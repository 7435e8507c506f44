"""Transfer learning: a new classifier that starts from a trained checkpoint's features.

    python -m core.train --dataset imagefolder --data-root DIR \
        --init-from checkpoints/handwriting-digitnet.pt --freeze-backbone

The new net has the checkpoint's architecture and input (channels, size, normalisation) and a fresh
output layer for the new classes; everything before that layer is copied
(`core.models.transfer_weights`). A checkpoint that holds an ensemble gives its first member.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from . import checkpoint as ckpt
from . import models

__all__ = ["Source", "load_source"]


@dataclass(frozen=True)
class Source:
    path: Path
    model: str
    model_kwargs: dict
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    net: nn.Module  # one trained net (float32, eval mode)

    def check_model(self, model: str, model_kwargs: dict) -> None:
        """Refuse another architecture than the checkpoint's, saying which one fits."""
        if model != self.model or (model_kwargs and dict(model_kwargs) != self.model_kwargs):
            kwargs = f" with model kwargs {self.model_kwargs}" if self.model_kwargs else ""
            raise ValueError(f"{self.path.name} holds a {self.model}{kwargs}; train that model to "
                             "start from it (leave the model out to take it), or pick a "
                             f"checkpoint of a {model}")

    def check_input(self, shape: tuple[int, int, int]) -> None:
        """Refuse data whose images do not have the checkpoint's input shape, saying what would
        fit."""
        c, size, _ = self.input_shape
        if tuple(shape) != self.input_shape:
            got = "x".join(map(str, shape))
            raise ValueError(f"{self.path.name} takes {c}x{size}x{size} images but this data is "
                             f"{got}: read the images as {c} channel(s) of {size}x{size} "
                             f"(--channels {c} --image-size {size}), or start from a checkpoint "
                             f"trained on {got} images")


def load_source(path: str | Path) -> Source:
    """Load the checkpoint to start from (weights-only, checked against its architecture)."""
    payload = ckpt.load_checkpoint(path)
    net = ckpt.build_from_checkpoint(payload)
    if isinstance(net, models.Ensemble):
        net = net.members[0]
    return Source(Path(path), payload["model"], dict(payload["model_kwargs"]),
                  tuple(payload["input_shape"]), tuple(payload["classes"]), tuple(payload["mean"]),
                  tuple(payload["std"]), net)
