"""Images as uint8 tensors, decoded once and cached; batched augmentation with tensor ops.

Every dataset of the registry (core.datasets) becomes an `ImageData`: images (N,C,H,W uint8), labels (N int64),
class names, the normalisation constants, its input kind and its augmentation kind. Training batches are index
slices of these tensors, on the training device; there is no per-sample PIL work anywhere in the training path.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["ImageData", "DataError", "INPUT_KINDS", "AUGMENTATIONS", "default_data_root", "cached",
           "split_train_val", "normalise", "augment_batch", "alternating_flips", "iterate_batches"]

# What kind of input a model takes. It decides the tab that offers the model and how what a user gives is
# prepared: a drawing (ink found, cropped and centred like MNIST), a greyscale picture, or a colour photo.
INPUT_KINDS = ("sketch", "greyscale", "photo")
# How a training batch is varied (augment_batch).
AUGMENTATIONS = ("digits", "shift", "shift-flip", "photos")


class DataError(RuntimeError):
    """A dataset could not be found, downloaded or read; the message says what to do."""


@dataclass
class ImageData:
    images: torch.Tensor  # N,C,H,W uint8
    labels: torch.Tensor  # N int64
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    kind: str = "photo"  # one of INPUT_KINDS
    augment: str = "photos"  # one of AUGMENTATIONS
    tta_flip: bool = True  # whether its models are scored on each image and its mirror image too
    # Named index ranges [start, stop) of a set assembled from several sources, scored apart as well as together.
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Per image, who made it (a writer's number) or -1 when unknown: a validation split holds out whole groups, so
    # it measures people the model has not learnt from.
    groups: torch.Tensor | None = None
    # Per image, the drawing it renders (images of one item are renderings of one drawing) or -1; each training
    # epoch then uses `per_epoch` of an item's renderings, drawn afresh (`epoch_pool`). None: every image, always.
    items: torch.Tensor | None = None
    per_epoch: int = 1

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageData:
        """The images at `index`; an ascending index keeps the parts (renumbered), any other drops them."""
        index = torch.as_tensor(index)
        parts = {}
        if self.parts and (len(index) < 2 or bool((index[1:] > index[:-1]).all())):
            counts = {name: int(((index >= a) & (index < b)).sum()) for name, (a, b) in self.parts.items()}
            start = 0
            for name in sorted(self.parts, key=lambda name: self.parts[name][0]):
                parts[name] = (start, start + counts[name])
                start += counts[name]
        groups, items = (t[index.to(t.device)] if t is not None else None for t in (self.groups, self.items))
        return replace(self, images=self.images[index], labels=self.labels[index], parts=parts, groups=groups,
                       items=items)

    def to(self, device: torch.device | str) -> ImageData:
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def default_data_root() -> Path:
    """`TINYVISION_DATA` if set, else ./data (where torchvision downloads to)."""
    return Path(os.environ.get("TINYVISION_DATA", "data")).expanduser()


def _cache_dir() -> Path:
    path = Path(os.environ.get("TINYVISION_CACHE", Path.home() / ".cache" / "tinyvision"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(key: str, build: Callable[[], dict]) -> dict:
    """Load `key` from the tensor cache or build it with `build()` and store it atomically."""
    path = _cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)  # a truncated cache file is rebuilt, never trusted
    value = build()
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(value, tmp)
    os.replace(tmp, path)
    return value


def split_train_val(data: ImageData, val_fraction: float, seed: int) -> tuple[ImageData, ImageData | None]:
    """Seeded split of `data` into (train, validation); `val_fraction` 0 means no validation set.

    Images with a group (`data.groups` >= 0, e.g. a writer) are held out by whole groups, that share of the groups;
    the others by image. Both sides keep their order, so a set of several parts keeps them (scored apart)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_split must be in [0, 1)")
    if val_fraction == 0:
        return data, None
    g = torch.Generator().manual_seed(seed)
    groups = data.groups if data.groups is not None else torch.full((len(data),), -1, dtype=torch.long)
    val = torch.zeros(len(data), dtype=torch.bool)
    loose = torch.nonzero(groups < 0).flatten()
    if len(loose):
        n_val = max(1, int(round(len(loose) * val_fraction)))
        val[loose[torch.randperm(len(loose), generator=g)[:n_val]]] = True
    names = torch.unique(groups[groups >= 0])
    if len(names):
        held = names[torch.randperm(len(names), generator=g)[:max(1, int(round(len(names) * val_fraction)))]]
        val |= torch.isin(groups, held)
    return data.subset(torch.nonzero(~val).flatten()), data.subset(torch.nonzero(val).flatten())


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float, normalised per channel."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def _random_translate(x: torch.Tensor, pad: int, g: torch.Generator, mode: str = "constant") -> torch.Tensor:
    """Shift each image by up to `pad` pixels in x and y, one gather for the whole batch. The uncovered border is
    zero (`mode="constant"`) or mirrors the image (`"reflect"`, which adds no black edge a photo never has)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def _random_warp(x: torch.Tensor, g: torch.Generator, degrees: float = 12.0, scale: tuple = (0.85, 1.1),
                 shear: float = 0.2, shift: float = 0.1, elastic: float = 0.0) -> torch.Tensor:
    """Batched small rotation/scale/shear/shift, plus an optional smooth elastic displacement, in one resampling.

    `elastic` is the displacement amplitude as a fraction of the image half-width; the field is random noise on a
    5x5 grid upsampled bicubically, so strokes bend the way different hands bend them rather than jitter.
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
    """Thicken a third of the digits by one pixel and thin another third, as pens and brushes differ from MNIST's."""
    n = x.shape[0]
    choice = torch.randint(0, 3, (n,), generator=g).to(x.device)[:, None, None, None]
    padded = F.pad(x, (0, 1, 0, 1))
    thick = F.max_pool2d(padded, 2, stride=1)
    thin = -F.max_pool2d(-padded, 2, stride=1)
    return torch.where(choice == 1, thick, torch.where(choice == 2, thin, x))


