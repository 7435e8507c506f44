"""The shelf of shipped models: the checkpoints in checkpoints/, loaded once, and which of them
each predictor tab offers (a visitor's own models first, theirs only)."""
from __future__ import annotations

import logging
from pathlib import Path

from ..checkpoint import CheckpointError
from ..kinds import DIGITS, PHOTOS, get_kind
from ..predictor import Predictor
from ..preparation import InputError

__all__ = ["CHECKPOINT_DIR", "OWN_PREFIX", "PREFERRED", "Shelf", "tab_of"]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# Default model per tab: the first of these that is shipped, else the first shipped model of the
# tab's kinds.
OWN_PREFIX = "yours-"  # the keys of a visitor's own models ("yours-1", ...)
PREFERRED = {DIGITS: ("handwriting-digitnet", "mnist-digitnet"),
             PHOTOS: ("cifar10-cifarnet", "cifar10-lenet")}


def tab_of(predictor: Predictor) -> str:
    """The tab a model belongs to, by its input kind (core.kinds)."""
    return get_kind(predictor.kind).tab


class Shelf:
    """The shipped checkpoints, loaded once; a broken file is skipped (logged), the others serve."""

    def __init__(self, checkpoint_dir: str | Path = CHECKPOINT_DIR):
        self.folder = Path(checkpoint_dir)
        self.models: dict[str, Predictor] = {}
        for path in sorted(Path(checkpoint_dir).glob("*.pt")):
            try:
                self.models[path.stem] = Predictor.load(path)
            except CheckpointError as exc:
                log.warning("skipping checkpoint %s: %s", path.name, exc)

    def keys(self, tab: str) -> list[str]:
        """Model keys for a tab, the default first."""
        keys = [k for k, p in self.models.items() if tab_of(p) == tab]
        preferred = [k for k in PREFERRED.get(tab, ()) if k in keys]
        return preferred + [k for k in keys if k not in preferred]

    def choices(self, tab: str, own: dict[str, Predictor] | None = None) -> list[tuple[str, str]]:
        """(label, key) pairs for a model dropdown; `own` holds one visitor's own models (listed
        first, the newest on top)."""
        mine = [(f"yours: {p.name}", k) for k, p in (own or {}).items() if tab_of(p) == tab]
        return mine[::-1] + [(self.models[k].name, k) for k in self.keys(tab)]

    def default(self, tab: str) -> str | None:
        keys = self.keys(tab)
        return keys[0] if keys else None

    def predictor(self, key: str | None, tab: str,
                  own: dict[str, Predictor] | None = None) -> Predictor:
        """The model for `key`, checked to be one of this tab's models (API callers can send
        anything). `own` holds the models one visitor trained or uploaded; they shadow nobody
        else's."""
        if key is None:
            key = self.default(tab)
        known = {**self.models, **(own or {})}
        predictor = known.get(key) if isinstance(key, str) else None
        if predictor is None and isinstance(key, str) and key.startswith(OWN_PREFIX):
            raise InputError(f"your model {key!r} is no longer held on the server (a visitor's "
                             "models are let go a while after their last use): offer it again "
                             "with Use this model, or upload its checkpoint")
        if predictor is None or tab_of(predictor) != tab:
            names = ", ".join(k for _, k in self.choices(tab, own)) or "none installed"
            raise InputError(f"unknown model {key!r} for {tab}; choose one of: {names}")
        return predictor

    def start_point(self, kind: str) -> Path:
        """The checkpoint a visitor's own classes of `kind` start from: its tab's default model."""
        tab = get_kind(kind).tab
        key = self.default(tab)
        if key is None:
            raise InputError("no shipped model of this kind is installed to start from; train "
                             "from scratch")
        return self.models[key].path
