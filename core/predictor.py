"""A loaded checkpoint that answers single images: calibrated probabilities and "not sure".

    predictor = Predictor.load("checkpoints/handwriting-digitnet.pt")
    judgement = predictor.judge(core.preparation.sketch_to_digit(canvas))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import checkpoint as ckpt
from . import models
from .calibration import energy_score, predict_logits, tta_options
from .datasets import checkpoint_kind, get_dataset_spec, list_datasets

__all__ = ["Predictor", "Judgement", "top_k"]


def top_k(probs: np.ndarray, classes: list[str], k: int) -> dict[str, float]:
    order = np.argsort(-probs)[:k]
    return {classes[i]: float(probs[i]) for i in order}


@dataclass(frozen=True)
class Judgement:
    """One answer: class probabilities, the energy score (core.calibration.energy_score) and whether
    it is below the model's threshold, i.e. the input is probably none of the model's classes."""
    probs: np.ndarray
    score: float
    unsure: bool


@dataclass
class Predictor:
    """A loaded checkpoint ready to predict single images on the CPU."""
    path: Path
    meta: dict
    model: torch.nn.Module = field(repr=False)
    # What answers single images: the model, or an ensemble's members stacked into one net (the same
    # function).
    net: torch.nn.Module = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model.fused() if isinstance(self.model, models.Ensemble) else self.model
        self.net = self.net.to(memory_format=torch.channels_last)  # a stacked net is new

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        return cls.from_payload(path, ckpt.load_checkpoint(path))

    @classmethod
    def from_payload(cls, path: str | Path, payload: dict) -> Predictor:
        """From a checkpoint already loaded (core.checkpoint.load_checkpoint) from `path`; `payload`
        is not changed."""
        meta = {k: v for k, v in payload.items() if k not in ("state_dict", "train_state")}
        return cls(Path(path), meta, ckpt.build_from_checkpoint(payload))

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["input_shape"])

    @property
    def kind(self) -> str:
        """The input kind it was trained on (core.kinds); it decides the tab and the preparation."""
        return checkpoint_kind(self.meta)

    @property
    def name(self) -> str:
        acc = self.meta.get("metrics", {}).get("test_acc")
        members = self.meta.get("members", 1)
        source = self.meta["dataset"]
        # The classes say more than "a folder"
        if source in list_datasets() and get_dataset_spec(source).folder:
            classes = self.classes
            source = ", ".join(classes[:3]) + (f" +{len(classes) - 3}" if len(classes) > 3 else "")
        return (f"{self.meta['model']}{f' ×{members}' if members > 1 else ''} "
                f"({source}{f', test {acc:.2%}' if acc else ''})")

    @property
    def unsure_threshold(self) -> float | None:
        """The energy score below which an input is probably none of its classes (None: never
        said)."""
        value = self.meta.get("unsure_threshold")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value,
                                                                                  bool) else None

    @torch.no_grad()
    def judge(self, image: np.ndarray) -> Judgement:
        """Probabilities, the energy score and whether the input is probably none of the classes."""
        logits = self._logits(image)
        temperature = float(self.meta.get("temperature", 1.0))
        score = float(energy_score(logits, temperature)[0])
        threshold = self.unsure_threshold
        probs = torch.softmax(logits[0] / temperature, 0).numpy()
        return Judgement(probs, score, threshold is not None and score < threshold)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities for one image: HxW (grey) or HxWx3 uint8, or 0..1 floats."""
        return self.judge(image).probs

    def _logits(self, image: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.array(image))  # a copy: read-only arrays arrive too
        if x.is_floating_point():
            x = x * 255.0
        x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
        c, size, _ = self.input_shape
        if x.shape[1] != c:
            x = x.float().mean(1, keepdim=True) if c == 1 else x.expand(-1, 3, -1, -1)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
        return predict_logits(self.net, x.float(), self.meta["mean"], self.meta["std"],
                              **tta_options(self.meta))
