"""A visitor's own classes: named classes of examples (sketches or photos) kept in a per-session folder.

The folder is an image folder of the dataset registry (`imagefolder`: one sub-folder per class, its kind recorded
in FOLDER_RECORD), so training on it is `core.train` with a transfer start (`core.transfer`) and nothing else.
Everything that arrives is checked here: class names, each image (decoded with the app's limits, re-encoded as
PNG), and a .zip before anything in it is read (size, entry count, unpacked size and ratio, paths, links, nesting).

    examples = ExampleSet(folder, "sketch")
    examples.add_class("circle"); examples.add_sketch("circle", sketchpad_value)
    cfg = examples.train_config(init_from="checkpoints/handwriting-digitnet.pt", fine_tune=True)
"""
from __future__ import annotations

import json
import math
import re
import shutil
import stat
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from . import models
from .datasets import FAST_MODEL, FOLDER_RECORD, FOLDER_TEST_SHARE, IMAGE_EXTENSIONS
from .inference import InputError, load_photo, open_image, sketch_to_digit
from .train import TrainConfig

__all__ = ["KINDS", "ExampleSet", "ImportReport", "check_class_name", "sweep_sessions", "archive_kind",
           "few_shot_config", "MAX_CLASSES",
           "MIN_CLASSES", "MIN_EXAMPLES", "MAX_NAME", "MAX_ZIP_BYTES", "MAX_ZIP_ENTRIES", "MAX_UNPACKED_BYTES"]

KINDS = ("sketch", "photo")
DATASET = "imagefolder"  # the registry's folder dataset, which these folders are
MIN_CLASSES, MAX_CLASSES = 2, 20
MIN_EXAMPLES = 2  # per class, before training
HELD_OUT_FROM = round(1 / FOLDER_TEST_SHARE)  # a class this large has one example held out (a fifth, rounded down)
MAX_EXAMPLES = 500  # per class
MAX_NAME = 40
MIN_SIDE = 8  # pixels: smaller images hold nothing to learn from
STORED_SIDE = {"sketch": 400, "photo": 256}  # examples are kept at most this large (the models see 28 or 32 px)
# A .zip is refused before anything in it is read when it breaks one of these.
MAX_ZIP_BYTES = 100 << 20
MAX_ZIP_ENTRIES = 5000
MAX_UNPACKED_BYTES = 400 << 20
MAX_RATIO = 200  # unpacked / packed size of one member; image files are compressed already
ARCHIVES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}
# Training on a few examples: this many optimiser steps whatever the number of examples, in batches of at most
# BATCH (sketches: the fine-tuning recipe's 30 epochs of 200 images at batch 32; photos: fewer, cifarnet's steps
# cost 6 times digitnet's; docs/own-classes.md).
STEPS, BATCH = {"sketch": 210, "greyscale": 210, "photo": 100}, 32
SESSION_MAX_AGE_S = 3600  # a session's folder is removed this long after the session ended
SESSION_IDLE_S = 24 * 3600  # or when nothing in it changed for this long
_BAD_NAME = re.compile(r'[/\\\x00-\x1f\x7f:*?"<>|]')


def check_class_name(name: Any) -> str:
    """A class name as typed, stripped; InputError when it cannot be a class (and a folder) name."""
    if not isinstance(name, str):
        raise InputError("a class name must be text")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InputError(f"a class name has 1 to {MAX_NAME} characters (got {len(name)})")
    if _BAD_NAME.search(name) or name.startswith("."):
        raise InputError(f"the class name {name[:MAX_NAME]!r} has a character a class name cannot have "
                         "(/ \\ : * ? \" < > |, control characters, or a leading dot)")
    return name


@dataclass
class ImportReport:
    """What an import did: images added per class, and files skipped with the reason."""
    added: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def message(self) -> str:
        total = sum(self.added.values())
        text = f"added {total} example(s)" + (
            " to " + ", ".join(f"{k} (+{v})" for k, v in self.added.items()) if total else "")
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} {reason}" for reason, n in self.skipped.items())
        return text


