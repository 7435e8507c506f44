"""A visitor's own classes: named classes of examples (sketches or photos) kept in a per-session
folder.

The folder is an image folder of the dataset registry (`imagefolder`: one sub-folder per class, its
kind recorded in FOLDER_RECORD), so training on it is `core.train` with a transfer start
(`core.transfer`) and nothing else. Everything that arrives is checked here: class names, each image
(decoded with the app's limits, re-encoded as PNG), and a .zip before anything in it is read (size,
entry count, unpacked size and ratio, paths, links, nesting).

    examples = ExampleSet(folder, "sketch")
    examples.add_class("circle"); examples.add_sketch("circle", sketchpad_value)
    cfg = examples.train_config(init_from="checkpoints/handwriting-digitnet.pt", fine_tune=True)
"""
from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from ..config import TrainConfig
from ..few_shot import few_shot_config
from ..folders import FOLDER_RECORD, FOLDER_TEST_SHARE, IMAGE_EXTENSIONS
from ..kinds import Kind, own_kinds
from ..predictor import Predictor
from ..preparation import InputError, load_photo, open_drawing, open_image, sketch_to_digit
from . import texts
from .answers import OWN_KEY
from .archives import MAX_CLASSES, checked_members
from .runs import Trainer
from .shelf import Shelf

__all__ = ["ExampleSet", "ImportReport", "ClassFolders", "own_kind", "check_class_name",
           "sweep_sessions", "train_own", "train_archive", "trained_model", "STARTS",
           "MIN_CLASSES", "MIN_EXAMPLES", "MAX_NAME"]

MIN_CLASSES = 2
MIN_EXAMPLES = 2  # per class, before training
# A class this large has one example held out (a fifth, rounded down)
HELD_OUT_FROM = round(1 / FOLDER_TEST_SHARE)
MAX_EXAMPLES = 500  # per class
MAX_NAME = 40
MIN_SIDE = 8  # pixels: smaller images hold nothing to learn from
SESSION_MAX_AGE_S = 3600  # a session's folder is removed this long after the session ended
SESSION_IDLE_S = 24 * 3600  # or when nothing in it changed for this long
SWEEP_EVERY_S = 60  # how often the folders are checked for removal
_BAD_NAME = re.compile(r'[/\\\x00-\x1f\x7f:*?"<>|]')


def own_kind(kind: Any) -> Kind:
    """The kind of a visitor's classes (core.kinds); InputError for one the tab does not offer."""
    offered = {k.name: k for k in own_kinds()}
    if kind not in offered:
        raise InputError(f"the kind of examples is one of: {', '.join(offered)} (got {kind!r})")
    return offered[kind]


