"""Pen-stroke digits as training images: recorded strokes drawn as the sketchpad draws them, then
prepared as a visitor's sketch is.

The pen digits of UCI's "Pen-Based Recognition of Handwritten Digits" (30 writers for training)
come as UNIPEN text (core.unipen), downloaded when missing. Each digit is drawn PENDIGITS_RENDERS
times by core.strokes (random size, position and brush) and goes through
core.preparation.sketch_to_digit; the result is cached, keyed by the file.
"""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .downloads import MAX_ARCHIVE_BYTES, fetch, missing
from .imagedata import DataError, LoadArgs, cached
from .preparation import sketch_to_digit
from .strokes import random_render
from .unipen import decompress, parse

__all__ = ["PENDIGITS_URL", "PENDIGITS_RENDERS", "PENDIGITS_TEST_SHARE", "DIGIT_CLASSES",
           "pen_file", "rendered_pen_file", "render_digits", "load_pendigits"]

DIGIT_CLASSES = [str(i) for i in range(10)]
PENDIGITS_URL = ("https://archive.ics.uci.edu/static/public/81/"
                 "pen+based+recognition+of+handwritten+digits.zip")
PENDIGITS_FILES = {"train": "pendigits-orig.tra", "test": "pendigits-orig.tes"}
PENDIGITS_RENDERS = 4  # random renderings of each pen digit, made once and cached
# Without the test file: this share of whole writers held out (6 of 30), by the seed.
PENDIGITS_TEST_SHARE = 0.2


def _download_pendigits(folder: Path) -> None:
    """Fetch UCI's archive and unpack its UNIPEN files (`.Z`, Unix compress) into `folder`. The
    archive is checked before anything is written: its size, and that the members taken are the
    named files, of bounded size."""
    body = fetch(PENDIGITS_URL, "pen-digits")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        members = {Path(info.filename).name: info for info in archive.infolist()
                   if not info.is_dir()}
        for name in PENDIGITS_FILES.values():
            info = members.get(name + ".Z")
            if info is None or info.file_size > MAX_ARCHIVE_BYTES:
                continue
            text = decompress(archive.read(info))
            if len(text) > 4 * MAX_ARCHIVE_BYTES:
                raise DataError(f"{name} unpacks to more than {4 * MAX_ARCHIVE_BYTES >> 20} MB; "
                                "refused")
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_bytes(text)
            os.replace(tmp, folder / name)
    if not (folder / PENDIGITS_FILES["train"]).is_file():
        raise DataError(f"the pen-digits archive holds no {PENDIGITS_FILES['train']}.Z")


def pen_file(a: LoadArgs, split: str) -> Path | None:
    """The UNIPEN file of `split` ("train" or "test"), fetched when the training file is missing
    and downloads are allowed; None for a test file that is not there."""
    folder = a.root / "pendigits"
    path = folder / PENDIGITS_FILES[split]
    if split == "train" and not path.is_file():
        try:
            if not a.download:
                raise OSError("downloads are off")
            _download_pendigits(folder)
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            raise missing("pen digits", a.root, f"{path} (UNIPEN text, from UCI's archive)",
                          exc) from None
    return path if path.is_file() else None


def render_digits(strokes_list: list, renders: int, seed: int) -> np.ndarray:
    """Render `renders` random drawings of each digit's strokes and prepare them like a sketch:
    (n*r, 28, 28) uint8."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(strokes_list) * renders, 28, 28), np.uint8)
    for i, strokes in enumerate(strokes_list):
        for r in range(renders):
            digit = sketch_to_digit({"composite": random_render(strokes, rng)})
            if digit is not None:
                out[i * renders + r] = np.clip(digit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def rendered_pen_file(path: Path, renders: int) -> dict:
    """Every digit of a UNIPEN file drawn `renders` times, as the sketchpad and its preparation
    would make it; cached. Deterministic: the random renderings come from one seeded generator."""
    def build() -> dict:
        digits = parse(path.read_text(errors="replace"))
        # About 2 ms a drawing on one core (threads gain nothing; processes would re-import the
        # app): a minute for the 30 writers' file, once.
        images = render_digits([d["strokes"] for d in digits], renders, seed=0)
        per_digit = torch.tensor([[d["label"], d["writer"]] for d in digits])
        per_digit = per_digit.repeat_interleave(renders, dim=0)
        return {"images": torch.from_numpy(images).unsqueeze(1), "labels": per_digit[:, 0],
                "writers": per_digit[:, 1]}
    stat = path.stat()
    return cached(f"pendigits:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{renders}", build)


def load_pendigits(a: LoadArgs) -> dict:
    train_file, test_file = pen_file(a, "train"), pen_file(a, "test")
    if test_file is not None:
        data = rendered_pen_file(train_file if a.train else test_file, PENDIGITS_RENDERS)
        return {"images": data["images"], "labels": data["labels"], "classes": DIGIT_CLASSES,
                "groups": data["writers"]}
    data = rendered_pen_file(train_file, PENDIGITS_RENDERS)
    writers = torch.unique(data["writers"])
    order = torch.randperm(len(writers), generator=torch.Generator().manual_seed(a.seed))
    held_out = writers[order][:max(1, round(len(writers) * PENDIGITS_TEST_SHARE))]
    test = torch.isin(data["writers"], held_out)
    keep = ~test if a.train else test
    return {"images": data["images"][keep], "labels": data["labels"][keep],
            "classes": DIGIT_CLASSES, "groups": data["writers"][keep]}