def augment_batch(images: torch.Tensor, kind: str, g: torch.Generator,
                  flip: torch.Tensor | None = None) -> torch.Tensor:
    """Augment a uint8 batch on its device; returns floats in [0, 255].

    kind "photos": random translate by up to 2 pixels (reflected border) and a horizontal flip of the images where
    `flip` (bool, one per image) is true, or of a random half; kind "shift-flip" (objects on a plain ground whose
    mirror image is the same thing, such as Fashion-MNIST's clothes): the same with a zero border; kind "shift":
    the translation alone (a folder's classes may be mirror images of each other); kind "digits": stroke width,
    small affine and elastic warp (handwriting varies in slant, proportions and curvature, not only in position).
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


FlipMasks = Callable[[torch.Tensor, int], torch.Tensor]  # (batch's image indices, epoch) -> bool flip per image


def alternating_flips(n: int, seed: int, device: torch.device | str = "cpu") -> FlipMasks:
    """Flip masks that alternate per image: `masks(index, epoch)` is a random half of the images in epoch 1 and,
    from then on, each image is mirrored in every other epoch, so two consecutive epochs show both views of every
    image (random flips show some images the same way several epochs running). The masks live on `device`, the
    batches' index device, so a batch's mask costs no copy between host and accelerator."""
    start = (torch.rand(n, generator=torch.Generator().manual_seed(seed)) < 0.5).to(device)

    def masks(index: torch.Tensor, epoch: int) -> torch.Tensor:
        return start[index] ^ (epoch % 2 == 0)

    return masks


def batch_starts(n: int, batch_size: int, min_last: int = 1) -> list[int]:
    """Where each batch of an epoch over n images starts; a last batch of fewer than `min_last` images joins the
    one before (each of that many processes needs a part of every batch)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    return starts


def epoch_pool(data: ImageData, g: torch.Generator) -> torch.Tensor | None:
    """The images one training epoch uses, ascending: every image without an item, and `data.per_epoch` of each
    item's renderings picked at random from `g` (all of them if it has fewer). None: every image."""
    if data.items is None:
        return None
    order = torch.randperm(len(data), generator=g)
    order = order[torch.argsort(data.items[order], stable=True)]  # grouped by item, random within each
    items = data.items[order]
    rank = torch.arange(len(order)) - torch.searchsorted(items, items)  # place within its item
    return order[(items < 0) | (rank < data.per_epoch)].sort().values


def epoch_size(data: ImageData) -> int:
    """How many images one training epoch uses (see `epoch_pool`)."""
    return len(data) if data.items is None else len(epoch_pool(data, torch.Generator()))


def iterate_batches(n: int, batch_size: int, g: torch.Generator, min_last: int = 1) -> Iterator[torch.Tensor]:
    """Yield index tensors over range(n) in a fresh permutation from `g`, the last batch possibly smaller (see
    `batch_starts`)."""
    order = torch.randperm(n, generator=g)
    starts = batch_starts(n, batch_size, min_last)
    for start, end in zip(starts, starts[1:] + [n]):
        yield order[start:end]