def check_class_name(name: Any) -> str:
    """A class name as typed, stripped; InputError when it cannot be a class (and a folder) name."""
    if not isinstance(name, str):
        raise InputError("a class name must be text")
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InputError(f"a class name has 1 to {MAX_NAME} characters (got {len(name)})")
    if _BAD_NAME.search(name) or name.startswith("."):
        raise InputError(f"the class name {name[:MAX_NAME]!r} has a character a class name cannot "
                         "have (/ \\ : * ? \" < > |, control characters, or a leading dot)")
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
    """The classes and examples of one kind ("sketch" or "photo") in `folder` (created when
    needed)."""

    def __init__(self, folder: str | Path, kind: str):
        self.folder, self.kind, self.spec = Path(folder), kind, own_kind(kind)

    # -- classes ----------------------------------------------------------------------------------

    def classes(self) -> dict[str, list[Path]]:
        """Class name -> its example files, in the order training labels them (sorted names)."""
        if not self.folder.is_dir():
            return {}
        return {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
                for d in sorted(self.folder.iterdir(), key=lambda p: p.name) if d.is_dir()}

    def counts(self) -> dict[str, int]:
        return {name: len(files) for name, files in self.classes().items()}

    def summary(self) -> str:
        """A line per class with its example count, and what is missing before training
        (Markdown)."""
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
            ready += (f" (A class of {HELD_OUT_FROM} or more examples has one in {HELD_OUT_FROM} "
                      "held out, to show how well the model reads examples it did not learn from.)")
        return "\n".join(lines) + "\n\n" + ready

    def gallery(self, name: str | None, limit: int = 48) -> list[tuple[str, str]]:
        """(file, caption) of the newest examples of class `name` (of every class when None)."""
        picked = [(str(f), cls) for cls, files in self.classes().items() if name in (None, cls)
                  for f in files]
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

    # -- examples ---------------------------------------------------------------------------------

    def _store(self, path: Path, image: Image.Image) -> Path:
        """Write one example into the class folder `path` (re-encoded as PNG, atomically)."""
        image.thumbnail((self.spec.stored_side,) * 2, Image.LANCZOS)
        out = path / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.png"
        tmp = out.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(out)
        return out

    def _prepared(self, image: Image.Image) -> Image.Image:
        """An uploaded image checked and turned into what is stored: grey for sketches, RGB for
        photos."""
        if min(image.size) < MIN_SIDE:
            raise InputError(f"the image is {image.width}x{image.height} pixels; at least "
                             f"{MIN_SIDE}x{MIN_SIDE} is needed")
        rgb = load_photo(image)
        if not self.spec.drawn:
            return rgb
        grey = rgb.convert("L")
        if sketch_to_digit(np.asarray(grey)) is None:
            raise InputError("nothing is drawn in this image (a sketch is dark strokes on a light "
                             "ground)")
        return grey

    def add_sketch(self, name: Any, sketch: Any) -> Path:
        """Store a drawing in class `name`, as drawn: the page's pad sends a PNG data URL; a
        sketchpad's value (its composite) or an image array are taken too."""
        if not self.spec.drawn:
            raise InputError("these are photo classes: upload images instead")
        if isinstance(sketch, str):
            sketch = open_drawing(sketch)
        composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
        if not isinstance(composite, np.ndarray):
            raise InputError("the drawing is not an image (send it as the pad does)")
        if sketch_to_digit(composite) is None:
            raise InputError("draw something first: the pad is empty")
        image = load_photo(composite)
        path = self._class_dir(name)
        if _count(path) >= MAX_EXAMPLES:
            raise InputError(f"the class {path.name!r} has {MAX_EXAMPLES} examples, the most it "
                             "can hold")
        return self._store(path, image.convert("L"))

    def add_images(self, name: Any, sources: list[Any],
                   report: ImportReport | None = None) -> ImportReport:
        """Store uploaded image files (paths or bytes) in class `name`; unreadable ones are skipped
        and counted."""
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

    # -- archives ---------------------------------------------------------------------------------

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

    def download(self) -> Path:
        """All examples as a .zip beside the folder, for the visitor to download."""
        if not self.counts():
            raise InputError("there are no examples to download yet")
        return self.export_zip(self.folder.parent / f"my-{self.kind}-classes.zip")

    def import_zip(self, path: str | Path) -> ImportReport:
        """Add the examples of a .zip of class folders (`class/*.png`, or `top/class/*.png`),
        merging into classes of the same name. The whole archive is checked before any member is
        read; nothing is extracted to disk as it comes: each image is decoded in memory and stored
        re-encoded."""
        members, recorded = checked_members(path)
        if recorded and recorded != self.kind:
            raise InputError(f"this archive holds {recorded} examples; switch the kind to "
                             f"{recorded} to import it")
        names = sorted({cls for cls, _ in members})
        for cls in names:
            check_class_name(cls)
        known = {k.casefold(): k for k in self.classes()}
        new = [c for c in names if c.casefold() not in known]
        if len(known) + len(new) > MAX_CLASSES:
            raise InputError(f"the archive would make {len(known) + len(new)} classes; at most "
                             f"{MAX_CLASSES}")
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

    # -- training ---------------------------------------------------------------------------------

    def check_trainable(self) -> dict[str, int]:
        counts = self.counts()
        if len(counts) < MIN_CLASSES:
            raise InputError(f"add at least {MIN_CLASSES} classes first (there "
                             f"{'is' if len(counts) == 1 else 'are'} {len(counts)})")
        few = [f"{k} ({v})" for k, v in counts.items() if v < MIN_EXAMPLES]
        if few:
            raise InputError(f"every class needs at least {MIN_EXAMPLES} examples: add more to "
                             f"{', '.join(few)}")
        return counts

    def train_config(self, init_from: str | Path | None, fine_tune: bool = True,
                     seed: int = 0) -> TrainConfig:
        """How to teach a model these classes (few_shot_config), a fifth of each class held out to
        show how well it does (the folder dataset's split, rounded down per class)."""
        counts = self.check_trainable()
        self._record()
        n_train = sum(v - int(v * FOLDER_TEST_SHARE) for v in counts.values())
        return few_shot_config(self.folder, self.kind, n_train, init_from, fine_tune, seed)


def _count(class_dir: Path) -> int:
    return sum(1 for f in class_dir.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)


def _reason(message: str) -> str:
    """A skip reason to count: an InputError's message without the details that differ from file to
    file."""
    if "pixels" in message and "at least" in message:
        return "images that are too small"
    if "too large" in message or "larger than" in message:
        return "images that are too large"
    if "nothing is drawn" in message:
        return "images with nothing drawn"
    return "files that are not readable images"


