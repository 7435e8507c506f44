"""Batched augmentation with tensor ops: a training batch varied on its device in a few kernels.

There is no per-sample PIL work in the training path: shifts are one gather for the whole batch,
warps one resampling, stroke widths one pooling. What a batch gets is its data's augmentation
(core.kinds: digits for drawings, shifts for pictures, shifts and mirror images for photos).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "augment_batch", "FlipMasks", "alternating_flips"]

# How a training batch is varied (augment_batch).
AUGMENTATIONS = ("digits", "shift", "shift-flip", "photos")


def _random_translate(x: torch.Tensor, pad: int, g: torch.Generator,
                      mode: str = "constant") -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, one gather for the whole batch. The
    uncovered border is zero (`mode="constant"`) or mirrors the image (`"reflect"`, which adds no
    black edge a photo never has)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def _random_warp(x: torch.Tensor, g: torch.Generator, degrees: float = 12.0,
                 scale: tuple = (0.85, 1.1), shear: float = 0.2, shift: float = 0.1,
                 elastic: float = 0.0) -> torch.Tensor:
    """Batched small rotation/scale/shear/shift, plus an optional smooth elastic displacement, in
    one resampling.

    `elastic` is the displacement amplitude as a fraction of the image half-width; the field is
    random noise on a 5x5 grid upsampled bicubically, so strokes bend the way different hands bend
    them rather than jitter.
    """
    n = x.shape[0]

    def uniform(lo, hi):
        return (torch.rand(n, generator=g) * (hi - lo) + lo).to(x.device)

    angle = uniform(-degrees, degrees) * torch.pi / 180
    s = uniform(*scale)
    sh = uniform(-shear, shear)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin + sh, uniform(-shift, shift)], 1),
                         torch.stack([sin, cos, uniform(-shift, shift)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic > 0:
        noise = (torch.rand(n, 2, 5, 5, generator=g) * 2 - 1).to(x.device) * elastic
        field = F.interpolate(noise, size=x.shape[-2:], mode="bicubic", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def _random_stroke_width(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Thicken a third of the digits by one pixel and thin another third, as pens and brushes
    differ from MNIST's."""
    n = x.shape[0]
    choice = torch.randint(0, 3, (n,), generator=g).to(x.device)[:, None, None, None]
    padded = F.pad(x, (0, 1, 0, 1))
    thick = F.max_pool2d(padded, 2, stride=1)
    thin = -F.max_pool2d(-padded, 2, stride=1)
    return torch.where(choice == 1, thick, torch.where(choice == 2, thin, x))


def augment_batch(images: torch.Tensor, kind: str, g: torch.Generator,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a uint8 batch on its device; returns floats in [0, 255].

    kind "photos": random translate by up to 2 pixels (reflected border) and a horizontal flip of
    the images where `flip` (bool, one per image) is true, or of a random half; kind "shift-flip"
    (objects on a plain ground whose mirror image is the same thing, such as Fashion-MNIST's
    clothes): the same with a zero border; kind "shift": the translation alone (a folder's classes
    may be mirror images of each other); kind "digits": stroke width, small affine and elastic warp
    (handwriting varies in slant, proportions and curvature, not only in position).
    """
    x = images.float()
    if kind in ("photos", "shift-flip", "shift"):
        x = _random_translate(x, 2, g, mode="reflect" if kind == "photos" else "constant")
        if kind == "shift":
            return x
        if flip is None:
            flip = torch.rand(len(x), generator=g) < 0.5
        return torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    if kind == "digits":
        x = _random_stroke_width(x, g)
        return _random_warp(x, g, elastic=0.08)
    raise ValueError(f"unknown augmentation kind {kind!r}")


# (a batch's image indices, epoch) -> bool flip per image
FlipMasks = Callable[[torch.Tensor, int], torch.Tensor]


def alternating_flips(n: int, seed: int, device: torch.device | str = "cpu") -> FlipMasks:
    """Flip masks that alternate per image: `masks(index, epoch)` is a random half of the images in
    epoch 1 and, from then on, each image is mirrored in every other epoch, so two consecutive
    epochs show both views of every image (random flips show some images the same way several
    epochs running). The masks live on `device`, the batches' index device, so a batch's mask costs
    no copy between host and accelerator."""
    start = (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).to(device)

    def masks(index: torch.Tensor, epoch: int) -> torch.Tensor:
        return start[index] ^ (epoch % 2 == 0)

    return masks
