"""Where visitors' runs and uploaded checkpoints live: a folder per run, owned by one session, under
quotas that make each visitor's files their own to lose.

- A run folder is named by a random id made here (`run-<16 hex digits>`): nothing the page or a
  file shows leads to it.
- A session keeps at most RUNS_PER_SESSION folders and SESSION_MAX_BYTES; making a new one
  removes that session's oldest (never one in use).
- All sessions together keep at most TOTAL_MAX_BYTES. Past it, the oldest folders of sessions that
  ended (or went quiet for SESSION_QUIET_S) go first, then the older runs of live sessions; the
  newest run of a live session is never removed for someone else. When that is not enough the new
  folder is refused with a message (RUNS_FULL): the server is full, not the visitor's fault.
- Folders older than RUN_MAX_AGE_S go whoever owns them, and folders left by an earlier server
  process count as ended sessions'.

    folders = RunFolders(root)
    run = folders.new(session)      # InputError when the server is full
    ...
    folders.release(run)            # removable from now on
"""
from __future__ import annotations

import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..preparation import InputError

__all__ = ["RunFolders", "RUN_MAX_AGE_S", "RUNS_PER_SESSION", "SESSION_MAX_BYTES",
           "TOTAL_MAX_BYTES", "SESSION_QUIET_S", "RUNS_FULL", "folder_bytes"]

RUN_MAX_AGE_S = 6 * 3600  # a run folder older than this is removed when the next one is made
RUNS_PER_SESSION = 3  # a session's run and upload folders kept at once (the newest)
SESSION_MAX_BYTES = 1536 << 20  # a session's folders together (a resumable AlexNet run: ~650 MB)
TOTAL_MAX_BYTES = 8 << 30  # every session's folders together
SESSION_QUIET_S = 1800  # a session not heard from for this long counts as ended for the quota
RUNS_FULL = ("the server holds as many visitors' runs as it can right now; try again in a few "
             "minutes")


def folder_bytes(path: Path) -> int:
    """The bytes of the files under `path` (0 when it is gone)."""
    total = 0
    for f in path.rglob("*"):
        try:
            if f.is_file() and not f.is_symlink():
                total += f.stat().st_size
        except OSError:
            continue
    return total


@dataclass
class _Run:
    path: Path
    session: str
    made: float  # time.time()


class RunFolders:
    """The run folders under `root`, each owned by a session (see the module's notes)."""

    def __init__(self, root: Path, runs_per_session: int = RUNS_PER_SESSION,
                 session_max_bytes: int = SESSION_MAX_BYTES,
                 total_max_bytes: int = TOTAL_MAX_BYTES):
        self.root = Path(root)
        self.runs_per_session = runs_per_session
        self.session_max_bytes, self.total_max_bytes = session_max_bytes, total_max_bytes
        self._lock = threading.Lock()
        self._runs: dict[Path, _Run] = {}
        self._active: set[Path] = set()
        self._seen: dict[str, float] = {}  # live session -> when it was last heard from

    # -- what a session has ----------------------------------------------------------------------

    def touch(self, session: str) -> None:
        """Note that a session is still there (its newest run stays kept for it)."""
        with self._lock:
            if session in self._seen:
                self._seen[session] = time.time()

    def session_ended(self, session: str) -> None:
        """The visitor left: their folders may make room for others from now on."""
        with self._lock:
            self._seen.pop(session, None)

    def usage(self) -> dict:
        """Folders and bytes, in all and per session (for benches and the log)."""
        with self._lock:
            self._adopt_strays()
            sizes = {p: folder_bytes(p) for p in self._runs}
            per: dict[str, int] = {}
            for p, r in self._runs.items():
                per[r.session] = per.get(r.session, 0) + sizes[p]
        return {"folders": len(sizes), "bytes": sum(sizes.values()), "sessions": per}

    # -- making and releasing ----------------------------------------------------------------------

    def new(self, session: str) -> Path:
        """A fresh run folder for `session`, kept from removal until `release`; InputError
        (RUNS_FULL) when the other visitors' live runs leave no room."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            now = time.time()
            self._seen[session] = now
            self._adopt_strays()
            self._remove([r for r in self._runs.values() if now - r.made > RUN_MAX_AGE_S])
            if self._make_room(session) >= self.total_max_bytes:
                raise InputError(RUNS_FULL)
            path = self.root / f"run-{secrets.token_hex(8)}"
            path.mkdir()
            self._runs[path] = _Run(path, session, now)
            self._active.add(path)
        return path

    def release(self, path: Path) -> None:
        with self._lock:
            self._active.discard(Path(path))

    # -- the quotas (under the lock) ---------------------------------------------------------------

    def _adopt_strays(self) -> None:
        """Folders of an earlier server process: an ended session's, as old as their files."""
        if not self.root.is_dir():
            return
        for p in self.root.glob("run-*"):
            if p.is_dir() and p not in self._runs:
                self._runs[p] = _Run(p, "", p.stat().st_mtime)

    def _remove(self, runs: list[_Run]) -> None:
        for r in runs:
            if r.path not in self._active:
                shutil.rmtree(r.path, ignore_errors=True)
                self._runs.pop(r.path, None)

    def _make_room(self, session: str) -> int:
        """Room for one more folder of `session`: its own oldest beyond its quotas, then, past the
        total, other visitors' folders in the order the module's notes give. Returns the bytes
        all folders hold then."""
        mine = sorted((r for r in self._runs.values() if r.session == session),
                      key=lambda r: r.made)
        self._remove(mine[:max(0, len(mine) - (self.runs_per_session - 1))])
        sizes = {p: folder_bytes(p) for p in self._runs}  # each folder walked once
        mine = [r for r in mine if r.path in self._runs]
        while mine and sum(sizes[r.path] for r in mine) >= self.session_max_bytes:
            self._remove(mine[:1])
            if mine[0].path in self._runs:  # in use
                break
            mine = mine[1:]
        total = sum(sizes[p] for p in self._runs)
        if total < self.total_max_bytes:
            return total
        now = time.time()
        live = {s for s, seen in self._seen.items() if now - seen <= SESSION_QUIET_S}
        newest = {}
        for r in sorted(self._runs.values(), key=lambda r: r.made):
            newest[r.session] = r.path
        gone = [r for r in self._runs.values() if r.session not in live]
        older = [r for r in self._runs.values()
                 if r.session in live and newest[r.session] != r.path]
        for r in sorted(gone, key=lambda r: r.made) + sorted(older, key=lambda r: r.made):
            if total < self.total_max_bytes:
                break
            if r.path in self._active:
                continue
            self._remove([r])
            total -= sizes[r.path]
        return total
