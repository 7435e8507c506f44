"""The digit models the page runs itself: each as the ONNX file of core.export and a small JSON of
what the page needs beside it (onnxruntime-web cannot read ONNX metadata): the classes, the "not
sure" threshold and its message, how many classes to show, the model's name, and the sketch
preparation's constants.

A model's files are named by the checkpoint's bytes and made when first asked for: a shipped
model's ONNX is exported once into the cache folder, a visitor's beside its checkpoint in its run
folder. `spec` gives the page the URLs; `warm` exports in the background what the first visitors
will ask for.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import torch

from ..export import DEFAULT_OPSET, onnx_file
from ..kinds import get_kind
from ..models import count_parameters
from ..predictor import Predictor
from ..preparation import SKETCH
from .answers import unsure_note
from .page_assets import PageAssets
from .runs import TRAIN_NICENESS, lower_thread_priority

__all__ = ["PageModels", "describe", "WEB_MAX_IR", "WEB_MAX_OPSET"]

# The page's runtime (onnxruntime-web 1.31) reads ONNX IR versions up to 13 and opsets up to 26;
# core.export writes IR 10, opset 18 (tests/test_page.py checks the files).
WEB_MAX_IR, WEB_MAX_OPSET = 13, 26
VISITOR_MODELS_SERVED = 32  # visitors' model files kept in memory at once (the oldest dropped)
# A visitor's model runs in the page only up to this many parameters (a digit net has 0.03-0.3M;
# the seed CNN's 15M would be a 60 MB download): larger ones answer through the server.
PAGE_MAX_PARAMETERS = 2_000_000
# What the ONNX file of a checkpoint also depends on: a new exporter makes new URLs.
EXPORTER = f"torch {torch.__version__}, opset {DEFAULT_OPSET}"


def describe(predictor: Predictor) -> dict:
    """What the page needs beside a model's ONNX file."""
    return {"name": predictor.name, "classes": predictor.classes, "kind": predictor.kind,
            "top_k": get_kind(predictor.kind).top_k, "unsure_threshold": predictor.unsure_threshold,
            "unsure_message": unsure_note(predictor), "input_shape": list(predictor.input_shape),
            "preparation": SKETCH}


class PageModels:
    """Drawn-digit models as page files, served by `assets`; `shipped` is the folder of the
    shipped checkpoints (their ONNX files go to `cache`)."""

    def __init__(self, assets: PageAssets, cache: Path, shipped: Path):
        self.assets, self.cache, self.shipped = assets, Path(cache), Path(shipped).resolve()
        self._specs: dict[tuple[str, int], dict] = {}  # (checkpoint, mtime) -> spec
        self._visitors: list[tuple[str, int]] = []  # the visitors' ones, oldest first
        self._lock = threading.Lock()

    def _is_shipped(self, path: Path) -> bool:
        return path.resolve().parent == self.shipped

    def _onnx(self, source: Path, digest: str) -> bytes:
        """The checkpoint as ONNX (core.export), exported once: a file written atomically."""
        out = self.cache / f"{digest}.onnx" if self._is_shipped(source) else source.with_suffix(
            ".onnx")
        return onnx_file(source, out).read_bytes()

    def spec(self, predictor: Predictor) -> dict | None:
        """{key, name, onnx, meta}: the URLs of a drawn-digit model's page files (the ONNX file is
        exported when first fetched); None for a model the page does not run."""
        if not get_kind(predictor.kind).drawn:
            return None
        source = Path(predictor.path)
        if not self._is_shipped(source) and count_parameters(predictor.model) > PAGE_MAX_PARAMETERS:
            return None
        key = (str(source), source.stat().st_mtime_ns)
        with self._lock:
            if key in self._specs:
                return self._specs[key]
        digest = hashlib.sha256(source.read_bytes() + EXPORTER.encode()).hexdigest()[:20]
        meta = json.dumps(describe(predictor)).encode()
        spec = {"key": digest, "name": predictor.name,
                "onnx": self.assets.add_made("model.onnx", digest,
                                             lambda: self._onnx(source, digest)),
                "meta": self.assets.add("model.json", meta)}
        with self._lock:
            self._specs[key] = spec
            if not self._is_shipped(source):
                self._visitors.append(key)
                while len(self._visitors) > VISITOR_MODELS_SERVED:
                    old = self._specs.pop(self._visitors.pop(0), None)
                    if old is not None:
                        self.assets.remove(old["onnx"])
                        self.assets.remove(old["meta"])
        return spec

    def warm(self, predictors: list[Predictor]) -> threading.Thread:
        """Make these models' ONNX files in a background thread, at a lower priority, so that the
        first visitors do not wait for them."""
        def work() -> None:
            lower_thread_priority(TRAIN_NICENESS)
            for p in predictors:
                spec = self.spec(p)
                if spec is not None:
                    self.assets.data(spec["onnx"])
        thread = threading.Thread(target=work, name="page-models", daemon=True)
        thread.start()
        return thread
