"""The server's settings: where runs go, which folders visitors may train on, how long a run may
take, how large an upload may be. From the app's flags, else the environment (TINYVISION_*), else
the defaults (those of a public app: every run capped at RUN_SECONDS)."""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerSettings", "RUN_SECONDS", "MAX_UPLOAD_MB"]

RUN_SECONDS = 600.0  # a run's training time on a public app, unless the operator says otherwise
# An uploaded file (a checkpoint, photos, an archive) is refused above this: every model's finished
# checkpoint fits but AlexNet's (218 MB; an operator may raise it), resumable VGG and AlexNet ones
# (with their optimizer's state) do not.
MAX_UPLOAD_MB = 128


@dataclass(frozen=True)
class ServerSettings:
    runs_root: Path  # one folder per run, and the visitors' own classes
    data_root: str | None = None  # the datasets' folder (None: TINYVISION_DATA or ./data)
    folder_root: Path | None = None  # image folders inside it may be trained on (None: none)
    max_seconds: float = RUN_SECONDS  # every run's training time is capped at this (0: no cap)
    max_upload_mb: int = MAX_UPLOAD_MB  # uploads larger than this are refused

    def __post_init__(self) -> None:
        if self.folder_root is not None and not Path(self.folder_root).is_dir():
            raise ValueError(f"allowed folder root {self.folder_root} is not a folder")
        seconds = self.max_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"max_seconds must be a number of seconds, 0 or more (got "
                             f"{seconds!r})")
        mb = self.max_upload_mb
        if isinstance(mb, bool) or not isinstance(mb, int) or mb < 1:
            raise ValueError(f"max_upload_mb must be a whole number of MB, 1 or more (got {mb!r})")

    def run_seconds(self, asked: float) -> float:
        """The training time a run may take when `asked` (0: as long as it needs), under the cap."""
        if not self.max_seconds:
            return asked
        return min(asked, self.max_seconds) if asked else self.max_seconds

    @classmethod
    def make(cls, runs_root: str | Path | None = None, data_root: str | Path | None = None,
             folder_root: str | Path | None = None, max_seconds: float = RUN_SECONDS,
             max_upload_mb: int = MAX_UPLOAD_MB) -> ServerSettings:
        """Settings with paths resolved and the runs folder defaulted (TINYVISION_RUNS, else a
        folder in the system's temporary directory)."""
        default_runs = Path(tempfile.gettempdir()) / "tinyvision-runs"
        runs = Path(runs_root or os.environ.get("TINYVISION_RUNS") or default_runs)
        return cls(runs, str(data_root) if data_root else None,
                   Path(folder_root).resolve() if folder_root else None, max_seconds,
                   max_upload_mb)

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> ServerSettings:
        """The app's command line: flags, else TINYVISION_ALLOW_FOLDERS /
        TINYVISION_MAX_TRAIN_SECONDS / TINYVISION_MAX_UPLOAD_MB."""
        p = argparse.ArgumentParser(description="TinyVision Studio web app")
        p.add_argument("--allow-folders", metavar="DIR",
                       default=os.environ.get("TINYVISION_ALLOW_FOLDERS"),
                       help="offer the image-folder dataset for folders inside DIR (nothing "
                            "outside it)")
        p.add_argument("--max-train-seconds", type=float,
                       default=float(os.environ.get("TINYVISION_MAX_TRAIN_SECONDS", RUN_SECONDS)),
                       help=f"cap every training run at this many seconds (default "
                            f"{RUN_SECONDS:g}; 0: no cap, for a private server)")
        p.add_argument("--max-upload-mb", type=int,
                       default=int(os.environ.get("TINYVISION_MAX_UPLOAD_MB", MAX_UPLOAD_MB)),
                       help=f"refuse uploads larger than this (default {MAX_UPLOAD_MB} MB)")
        args = p.parse_args(argv)
        return cls.make(folder_root=args.allow_folders, max_seconds=args.max_train_seconds,
                        max_upload_mb=args.max_upload_mb)
