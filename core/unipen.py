"""Pen-stroke digits in UNIPEN 1.0 text, in both forms the project reads.

UNIPEN text is a run of keyword lines, each a `.WORD` in column 0 that owns the lines below it up
to the next keyword: `.PEN_DOWN` and `.PEN_UP` own points (`x y` lines), `.COMMENT` or `.PAD` own
prose. `_entries` cuts any UNIPEN text that way and `_points` reads the points of a pen block; both
forms are built on those two:

* UCI's "Pen-Based Recognition of Handwritten Digits" files (`parse`): every digit is inline,
  `.SEGMENT DIGIT <n> ? "<label>"`, `.COMMENT <label> <writer> <n>`, then its strokes, each
  `.PEN_DOWN`, its points, `.PEN_UP`. Tablet units in a 500x500 box, y pointing up.
* The UNIPEN train_r01_v07 distribution, section 1a (`parse_labels`, `read_unipen_1a`): label files
  `data/1a/<site>/**.dat` pull pen data in with `.INCLUDE <path>` (a path under `include/`) and
  name digits with `.SEGMENT CHARACTER <delineation> <quality> "<label>"`. The delineation points
  at components, the non-empty `.PEN_DOWN`/`.PEN_UP` blocks of the whole stream (label file with
  its includes spliced in) numbered from 0; pen-up blocks, where a site recorded the hovering pen,
  are counted but not drawn. Units differ by site, y points up.

Keywords count only in column 0 because prose may mention them: include/lou/lou0.doc has an
indented ".PEN_DOWN and .PEN_UP." inside its `.PAD` text, which would otherwise open a pen block.
Digits are plain dicts with strokes as lists of (x, y) float tuples, the form core.strokes draws;
every result is a pure function of the files' contents, so callers may cache it by content.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

__all__ = ["UnipenError", "parse", "parse_labels", "read_unipen_1a", "decompress"]

Point = tuple[float, float]


class UnipenError(ValueError):
    """The text is not the UNIPEN digit format; the message names the line."""


class _Entry(NamedTuple):
    line: int  # number of the keyword line, from 1; 0 for the text before the first keyword
    keyword: str  # such as ".PEN_DOWN"; "" for the text before the first keyword
    head: str  # the whole keyword line
    body: list[str]  # the lines it owns, blank ones kept: body[i] is line `line + 1 + i`

    @property
    def args(self) -> str:
        return self.head[len(self.keyword):]


def _entries(text: str) -> Iterator[_Entry]:
    """Each keyword of `text` with the lines it owns, in order; one split instead of a state
    machine per line keeps the 2 million point lines of UNIPEN 1a cheap to cut."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    line = 1
    for i, chunk in enumerate(text.split("\n.")):
        lines = chunk.split("\n")
        if i == 0 and not chunk.startswith("."):
            yield _Entry(0, "", "", lines)
        else:
            head = lines[0] if i == 0 else "." + lines[0]
            yield _Entry(line, head.split(None, 1)[0], head, lines[1:])
        line += len(lines)


def _points(entry: _Entry, x: int = 0, y: int = 1) -> list[Point]:
    """The points a pen block owns, taking columns `x` and `y` (as `.COORD` names them). One
    comprehension reads a good block fast; a bad one is read again line by line to name the line."""
    try:
        return [(float(w[x]), float(w[y])) for w in map(str.split, entry.body) if w]
    except (IndexError, ValueError):
        pass
    points = []
    for i, text in enumerate(entry.body):
        words = text.split()
        if words:
            try:
                points.append((float(words[x]), float(words[y])))
            except (IndexError, ValueError):
                number = entry.line + 1 + i
                raise UnipenError(f"line {number}: cannot read {text.strip()[:60]!r}") from None
    return points


