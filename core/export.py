"""A checkpoint as one ONNX graph, from the prepared image to the probabilities the app shows.

    python -m core.export CHECKPOINT --out FILE.onnx [--opset N] [--single-view]

Input "image": float32 (N, C, H, W), values 0..1 (pixel / 255), C/H/W the checkpoint's input shape
(1x28x28 for the digit models, 3x32x32 for the photo models), N any. The image is prepared as the
app prepares it (the model's metadata "preparation" says how; core.kinds). Inside the graph: the
per-channel normalisation, the test-time views the checkpoint is evaluated with (mirror, shifted
copies), every member of an ensemble, the softmax at the calibrated temperature. Outputs:
"probabilities" (N, classes) and "score" (N,), the energy score of core.calibration: below the
metadata's "unsure_threshold" an input is probably none of the classes.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from .calibration import energy_score, tta_options, view_logits
from .datasets import checkpoint_kind
from .kinds import get_kind

__all__ = ["ExportError", "Deployable", "export_onnx", "onnx_file", "metadata", "OPSETS",
           "DEFAULT_OPSET", "INPUT", "OUTPUTS", "main"]

# The exporter (torch.onnx with torch.export) writes opset 18 and later; 18 is read by every
# onnxruntime since 1.14.
OPSETS, DEFAULT_OPSET = range(18, 24), 18
INPUT, OUTPUTS = "image", ("probabilities", "score")
MAX_BATCH = 4096


class ExportError(ValueError):
    """The checkpoint could not be exported; the message says why."""


class Deployable(nn.Module):
    """A trained net with everything the app does between a prepared image and its answer."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float],
                 temperature: float = 1.0, tta_flip: bool = False, tta_shift: int = 0):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.temperature = float(temperature)
        self.tta_flip, self.tta_shift = bool(tta_flip), int(tta_shift)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = view_logits(self.net, (image - self.mean) / self.std, self.tta_flip,
                             self.tta_shift)
        return torch.softmax(logits / self.temperature, 1), energy_score(logits, self.temperature)


def _views(payload: dict, single_view: bool) -> dict:
    """The test-time views the exported graph averages: the checkpoint's, or none."""
    return {"tta_flip": False, "tta_shift": 0} if single_view else tta_options(payload)


def metadata(payload: dict, single_view: bool = False) -> dict[str, str]:
    """The model's metadata_props: what a program needs to use the file without this project."""
    c, size, _ = payload["input_shape"]
    kind = checkpoint_kind(payload)
    tta = _views(payload, single_view)
    views = [name for name, on in (("mirror", tta["tta_flip"]),
                                   (f"shifted by {tta['tta_shift']} px", tta["tta_shift"])) if on]
    props = {"classes": json.dumps(payload["classes"]), "kind": kind,
             "input": f"{INPUT}: float32 [N, {c}, {size}, {size}], values 0..1 (pixel / 255)",
             "preparation": get_kind(kind).preparation, "outputs": "probabilities: float32 [N, "
             "classes], at the calibrated temperature; score: float32 [N], the energy score (below "
             "unsure_threshold: probably none of the classes)",
             "test_time_views": " + ".join(["as given", *views]),
             "temperature": str(float(payload.get("temperature", 1.0))), "model": payload["model"],
             "members": str(payload.get("members", 1)), "dataset": payload["dataset"],}
    if payload.get("unsure_threshold") is not None:
        props["unsure_threshold"] = str(float(payload["unsure_threshold"]))
    if payload.get("metrics", {}).get("test_acc") is not None:
        props["test_acc"] = f"{payload['metrics']['test_acc']:.4f}"
    return props


def _reason(exc: BaseException) -> str:
    """The first line of what went wrong underneath, without the exporter's terminal colours."""
    inner = exc.__cause__ or exc
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(inner))
    return next((line.strip() for line in text.splitlines() if line.strip()), type(inner).__name__)


_EXPORTING = threading.Lock()  # one export at a time in a process: each is seconds of CPU


def onnx_file(source: str | Path, out: str | Path) -> Path:
    """`out`, the checkpoint `source` as ONNX, exported unless an export at least as new as the
    checkpoint is there already; exports in one process run one at a time, so two callers asking
    for the same file export it once."""
    source, out = Path(source), Path(out)
    with _EXPORTING:
        if not (out.is_file() and out.stat().st_mtime >= source.stat().st_mtime):
            out.parent.mkdir(parents=True, exist_ok=True)
            export_onnx(source, out)
    return out


def export_onnx(source: str | Path | dict, out: str | Path, opset: int = DEFAULT_OPSET,
                single_view: bool = False) -> Path:
    """Write a checkpoint (a path, or a payload as core.checkpoint.load_checkpoint returns it) as
    one ONNX file, atomically; `single_view` leaves the test-time views out (one pass per image, the
    plain model's answers)."""
    if opset not in OPSETS:
        raise ExportError(f"the opset must be {OPSETS.start} to {OPSETS.stop - 1} (got {opset})")
    payload = ckpt.load_checkpoint(source) if isinstance(source, (str, Path)) else source
    net = ckpt.build_from_checkpoint(payload)
    tta = _views(payload, single_view)
    model = Deployable(net, payload["mean"], payload["std"], payload.get("temperature", 1.0),
                       **tta).eval()
    c, size, _ = payload["input_shape"]
    example = torch.rand(2, c, size, size)
    try:
        # The exporter's own dependency: a clear message when it is missing.
        import onnxscript  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the packages onnx and onnxscript (pip install "
                          "onnxscript)") from None
    try:
        batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
        program = torch.onnx.export(model, (example,), input_names=[INPUT],
                                    output_names=list(OUTPUTS), opset_version=opset, dynamo=True,
                                    verbose=False, dynamic_shapes=({0: batch},))
    except Exception as exc:  # many types, its own wrapping what torch.export could not trace
        raise ExportError(f"{payload['model']} could not be exported to ONNX: "
                          f"{_reason(exc)}") from None
    program.model.metadata_props.update(metadata(payload, single_view))
    program.model.producer_name = "TinyVision Studio"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        program.save(tmp, external_data=False)  # one file: the weights inside the graph
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.export", description="Export a checkpoint "
                                "to ONNX: prepared image in, probabilities out.")
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, {OPSETS.start} to {OPSETS.stop - 1} (default "
                        f"{DEFAULT_OPSET})")
    p.add_argument("--single-view", action="store_true",
                   help="leave out the test-time views (mirror, shifts): one pass per image")
    args = p.parse_args(argv)
    try:
        out = export_onnx(args.checkpoint, args.out, args.opset, args.single_view)
    except (ExportError, ckpt.CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: {out.stat().st_size / 2**20:.2f} MB, opset {args.opset}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