class ExampleSet:
    """The classes and examples of one kind ("sketch" or "photo") in `folder` (created when needed)."""

    def __init__(self, folder: str | Path, kind: str):
        if kind not in KINDS:
            raise InputError(f"the kind of examples is one of: {', '.join(KINDS)} (got {kind!r})")
        self.folder, self.kind = Path(folder), kind

    # -- classes ----------------------------------------------------------------------------------------------

    def classes(self) -> dict[str, list[Path]]:
        """Class name -> its example files, in the order training labels them (sorted names)."""
        if not self.folder.is_dir():
            return {}
        return {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
                for d in sorted(self.folder.iterdir(), key=lambda p: p.name) if d.is_dir()}

    def counts(self) -> dict[str, int]:
        return {name: len(files) for name, files in self.classes().items()}

    def summary(self) -> str:
        """A line per class with its example count, and what is missing before training (Markdown)."""
        counts = self.counts()
        if not counts:
            return f"No classes yet: add {MIN_CLASSES} to {MAX_CLASSES} classes by name."
        lines = [f"- **{name}**: {n} example{'s' if n != 1 else ''}" for name, n in counts.items()]
        try:
            self.check_trainable()
            ready = "Ready to train."
        except InputError as exc:
            ready = f"Before training: {exc}."
        if min(counts.values()) < HELD_OUT_FROM:
            ready += (f" (A class of {HELD_OUT_FROM} or more examples has one in {HELD_OUT_FROM} held out, to show "
                      "how well the model reads examples it did not learn from.)")
        return "\n".join(lines) + "\n\n" + ready

    def gallery(self, name: str | None, limit: int = 48) -> list[tuple[str, str]]:
        """(file, caption) of the newest examples of class `name` (of every class when None)."""
        picked = [(str(f), cls) for cls, files in self.classes().items() if name in (None, cls) for f in files]
        return picked[-limit:]

    def _class_dir(self, name: Any, exists: bool = True) -> Path:
        name = check_class_name(name)
        path = self.folder / name
        if exists and not path.is_dir():
            raise InputError(f"there is no class {name!r}; add it first")
        return path

    def add_class(self, name: Any) -> str:
        path = self._class_dir(name, exists=False)
        known = self.classes()
        if any(path.name.casefold() == k.casefold() for k in known):
            raise InputError(f"there is a class {path.name!r} already")
        if len(known) >= MAX_CLASSES:
            raise InputError(f"at most {MAX_CLASSES} classes")
        path.mkdir(parents=True)
        self._record()
        return path.name

    def rename_class(self, old: Any, new: Any) -> str:
        src, dst = self._class_dir(old), self._class_dir(new, exists=False)
        if src.name == dst.name:
            return dst.name
        if any(dst.name.casefold() == k.casefold() for k in self.classes() if k != src.name):
            raise InputError(f"there is a class {dst.name!r} already")
        src.rename(dst)
        return dst.name

    def remove_class(self, name: Any) -> None:
        shutil.rmtree(self._class_dir(name))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _record(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / FOLDER_RECORD).write_text(json.dumps({"kind": self.kind}))

    # -- examples ---------------------------------------------------------------------------------------------

    def _store(self, path: Path, image: Image.Image) -> Path:
        """Write one example into the class folder `path` (re-encoded as PNG, atomically)."""
        image.thumbnail((STORED_SIDE[self.kind],) * 2, Image.LANCZOS)
        out = path / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.png"
        tmp = out.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(out)
        return out

    def _prepared(self, image: Image.Image) -> Image.Image:
        """An uploaded image checked and turned into what is stored: grey for sketches, RGB for photos."""
        if min(image.size) < MIN_SIDE:
            raise InputError(f"the image is {image.width}x{image.height} pixels; at least {MIN_SIDE}x{MIN_SIDE} "
                             "is needed")
        rgb = load_photo(image)
        if self.kind == "photo":
            return rgb
        grey = rgb.convert("L")
        if sketch_to_digit(np.asarray(grey)) is None:
            raise InputError("nothing is drawn in this image (a sketch is dark strokes on a light ground)")
        return grey

    def add_sketch(self, name: Any, sketch: Any) -> Path:
        """Store a sketchpad drawing (its composite, as drawn) in class `name`."""
        if self.kind != "sketch":
            raise InputError("these are photo classes: upload images instead")
        digit = sketch_to_digit(sketch)
        if digit is None:
            raise InputError("draw something first: the sketchpad is empty")
        composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
        if composite is None:
            raise InputError("the sketch has no composite image (send it as the sketchpad does)")
        image = load_photo(np.asarray(composite) if not isinstance(composite, (str, Path)) else composite)
        path = self._class_dir(name)
        if _count(path) >= MAX_EXAMPLES:
            raise InputError(f"the class {path.name!r} has {MAX_EXAMPLES} examples, the most it can hold")
        return self._store(path, image.convert("L"))

    def add_images(self, name: Any, sources: list[Any], report: ImportReport | None = None) -> ImportReport:
        """Store uploaded image files (paths or bytes) in class `name`; unreadable ones are skipped and counted."""
        path = self._class_dir(name)
        report = report or ImportReport()
        count = _count(path)
        for source in sources or []:
            if count >= MAX_EXAMPLES:
                report.skip("images beyond a class's limit")
                continue
            try:
                with open_image(source) as im:
                    self._store(path, self._prepared(im))
            except InputError as exc:
                report.skip(_reason(str(exc)))
                continue
            count += 1
            report.added[path.name] = report.added.get(path.name, 0) + 1
        return report

    # -- archives ---------------------------------------------------------------------------------------------

    def export_zip(self, dest: str | Path) -> Path:
        """All examples as a .zip: one folder per class and the kind's record (FOLDER_RECORD)."""
        dest = Path(dest)
        tmp = dest.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(FOLDER_RECORD, json.dumps({"kind": self.kind}))
            for name, files in self.classes().items():
                archive.writestr(f"{name}/", "")
                for f in files:
                    archive.write(f, f"{name}/{f.name}")
        tmp.replace(dest)
        return dest

    def import_zip(self, path: str | Path) -> ImportReport:
        """Add the examples of a .zip of class folders (`class/*.png`, or `top/class/*.png`), merging into classes
        of the same name. The whole archive is checked before any member is read; nothing is extracted to disk
        as it comes: each image is decoded in memory and stored re-encoded."""
        members, recorded = _checked_members(Path(path))
        if recorded and recorded != self.kind:
            raise InputError(f"this archive holds {recorded} examples; switch the kind to {recorded} to import it")
        names = sorted({cls for cls, _ in members})
        for cls in names:
            check_class_name(cls)
        known = {k.casefold(): k for k in self.classes()}
        new = [c for c in names if c.casefold() not in known]
        if len(known) + len(new) > MAX_CLASSES:
            raise InputError(f"the archive would make {len(known) + len(new)} classes; at most {MAX_CLASSES}")
        report = ImportReport()
        with zipfile.ZipFile(path) as archive:
            for cls in names:
                target = known.get(cls.casefold()) or self.add_class(cls)
                for _, info in (m for m in members if m[0] == cls):
                    if PurePosixPath(info.filename).suffix.lower() not in IMAGE_EXTENSIONS:
                        report.skip("files that are not images")
                        continue
                    self.add_images(target, [archive.read(info)], report)
                if target not in known.values() and not report.added.get(target):
                    self.remove_class(target)  # a folder without one usable image is no class
                    report.skip(f"class folder(s) without images ({target})")
        self._record()
        return report

    # -- training ---------------------------------------------------------------------------------------------

    def check_trainable(self) -> dict[str, int]:
        counts = self.counts()
        if len(counts) < MIN_CLASSES:
            raise InputError(f"add at least {MIN_CLASSES} classes first (there {'is' if len(counts) == 1 else 'are'} "
                             f"{len(counts)})")
        few = [f"{k} ({v})" for k, v in counts.items() if v < MIN_EXAMPLES]
        if few:
            raise InputError(f"every class needs at least {MIN_EXAMPLES} examples: add more to {', '.join(few)}")
        return counts

    def train_config(self, init_from: str | Path | None, fine_tune: bool = True, seed: int = 0) -> TrainConfig:
        """How to teach a model these classes (few_shot_config), a fifth of each class held out to show how
        well it does (the folder dataset's split, rounded down per class)."""
        counts = self.check_trainable()
        self._record()
        n_train = sum(v - int(v * FOLDER_TEST_SHARE) for v in counts.values())
        return few_shot_config(self.folder, self.kind, n_train, init_from, fine_tune, seed)