def parse(text: str) -> list[dict]:
    """The digits of a UCI pen-digits file as {"label": int, "writer": int, "strokes"}.

    Strict, because that file is one known layout: anything else (a point outside a stroke, an
    unclosed stroke, a label that is not one digit, a digit without writer or strokes) is a
    UnipenError naming the line, rather than a digit silently lost or misdrawn."""
    digits: list[dict] = []
    digit: dict | None = None
    stroke: list[Point] | None = None
    for entry in _entries(text):
        words = entry.head.split()
        try:
            if entry.keyword == ".SEGMENT":
                if stroke is not None:
                    raise UnipenError("a stroke is not closed by .PEN_UP")
                label = words[-1].strip('"')
                if not (label.isdigit() and len(label) == 1):
                    raise UnipenError(f"the label {words[-1]} is not one digit")
                digit = {"label": int(label), "writer": None, "strokes": []}
                digits.append(digit)
            elif entry.keyword == ".COMMENT" and digit is not None and digit["writer"] is None:
                digit["writer"] = int(words[2])
            elif entry.keyword == ".PEN_DOWN":
                if digit is None or stroke is not None:
                    raise UnipenError(".PEN_DOWN outside a digit, or inside a stroke")
                stroke = []
            elif entry.keyword == ".PEN_UP":
                if stroke is None:
                    raise UnipenError(".PEN_UP without .PEN_DOWN")
                if stroke:
                    digit["strokes"].append(stroke)
                stroke = None
        except (IndexError, ValueError) as exc:
            if isinstance(exc, UnipenError):
                raise UnipenError(f"line {entry.line}: {exc}") from None
            text = entry.head.strip()[:60]
            raise UnipenError(f"line {entry.line}: cannot read {text!r}") from None
        if stroke is None:
            stray = next((i for i, text in enumerate(entry.body) if text.strip()), None)
            if stray is not None:
                raise UnipenError(f"line {entry.line + 1 + stray}: a point outside a stroke")
        else:
            stroke.extend(_points(entry))
    if stroke is not None:
        raise UnipenError("the last stroke is not closed by .PEN_UP")
    broken = [i for i, d in enumerate(digits) if d["writer"] is None or not d["strokes"]]
    if broken:
        raise UnipenError(f"digit {broken[0]} has no writer comment or no strokes")
    return digits


class _Component(NamedTuple):
    pen_down: bool
    points: list[Point]
    writer: str | None  # the .WRITER_ID in force where the block was recorded


class _Segment(NamedTuple):
    source: str  # "file:line" of the .SEGMENT, for messages and for tracing a digit back
    args: str
    writer: str | None  # the .WRITER_ID in force at the .SEGMENT line


class _Stream:
    """What reading a label file with its includes gathers: the components in order, the
    segments, and the keywords in force (.WRITER_ID, the X and Y columns of .COORD)."""

    def __init__(self) -> None:
        self.components: list[_Component] = []
        self.segments: list[_Segment] = []
        self.writer: str | None = None
        self.columns = (0, 1)

    def read(self, text: str, name: str, resolve_include: Callable[[str], str],
             chain: tuple[str, ...] = ()) -> None:
        """Take in `text` (called `name` in messages), splicing each .INCLUDE in where it stands,
        since components are numbered across the whole stream."""
        for entry in _entries(text):
            include = included = None
            try:
                if entry.keyword in (".PEN_DOWN", ".PEN_UP"):
                    points = _points(entry, *self.columns)
                    if points:
                        pen_down = entry.keyword == ".PEN_DOWN"
                        self.components.append(_Component(pen_down, points, self.writer))
                elif entry.keyword == ".SEGMENT":
                    source = f"{name}:{entry.line}"
                    self.segments.append(_Segment(source, entry.args, self.writer))
                elif entry.keyword == ".WRITER_ID":
                    self.writer = " ".join(entry.args.split()) or None
                elif entry.keyword == ".COORD":
                    names = entry.args.split()
                    if "X" not in names or "Y" not in names:
                        coord = entry.args.strip()
                        raise UnipenError(f"line {entry.line}: .COORD {coord!r} names no X and Y")
                    self.columns = (names.index("X"), names.index("Y"))
                elif entry.keyword == ".INCLUDE":
                    include = entry.args.split()[0] if entry.args.split() else ""
                    if not include or include in chain:
                        raise UnipenError(
                            f"line {entry.line}: .INCLUDE {include!r} is empty or includes itself")
                    try:
                        included = resolve_include(include)
                    except UnipenError as exc:
                        raise UnipenError(f"line {entry.line}: {exc}") from None
            except UnipenError as exc:
                raise UnipenError(f"{name}: {exc}") from None
            if included is not None:
                self.read(included, include, resolve_include, (*chain, include))


_DELINEATION = re.compile(r"(\d+)(?::(\d+))?(?:-(\d+)(?::(\d+))?)?")
_CHARACTER_LEVELS = {"CHARACTER", "DIGIT"}


def _strokes(delineation: str, components: list[_Component]) -> list[list[Point]] | None:
    """The pen-down strokes a delineation names (`3`, `3-5`, `3:10-4:20`, comma lists; ends
    inclusive, `c:p` is point p of component c), or None when it reaches past the data."""
    strokes = []
    for part in delineation.split(","):
        match = _DELINEATION.fullmatch(part)
        if match is None:
            raise UnipenError(f"cannot read the delineation {delineation!r}")
        first, first_point, last, last_point = match.groups()
        if last is None:
            last, last_point = first, first_point
        first, last = int(first), int(last)
        if not first <= last < len(components):
            return None
        for c in range(first, last + 1):
            points = components[c].points
            start = int(first_point) if c == first and first_point is not None else 0
            end = int(last_point) if c == last and last_point is not None else len(points) - 1
            if start > end or end >= len(points):
                return None
            if components[c].pen_down:
                strokes.append(points[start:end + 1])
    return strokes


