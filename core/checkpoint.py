"""One file per model: weights plus the metadata needed to rebuild and use it.

Files are written atomically (temp file in the same folder, then rename) so a crash never leaves a
half-written checkpoint, and read with `torch.load(weights_only=True)` so a file cannot run code
when loaded.

    python -m core.checkpoint RUN.pt [RUN2.pt ...] --out FILE [--half] [--quantize]

writes a shippable copy of a run (or an ensemble of several runs of one recipe) without its
optimizer state.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import models
from .kinds import NAMES as INPUT_KINDS

__all__ = ["FORMAT", "VERSION", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "build_from_checkpoint", "check_architecture", "state_shapes", "make_meta",
           "library_versions", "quantize_state_dict", "dequantize_state_dict", "run_summary",
           "export_checkpoint", "main"]

FORMAT = "tinyvision-checkpoint"
# Raised when a release writes what older ones cannot read; a file of a later version is refused
VERSION = 1
REQUIRED = ("model", "model_kwargs", "dataset", "classes", "input_shape", "mean", "std",
            "state_dict")
MAX_BYTES = 600 * 1024 * 1024
MAX_PARAMETERS = 100_000_000  # the largest registered net (AlexNet) has 57M; an ensemble counts all
MAX_MEMBERS = 8
# What the members of an ensemble must share: one architecture, one dataset, one preprocessing.
SHARED_BY_MEMBERS = ("model", "model_kwargs", "dataset", "kind", "classes", "input_shape", "mean",
                     "std", "tta_flip", "tta_shift")


class CheckpointError(ValueError):
    """The file is not a usable checkpoint of this project; the message says why."""


def library_versions() -> dict[str, str]:
    import torchvision

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": platform.python_version()}


def make_meta(model_name: str, dataset: str, classes: list[str], input_shape: tuple[int, int, int],
              mean: tuple[float, ...], std: tuple[float, ...], model_kwargs: dict | None = None,
              **extra: Any) -> dict:
    """The metadata of a checkpoint; `extra` adds e.g. `kind` (the input kind, core.kinds),
    `config`, `tta_flip`, `tta_shift`. Files without a kind (older releases) get their dataset's
    (core.datasets)."""
    return {"format": FORMAT, "version": VERSION, "model": model_name,
            "model_kwargs": dict(model_kwargs or {}), "dataset": dataset, "classes": list(classes),
            "input_shape": list(input_shape), "mean": list(mean), "std": list(std),
            "versions": library_versions(), **extra}


def save_checkpoint(path: str | Path, meta: dict, state_dict: dict,
                    train_state: dict | None = None) -> Path:
    """Write meta + weights (+ optional optimizer/scheduler state for resuming) atomically to
    `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**meta, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}}
    if train_state is not None:
        payload["train_state"] = train_state
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        # Left by a process killed mid-write; never a valid checkpoint
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read and validate a checkpoint; raises CheckpointError for anything that is not one of
    ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name} is not a file")
    if path.stat().st_size > MAX_BYTES:
        raise CheckpointError(f"{path.name} is larger than {MAX_BYTES // 2**20} MB; not a "
                              "checkpoint of this project")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # PyTorch's own words name its internals and versions: ours say what the file is.
        reason = "it is not a PyTorch file, or it is damaged or cut short"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = ("it contains Python objects other than tensors (refused: loading it could "
                      "run code)")
        raise CheckpointError(f"{path.name} is not a readable checkpoint: {reason}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not a TinyVision checkpoint (no '{FORMAT}' header)")
    version = payload.get("version")
    if type(version) is not int or version < 1:
        raise CheckpointError(f"{path.name} has an invalid format version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path.name} was written by a newer release of TinyVision "
                              f"(checkpoint format {version}; this one reads up to {VERSION}): "
                              "update the project to load it")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path.name} is missing {', '.join(missing)}")
    if payload["model"] not in models.list_models():
        raise CheckpointError(f"{path.name} is for unknown model {payload['model']!r}")
    shape = payload["input_shape"]
    square = isinstance(shape, list) and len(shape) == 3 and shape[1] == shape[2]
    if not (square and shape[0] in (1, 3)):
        raise CheckpointError(f"{path.name} has an invalid input shape {shape!r}")
    if not isinstance(payload["classes"], list) or len(payload["classes"]) < 2:
        raise CheckpointError(f"{path.name} has an invalid class list")
    if "kind" in payload and payload["kind"] not in INPUT_KINDS:
        raise CheckpointError(f"{path.name} has an unknown input kind {payload['kind']!r} (one of "
                              f"{INPUT_KINDS})")
    members = payload.get("members", 1)
    if type(members) is not int or not 1 <= members <= MAX_MEMBERS:
        raise CheckpointError(f"{path.name} has an invalid member count {members!r} (1 to "
                              f"{MAX_MEMBERS})")
    if not _tensors_hold_their_data(payload):
        raise CheckpointError(f"{path.name} has tensors larger than the data stored for them "
                              "(refused: they would take memory the file does not hold)")
    return payload


def _tensors_hold_their_data(obj: Any, depth: int = 0) -> bool:
    """Whether every tensor in a loaded payload is backed by as many bytes as it claims: a tensor
    saved as a view with zero strides (one stored number "expanded" to any shape) would be
    materialised at its full size by the first copy."""
    if isinstance(obj, torch.Tensor):
        return obj.untyped_storage().nbytes() >= obj.numel() * obj.element_size()
    if depth > 8:
        return True  # nothing of ours nests deeper; torch.load built whatever is here already
    if isinstance(obj, dict):
        return all(_tensors_hold_their_data(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_tensors_hold_their_data(v, depth + 1) for v in obj)
    return True


QUANT_SUFFIXES = ("::q4", "::scale", "::low", "::cols")


def quantize_state_dict(state_dict: dict, min_numel: int = 1_000_000) -> dict:
    """Store large 2-D weights at 4 bits (per-row affine levels), so big FC nets fit a small shipped
    file.

    The FC layers of the seed CNN hold 15M weights (60 MB as float32); at 4 bits the file is under
    10 MB and the measured accuracy change is recorded in the model card.
    """
    out = {}
    for key, w in state_dict.items():
        if w.ndim != 2 or w.numel() < min_numel or not w.is_floating_point():
            out[key] = w
            continue
        w = w.float()
        low = w.min(1, keepdim=True).values
        scale = ((w.max(1, keepdim=True).values - low) / 15).clamp(min=1e-12)
        q = ((w - low) / scale).round().clamp(0, 15).to(torch.uint8)
        if q.shape[1] % 2:
            q = torch.cat([q, torch.zeros(q.shape[0], 1, dtype=torch.uint8)], 1)
        out[key + "::q4"] = q[:, 0::2] | (q[:, 1::2] << 4)
        out[key + "::scale"], out[key + "::low"] = scale.half(), low.half()
        out[key + "::cols"] = torch.tensor(w.shape[1])
    return out


def dequantize_state_dict(state_dict: dict) -> dict:
    """Inverse of `quantize_state_dict` (a no-op for ordinary state dicts)."""
    out = {k: v for k, v in state_dict.items() if not k.endswith(QUANT_SUFFIXES)}
    for key in [k[:-4] for k in state_dict if k.endswith("::q4")]:
        packed = state_dict[key + "::q4"]
        cols = int(state_dict[key + "::cols"])
        q = torch.stack([packed & 15, packed >> 4], 2).flatten(1)[:, :cols]
        scale, low = state_dict[key + "::scale"].float(), state_dict[key + "::low"].float()
        out[key] = q.float() * scale + low
    return out


def run_summary(payload: dict) -> dict:
    """Seed, pen jitter, test accuracy and training time of the run a single-model checkpoint holds
    (None where unknown)."""
    metrics, cfg = payload.get("metrics", {}), payload.get("config", {})
    return {"seed": cfg.get("seed"), "pen_jitter": cfg.get("pen_jitter", 0.0),
            "test_acc": metrics.get("test_acc"), "train_seconds": metrics.get("train_seconds")}


def export_checkpoint(src: str | Path | list[str | Path], dst: str | Path, quantize: bool = False,
                      half: bool = False) -> Path:
    """A shippable copy of training checkpoint(s), without optimizer state.

    Several sources (one architecture, dataset and preprocessing, e.g. the same recipe from
    different seeds) become one ensemble that averages their logits; its test accuracy and softmax
    temperature are the average's, so they are measured again (`python -m core.evaluate --calibrate
    --record`). `quantize` stores large 2-D weights at 4 bits, `half` every float tensor as float16
    (half the file; loading turns them back into float32).
    """
    sources = [src] if isinstance(src, (str, Path)) else list(src)
    if not 1 <= len(sources) <= MAX_MEMBERS:
        raise CheckpointError(f"give 1 to {MAX_MEMBERS} checkpoints, not {len(sources)}")
    payloads = [load_checkpoint(s) for s in sources]
    first = payloads[0]
    for path, other in zip(sources, payloads):
        if other.get("members", 1) != 1 and len(sources) > 1:
            raise CheckpointError(f"{Path(path).name} is already an ensemble; combine single "
                                  "models")
        differs = [k for k in SHARED_BY_MEMBERS if other.get(k) != first.get(k)]
        if differs:
            raise CheckpointError(f"{Path(path).name} differs from {Path(sources[0]).name} in "
                                  f"{', '.join(differs)}: an ensemble needs one architecture, "
                                  "dataset and preprocessing")
    # An ensemble keeps what its members share; their own measurements and curves are not the
    # average's.
    dropped = {"state_dict", "train_state"}
    if len(payloads) > 1:
        dropped |= {"metrics", "temperature", "history"}
    payload = {k: v for k, v in first.items() if k not in dropped}
    if len(payloads) == 1:
        state_dict = first["state_dict"]
    else:
        state_dict = {f"members.{i}.{k}": v for i, p in enumerate(payloads)
                      for k, v in p["state_dict"].items()}
        payload.update(members=len(payloads), member_runs=[run_summary(p) for p in payloads])
    if quantize:
        state_dict = quantize_state_dict(state_dict)
        payload["quantized"] = "4-bit per-row weights for 2-D tensors of 1M+ elements"
    if half:
        state_dict = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
        payload["stored_as"] = "float16"
    return save_checkpoint(dst, payload, state_dict)


def state_shapes(state_dict: Any) -> dict[str, tuple]:
    """Parameter shapes a state dict describes, 4-bit packed tensors included, without unpacking
    anything."""
    named = isinstance(state_dict, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items())
    if not named:
        raise CheckpointError("its weights are not a dict of named tensors")
    shapes = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith(QUANT_SUFFIXES)}
    try:
        for key in [k[:-4] for k in state_dict if k.endswith("::q4")]:
            shapes[key] = (state_dict[key + "::q4"].shape[0], int(state_dict[key + "::cols"]))
    except (KeyError, RuntimeError, ValueError):
        raise CheckpointError("its 4-bit weights are incomplete") from None
    return shapes


def _create(payload: dict) -> nn.Module:
    """The untrained net a (validated) checkpoint describes: its model, or an Ensemble of `members`
    copies."""
    c, size, _ = payload["input_shape"]

    def one() -> nn.Module:
        return models.create_model(payload["model"], len(payload["classes"]), c, size,
                                   **payload["model_kwargs"])

    members = payload.get("members", 1)
    return one() if members == 1 else models.Ensemble([one() for _ in range(members)])


def check_architecture(payload: dict) -> None:
    """Check that a loaded checkpoint's weights fit its registered architecture, before anything is
    allocated.

    The model is built on the meta device, so a file claiming an enormous model costs no memory; a
    mismatch is a CheckpointError naming the first differing weight.
    """
    if not isinstance(payload["model_kwargs"], dict) or "pretrained" in payload["model_kwargs"]:
        # (a pretrained flag would make building download weights; saved runs never carry it)
        raise CheckpointError("its model_kwargs are not a dict of architecture settings")
    try:
        with torch.device("meta"):
            net = _create(payload)
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"its model settings are invalid: {first}") from None
    parameters = models.count_parameters(net)
    if parameters > MAX_PARAMETERS:
        raise CheckpointError(f"its model settings ask for {parameters:,} parameters; at most "
                              f"{MAX_PARAMETERS:,}")
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = state_shapes(payload["state_dict"])
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise CheckpointError(f"its weights do not fit model {payload['model']!r} (first "
                              f"difference: {wrong[0]})")


def build_from_checkpoint(payload: dict) -> nn.Module:
    """Rebuild the model of a loaded checkpoint in eval mode; a weight/architecture mismatch is a
    CheckpointError."""
    check_architecture(payload)
    try:
        model = _create(payload)
        model.load_state_dict(dequantize_state_dict(payload["state_dict"]))
    except (RuntimeError, TypeError, ValueError):
        raise CheckpointError(f"its weights do not fit model {payload['model']!r} (their types "
                              "or values)") from None
    return model.float().eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.checkpoint", description="Write a shippable "
                                "copy of one checkpoint, or an ensemble of several.")
    p.add_argument("checkpoints", nargs="+",
                   help="training checkpoint(s) of one architecture and dataset")
    p.add_argument("--out", required=True, help="file to write (atomically)")
    p.add_argument("--half", action="store_true",
                   help="store float weights as float16 (half the size)")
    p.add_argument("--quantize", action="store_true",
                   help="store 2-D weights of 1M+ elements at 4 bits")
    args = p.parse_args(argv)
    try:
        out = export_checkpoint(args.checkpoints, args.out, quantize=args.quantize, half=args.half)
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    several = len(args.checkpoints) > 1
    members = f"an ensemble of {len(args.checkpoints)}" if several else "one model"
    print(f"{out}: {members}, {out.stat().st_size / 2**20:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
