"""A small synthetic UNIPEN digit file: the same text every time, for the pen-digit loader's tests.

tests/fixtures/unipen-sample.tra.Z is this text compressed by Unix `compress` (ncompress 4.2):
    python tests/unipen_sample.py | compress -c > tests/fixtures/unipen-sample.tra.Z
"""
from __future__ import annotations

import math
import sys

import numpy as np


def _shape(label: int, rng: np.random.Generator) -> list[list[tuple[int, int]]]:
    """Strokes of a crude digit in tablet units (y up): a ring for 0, a bar for 1, two strokes for
    7, else a zig-zag whose turns depend on the label."""
    cx, cy, h = rng.uniform(200, 300), rng.uniform(200, 300), rng.uniform(120, 220)
    if label == 0:
        return [
            [
                (cx + 0.35 * h * math.cos(t), cy + 0.5 * h * math.sin(t))
                for t in np.linspace(0, 2 * math.pi, 24)
            ]
        ]
    if label == 1:
        return [[(cx, cy + h / 2 - i * h / 11) for i in range(12)]]
    if label == 7:
        return [[(cx - h / 3 + i * h / 15, cy + h / 2) for i in range(11)],
                [(cx + h / 3 - i * h / 30, cy + h / 2 - i * h / 15) for i in range(16)]]
    return [[(cx + (h / 3) * math.sin(i * (label + 1) / 4),
              cy + h / 2 - i * h / 19) for i in range(20)]]


def synthetic_unipen(writers: int = 5, per_writer: int = 10, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    lines = [".LEXICON \"0\" \"1\" \"2\" \"3\" \"4\" \"5\" \"6\" \"7\" \"8\" \"9\"",
             ".HIERARCHY DIGIT", ""]
    n = 0
    for writer in range(1, writers + 1):
        for i in range(per_writer):
            label = (i + writer) % 10
            lines += [f".SEGMENT DIGIT {n:4d} ? \"{label}\"", f".COMMENT {label} {writer} {i}"]
            for stroke in _shape(label, rng):
                lines.append(".PEN_DOWN")
                lines += [f" {round(x):3d} {round(y):3d}" for x, y in stroke]
                lines += [".PEN_UP"]
            lines += [".DT 100", ""]
            n += 1
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(synthetic_unipen())


# People of the synthetic UNIPEN 1a tree: (site, writer id); ibm's ids name sessions of a person
# (r<session>-<person>), as in the real section. With these names, core.pens.in_test_split puts
# the people aaa/1, bbb/1 and ibm/07 (two sessions) in UNIPEN's test split, six others in training.
UNIPEN_1A_WRITERS = [("aaa", "1"), ("aaa", "2"), ("aaa", "4"), ("aaa", "6"), ("aaa", "8"),
                     ("bbb", "1"), ("bbb", "2"), ("ibm", "r00-07"), ("ibm", "r01-07"),
                     ("ibm", "r00-08")]
UNIPEN_1A_TEST = {"aaa/1", "bbb/1", "ibm/07"}


def synthetic_unipen_1a(root, per_writer: int = 10, seed: int = 0, scale: float = 37.0):
    """A small UNIPEN train_r01_v07 section 1a under root/unipen/train_r01_v07: one label file and
    one include per writer, coordinates in a site's own units (`scale` times the tablet box's),
    an empty `.PEN_UP` block and a dot segment (skipped) in every file. Returns the tree."""
    from pathlib import Path

    rng = np.random.default_rng(seed)
    tree = Path(root) / "unipen" / "train_r01_v07"
    for n, (site, writer) in enumerate(UNIPEN_1A_WRITERS):
        pen, segments, component = [f".WRITER_ID {writer}", ".COORD X Y"], [], 0
        for i in range(per_writer):
            label = (i + n) % 10
            strokes = _shape(label, rng)
            first = component
            for stroke in strokes:
                pen += [".PEN_DOWN", *(f"{x * scale:.0f} {y * scale:.0f}" for x, y in stroke),
                        ".PEN_UP"]
                component += 1
            segments.append(f'.SEGMENT CHARACTER {first}-{component - 1} ? "{label}"')
        pen += [".PEN_DOWN", "5 5", ".PEN_UP"]  # a dot: no extent
        segments.append(f'.SEGMENT CHARACTER {component} ? "3"')
        name = f"{site}/w{n}.dat"
        (tree / "include" / site).mkdir(parents=True, exist_ok=True)
        (tree / "include" / name).write_text("\n".join(pen) + "\n")
        (tree / "data" / "1a" / site).mkdir(parents=True, exist_ok=True)
        (tree / "data" / "1a" / name).write_text(
            "\n".join([".VERSION 1.0", f".INCLUDE {name}", *segments]) + "\n")
    return tree
