"""A .zip of class folders, checked before anything in it is read.

Refused: not a zip, too large, too many entries, unpacking too much (in all, or one member by its
ratio), unsafe paths (absolute, drive letters, ..), links, encryption, archives inside, more
classes than allowed. What passes is a list of (class name, member) to decode in memory.
"""
from __future__ import annotations

import json
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..folders import FOLDER_RECORD
from ..kinds import own_kinds
from ..preparation import InputError

__all__ = ["MAX_ZIP_BYTES", "MAX_ZIP_ENTRIES", "MAX_UNPACKED_BYTES", "MAX_CLASSES",
           "checked_members", "archive_kind"]

MAX_ZIP_BYTES = 100 << 20
MAX_ZIP_ENTRIES = 5000
MAX_UNPACKED_BYTES = 400 << 20
MAX_RATIO = 200  # unpacked / packed size of one member; image files are compressed already
MAX_CLASSES = 20
ARCHIVES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}


def _recorded_kind(text: bytes) -> str | None:
    try:
        kind = json.loads(text).get("kind")
    except (ValueError, AttributeError):
        return None
    return kind if kind in {k.name for k in own_kinds()} else None


def _infos(path: Path) -> tuple[list[zipfile.ZipInfo], str | None]:
    """The archive's entries and the kind it records, after the checks of the file as a whole."""
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
            small = record is not None and record.file_size < 1024
            recorded = _recorded_kind(archive.read(record)) if small else None
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, NotImplementedError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "corrupt"
        raise InputError(f"the archive cannot be read ({first})") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise InputError(f"the archive has {len(infos)} entries; at most {MAX_ZIP_ENTRIES}")
    if sum(i.file_size for i in infos) > MAX_UNPACKED_BYTES:
        raise InputError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB; refused")
    return infos, recorded


def _checked(info: zipfile.ZipInfo) -> tuple[str, ...] | None:
    """A member's path parts, None for one that is skipped (folders, the record, hidden files);
    InputError for one that refuses the whole archive."""
    name = info.filename
    parts = PurePosixPath(name).parts
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
        raise InputError(f"the archive has an unsafe path {name[:80]!r} (absolute, or with ..); "
                         "refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InputError(f"the archive has a symbolic link ({name[:80]!r}); refused")
    if info.flag_bits & 0x1:
        raise InputError("the archive is encrypted; refused")
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    if info.is_dir() or name == FOLDER_RECORD or hidden:
        return None
    if PurePosixPath(name).suffix.lower() in ARCHIVES:
        raise InputError(f"the archive holds another archive ({name[:80]!r}); put the images in "
                         "it instead")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > 64 * 1024 and ratio > MAX_RATIO:
        raise InputError(f"{name[:80]!r} unpacks to {ratio:.0f} times its packed size; refused "
                         "(a zip bomb?)")
    return parts


def checked_members(path: str | Path) -> tuple[list[tuple[str, zipfile.ZipInfo]], str | None]:
    """(class name, member) for every file of the archive, and the kind it records; InputError for
    an archive that is refused."""
    infos, recorded = _infos(Path(path))
    files = [(parts, info) for info in infos if (parts := _checked(info)) is not None]
    if not files:
        raise InputError("the archive holds no files: put one folder per class in it, with images "
                         "inside")
    # A single top folder around the class folders (zipping a folder makes one) is not a class.
    tops = {parts[0] for parts, _ in files}
    strip = 1 if len(tops) == 1 and all(len(parts) >= 3 for parts, _ in files) else 0
    members = [(parts[strip], info) for parts, info in files if len(parts) >= strip + 2]
    if not members:
        raise InputError("the archive's images are not in class folders: put one folder per class "
                         "in it")
    classes = len({cls for cls, _ in members})
    if classes > MAX_CLASSES:
        raise InputError(f"the archive has {classes} class folders; at most {MAX_CLASSES}")
    return members, recorded


def archive_kind(path: str | Path) -> str | None:
    """The kind of examples a .zip records (one downloaded from the app), after the checks of an
    import."""
    return checked_members(path)[1]