def few_shot_config(folder: str | Path, kind: str, n_train: int, init_from: str | Path | None,
                    fine_tune: bool = True, seed: int = 0) -> TrainConfig:
    """Training on an image folder of few examples: from `init_from` (a trained checkpoint; None: from scratch, the
    kind's fast net) with a fresh output layer (`fine_tune` False: that layer alone learns), the model's fine-tuning
    recipe, and as many epochs of `n_train` images as make about STEPS optimiser steps."""
    batch = min(BATCH, n_train)
    epochs = max(1, min(200, math.ceil(STEPS[kind] / math.ceil(n_train / batch))))
    common = dict(dataset=DATASET, data_root=str(folder), kind=kind, seed=seed, epochs=epochs, batch_size=batch)
    if init_from is None:
        model = FAST_MODEL[kind]
        recipe = {k: v for k, v in models.transfer_recipe(model, kind).items() if k not in common}
        return TrainConfig(model=model, **common, **recipe)
    from .checkpoint import load_checkpoint

    return TrainConfig(model=load_checkpoint(init_from)["model"], init_from=str(init_from),
                       freeze_backbone=not fine_tune, **common)


def _count(class_dir: Path) -> int:
    return sum(1 for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)


def _reason(message: str) -> str:
    """A skip reason to count: an InputError's message without the details that differ from file to file."""
    if "pixels" in message and "at least" in message:
        return "images that are too small"
    if "too large" in message or "larger than" in message:
        return "images that are too large"
    if "nothing is drawn" in message:
        return "images with nothing drawn"
    return "files that are not readable images"


