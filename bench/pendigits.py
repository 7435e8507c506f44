"""Real pen trajectories (TINYVISION_PEN_DIGITS) replayed as a person would draw them on the
sketchpad.

`load` reads the recorded digits of the evaluation writers: dicts with "label", "writer" and
"strokes" (tablet units, y up). They are drawn with core.strokes, the renderer the training data
uses too; the browser test replays the same point lists as mouse drags. Evaluation data only: never
train on it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "pen-digits" / "pen_digits_dev.json"


def load(path: str | Path | None = None) -> list[dict]:
    path = Path(path or os.environ.get("TINYVISION_PEN_DIGITS", DEFAULT_PATH))
    return json.loads(path.read_text())
