"""Pen-stroke digits as training images: recorded strokes drawn as the pad draws them, then
prepared as a visitor's drawing is.

Two collections, both UNIPEN text (core.unipen), downloaded when missing:
- `pendigits`: UCI's "Pen-Based Recognition of Handwritten Digits" (30 writers for training, 14
  more in its test file), a 500x500 tablet box;
- `unipen`: section 1a (isolated digits) of the UNIPEN train_r01_v07 distribution, 121 writers at
  13 sites, each site's tablet in its own units: every digit is brought into the 500x500 box
  first. Its test split is a fifth of the people, whole, chosen by a hash of their names (the same
  on every machine and for every training seed).
Each digit is drawn a few times by core.strokes (random size, position and brush; for training,
each stroke moved on its own by the loader's `pen_jitter`) and goes through
core.preparation.sketch_to_digit; the result is cached, keyed by the files it came from.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .downloads import DOWNLOAD_TIMEOUT_S, MAX_ARCHIVE_BYTES, fetch, missing, require_online
from .imagedata import DataError, LoadArgs, cached
from .preparation import sketch_to_digit
from .strokes import TABLET, random_render
from .unipen import UnipenError, decompress, parse, parse_labels, read_unipen_1a

__all__ = ["PENDIGITS_URL", "PENDIGITS_RENDERS", "PENDIGITS_TEST_SHARE",
           "DIGIT_CLASSES", "UNIPEN_RECORD", "UNIPEN_RENDERS", "UNIPEN_TEST_SHARE", "pen_file",
           "rendered_pen_file", "render_digits", "load_pendigits", "unipen_tree",
           "rendered_unipen", "load_unipen", "person_of", "in_test_split", "normalised"]

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


def render_digits(strokes_list: list, renders: int, seed: int, jitter: float = 0.0) -> np.ndarray:
    """Render `renders` random drawings of each digit's strokes (each stroke moved on its own by
    `jitter`) and prepare them like a sketch: (n*r, 28, 28) uint8."""
    rng = np.random.default_rng(seed)
    out = np.zeros((len(strokes_list) * renders, 28, 28), np.uint8)
    for i, strokes in enumerate(strokes_list):
        for r in range(renders):
            digit = sketch_to_digit({"composite": random_render(strokes, rng, jitter=jitter)})
            if digit is not None:
                out[i * renders + r] = np.clip(digit * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _jitter_key(jitter: float) -> str:
    return f":jitter{jitter:g}" if jitter > 0 else ""  # 0: the key renderings always had


def rendered_pen_file(path: Path, renders: int, jitter: float = 0.0) -> dict:
    """Every digit of a UNIPEN file drawn `renders` times, as the sketchpad and its preparation
    would make it; cached. Deterministic: the random renderings come from one seeded generator."""
    def build() -> dict:
        digits = parse(path.read_text(errors="replace"))
        # About 2 ms a drawing on one core (threads gain nothing; processes would re-import the
        # app): a minute for the 30 writers' file, once.
        images = render_digits([d["strokes"] for d in digits], renders, seed=0, jitter=jitter)
        per_digit = torch.tensor([[d["label"], d["writer"]] for d in digits])
        per_digit = per_digit.repeat_interleave(renders, dim=0)
        return {"images": torch.from_numpy(images).unsqueeze(1), "labels": per_digit[:, 0],
                "writers": per_digit[:, 1]}
    stat = path.stat()
    return cached(f"pendigits:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{renders}"
                  f"{_jitter_key(jitter)}", build)


def load_pendigits(a: LoadArgs) -> dict:
    train_file, test_file = pen_file(a, "train"), pen_file(a, "test")
    if test_file is not None:
        data = rendered_pen_file(train_file if a.train else test_file, PENDIGITS_RENDERS,
                                 a.pen_jitter)
        return {"images": data["images"], "labels": data["labels"], "classes": DIGIT_CLASSES,
                "groups": data["writers"]}
    data = rendered_pen_file(train_file, PENDIGITS_RENDERS, a.pen_jitter)
    writers = torch.unique(data["writers"])
    order = torch.randperm(len(writers), generator=torch.Generator().manual_seed(a.seed))
    held_out = writers[order][:max(1, round(len(writers) * PENDIGITS_TEST_SHARE))]
    test = torch.isin(data["writers"], held_out)
    keep = ~test if a.train else test
    return {"images": data["images"][keep], "labels": data["labels"][keep],
            "classes": DIGIT_CLASSES, "groups": data["writers"][keep]}


# -------------------------------------------------------------------------------------------------
# UNIPEN train_r01_v07, section 1a

UNIPEN_DOI = "https://doi.org/10.5281/zenodo.1195803"
UNIPEN_RECORD = "https://zenodo.org/api/records/1195803"  # its files, as JSON
UNIPEN_FOLDER = "unipen"  # under the data folder: the tree train_r01_v07/{data/1a,include}
UNIPEN_TREE = "train_r01_v07"
UNIPEN_RENDERS = 4
UNIPEN_TEST_SHARE = 0.2  # of the people, whole
UNIPEN_MAX_ARCHIVE = 2 << 30  # the whole distribution's archive, at most this large
UNIPEN_MAX_SECTION = 256 << 20  # the part of it kept (section 1a and what it includes)
# Writer ids that name a recording session of a person: IBM recorded 12 people three times each,
# as r<session>-<person> (include/ibm/ibm0.doc); a split holds people out, not sessions.
SESSIONS = {"ibm": re.compile(r"r\d+-(\d+)")}
MARGIN = 0.1  # of the box, around a digit brought into it


def person_of(writer: str) -> str:
    """The person behind a UNIPEN writer id "<site>/<id>"."""
    site, _, ident = writer.partition("/")
    session = SESSIONS.get(site)
    match = session.fullmatch(ident) if session else None
    return f"{site}/{match.group(1)}" if match else writer


def in_test_split(person: str) -> bool:
    """Whether a person's digits are UNIPEN's test split: a fixed fifth, by a hash of the name."""
    return hashlib.sha256(person.encode()).digest()[0] < 256 * UNIPEN_TEST_SHARE


def normalised(strokes: list) -> list:
    """A digit's strokes moved and scaled into the 500x500 tablet box of core.strokes (y up, the
    aspect kept): sites recorded in their own units, from 12 to 13,000 a digit."""
    xs = [x for s in strokes for x, _ in s]
    ys = [y for s in strokes for _, y in s]
    size = max(max(xs) - min(xs), max(ys) - min(ys))
    k = TABLET * (1 - 2 * MARGIN) / size
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [[((x - cx) * k + TABLET / 2, (y - cy) * k + TABLET / 2) for x, y in s]
            for s in strokes]


def _archive_file(record: dict) -> tuple[str, int]:
    """The URL and size of the distribution's archive among a Zenodo record's files."""
    for f in record.get("files", []):
        name = str(f.get("key", ""))
        if name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
            return f["links"]["self"], int(f.get("size") or 0)
    raise DataError("the UNIPEN record lists no archive (.tar.gz, .tgz, .tar or .zip)")


def _members(archive: Path) -> dict[str, Callable[[], bytes]]:
    """Each regular file of a .tar(.gz) or .zip, by its path, with a function that reads it. The
    archive is refused first if it holds an absolute path, a `..`, a link or a device."""
    readers: dict[str, Callable[[], bytes]] = {}
    if zipfile.is_zipfile(archive):
        z = zipfile.ZipFile(archive)
        for info in z.infolist():
            mode = (info.external_attr >> 16) & 0o170000  # 0: not recorded
            _check_member(info.filename, mode not in (0, 0o100000, 0o040000))
            if not info.is_dir():
                readers[info.filename] = lambda info=info: z.read(info)
        return readers
    t = tarfile.open(archive)
    for info in t.getmembers():
        _check_member(info.name, not (info.isfile() or info.isdir()))
        if info.isfile():
            readers[info.name] = lambda info=info: t.extractfile(info).read()
    return readers


def _check_member(name: str, special: bool) -> None:
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or "\\" in name or special:
        raise DataError(f"the UNIPEN archive holds {name[:80]!r} (an absolute path, a .., a link "
                        "or a device); refused, nothing extracted")


def _unpack_section(archive: Path, folder: Path) -> None:
    """Section 1a's label files and the pen data they include, taken out of the archive (and
    nothing else): read from the archive in memory, bounded, then written at once."""
    readers = _members(archive)
    labels = {n: r for n, r in readers.items()
              if re.search(rf"(^|/){UNIPEN_TREE}/data/1a/.+\.dat$", n)}
    if not labels:
        raise DataError(f"the UNIPEN archive holds no {UNIPEN_TREE}/data/1a/*.dat")
    base = next(iter(labels)).split(f"{UNIPEN_TREE}/")[0] + UNIPEN_TREE
    kept: dict[str, bytes] = {}

    def keep(name: str) -> bytes:
        if name not in kept:
            if name not in readers:
                raise UnipenError(f"the archive has no {name}")
            kept[name] = readers[name]()
            if sum(map(len, kept.values())) > UNIPEN_MAX_SECTION:
                raise DataError(f"section 1a unpacks to more than {UNIPEN_MAX_SECTION >> 20} MB; "
                                "refused")
        return kept[name]

    def include(path: str) -> str:
        return keep(f"{base}/include/{path}").decode("utf-8", errors="replace")

    try:
        for name in sorted(labels):
            parse_labels(keep(name).decode("utf-8", errors="replace"), include, name)
    except UnipenError as exc:
        raise DataError(f"the UNIPEN archive's section 1a cannot be read: {exc}") from None
    tmp = Path(tempfile.mkdtemp(prefix=".unipen-", dir=folder))
    try:
        for name, data in kept.items():
            out = tmp / UNIPEN_TREE / name[len(base) + 1:]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        os.replace(tmp / UNIPEN_TREE, folder / UNIPEN_TREE)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _download_unipen(folder: Path) -> None:
    """Fetch the distribution from its Zenodo record into a temporary file (bounded), then keep
    section 1a of it (`_unpack_section`)."""
    record = json.loads(fetch(UNIPEN_RECORD, "UNIPEN record"))
    url, size = _archive_file(record)
    if size > UNIPEN_MAX_ARCHIVE:
        raise DataError(f"the UNIPEN archive is larger than {UNIPEN_MAX_ARCHIVE >> 20} MB; refused")
    require_online([url])
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".download") as tmp:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            got = 0
            while chunk := response.read(1 << 20):
                got += len(chunk)
                if got > UNIPEN_MAX_ARCHIVE:
                    raise DataError(f"the UNIPEN archive is larger than "
                                    f"{UNIPEN_MAX_ARCHIVE >> 20} MB; refused")
                tmp.write(chunk)
        tmp.flush()
        _unpack_section(Path(tmp.name), folder)


def unipen_tree(a: LoadArgs) -> Path:
    """The section's tree in the data folder, fetched when missing and downloads are allowed."""
    folder = a.root / UNIPEN_FOLDER
    tree = folder / UNIPEN_TREE
    if not (tree / "data" / "1a").is_dir():
        try:
            if not a.download:
                raise OSError("downloads are off")
            _download_unipen(folder)
        except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
            raise missing("UNIPEN section 1a", a.root, f"{tree}/{{data/1a,include}} (from "
                          f"{UNIPEN_DOI})", exc) from None
    return tree