def _checked_members(path: Path) -> tuple[list[tuple[str, zipfile.ZipInfo]], str | None]:
    """(class name, member) for every file of the archive, and the kind it records; InputError for an archive
    that is refused (not a zip, too large, too many entries, unpacking too much, unsafe paths, links, archives)."""
    if not path.is_file():
        raise InputError("no archive was uploaded")
    if path.stat().st_size > MAX_ZIP_BYTES:
        raise InputError(f"the archive is larger than {MAX_ZIP_BYTES >> 20} MB")
    if not zipfile.is_zipfile(path):
        raise InputError("the file is not a .zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            record = next((i for i in infos if i.filename == FOLDER_RECORD), None)
            recorded = _recorded_kind(archive.read(record)) if record and record.file_size < 1024 else None
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError) as exc:
        raise InputError(f"the archive cannot be read ({str(exc).splitlines()[0] if str(exc) else 'corrupt'})"
                         ) from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InputError(f"the archive has {len(infos)} entries; at most {MAX_ZIP_ENTRIES}")
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        raise InputError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB; refused")
    files = []
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise InputError(f"the archive has an unsafe path {name[:80]!r} (absolute, or with ..); refused")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise InputError(f"the archive has a symbolic link ({name[:80]!r}); refused")
        if info.flag_bits & 0x1:
            raise InputError("the archive is encrypted; refused")
        if info.is_dir() or name == FOLDER_RECORD or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if PurePosixPath(name).suffix.lower() in ARCHIVES:
            raise InputError(f"the archive holds another archive ({name[:80]!r}); put the images in it instead")
        if info.file_size > 64 * 1024 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise InputError(f"{name[:80]!r} unpacks to {info.file_size / max(info.compress_size, 1):.0f} times its "
                             "packed size; refused (a zip bomb?)")
        files.append((parts, info))
    if not files:
        raise InputError("the archive holds no files: put one folder per class in it, with images inside")
    # A single top folder around the class folders (zipping a folder makes one) is not a class.
    tops = {parts[0] for parts, _ in files}
    strip = 1 if len(tops) == 1 and all(len(parts) >= 3 for parts, _ in files) else 0
    members = [(parts[strip], info) for parts, info in files if len(parts) >= strip + 2]
    if not members:
        raise InputError("the archive's images are not in class folders: put one folder per class in it")
    if len({cls for cls, _ in members}) > MAX_CLASSES:
        raise InputError(f"the archive has {len({cls for cls, _ in members})} class folders; at most {MAX_CLASSES}")
    return members, recorded


def archive_kind(path: str | Path) -> str | None:
    """The kind of examples a .zip records (one downloaded from the app), after the checks of an import."""
    return _checked_members(Path(path))[1]


def _recorded_kind(text: bytes) -> str | None:
    try:
        kind = json.loads(text).get("kind")
    except (ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def sweep_sessions(root: str | Path, ended: dict[str, float], now: float | None = None) -> list[str]:
    """Remove the session folders under `root` whose session ended (`ended`: session -> time) more than
    SESSION_MAX_AGE_S ago, and any left untouched for SESSION_IDLE_S (a server restarted forgets who ended);
    returns the sessions removed."""
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        ended_at = ended.get(folder.name)
        last = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if (ended_at is not None and now - ended_at > SESSION_MAX_AGE_S) or now - last > SESSION_IDLE_S:
            shutil.rmtree(folder, ignore_errors=True)
            ended.pop(folder.name, None)
            removed.append(folder.name)
    return removed
