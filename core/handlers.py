"""What the app's events do: plain functions from what the page sends to what it shows.

Nothing here imports gradio, so tests call these directly. A problem with the user's input is an `InputError`
whose message is written for the user; the app turns it into an error message on the page and in the API.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import CheckpointError
from .inference import InputError, Judgement, Predictor, load_photo, picture_to_input, sketch_to_digit, top_k

__all__ = ["CHECKPOINT_DIR", "DIGITS", "PHOTOS", "EMPTY_SKETCH", "EMPTY_PHOTO", "MIN_PHOTO_SIDE", "Studio",
           "enlarge", "blank_canvas", "kind_of", "answer", "unsure_note"]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
DIGITS, PHOTOS = "digits", "photos"
# Default model per tab: the first of these that is shipped, else the first shipped model of that kind.
PREFERRED = {DIGITS: ("handwriting-digitnet", "mnist-digitnet"), PHOTOS: ("cifar10-cifarnet", "cifar10-lenet")}
TOP_K = {DIGITS: 3, PHOTOS: 5}
# The model's input is tiny; shown at this many screen pixels per input pixel so the user can see what it saw.
SEEN_SIZE = 224
# Below this a photo holds no object to recognise; refusing says so instead of guessing from one colour.
MIN_PHOTO_SIDE = 8

EMPTY_SKETCH = "✏️ **Draw a digit** (0-9) in the white box. The prediction updates after every stroke."
EMPTY_PHOTO = "📷 **Upload a photo** (PNG, JPEG, WebP, any size) or click an example below."


def enlarge(image: np.ndarray, size: int = SEEN_SIZE) -> np.ndarray:
    """Nearest-neighbour upscale to about `size` pixels (uint8), keeping the model's pixels visible as squares."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    k = max(1, size // max(a.shape[:2]))
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def blank_canvas(size: int) -> np.ndarray:
    """A white RGB canvas: the sketchpad opens on it, ready to draw (an empty sketchpad has no tool selected)."""
    return np.full((size, size, 3), 255, dtype=np.uint8)


def _file_path(value: Any) -> str | Path | None:
    """The local path in what an image input sends: a path, or Gradio's file payload {"path": ...}."""
    if value is None or isinstance(value, (str, Path)):
        return value
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return value["path"]
    raise InputError("expected an image file")


def kind_of(predictor: Predictor) -> str:
    """The tab a model belongs to: the Draw tab for sketch models, the photo tab for photo and greyscale ones."""
    return DIGITS if predictor.kind == "sketch" else PHOTOS


