"""The live view of a training run: core.train's events turned into what the page shows.

A `Dashboard` turns each event into an update dict whose keys are OUTPUTS (only what changed; the
end's update has them all), so the page maps keys onto its components and tests read them directly.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import plots
from ..train import epoch_line, start_line, summarize
from .texts import progress_html

__all__ = ["Dashboard", "OUTPUTS", "TABLE_HEADERS", "clean_history"]

OUTPUTS = ("progress", "curves", "samples", "per_class", "confusion", "table", "log", "report",
           "checkpoint", "run")
TABLE_HEADERS = ["epoch", "train loss", "train acc", "val loss", "val acc", "test loss", "test acc",
                 "seconds", "img/s"]


def _hwc(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, H, W) for grey or (N, H, W, 3), as the sample grid draws them."""
    a = images.numpy()
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else ""


def clean_history(history: Any) -> list[dict]:
    """The numeric per-epoch entries of a stored history (an uploaded file's history is not trusted
    to be tidy)."""
    if not isinstance(history, list):
        return []
    return [{k: v for k, v in h.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for h in history if isinstance(h, dict) and isinstance(h.get("epoch"), int)]


class Dashboard:
    """What the page shows about one run, updated event by event.

    Figures take a fraction of a second to draw, and a run of many short epochs (a few examples of
    your own classes) would spend more time drawing than training: they are drawn at most every
    `plot_every_s` seconds (and at the end), other updates (progress lines, epoch reports) at most
    every `progress_every_s`; a skipped update is an empty dict, and what it held comes with the
    next one sent.
    """

    def __init__(self, history: list[dict], plot_every_s: float = 0.0,
                 progress_every_s: float = 0.0):
        self.history = list(history)
        self.log: list[str] = []
        self.classes: list[str] = []
        self.latest: dict[str, Any] = {}
        self.plot_every_s, self.progress_every_s = plot_every_s, progress_every_s
        self._plotted = self._progressed = -math.inf
        self._unplotted: dict | None = None  # the last epoch report whose figures were not drawn
        # (fractional epoch, running loss, running accuracy)
        self.live: list[tuple[float, float, float]] = []

    def update(self, event: dict) -> dict:
        """The update for one event of core.train (an empty dict: nothing to send now)."""
        if event["type"] == "end":
            return self.end(event, event["checkpoint"], event["stopped"] and event["resumable"])
        return getattr(self, event["type"])(event)

    def table(self) -> list[list[str]]:
        return [[str(h["epoch"]), _fmt(h.get("train_loss")), _fmt(h.get("train_acc")),
                 _fmt(h.get("val_loss")), _fmt(h.get("val_acc")), _fmt(h.get("test_loss")),
                 _fmt(h.get("test_acc")), _fmt(h.get("seconds"), 1),
                 _fmt(h.get("images_per_s"), 0)] for h in self.history]

    def _set(self, **values: Any) -> dict:
        self.latest.update(values)
        return values

    def start(self, e: dict) -> dict:
        self.classes = e["classes"]
        self.log.append(start_line(e))
        starting = f"epoch {e['start_epoch']}/{e['config']['epochs']} starting on {e['device']}"
        out = self._set(progress=progress_html(0.0, starting), log="\n".join(self.log),
                        table=self.table())
        if self.history:  # resumed: show the curves so far at once
            out.update(self._set(curves=plots.curves(self.history)))
        return out

    def progress(self, e: dict) -> dict:
        self.live.append((e["epoch"] - 1 + e["batch"] / e["batches"], e["train_loss"],
                          e["train_acc"]))
        now = time.monotonic()
        if now - self._progressed < self.progress_every_s:
            return {}
        self._progressed = now
        text = (f"epoch {e['epoch']}/{e['epochs']} · batch {e['batch']}/{e['batches']} · step "
                f"{e['step']}/{e['steps']} · loss {e['loss']:.3f} · {e['images_per_s']:,.0f} img/s"
                f" · epoch ETA {e['eta_s']:.0f} s")
        out = self._set(progress=progress_html(e["batch"] / e["batches"], text))
        if now - self._plotted >= self.plot_every_s:  # the curves move within an epoch
            self._plotted = now
            out.update(self._set(curves=plots.curves(self.history, self.live)))
        return out

    def _figures(self, e: dict) -> dict:
        self._plotted, self._unplotted = time.monotonic(), None
        out = self._set(curves=plots.curves(self.history, self.live))
        if "samples" in e:
            s = e["samples"]
            out.update(self._set(
                samples=plots.sample_grid(_hwc(s["images"]), s["true"], s["pred"], self.classes),
                per_class=plots.per_class_bars(e["per_class"]),
                confusion=plots.confusion_matrix(e["confusion"], self.classes)))
        return out

    def epoch(self, e: dict) -> dict:
        self.history.append({k: v for k, v in e.items() if k not in ("confusion", "samples",
                                                                     "type")})
        self.log.append(epoch_line(e))
        acc = e.get("test_acc", e.get("val_acc"))
        text = f"epoch {e['epoch']}/{e['epochs']} done" + (
            f" · accuracy {acc:.2%}" if acc is not None else "")
        now = time.monotonic()
        figures = now - self._plotted >= self.plot_every_s
        if not figures and now - self._progressed < self.progress_every_s:
            # Nothing sent now: the next update (the end's at the latest) has it
            self._unplotted = e
            self.latest.update(progress=progress_html(1.0, text), report=_report(e))
            return {}
        self._progressed = now
        out = self._set(progress=progress_html(1.0, text), table=self.table(),
                        log="\n".join(self.log), report=_report(e))
        if figures:
            out.update(self._figures(e))
        else:
            self._unplotted = e
        return out

    def end(self, e: dict, checkpoint: str | None, resumable: bool) -> dict:
        if self._unplotted is not None:
            self._figures(self._unplotted)
        if e["stopped"]:
            line = (f"stopped; the checkpoint of epoch {e['epoch']} is kept" if checkpoint else
                    "stopped before the first epoch finished; no checkpoint to keep")
        else:
            line = f"done: {e.get('train_seconds', 0.0):.1f} s of training"
        self.log.append(line)
        report = _report({**e, "checkpoint": checkpoint})
        self._set(progress=progress_html(1.0, line), log="\n".join(self.log), report=report,
                  checkpoint=checkpoint, run={"checkpoint": checkpoint, "resumable": resumable},
                  table=self.table())
        return {k: self.latest.get(k) for k in OUTPUTS}


def _report(event: dict) -> dict:
    """The report a visitor sees of an epoch or end event: the run's summary, its checkpoint by
    name (where the server keeps it is nobody's business)."""
    report = summarize(event)
    if report.get("checkpoint"):
        report["checkpoint"] = Path(report["checkpoint"]).name
    return report