def _skip_reason(level: str, quality: str, label: str, strokes: list[list[Point]] | None) -> str:
    """Why a segment gives no digit, or "" when it gives one."""
    if level not in _CHARACTER_LEVELS:
        return "other level"
    if not (len(label) == 1 and label.isdigit()):
        return "not a digit"
    if quality == "BAD":
        return "marked BAD"
    if strokes is None:
        return "delineation out of range"
    points = [p for stroke in strokes for p in stroke]
    if not points:
        return "no pen-down points"
    if len(points) < 2:
        return "fewer than 2 points"
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if max(xs) == min(xs) and max(ys) == min(ys):
        return "no extent"
    return ""


def parse_labels(text: str, resolve_include: Callable[[str], str],
                 name: str = "labels") -> tuple[list[dict], Counter[str]]:
    """The digits a UNIPEN label file names, and how many segments were skipped for what reason.

    `resolve_include(path)` returns the text an `.INCLUDE path` names (includes may nest), or
    raises UnipenError saying why it cannot, which gets the including file and line added. Each
    digit is {"label": int, "writer": str, "quality": str, "source": "file:line", "strokes"}:
    strokes in the file's own units; writer the .WRITER_ID in force where the digit's first
    component was recorded (else at its .SEGMENT line, else `name`, so that it is never missing).
    Segments of other levels, non-digit labels, BAD ones, and those without a drawable extent are
    counted, not returned, because one bad segment should not cost a file of good ones; text that
    cannot be read at all (a malformed point or delineation) is a UnipenError naming file and line.
    """
    stream = _Stream()
    stream.read(text, name, resolve_include)
    digits: list[dict] = []
    skipped: Counter[str] = Counter()
    for segment in stream.segments:
        level, delineation, rest = (segment.args.split(None, 2) + ["", "", ""])[:3]
        quality = ""
        if rest and not rest.startswith('"'):
            quality, rest = (rest.split(None, 1) + [""])[:2]
        label = rest.strip()
        if len(label) >= 2 and label[0] == label[-1] == '"':
            label = label[1:-1]
        try:
            strokes = _strokes(delineation, stream.components)
        except UnipenError as exc:
            raise UnipenError(f"{segment.source}: {exc}") from None
        reason = _skip_reason(level, quality, label, strokes)
        if reason:
            skipped[reason] += 1
            continue
        first = int(_DELINEATION.match(delineation).group(1))
        writer = stream.components[first].writer or segment.writer or name
        digits.append({"label": int(label), "writer": writer, "quality": quality,
                       "source": segment.source, "strokes": strokes})
    return digits, skipped


def read_unipen_1a(root: Path) -> tuple[list[dict], dict]:
    """Every digit of section 1a of a UNIPEN train_r01_v07 tree (`root` holds data/ and include/),
    with a summary of what was read and skipped.

    Each digit is a `parse_labels` digit plus "site"; its writer becomes "<site>/<WRITER_ID>",
    because the ids are only unique within a site. Files are read in sorted order, so the result
    depends on the files' contents alone."""
    root = Path(root)
    labels_dir, include_dir = root / "data" / "1a", root / "include"
    files = sorted(labels_dir.rglob("*.dat"))
    if not files:
        raise UnipenError(f"no label files (*.dat) under {labels_dir}")
    texts: dict[str, str] = {}

    def resolve(path: str) -> str:
        if path not in texts:
            parts = PurePosixPath(path)
            if parts.is_absolute() or ".." in parts.parts:
                raise UnipenError(f".INCLUDE {path} leaves the include folder")
            try:
                texts[path] = (include_dir / path).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UnipenError(f"cannot read include/{path}: {exc.strerror}") from None
        return texts[path]

    digits: list[dict] = []
    skipped: Counter[str] = Counter()
    sites: dict[str, dict] = {}
    for path in files:
        site = path.relative_to(labels_dir).parts[0]
        name = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
        found, lost = parse_labels(text, resolve, name)
        for digit in found:
            digit["writer"] = f"{site}/{digit['writer']}"
            digit["site"] = site
        digits += found
        skipped += lost
        counts = sites.setdefault(site, {"digits": 0, "skipped": 0, "writers": set()})
        counts["digits"] += len(found)
        counts["skipped"] += sum(lost.values())
        counts["writers"].update(d["writer"] for d in found)
    for counts in sites.values():
        counts["writers"] = len(counts["writers"])
    summary = {"files": len(files), "digits": len(digits),
               "writers": len({d["writer"] for d in digits}),
               "skipped": dict(skipped), "sites": sites}
    return digits, summary


def decompress(data: bytes) -> bytes:
    """The contents of a Unix `compress` (.Z, LZW) file."""
    import unlzw3

    try:
        return unlzw3.unlzw(data)
    except Exception as exc:  # the decoder raises several types for corrupt input
        raise UnipenError(f"not a readable .Z file: {exc}") from None