class Studio:
    """The shipped checkpoints, loaded once, and the handlers that predict with them."""

    def __init__(self, checkpoint_dir: str | Path = CHECKPOINT_DIR):
        self.models: dict[str, Predictor] = {}
        for path in sorted(Path(checkpoint_dir).glob("*.pt")):
            try:
                self.models[path.stem] = Predictor.load(path)
            except CheckpointError as exc:
                # One broken file must not take the app down; the others still serve.
                log.warning("skipping checkpoint %s: %s", path.name, exc)

    def keys(self, kind: str) -> list[str]:
        """Model keys for a tab, the default first."""
        keys = [k for k, p in self.models.items() if kind_of(p) == kind]
        preferred = [k for k in PREFERRED[kind] if k in keys]
        return preferred + [k for k in keys if k not in preferred]

    def choices(self, kind: str, extra: dict[str, Predictor] | None = None) -> list[tuple[str, str]]:
        """(label, key) pairs for a model dropdown; `extra` holds one visitor's own models (listed first)."""
        own = [(f"yours: {p.name}", k) for k, p in (extra or {}).items() if kind_of(p) == kind]
        return own[::-1] + [(self.models[k].name, k) for k in self.keys(kind)]

    def default(self, kind: str) -> str | None:
        keys = self.keys(kind)
        return keys[0] if keys else None

    def predictor(self, key: str | None, kind: str, extra: dict[str, Predictor] | None = None) -> Predictor:
        """The model for `key`, checked to be one of this tab's models (API callers can send anything).

        `extra` holds the models one visitor trained or uploaded (their session's state); they shadow nobody else's.
        """
        if key is None:
            key = self.default(kind)
        known = {**self.models, **(extra or {})}
        predictor = known.get(key) if isinstance(key, str) else None
        if predictor is None or kind_of(predictor) != kind:
            names = ", ".join(k for _, k in self.choices(kind, extra)) or "none installed"
            raise InputError(f"unknown model {key!r} for {kind}; choose one of: {names}")
        return predictor

    def _digit(self, sketch: Any, model: str | None, extra: dict[str, Predictor] | None):
        predictor = self.predictor(model, DIGITS, extra)
        t0 = time.perf_counter()
        digit = sketch_to_digit(sketch)
        if digit is None:
            return predictor, None, None, 0.0
        return predictor, digit, predictor.judge(digit), time.perf_counter() - t0

    def _photo(self, photo: Any, model: str | None, extra: dict[str, Predictor] | None):
        predictor = self.predictor(model, PHOTOS, extra)
        source = _file_path(photo)
        if source is None:
            return predictor, None, None, 0.0
        t0 = time.perf_counter()
        image = load_photo(source)
        if min(image.size) < MIN_PHOTO_SIDE:
            w, h = image.size
            raise InputError(f"the image is {w}x{h} pixels; at least {MIN_PHOTO_SIDE}x{MIN_PHOTO_SIDE} is needed "
                             "to recognise anything")
        seen = picture_to_input(image, predictor.kind, predictor.input_shape[1])
        return predictor, seen, predictor.judge(seen), time.perf_counter() - t0

    def predict_digit(self, sketch: Any, model: str | None = None,
                      extra: dict[str, Predictor] | None = None) -> tuple[dict | None, np.ndarray | None, str]:
        """Sketchpad value -> (top-3 for gr.Label, the 28x28 the model saw enlarged, a status line)."""
        return _shown(*self._digit(sketch, model, extra), EMPTY_SKETCH, TOP_K[DIGITS])

    def classify_image(self, photo: Any, model: str | None = None,
                       extra: dict[str, Predictor] | None = None) -> tuple[dict | None, np.ndarray | None, str]:
        """Image file (path or Gradio file payload) -> (top-5 for gr.Label, the input the model saw enlarged, status).

        The file is opened here with the project's limits (size, decompression bombs, corrupt data), so every bad
        upload ends as an InputError that says what is wrong.
        """
        return _shown(*self._photo(photo, model, extra), EMPTY_PHOTO, TOP_K[PHOTOS])

    def answer_digit(self, sketch: Any, model: str | None = None,
                     extra: dict[str, Predictor] | None = None) -> dict:
        """The Draw tab's answer as one dict for API callers (answer())."""
        predictor, _, judgement, _ = self._digit(sketch, model, extra)
        return answer(predictor, judgement, TOP_K[DIGITS])

    def answer_photo(self, photo: Any, model: str | None = None, extra: dict[str, Predictor] | None = None) -> dict:
        """The photo tab's answer as one dict for API callers (answer())."""
        predictor, _, judgement, _ = self._photo(photo, model, extra)
        return answer(predictor, judgement, TOP_K[PHOTOS])


def _shown(predictor: Predictor, seen: np.ndarray | None, judgement: Judgement | None, seconds: float,
           empty: str, k: int) -> tuple[dict | None, np.ndarray | None, str]:
    """(top-k for gr.Label, the model's input enlarged, the status line); the tab's prompt for an empty input."""
    if judgement is None:
        return None, None, empty
    return top_k(judgement.probs, predictor.classes, k), enlarge(seen), _status(predictor, judgement, seconds)


def answer(predictor: Predictor, judgement: Judgement | None, k: int) -> dict:
    """{"model", "top" (class -> probability, best first), "label", "unsure", "score", "threshold", "message"};
    for an empty input, "label" and "top" are empty and "message" is the tab's prompt."""
    base = {"model": predictor.name, "threshold": predictor.unsure_threshold}
    if judgement is None:
        return {**base, "top": {}, "label": None, "unsure": False, "score": None, "message": "empty input"}
    top = top_k(judgement.probs, predictor.classes, k)
    return {**base, "top": top, "label": next(iter(top)), "unsure": judgement.unsure,
            "score": round(judgement.score, 4), "message": unsure_note(predictor) if judgement.unsure else ""}


def unsure_note(predictor: Predictor, shown: int = 10) -> str:
    classes = predictor.classes
    names = ", ".join(classes[:shown]) + (f" (+{len(classes) - shown} more)" if len(classes) > shown else "")
    return f"Not sure: this does not look like any of {names}."


def _status(predictor: Predictor, judgement: Judgement, seconds: float) -> str:
    probs = judgement.probs
    best = int(np.argmax(probs))
    line = (f"**{predictor.classes[best]}** ({probs[best]:.0%}) · answered by {predictor.name} "
            f"in {seconds * 1000:.0f} ms")
    return f"🤔 **{unsure_note(predictor)}** The closest is below.\n\n{line}" if judgement.unsure else line
