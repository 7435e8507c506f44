"""What the predictor tabs answer: the top classes, the image the model saw, a status line, and
"Not sure" for what is probably none of the model's classes.

    answers = Answers(Shelf())
    label, seen, status = answers.predict_digit(sketchpad_value)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..kinds import DIGITS, PHOTOS, get_kind
from ..predictor import Judgement, Predictor, top_k
from ..preparation import InputError, load_photo, open_drawing, sketch_to_digit
from .shelf import Shelf
from .texts import EMPTY_PHOTO, EMPTY_SKETCH, OWN_UNTRAINED

__all__ = ["Answers", "answer", "unsure_note", "enlarge", "MIN_PHOTO_SIDE", "OWN_KEY"]

# The model's input is tiny; it is shown at this many screen pixels per input pixel so the user can
# see what it saw.
SEEN_SIZE = 224
# Below this a photo holds no object to recognise; refusing says so instead of guessing.
MIN_PHOTO_SIDE = 8
# The key of the model a visitor trained in the Your classes tab (that tab's own model).
OWN_KEY = "own"


def enlarge(image: np.ndarray, size: int = SEEN_SIZE) -> np.ndarray:
    """Nearest-neighbour upscale to about `size` pixels (uint8), keeping the model's pixels
    visible as squares."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    k = max(1, size // max(a.shape[:2]))
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def _file_path(value: Any) -> str | Path | None:
    """The local path in what an image input sends: a path, or the file payload {"path": ...}."""
    if value is None or isinstance(value, (str, Path)):
        return value
    if isinstance(value, dict) and isinstance(value.get("path"), str):
        return value["path"]
    raise InputError("expected an image file")


class Answers:
    """The predictor tabs' answers, with the shelf's models or a visitor's own."""

    def __init__(self, shelf: Shelf):
        self.shelf = shelf

    def _digit(self, sketch: Any, model: str | None, own: dict[str, Predictor] | None):
        predictor = self.shelf.predictor(model, DIGITS, own)
        t0 = time.perf_counter()
        digit = sketch_to_digit(sketch)
        if digit is None:
            return predictor, None, None, 0.0
        return predictor, digit, predictor.judge(digit), time.perf_counter() - t0

    def _photo(self, photo: Any, model: str | None, own: dict[str, Predictor] | None):
        predictor = self.shelf.predictor(model, PHOTOS, own)
        source = _file_path(photo)
        if source is None:
            return predictor, None, None, 0.0
        t0 = time.perf_counter()
        image = load_photo(source)
        if min(image.size) < MIN_PHOTO_SIDE:
            w, h = image.size
            raise InputError(f"the image is {w}x{h} pixels; at least {MIN_PHOTO_SIDE}x"
                             f"{MIN_PHOTO_SIDE} is needed to recognise anything")
        seen = get_kind(predictor.kind).prepare_picture(image, predictor.input_shape[1])
        return predictor, seen, predictor.judge(seen), time.perf_counter() - t0

    def predict_digit(self, sketch: Any, model: str | None = None,
                      own: dict[str, Predictor] | None = None) -> tuple:
        """Sketchpad value -> (top-k for a label, the 28x28 the model saw enlarged, a status
        line)."""
        return _shown(*self._digit(sketch, model, own), EMPTY_SKETCH)

    def classify_image(self, photo: Any, model: str | None = None,
                       own: dict[str, Predictor] | None = None) -> tuple:
        """Image file (path or file payload) -> (top-k, the input the model saw enlarged, status).

        The file is opened here with the project's limits (size, decompression bombs, corrupt
        data), so every bad upload ends as an InputError that says what is wrong.
        """
        return _shown(*self._photo(photo, model, own), EMPTY_PHOTO)

    def answer_digit(self, sketch: Any, model: str | None = None,
                     own: dict[str, Predictor] | None = None) -> dict:
        """The Draw tab's answer as one dict for API callers (`answer`)."""
        predictor, _, judgement, _ = self._digit(sketch, model, own)
        return answer(predictor, judgement)

    def answer_photo(self, photo: Any, model: str | None = None,
                     own: dict[str, Predictor] | None = None) -> dict:
        """The photo tab's answer as one dict for API callers (`answer`)."""
        predictor, _, judgement, _ = self._photo(photo, model, own)
        return answer(predictor, judgement)

    def drawing_answer(self, drawing: Any, model: str | None = None,
                       own: dict[str, Predictor] | None = None) -> dict:
        """The pad's answer from the server (when the page cannot answer itself): `drawing` is what
        the pad sends, {"id", "png"} (a PNG data URL); the answer says which drawing it is for, and
        holds the 28x28 the model saw. The Your classes tab's pad asks its own model (OWN_KEY)."""
        drawing = drawing if isinstance(drawing, dict) else {}
        ident = drawing.get("id")
        ident = ident if isinstance(ident, int) and not isinstance(ident, bool) else None
        try:
            predictor = self.shelf.predictor(model, DIGITS, own)
            t0 = time.perf_counter()
            digit = sketch_to_digit(open_drawing(drawing.get("png")))
            judgement = predictor.judge(digit) if digit is not None else None
        except InputError as exc:  # said in the pad's own status line
            return {"id": ident, "label": None, "error": str(exc)}
        reply = answer(predictor, judgement)
        seen = None if digit is None else [round(float(v), 4) for v in digit.ravel()]
        return {**reply, "id": ident, "top": list(reply["top"].items()), "digit": seen,
                "ms": round((time.perf_counter() - t0) * 1000, 1)}

    def try_picture(self, photo: Any, own: dict[str, Predictor] | None) -> tuple:
        """The Your classes tab's answer to a picture, asked of the model that tab trained or was
        given (`own`, under OWN_KEY); its drawings are answered by its pad."""
        if not own:
            return None, None, OWN_UNTRAINED
        kind = get_kind(own[OWN_KEY].kind)
        if kind.drawn:
            raise InputError(f"this model reads {kind.label.lower()}: switch the kind to "
                             f"{kind.label} to try it")
        return self.classify_image(photo, OWN_KEY, own)


