"""What a model's raw logits become before anyone reads them: test-time views, the softmax
temperature, and the "not sure" score.

The one definition of each, used alike by evaluation, the predictor behind the app and the ONNX
export: `view_logits` averages the test-time views (mirror image, shifted copies) a checkpoint is
scored with; `fit_temperature` finds the softmax temperature that makes its probabilities mean
what they say; `energy_score` says how much an input looks like anything the model learnt, and
`fit_unsure_threshold` the score below which the app says "Not sure".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment_batch
from .imagedata import ImageData, normalise

__all__ = ["tta_options", "predict_logits", "view_logits", "fit_temperature", "energy_score",
           "fit_unsure_threshold", "UNSURE_PASS", "UNSURE_PASS_FEW", "UNSURE_IMAGES",
           "UNSURE_MIN_VIEWS"]

# "Not one of my classes": the share of held-out images of the model's own classes that must pass
# as sure, and how many of them are scored to find that threshold.
UNSURE_PASS, UNSURE_IMAGES = 0.95, 2000
UNSURE_MIN_VIEWS = 400  # augmented views scored at least, when a model has only a few images
# ...and the share of those views that must pass. A model of a few examples (your own classes) has
# learnt their augmented views well, and a new drawing of one of its classes varies more than they
# do: with 0.95, 11% of new drawings of five drawn shapes were flagged after 3 examples of each and
# 5% after 10; with 0.999, 4% and 0.2%, while 96% and 87% of scribbles and digits still were
# (python -m bench.own_unsure; docs/own-classes.md).
UNSURE_PASS_FEW = 0.999


def tta_options(meta: dict) -> dict:
    """The test-time views a checkpoint was evaluated with, as keyword arguments of
    `predict_logits`."""
    return {"tta_flip": bool(meta.get("tta_flip")), "tta_shift": int(meta.get("tta_shift") or 0)}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, mean, std, tta_flip: bool = False,
                   tta_shift: int = 0) -> torch.Tensor:
    """Logits for a uint8 (or 0-255 float) batch, through the test-time views of `view_logits`."""
    return view_logits(model, normalise(images, mean, std), tta_flip, tta_shift)


def view_logits(model: nn.Module, x: torch.Tensor, tta_flip: bool = False,
                tta_shift: int = 0) -> torch.Tensor:
    """Logits for a normalised batch (the one definition of the test-time views, exported to ONNX
    as it is).

    With `tta_flip`, averaged with the mirrored batch. With `tta_shift` = s > 0, the image counts
    half and two copies moved by s pixels diagonally (edges reflected) a quarter each; all views go
    through the model as one batch.
    """
    if not tta_flip and not tta_shift:
        return model(x.contiguous(memory_format=torch.channels_last)).float()
    views, weights = [x], [1.0]
    if tta_shift:
        s, (h, w) = tta_shift, x.shape[-2:]
        padded = F.pad(x, (s, s, s, s), mode="reflect")
        views += [padded[..., :h, :w], padded[..., 2 * s:, 2 * s:]]
        weights = [0.5, 0.25, 0.25]
    if tta_flip:
        views += [v.flip(3) for v in views]
        weights = [w / 2 for w in weights] * 2
    n = x.shape[0]
    batch = torch.cat(views).contiguous(memory_format=torch.channels_last)
    logits = model(batch).float().view(len(views), n, -1)
    return (logits * torch.tensor(weights, device=logits.device)[:, None, None]).sum(0)


@torch.no_grad()
def fit_temperature(model: nn.Module, data: ImageData, tta_flip: bool = False, tta_shift: int = 0,
                    batch_size: int = 1000, device: torch.device | str = "cpu") -> float:
    """The softmax temperature that minimises NLL on `data` (grid search over 0.2..3).

    Label smoothing trains deliberately under-confident nets: on MNIST the shipped digit net's
    expected calibration error is 9.5% at T=1 and 0.15% at the fitted T (0.45), so the
    probabilities shown to users mean what they say.
    """
    was_training = model.training
    model.eval()
    logits = torch.cat([predict_logits(model, data.images[i:i + batch_size].to(device), data.mean,
                                       data.std, tta_flip, tta_shift).cpu()
                        for i in range(0, len(data), batch_size)])
    model.train(was_training)
    grid = torch.linspace(0.2, 3.0, 57)
    nll = torch.stack([F.cross_entropy(logits / t, data.labels) for t in grid])
    return round(grid[nll.argmin()].item(), 3)


def energy_score(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """How much an input looks like the training data, per row of logits: T * logsumexp(logits /
    T), the negative free energy (Liu et al., 2020). Lower means less like anything the model
    learnt; unlike the top probability it keeps the logits' size, which a picture of none of the
    classes does not reach even when one class wins."""
    t = float(temperature)
    return t * torch.logsumexp(logits.float() / t, dim=-1)


@torch.no_grad()
def fit_unsure_threshold(model: nn.Module, data: ImageData, temperature: float,
                         tta_flip: bool = False, tta_shift: int = 0, batch_size: int = 1000,
                         device: torch.device | str = "cpu", augment: bool = False,
                         seed: int = 0) -> float:
    """The energy score below which an input is "probably none of the classes": the score that
    UNSURE_PASS of `data` (held-out images of the model's classes) reach. With `augment`, each image
    is seen through the data's training augmentation first (for a model with no held-out data:
    views it did not train on)."""
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    passing = UNSURE_PASS
    if len(data) > UNSURE_IMAGES:  # the 5% tail of 2,000 scores is 100: enough, at a fifth the cost
        data = data.subset(torch.randperm(len(data), generator=g)[:UNSURE_IMAGES])
    elif augment and len(data) < UNSURE_MIN_VIEWS:  # a few examples of one's own classes: several
        data = data.subset(torch.arange(len(data)).repeat(-(-UNSURE_MIN_VIEWS // len(data))))
        passing = UNSURE_PASS_FEW
    scores = []
    for i in range(0, len(data), batch_size):
        x = data.images[i:i + batch_size].to(device)
        if augment:
            x = augment_batch(x, data.augment, g).round().clamp(0, 255).to(torch.uint8)
        logits = predict_logits(model, x, data.mean, data.std, tta_flip, tta_shift).cpu()
        scores.append(energy_score(logits, temperature))
    model.train(was_training)
    # Rounded down: a threshold stored with 4 decimals passes at least the share asked.
    return math.floor(torch.cat(scores).quantile(1 - passing).item() * 1e4) / 1e4
