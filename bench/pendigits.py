"""Real pen trajectories (TINYVISION_PEN_DIGITS) replayed as a person would draw them on the sketchpad.

`layout_strokes` places a digit on a canvas the way a person might (small and off-centre as recorded, or big and
centred) and `render` draws the strokes with a round brush, like the browser canvas does. The browser test replays
the same point lists as mouse drags. Evaluation data only: never train on it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "pen-digits" / "pen_digits_dev.json"
TABLET = 500  # the recordings' coordinate box; y points up


def load(path: str | Path | None = None) -> list[dict]:
    path = Path(path or os.environ.get("TINYVISION_PEN_DIGITS", DEFAULT_PATH))
    return json.loads(path.read_text())


def layout_strokes(digit: dict, canvas: int, layout: str = "recorded") -> list[list[tuple[float, float]]]:
    """Stroke point lists in canvas pixels (y down).

    layout "recorded": the tablet box scaled to the canvas (digits stay small and off-centre, as written);
    layout "big": the digit's bounding box scaled to 70% of the canvas height and centred.
    """
    strokes = [[(x, TABLET - y) for x, y in s] for s in digit["strokes"]]
    if layout == "recorded":
        k = canvas / TABLET
        return [[(x * k, y * k) for x, y in s] for s in strokes]
    if layout != "big":
        raise ValueError(f"unknown layout {layout!r}")
    pts = np.array([p for s in strokes for p in s], dtype=float)
    lo, hi = pts.min(0), pts.max(0)
    k = 0.7 * canvas / max(hi[1] - lo[1], (hi[0] - lo[0]) * 0.8, 1.0)
    centre = (lo + hi) / 2
    return [[((x - centre[0]) * k + canvas / 2, (y - centre[1]) * k + canvas / 2) for x, y in s] for s in strokes]


def render(strokes: list[list[tuple[float, float]]], canvas: int, brush: float, ink=(0, 0, 0),
           background=(255, 255, 255)) -> np.ndarray:
    """Draw strokes with a round brush of diameter `brush` on an RGB canvas; returns HxWx3 uint8."""
    im = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(im)
    r = brush / 2
    for s in strokes:
        if len(s) > 1:
            draw.line(s, fill=ink, width=max(1, round(brush)), joint="curve")
        for x, y in s:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return np.asarray(im)
