"""Pen-stroke digits in UNIPEN format, as UCI's "Pen-Based Recognition of Handwritten Digits" files
hold them.

A digit is `.SEGMENT DIGIT <n> ? "<label>"`, then `.COMMENT <label> <writer> <n>`, then one or more
strokes, each `.PEN_DOWN`, one `x y` line per point, `.PEN_UP`. Coordinates are tablet units in a
500x500 box, y pointing up. `parse` returns the digits as dicts {"label", "writer", "strokes"}, the
form core.strokes draws.
"""
from __future__ import annotations

__all__ = ["UnipenError", "parse", "decompress"]


class UnipenError(ValueError):
    """The text is not the UNIPEN digit format; the message names the line."""


def parse(text: str) -> list[dict]:
    digits: list[dict] = []
    digit: dict | None = None
    stroke: list[tuple[float, float]] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == ".SEGMENT":
                if stroke is not None:
                    raise UnipenError("a stroke is not closed by .PEN_UP")
                label = words[-1].strip('"')
                if not (label.isdigit() and len(label) == 1):
                    raise UnipenError(f"the label {words[-1]} is not one digit")
                digit = {"label": int(label), "writer": None, "strokes": []}
                digits.append(digit)
            elif words[0] == ".COMMENT" and digit is not None and digit["writer"] is None:
                digit["writer"] = int(words[2])
            elif words[0] == ".PEN_DOWN":
                if digit is None or stroke is not None:
                    raise UnipenError(".PEN_DOWN outside a digit, or inside a stroke")
                stroke = []
            elif words[0] == ".PEN_UP":
                if stroke is None:
                    raise UnipenError(".PEN_UP without .PEN_DOWN")
                if stroke:
                    digit["strokes"].append(stroke)
                stroke = None
            elif not words[0].startswith("."):
                if stroke is None:
                    raise UnipenError("a point outside a stroke")
                stroke.append((float(words[0]), float(words[1])))
        except (IndexError, ValueError) as exc:
            if isinstance(exc, UnipenError):
                raise UnipenError(f"line {number}: {exc}") from None
            raise UnipenError(f"line {number}: cannot read {line.strip()[:60]!r}") from None
    if stroke is not None:
        raise UnipenError("the last stroke is not closed by .PEN_UP")
    broken = [i for i, d in enumerate(digits) if d["writer"] is None or not d["strokes"]]
    if broken:
        raise UnipenError(f"digit {broken[0]} has no writer comment or no strokes")
    return digits


def decompress(data: bytes) -> bytes:
    """The contents of a Unix `compress` (.Z, LZW) file."""
    import unlzw3

    try:
        return unlzw3.unlzw(data)
    except Exception as exc:  # the decoder raises several types for corrupt input
        raise UnipenError(f"not a readable .Z file: {exc}") from None