def rendered_unipen(tree: Path, renders: int, jitter: float = 0.0) -> dict:
    """Every digit of the section drawn `renders` times, with its person, whether it is in the
    test split, and what was skipped; cached, keyed by the tree's files."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())

    def build() -> dict:
        try:
            digits, summary = read_unipen_1a(tree)
        except UnipenError as exc:
            raise DataError(f"UNIPEN section 1a cannot be read: {exc}") from None
        people = sorted({person_of(d["writer"]) for d in digits})
        number = {p: i for i, p in enumerate(people)}
        images = render_digits([normalised(d["strokes"]) for d in digits], renders, seed=0,
                               jitter=jitter)
        per_digit = torch.tensor([[d["label"], number[person_of(d["writer"])],
                                   in_test_split(person_of(d["writer"]))] for d in digits])
        per_digit = per_digit.repeat_interleave(renders, dim=0)
        return {"images": torch.from_numpy(images).unsqueeze(1), "labels": per_digit[:, 0],
                "people": per_digit[:, 1], "test": per_digit[:, 2].bool(),
                "summary": json.dumps({**summary, "people": len(people)})}
    key = hashlib.sha1(str(tree.resolve()).encode())
    for f in files:
        st = f.stat()
        key.update(f"{f.relative_to(tree)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return cached(f"unipen:{key.hexdigest()}:{renders}{_jitter_key(jitter)}", build)


def unipen_summary(data: dict) -> str:
    """What the loader read and skipped, in a line."""
    s = json.loads(data["summary"])
    skipped = ", ".join(f"{n} {why}" for why, n in s["skipped"].items()) or "none"
    return (f"UNIPEN 1a: {s['digits']:,} digits of {s['people']} people ({s['writers']} writer "
            f"ids, {len(s['sites'])} sites) from {s['files']} label files; segments skipped: "
            f"{skipped}")


def load_unipen(a: LoadArgs) -> dict:
    data = rendered_unipen(unipen_tree(a), UNIPEN_RENDERS, a.pen_jitter)
    keep = ~data["test"] if a.train else data["test"]
    return {"images": data["images"][keep], "labels": data["labels"][keep],
            "classes": DIGIT_CLASSES, "groups": data["people"][keep],
            "summary": unipen_summary(data)}
