"""Images as uint8 tensors, decoded once and cached, and the batches an epoch takes of them.

Every dataset of the registry (core.datasets) becomes an `ImageData`: images (N,C,H,W uint8),
labels (N int64), class names, the normalisation constants, its input kind (core.kinds) and its
augmentation. Training batches are index slices of these tensors, on the training device.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

__all__ = ["ImageData", "DataError", "LoadArgs", "default_data_root", "cache_dir", "cached",
           "split_train_val", "normalise", "batch_starts", "epoch_pool", "epoch_size",
           "iterate_batches"]


class DataError(RuntimeError):
    """A dataset could not be found, downloaded or read; the message says what to do."""


@dataclass(frozen=True)
class LoadArgs:
    """What a dataset's loader is asked for (core.datasets). `root` is the data folder (an image
    folder's own path for folder datasets)."""
    root: Path
    train: bool
    download: bool
    image_size: int | None  # folder datasets: None for the kind's default (core.kinds)
    channels: int | None
    seed: int
    kind: str | None = None  # folder datasets: None for the folder's record, else by channels
    pen_jitter: float = 0.0  # pen digits: how far each stroke moves (0 for test splits)


@dataclass
class ImageData:
    images: torch.Tensor  # N,C,H,W uint8
    labels: torch.Tensor  # N int64
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str
    kind: str = "photo"  # a name of core.kinds
    augment: str = "photos"  # one of core.augment.AUGMENTATIONS
    tta_flip: bool = True  # whether its models are scored on each image and its mirror image too
    # Named index ranges [start, stop) of a set assembled from several sources, scored apart as
    # well as together.
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Per image, who made it (a writer's number) or -1 when unknown: a validation split holds out
    # whole groups, so it measures people the model has not learnt from.
    groups: torch.Tensor | None = None
    # Per image, the drawing it renders (images of one item are renderings of one drawing) or -1;
    # each training epoch then uses `per_epoch` of an item's renderings, drawn afresh
    # (`epoch_pool`). None: every image, always.
    items: torch.Tensor | None = None
    per_epoch: int = 1
    summary: str = ""  # what its loader read and skipped, for the run's log

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageData:
        """The images at `index`; an ascending index keeps the parts (renumbered), any other drops
        them."""
        index = torch.as_tensor(index)
        parts = {}
        if self.parts and (len(index) < 2 or bool((index[1:] > index[:-1]).all())):
            counts = {name: int(((index >= a) & (index < b)).sum())
                      for name, (a, b) in self.parts.items()}
            start = 0
            for name in sorted(self.parts, key=lambda name: self.parts[name][0]):
                parts[name] = (start, start + counts[name])
                start += counts[name]
        groups, items = (t[index.to(t.device)] if t is not None else None
                         for t in (self.groups, self.items))
        return replace(self, images=self.images[index], labels=self.labels[index], parts=parts,
                       groups=groups, items=items)

    def to(self, device: torch.device | str) -> ImageData:
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def default_data_root() -> Path:
    """`TINYVISION_DATA` if set, else ./data (where torchvision downloads to)."""
    return Path(os.environ.get("TINYVISION_DATA", "data")).expanduser()


def cache_dir() -> Path:
    """Where decoded datasets and other files made once are kept: TINYVISION_CACHE, else
    ~/.cache/tinyvision."""
    path = Path(os.environ.get("TINYVISION_CACHE", Path.home() / ".cache" / "tinyvision"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached(key: str, build: Callable[[], dict]) -> dict:
    """Load `key` from the tensor cache or build it with `build()` and store it atomically."""
    path = cache_dir() / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
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


def split_train_val(data: ImageData, val_fraction: float,
                    seed: int) -> tuple[ImageData, ImageData | None]:
    """Seeded split of `data` into (train, validation); `val_fraction` 0 means no validation set.

    Images with a group (`data.groups` >= 0, e.g. a writer) are held out by whole groups, that share
    of the groups; the others by image. Both sides keep their order, so a set of several parts keeps
    them (scored apart)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_split must be in [0, 1)")
    if val_fraction == 0:
        return data, None
    g = torch.Generator().manual_seed(seed)
    groups = data.groups if data.groups is not None else torch.full((len(data),), -1,
                                                                     dtype=torch.long)
    val = torch.zeros(len(data), dtype=torch.bool)
    loose = torch.nonzero(groups < 0).flatten()
    if len(loose):
        n_val = max(1, int(round(len(loose) * val_fraction)))
        val[loose[torch.randperm(len(loose), generator=g)[:n_val]]] = True
    names = torch.unique(groups[groups >= 0])
    if len(names):
        n_held = max(1, int(round(len(names) * val_fraction)))
        held = names[torch.randperm(len(names), generator=g)[:n_held]]
        val |= torch.isin(groups, held)
    return data.subset(torch.nonzero(~val).flatten()), data.subset(torch.nonzero(val).flatten())


def normalise(images: torch.Tensor, mean: tuple[float, ...],
              std: tuple[float, ...]) -> torch.Tensor:
    """uint8 (N,C,H,W) -> float, normalised per channel."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - m) / s


def batch_starts(n: int, batch_size: int, min_last: int = 1) -> list[int]:
    """Where each batch of an epoch over n images starts; a last batch of fewer than `min_last`
    images joins the one before (each of that many processes needs a part of every batch)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    return starts


def epoch_pool(data: ImageData, g: torch.Generator) -> torch.Tensor | None:
    """The images one training epoch uses, ascending: every image without an item, and
    `data.per_epoch` of each item's renderings picked at random from `g` (all of them if it has
    fewer). None: every image."""
    if data.items is None:
        return None
    order = torch.randperm(len(data), generator=g)
    order = order[torch.argsort(data.items[order], stable=True)]  # by item, random within each
    items = data.items[order]
    rank = torch.arange(len(order)) - torch.searchsorted(items, items)  # place within its item
    return order[(items < 0) | (rank < data.per_epoch)].sort().values


def epoch_size(data: ImageData) -> int:
    """How many images one training epoch uses (see `epoch_pool`)."""
    return len(data) if data.items is None else len(epoch_pool(data, torch.Generator()))


def iterate_batches(n: int, batch_size: int, g: torch.Generator,
                    min_last: int = 1) -> Iterator[torch.Tensor]:
    """Yield index tensors over range(n) in a fresh permutation from `g`, the last batch possibly
    smaller (see `batch_starts`)."""
    order = torch.randperm(n, generator=g)
    starts = batch_starts(n, batch_size, min_last)
    for start, end in zip(starts, starts[1:] + [n]):
        yield order[start:end]
