"""What an input kind means: the one table that every other module reads.

A model takes one kind of input. Its kind decides how what a user gives is prepared (a drawing's
ink found, cropped and centred like MNIST; a picture centre-cropped, resized, made grey or kept in
colour), the input a folder of such images is read as, how training batches are varied, whether
the model is also scored on mirror images, which fast net trains on it, which tab of the app
offers the model and how many classes that tab shows, and how the visitor's own examples of that
kind are kept and trained. Nothing else compares a kind's name: it asks this table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .preparation import InputError, greyscale_to_input, photo_to_input, sketch_to_digit

__all__ = ["Kind", "KINDS", "NAMES", "DIGITS", "PHOTOS", "TABS", "get_kind", "by_channels",
           "own_kinds",
           "tab_top_k"]

# The app's two predictor tabs.
DIGITS, PHOTOS = "digits", "photos"
TABS = (DIGITS, PHOTOS)


def _sketch(source: Any, size: int) -> np.ndarray | None:
    """A drawing as uint8 (size, size): ink found, fitted, centred (28x28, then `size`); None when
    nothing is drawn."""
    digit = sketch_to_digit(source)
    if digit is None:
        return None
    if size != digit.shape[-1]:
        t = F.interpolate(torch.from_numpy(digit)[None, None], size=(size, size),
                          mode="bilinear", antialias=True)
        digit = t[0, 0].numpy()
    return np.clip(digit * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # what the page calls images of this kind
    channels: int  # the input a folder of such images is read as, unless asked otherwise
    size: int
    augment: str  # how training batches are varied (core.augment.AUGMENTATIONS)
    # Scored on each image and its mirror image too (not where a mirror image may be another class).
    tta_flip: bool
    fast_model: str  # the fast net to train on it (a name of core.models)
    tab: str  # the predictor tab that offers its models (TABS)
    top_k: int  # how many classes that tab shows
    drawn: bool  # a drawing (dark strokes on a light ground), else a picture
    prepare: Callable[[Any, int], np.ndarray | None]  # (image, size) -> uint8 (size, size[, 3])
    preparation: str  # how, in words: what a port of the app must do (ONNX metadata)
    few_shot_steps: int  # optimiser steps of a training on a few examples of one's own classes
    stored_side: int | None = None  # own examples are kept at most this large; None: not offered

    def prepare_picture(self, source: Any, size: int | None = None) -> np.ndarray:
        """An uploaded image prepared for a model of this kind; InputError when nothing is drawn in
        a drawing."""
        out = self.prepare(source, size or self.size)
        if out is None:
            raise InputError("nothing is drawn in this sketch (no dark strokes on a light ground)")
        return out


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("sketch", "Sketches", 1, 28, "digits", False, "digitnet", DIGITS, 3, True, _sketch,
         "core.preparation.sketch_to_digit: ink found whatever the colours (distance from the "
         "border's median), cropped, scaled to fit 20x20 keeping the aspect ratio (bilinear at "
         "4x), stroke width brought into 3.7-7.7 px at 4x, centred by centre of mass in 28x28, "
         "white on black, values 0..1",
         few_shot_steps=210, stored_side=400),
    Kind("greyscale", "Greyscale pictures", 1, 28, "shift", False, "digitnet", PHOTOS, 5, False,
         greyscale_to_input,
         "core.preparation.greyscale_to_input: upright, transparency on white, centre-cropped "
         "square, resized (Lanczos), grey (0.299 R + 0.587 G + 0.114 B), inverted if the border's "
         "median is light",
         few_shot_steps=210),
    # cifarnet's steps cost six times digitnet's: fewer of them (docs/own-classes.md).
    Kind("photo", "Photos", 3, 32, "photos", True, "cifarnet", PHOTOS, 5, False, photo_to_input,
         "core.preparation.photo_to_input: upright (EXIF), transparency on white, centre-cropped "
         "square, resized (Lanczos), RGB",
         few_shot_steps=100, stored_side=256),
)}
NAMES = tuple(KINDS)


def get_kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown input kind {name!r}; choose one of: "
                         f"{', '.join(NAMES)}") from None


def by_channels(channels: int | None) -> Kind:
    """The kind of images nothing else is known about (a folder's): greyscale pictures for one
    channel, else photos."""
    return next(k for k in KINDS.values() if not k.drawn and k.channels == (channels or 3))


def tab_top_k(tab: str) -> int:
    """How many classes a predictor tab shows: the most any of its kinds asks for."""
    return max(k.top_k for k in KINDS.values() if k.tab == tab)


def own_kinds() -> list[Kind]:
    """The kinds a visitor can teach their own classes of (the Your classes tab)."""
    return [k for k in KINDS.values() if k.stored_side is not None]
