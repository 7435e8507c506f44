"""Image folders: one sub-folder of images per class, read as the app reads what a user gives.

`load_imagefolder` is the loader of the registry's `imagefolder` dataset: DIR/train/<class>/* and
DIR/test/<class>/*, or DIR/<class>/* split per class by the seed. Each file is prepared as its kind
prepares a user's image (core.kinds: a drawing's ink found, fitted and centred; a picture
centre-cropped and resized), so a model trained on a folder of drawings reads the sketchpad alike.
A folder may record its kind in FOLDER_RECORD (the app's own classes do).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from .imagedata import DataError, LoadArgs, cached
from .kinds import NAMES, by_channels, get_kind
from .preparation import InputError

__all__ = ["IMAGE_EXTENSIONS", "FOLDER_RECORD", "FOLDER_TEST_SHARE", "folder_kind", "image_files",
           "read_image_files", "load_folder_split", "load_imagefolder", "stratified_split"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# The share of each class held out for testing when the folder has no train/ and test/.
FOLDER_TEST_SHARE = 0.2
FOLDER_RECORD = "tinyvision.json"  # the file by which a folder records its kind
FOLDER_CACHE_MIN = 2000  # folders of fewer images are read afresh (about a second), not cached


def read_image_files(files: list[Path], size: int | None, channels: int) -> torch.Tensor:
    """Image files as one uint8 (N, C, H, W) tensor, resized to `size` (None: as they are)."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    out = None
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
        if out is None:
            out = np.empty((len(files), *arr.shape), dtype=np.uint8)
        elif arr.shape != out.shape[1:]:
            raise DataError(f"{f}: size {arr.shape[:2][::-1]} differs from the first image's; "
                            "pass an image size")
        out[i] = arr
    if out is None:
        raise DataError("no images to read")
    t = torch.from_numpy(out)
    return t.unsqueeze(1) if channels == 1 else t.permute(0, 3, 1, 2).contiguous()


def image_files(folder: Path, inside: Path | None = None) -> list[Path]:
    """The image files under `folder`, sorted. Links are followed only to what lies inside
    `inside` (default: `folder`): a folder offered to visitors cannot point them at the rest of
    the machine; linked folders are not walked into."""
    inside = (inside or folder).resolve()
    found = []
    for top, dirs, names in os.walk(folder):  # (links to folders are not followed)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            f = Path(top) / name
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.resolve().is_relative_to(inside):
                found.append(f)
    return sorted(found)


def _scan_folder(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    inside = folder.resolve()
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
                     and d.resolve().is_relative_to(inside))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = image_files(folder / name, inside)
        files += found
        labels += [label] * len(found)
    return files, labels, classes


def _class_files(folder: Path) -> tuple[list[Path], list[int], list[str]]:
    """`_scan_folder`, refusing a folder that is not one sub-folder per class (at least two) with
    images."""
    files, labels, classes = _scan_folder(folder)
    if len(classes) < 2 or not files:
        raise DataError(f"{folder} must hold one sub-folder per class (at least two) with image "
                        "files in them")
    return files, labels, classes


def load_folder_split(folder: Path, size: int | None, channels: int) -> dict:
    """A folder of class folders read as plain images (no preparation)."""
    files, labels, classes = _class_files(folder)
    return {"images": read_image_files(files, size, channels), "labels": torch.tensor(labels),
            "classes": classes}


def _prepared_image(path: Path, kind: str, size: int) -> np.ndarray:
    """One file of a folder, prepared exactly as the app prepares what a user gives a model of this
    kind."""
    try:
        return get_kind(kind).prepare_picture(path, size)
    except InputError as exc:
        raise DataError(f"{path}: {exc}") from None


def _read_folder(folder: Path, kind: str, size: int) -> dict:
    files, labels, classes = _class_files(folder)
    t = torch.from_numpy(np.stack([_prepared_image(f, kind, size) for f in files]))
    return {"images": t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous(),
            "labels": torch.tensor(labels), "classes": classes}


def _folder_images(folder: Path, kind: str, size: int) -> dict:
    """A folder's images, prepared; a large folder's are cached under a key that changes when a
    file does (a few hundred images read in about a second: those are not worth a cache entry)."""
    files = image_files(folder)
    if len(files) < FOLDER_CACHE_MIN:
        return _read_folder(folder, kind, size)
    h = hashlib.sha1(str(folder.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return cached(f"folder:{h.hexdigest()}:{kind}:{size}", lambda: _read_folder(folder, kind, size))


def folder_kind(folder: Path) -> str | None:
    """The input kind a folder records for itself (FOLDER_RECORD), if any."""
    try:
        kind = json.loads((Path(folder) / FOLDER_RECORD).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in NAMES else None


def stratified_split(labels: torch.Tensor, share: float, seed: int) -> torch.Tensor:
    """Whether each image is held out for testing: `share` of each class (rounded down, so a class
    of fewer than 1/share images keeps all of them for training), chosen by the seed."""
    g = torch.Generator().manual_seed(seed)
    test = torch.zeros(len(labels), dtype=torch.bool)
    for c in torch.unique(labels):
        index = torch.nonzero(labels == c).flatten()
        test[index[torch.randperm(len(index), generator=g)[:int(len(index) * share)]]] = True
    return test


def load_imagefolder(a: LoadArgs) -> dict:
    if not a.root.is_dir():
        raise DataError(f"image folder {a.root} does not exist")
    recorded = a.kind or folder_kind(a.root)
    kind = get_kind(recorded) if recorded else by_channels(a.channels)
    channels = a.channels or kind.channels
    if channels != kind.channels:
        other = by_channels(channels)  # pictures of that many channels, which it may be
        hint = "" if kind.drawn else f", or --kind {other.name}"
        raise DataError(f"{kind.name} images have {kind.channels} channel(s), not {channels}: pass "
                        f"--channels {kind.channels}{hint}")
    size = a.image_size or kind.size
    if (a.root / "train").is_dir() and (a.root / "test").is_dir():
        split_dir = a.root / ("train" if a.train else "test")
        return {**_folder_images(split_dir, kind.name, size), "kind": kind.name}
    # One folder of classes: a seeded, per-class train/test split.
    data = _folder_images(a.root, kind.name, size)
    test = stratified_split(data["labels"], FOLDER_TEST_SHARE, a.seed)
    keep = ~test if a.train else test
    return {"images": data["images"][keep], "labels": data["labels"][keep],
            "classes": data["classes"], "kind": kind.name}