def _shown(predictor: Predictor, seen: np.ndarray | None, judgement: Judgement | None,
           seconds: float, empty: str) -> tuple:
    """(top-k for a label, the model's input enlarged, the status line); the tab's prompt for an
    empty input."""
    if judgement is None:
        return None, None, empty
    k = get_kind(predictor.kind).top_k
    return (top_k(judgement.probs, predictor.classes, k), enlarge(seen),
            _status(predictor, judgement, seconds))


def answer(predictor: Predictor, judgement: Judgement | None) -> dict:
    """{"model", "top" (class -> probability, best first), "label", "unsure", "score",
    "threshold", "message"}; for an empty input, "label" and "top" are empty and "message" says
    so."""
    base = {"model": predictor.name, "threshold": predictor.unsure_threshold}
    if judgement is None:
        return {**base, "top": {}, "label": None, "unsure": False, "score": None,
                "message": "empty input"}
    top = top_k(judgement.probs, predictor.classes, get_kind(predictor.kind).top_k)
    return {**base, "top": top, "label": next(iter(top)), "unsure": judgement.unsure,
            "score": round(judgement.score, 4),
            "message": unsure_note(predictor) if judgement.unsure else ""}


def unsure_note(predictor: Predictor, shown: int = 10) -> str:
    classes = predictor.classes
    more = f" (+{len(classes) - shown} more)" if len(classes) > shown else ""
    return f"Not sure: this does not look like any of {', '.join(classes[:shown])}{more}."


def _status(predictor: Predictor, judgement: Judgement, seconds: float) -> str:
    probs = judgement.probs
    best = int(np.argmax(probs))
    line = (f"**{predictor.classes[best]}** ({probs[best]:.0%}) · answered by {predictor.name} "
            f"in {seconds * 1000:.0f} ms")
    if judgement.unsure:
        return f"🤔 **{unsure_note(predictor)}** The closest is below.\n\n{line}"
    return line
