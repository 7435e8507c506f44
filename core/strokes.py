"""Pen strokes drawn the way the sketchpad draws them: one renderer for training data, benches and
tests.

Strokes are lists of (x, y) points in tablet units (a 500x500 box, y pointing up), as pen-digit
recordings hold them. `layout_strokes` places them on a square canvas (y down) as a person might
draw them; `render` draws them with a round brush, as the page's canvas does; `random_render` draws
one random rendering of the kind a visitor's sketch varies in (size, position, brush width, and
with `jitter` where each stroke lies against the others), for training sets.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["TABLET", "CANVAS", "Strokes", "layout_strokes", "render", "random_render",
           "jittered"]

TABLET = 500  # the recordings' coordinate box; y points up
CANVAS = 400  # the app's sketch canvas, in image pixels
# Brush widths in canvas pixels a random rendering draws with (the app's is 12)
BRUSH_RANGE = (6.0, 30.0)
HEIGHT_RANGE = (0.25, 0.85)  # a random rendering's digit height, as a fraction of the canvas

Strokes = list[list[tuple[float, float]]]


def _flipped(strokes: Strokes) -> np.ndarray:
    return [np.array([(x, TABLET - y) for x, y in s], dtype=float).reshape(-1, 2) for s in strokes]


def _place(strokes: list[np.ndarray], canvas: int, height: float,
           centre: tuple[float, float]) -> Strokes:
    """Scale the strokes' bounding box to `height` (a wide digit to at most 1.25x that width) around
    `centre`."""
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    k = height / max(hi[1] - lo[1], (hi[0] - lo[0]) * 0.8, 1.0)
    mid = (lo + hi) / 2
    return [[((x - mid[0]) * k + centre[0],
              (y - mid[1]) * k + centre[1]) for x, y in s] for s in strokes]


def layout_strokes(strokes: Strokes, canvas: int = CANVAS, layout: str = "recorded") -> Strokes:
    """Stroke point lists in canvas pixels (y down).

    layout "recorded": the tablet box scaled to the canvas (digits stay small and off-centre, as
    written); layout "big": the digit's bounding box scaled to 70% of the canvas height and centred.
    """
    flipped = _flipped(strokes)
    if layout == "recorded":
        k = canvas / TABLET
        return [[(x * k, y * k) for x, y in s] for s in flipped]
    if layout != "big":
        raise ValueError(f"unknown layout {layout!r}")
    return _place(flipped, canvas, 0.7 * canvas, (canvas / 2, canvas / 2))


def render(strokes: Strokes, canvas: int = CANVAS, brush: float = 12.0, ink=(0, 0, 0),
           background=(255, 255, 255)) -> np.ndarray:
    """Draw canvas-pixel strokes with a round brush of diameter `brush` on an RGB canvas; HxWx3
    uint8."""
    im = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(im)
    r = brush / 2
    for s in strokes:
        if len(s) > 1:
            draw.line(s, fill=ink, width=max(1, round(brush)), joint="curve")
        for x, y in s:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return np.asarray(im)


def jittered(strokes: Strokes, rng: np.random.Generator, amount: float) -> list[np.ndarray]:
    """Each stroke moved, turned and scaled on its own about its centre: by up to `amount` of the
    digit's size, `amount` x 80 degrees and `amount` of its size. A two-stroke seven's bar, a
    four's upright or a five's flag then sits a little differently each time, as it does from one
    hand to the next; a one-stroke digit is moved, turned and scaled as a whole (as the batch
    augmentation's warp does). Returns point arrays in the strokes' units."""
    arrays = [np.asarray(s, dtype=float).reshape(-1, 2) for s in strokes]
    if amount <= 0:
        return arrays
    pts = np.concatenate(arrays)
    size = max(float((pts.max(0) - pts.min(0)).max()), 1.0)
    out = []
    for a in arrays:
        centre = (a.min(0) + a.max(0)) / 2
        turn = np.deg2rad(rng.uniform(-80, 80) * amount)
        scale = 1 + rng.uniform(-amount, amount)
        rot = scale * np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        shift = rng.uniform(-amount, amount, 2) * size
        out.append((a - centre) @ rot.T + centre + shift)
    return out


def random_render(strokes: Strokes, rng: np.random.Generator, canvas: int = CANVAS,
                  jitter: float = 0.0) -> np.ndarray:
    """One rendering of tablet strokes as a visitor might draw them: a random height, position and
    brush width; with `jitter` > 0, each stroke also moved on its own (`jittered`)."""
    if jitter > 0:
        strokes = jittered(strokes, rng, jitter)
    height = rng.uniform(*HEIGHT_RANGE) * canvas
    margin = height * 0.65  # half the height, plus room for a wide digit and the brush
    centre = tuple(rng.uniform(min(margin, canvas / 2), max(canvas - margin, canvas / 2), 2))
    return render(_place(_flipped(strokes), canvas, height, centre), canvas,
                  rng.uniform(*BRUSH_RANGE))
