"""Accuracy, per-class accuracy and confusion matrix of a model on a dataset; `python -m
core.evaluate` CLI."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt
from . import datasets
from .calibration import fit_temperature, fit_unsure_threshold, predict_logits, tta_options
from .imagedata import DataError, ImageData

__all__ = ["evaluate_model", "checkpoint_data", "main"]

SAMPLE_COUNT = 24


@torch.no_grad()
def evaluate_model(model: nn.Module, data: ImageData, device: torch.device | str = "cpu",
                   batch_size: int = 512, amp_dtype: torch.dtype | None = None,
                   tta_flip: bool = False, tta_shift: int = 0) -> dict:
    """Loss, accuracy, per-class accuracy, confusion matrix, every image's predicted class and a
    fixed sample of predictions on `data` (with its uint8 images, so a caller can draw them without
    loading the data again); for a set of several parts (`data.parts`) also each part's accuracy,
    and for images with groups (`data.groups`) each group's."""
    was_training = model.training
    model.eval()
    device = torch.device(device)
    k = len(data.classes)
    confusion = torch.zeros(k, k, dtype=torch.long)
    loss_sum = 0.0
    preds = []
    for start in range(0, len(data), batch_size):
        x = data.images[start:start + batch_size].to(device)
        y = data.labels[start:start + batch_size].to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = predict_logits(model, x, data.mean, data.std, tta_flip, tta_shift)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        p = logits.argmax(1)
        preds.append(p.cpu())
        confusion += torch.bincount(y.cpu() * k + p.cpu(), minlength=k * k).view(k, k)
    model.train(was_training)
    pred = torch.cat(preds)
    totals = confusion.sum(1).clamp(min=1)
    per_class = {name: (confusion[i, i] / totals[i]).item() for i, name in enumerate(data.classes)}
    sample = torch.linspace(0, len(data) - 1, min(SAMPLE_COUNT, len(data))).long()
    right = pred == data.labels.cpu()
    parts = {name: right[a:b].float().mean().item() for name, (a, b) in data.parts.items()}
    groups = {}
    if data.groups is not None:  # e.g. each writer's accuracy
        known = data.groups.cpu() >= 0
        names, which = torch.unique(data.groups.cpu()[known], return_inverse=True)
        rates = torch.bincount(which, right[known].float()) / torch.bincount(which)
        groups = dict(zip(names.tolist(), rates.tolist()))
    samples = {"index": sample.tolist(), "true": data.labels[sample].tolist(),
               "pred": pred[sample].tolist(),
               "images": data.images[sample.to(data.images.device)].cpu()}
    return {"loss": loss_sum / len(data), "acc": confusion.diag().sum().item() / len(data),
            "per_class": per_class, "parts": parts, "groups": groups,
            "confusion": confusion.tolist(), "samples": samples, "predictions": pred}


def checkpoint_data(payload: dict, split: str, root: str | None = None,
                    download: bool = True) -> ImageData:
    """A split of a checkpoint's dataset as its model saw it: at its input size, read as its kind,
    normalised with its statistics (a transferred model: its source's). An image folder must be
    named (`root`): checkpoints keep the name of the folder they trained on, not where it was."""
    c, size, _ = payload["input_shape"]
    cfg = payload.get("config", {})
    if datasets.get_dataset_spec(payload["dataset"]).folder and not root:
        raise DataError(f"this checkpoint trained on an image folder ({cfg.get('data_root')!r}): "
                        "give its path with --data-root")
    data = datasets.load_dataset(payload["dataset"], split, root, download, size, c, cfg.get("seed",
                                                                                             0),
                                 datasets.checkpoint_kind(payload))
    if data.classes != payload["classes"]:
        raise DataError(f"the {split} set's classes {data.classes} differ from the checkpoint's")
    return replace(data, mean=tuple(payload["mean"]), std=tuple(payload["std"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.evaluate",
                                description="Evaluate a checkpoint on its test set.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-root", default=None,
                   help="data folder (default: $TINYVISION_DATA or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--json", action="store_true")
    p.add_argument("--calibrate", action="store_true", help="fit the softmax temperature on 10,000 "
                   "training images, and the 'not sure' threshold (--fit-unsure), and store them "
                   "in the checkpoint")
    p.add_argument("--fit-unsure", action="store_true", help="fit only the threshold below which "
                   "an input is 'probably none of the classes', on augmented views of 2,000 "
                   "training images, and store it in the checkpoint")
    p.add_argument("--record", action="store_true", help="store the measured test accuracy "
                   "(overall and per class) in the checkpoint; the app shows it beside the model's "
                   "name")
    args = p.parse_args(argv)
    try:
        payload = ckpt.load_checkpoint(args.checkpoint)
        model = ckpt.build_from_checkpoint(payload)
        test = checkpoint_data(payload, "test", args.data_root, args.download)
        if args.calibrate or args.fit_unsure:
            train = checkpoint_data(payload, "train", args.data_root, args.download)
            g = torch.Generator().manual_seed(0)
            subset = train.subset(torch.randperm(len(train), generator=g)[:10_000])
            if args.calibrate:
                payload["temperature"] = fit_temperature(model, subset, **tta_options(payload))
            # The model trained on all of these: seen through the training augmentation, they are
            # views it did not learn, the nearest to held-out images of its classes that it has.
            payload["unsure_threshold"] = fit_unsure_threshold(model, subset,
                                                               payload.get("temperature", 1.0),
                                                               **tta_options(payload), augment=True)
        result = evaluate_model(model, test, **tta_options(payload))
        if args.record:
            payload["metrics"] = {**payload.get("metrics", {}), "test_acc": result["acc"],
                                  "per_class": result["per_class"]}
        if args.calibrate or args.fit_unsure or args.record:
            state_dict = payload.pop("state_dict")
            ckpt.save_checkpoint(args.checkpoint, payload, state_dict, payload.pop("train_state",
                                                                                   None))
            written = [f"temperature {payload['temperature']}"] if args.calibrate else []
            if args.calibrate or args.fit_unsure:
                written.append(f"'not sure' below score {payload['unsure_threshold']}")
            if args.record:
                written.append(f"test accuracy {result['acc']:.4f}")
            print(f"{' and '.join(written)} written to {args.checkpoint}", file=sys.stderr)
    except (DataError, ckpt.CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"dataset": payload["dataset"], "model": payload["model"],
                          "test_acc": result["acc"], "test_loss": result["loss"],
                          "per_class": result["per_class"], "parts": result["parts"],
                          "n": len(test)}))
    else:
        print(f"{payload['model']} on {payload['dataset']} test ({len(test)} images): accuracy "
              f"{result['acc']:.4f}")
        for name, acc in result["per_class"].items():
            print(f"  {name:>12}  {acc:.4f}")
        for name, acc in result["parts"].items():
            print(f"  part {name}: accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