def sweep_sessions(root: str | Path, ended: dict[str, float],
                   now: float | None = None) -> list[str]:
    """Remove the session folders under `root` whose session ended (`ended`: session -> time) more
    than SESSION_MAX_AGE_S ago, and any left untouched for SESSION_IDLE_S (a server restarted
    forgets who ended); returns the sessions removed."""
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
        left = ended_at is not None and now - ended_at > SESSION_MAX_AGE_S
        if left or now - last > SESSION_IDLE_S:
            shutil.rmtree(folder, ignore_errors=True)
            ended.pop(folder.name, None)
            removed.append(folder.name)
    return removed


class ClassFolders:
    """Every visitor's own classes: a folder per session and kind under `root`, named by a random
    id made here (never by the session's id, which is the session's only credential). A session's
    folder is removed SESSION_MAX_AGE_S after it ends, or when untouched for SESSION_IDLE_S (a
    restarted server forgets who left); the check walks every folder, so it runs at most every
    SWEEP_EVERY_S."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}  # session -> its folder's name
        self._ended: dict[str, float] = {}  # folder name -> when its session ended
        self._swept = -math.inf

    def examples(self, session: str, kind: str) -> ExampleSet:
        """The visitor's own classes of `kind`, in their session's folder."""
        own_kind(kind)
        with self._lock:
            if time.monotonic() - self._swept >= SWEEP_EVERY_S:
                self._swept = time.monotonic()
                sweep_sessions(self.root, self._ended)
                # forget the sessions whose folders are gone (or were never made)
                live = {p.name for p in self.root.iterdir()} if self.root.is_dir() else set()
                self._ids = {s: i for s, i in self._ids.items() if i in live}
            name = self._ids.setdefault(session, uuid.uuid4().hex)
        return ExampleSet(self.root / name / kind, kind)

    def session_ended(self, session: str) -> None:
        """Remember that a visitor left; their classes are removed SESSION_MAX_AGE_S later."""
        with self._lock:
            if session in self._ids:
                self._ended[self._ids.pop(session)] = time.time()


# ------------------------------------------------------------------------------------------------
# Training on them

STARTS = ("transfer", "scratch")  # from the shipped model's features, or from nothing


def train_own(trainer: Trainer, shelf: Shelf, examples: ExampleSet, start: Any, fine_tune: Any,
              session: str, listening: Callable[[], bool] | None = None) -> Iterator[dict]:
    """Teach a model a visitor's own classes, streaming the dashboard's updates as any run does:
    from the shipped model of their kind (`start` "transfer"), its whole net (`fine_tune`) or its
    output layer alone, or from scratch."""
    if start not in STARTS:
        raise InputError(f"start from 'transfer' or 'scratch' (got {start!r})")
    if not isinstance(fine_tune, bool):
        raise InputError(f"fine_tune must be true or false (got {fine_tune!r})")
    init_from = shelf.start_point(examples.kind) if start == "transfer" else None
    yield from trainer.stream(examples.train_config(init_from, fine_tune), [], session, listening)


def train_archive(trainer: Trainer, shelf: Shelf, folders: ClassFolders, path: str | None,
                  kind: str | None, start: str | None, session: str) -> tuple[dict, str]:
    """A .zip of class folders trained in one call (the API's /train_own): (the run's report, its
    checkpoint). The kind defaults to the one the archive records (an archive downloaded from the
    tab), else photo; the examples are removed afterwards."""
    if not path:
        raise InputError("send a .zip with one folder of images per class")
    trainer.check_room(session)  # before the archive's images are read: refused ones cost nothing
    kind = kind or checked_members(path)[1] or "photo"
    examples = folders.examples(f"api-{uuid.uuid4().hex[:12]}", kind)
    try:
        report = examples.import_zip(path)
        try:
            examples.check_trainable()
        except InputError as exc:  # say what the import skipped: it is often why
            raise InputError(f"{exc}; the archive: {report.message()}") from None
        *_, final = train_own(trainer, shelf, examples, start or "transfer", True, session)
        if "report" not in final:  # stopped while it waited for its turn
            raise InputError(texts.STOPPED_WAITING)
    finally:
        examples.clear()
    return final["report"], final["checkpoint"]


def trained_model(update: dict, load: Callable[[str], Predictor] = Predictor.load) -> dict:
    """The tab's own model after a run's last update: {OWN_KEY: Predictor}, or {} without one.
    The app loads it as it loads every visitor's model (`VisitorModels.load`: counted in memory
    while it lives)."""
    path = (update.get("run") or {}).get("checkpoint")
    return {OWN_KEY: load(path)} if path else {}
