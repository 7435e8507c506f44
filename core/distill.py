"""Distillation: the net in training also learns a trained checkpoint's answers, where that
checkpoint is right.

    python -m core.train --dataset handwriting --teacher checkpoints/mnist-digitnet.pt

A net trained on a mix (MNIST plus pen renderings) reads MNIST a little worse than one trained on
MNIST alone. The MNIST-only net's probabilities say more than a label does (which other digit an
image resembles, and how much), so learning them as well keeps what that net knew. On the images the
teacher misreads (the pen styles MNIST lacks, which the mix is there to teach) its answers would
pull the wrong way: there only the labels count.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import imagedata as D
from . import transfer

__all__ = ["TEMPERATURE", "Teacher", "load_teacher"]

# Softens both nets' probabilities so that the small ones (which digit an image resembles) weigh in;
# the loss is scaled by its square, which keeps its gradients the size of the labels' at any
# temperature.
TEMPERATURE = 2.0


@dataclass(frozen=True)
class Teacher:
    net: nn.Module  # float32, eval mode, frozen
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weight: float

    def loss(self, logits: torch.Tensor, images: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        """The batch's distillation term: KL divergence to the teacher's softened answers on the
        images it reads right (zero on the others), times the weight, averaged over the whole batch.
        `images` are the augmented floats in [0, 255] the student saw, before its normalisation."""
        with torch.no_grad():
            target = self.net(D.normalise(images, self.mean, self.std).contiguous(
                memory_format=torch.channels_last)).float()
            right = (target.argmax(1) == labels).float()
        t = TEMPERATURE
        kl = F.kl_div(F.log_softmax(logits.float() / t, 1), F.log_softmax(target / t, 1),
                      log_target=True, reduction="none").sum(1)
        return self.weight * t * t * (kl * right).mean()


def load_teacher(path: str | Path, classes: list[str], input_shape: tuple[int, int, int],
                 weight: float, device: torch.device) -> Teacher:
    """Load a checkpoint to learn from; it must answer with the same classes, in the same order, for
    images of the same shape as the data in training (an ensemble's first member teaches)."""
    source = transfer.load_source(path)
    if list(source.classes) != list(classes):
        raise ValueError(f"{source.path.name} answers with the classes {list(source.classes)}, not "
                         f"this data's {list(classes)}: a teacher must know the same classes")
    source.check_input(input_shape)
    net = source.net.to(device).to(memory_format=torch.channels_last).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return Teacher(net, source.mean, source.std, float(weight))
