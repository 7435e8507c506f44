"""The training loop: a generator of progress events and per-epoch reports, shared by the CLI and the web app.

    for event in train(TrainConfig(dataset="mnist", model="digitnet")):
        if event["type"] == "epoch": print(event["val_acc"])

Randomness (shuffling, augmentation) comes from a generator seeded by (seed, epoch), so a run resumed from an
epoch checkpoint replays exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt
from . import data as D
from . import models
from .evaluate import evaluate_model, fit_temperature, tta_options

__all__ = ["TrainConfig", "LIMITS", "OPTIMIZERS", "SCHEDULES", "SUMMARY_KEYS", "pick_device", "train",
           "resolve_config", "summarize", "start_line", "epoch_line", "main"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "none")
# Bounds enforced on every config, whoever sends it (CLI, web form, API).
LIMITS = {"epochs": (1, 200), "batch_size": (1, 4096), "lr": (1e-6, 20.0), "weight_decay": (0.0, 0.1),
          "momentum": (0.0, 0.999), "label_smoothing": (0.0, 0.5), "val_split": (0.0, 0.5),
          "max_steps": (0, 10_000_000), "max_seconds": (0.0, 86_400.0), "image_size": (8, 128),
          "eval_every": (1, 200), "max_train_images": (0, 10_000_000), "tta_shift": (0, 4)}
# The keys of the one-line JSON summary (`--json`); the web app's report uses the same.
SUMMARY_KEYS = ("epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "train_seconds",
                "images_per_s", "checkpoint", "stopped", "per_class")


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    model: str = "digitnet"
    # None means: take the model's default recipe for this dataset.
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    schedule: str | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    augment: bool | None = None
    momentum: float | None = None
    nesterov: bool = True
    val_split: float = 0.0
    test: bool = True
    eval_every: int = 1  # evaluate val/test every N epochs (and always after the last)
    max_steps: int = 0  # stop after this many optimizer steps in total (0 = no limit); for quick runs
    max_seconds: float = 0.0  # or after this much training wall time (0 = no limit); the run still evaluates
    max_train_images: int = 0  # train on a seeded subset of this many images (0 = all); short epochs for demos
    seed: int = 0
    amp: bool | None = None  # None = on when training on CUDA
    device: str | None = None
    data_root: str | None = None
    download: bool = True
    image_size: int = 32  # imagefolder only
    channels: int = 3  # imagefolder only
    pretrained: bool = False  # alexnet only
    out: str | None = None
    resume: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    tta_shift: int | None = None  # test-time views shifted by this many pixels (photos; 0 = flip only)


def _check_range(name: str, value) -> None:
    lo, hi = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number between {lo} and {hi} (got {value!r})")


def resolve_config(cfg: TrainConfig, in_channels: int) -> TrainConfig:
    """Fill unset fields from the model's default recipe and validate every bound; returns a new config."""
    models.get_spec(cfg.model)
    if cfg.dataset not in D.DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; choose one of: {', '.join(D.DATASETS)}")
    recipe = models.default_recipe(cfg.model, in_channels)
    values = asdict(cfg)
    for key, value in recipe.items():
        if values.get(key) is None:
            values[key] = value
    out = TrainConfig(**values)
    for name in LIMITS:
        _check_range(name, getattr(out, name))
    if int(out.epochs) != out.epochs or int(out.batch_size) != out.batch_size:
        raise ValueError("epochs and batch_size must be whole numbers")
    out.epochs, out.batch_size, out.max_steps = int(out.epochs), int(out.batch_size), int(out.max_steps)
    out.eval_every, out.max_train_images = int(out.eval_every), int(out.max_train_images)
    out.tta_shift = int(out.tta_shift)
    if out.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {out.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if out.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {out.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return out


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, then Apple MPS, then CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm/bias parameters: decaying them only fights the normalisation. A model may ask
    # for its BatchNorm shifts to learn faster (`norm_bias_lr_scale`); they then decay by the same amount per step as
    # the weights, so that they cannot drift without bound.
    scale = float(getattr(model, "norm_bias_lr_scale", 1.0))
    fast = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.bias is not None} if scale != 1.0 else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr_scale": 1.0},
              {"params": [p for p in params if p.ndim <= 1 and id(p) not in fast], "weight_decay": 0.0,
               "lr_scale": 1.0},
              {"params": [p for p in params if id(p) in fast], "weight_decay": cfg.weight_decay / scale,
               "lr_scale": scale}]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base lr at `step` of `total` (a pure function, so resuming needs no scheduler state)."""
    t = min(step / max(total, 1), 1.0)
    if schedule == "onecycle":
        warm = 0.2
        return 0.1 + 0.9 * t / warm if t < warm else max(0.0, (1 - t) / (1 - warm))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def _event_metrics(model, data, device, cfg, amp_dtype, meta, last: bool) -> dict:
    # Shifted views triple the cost of an evaluation; epochs before the last are scored on flips alone.
    tta = tta_options(meta) if last else {**tta_options(meta), "tta_shift": 0}
    return evaluate_model(model, data, device=device, batch_size=max(256, cfg.batch_size), amp_dtype=amp_dtype, **tta)


def train(cfg: TrainConfig, should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict]:
    """Train as configured, yielding events:

    - {"type": "start", ...}: resolved config, dataset sizes, device, parameter count;
    - {"type": "progress", "epoch", "step", "steps", "loss", "images_per_s", "eta_s"} a few times an epoch;
    - {"type": "epoch", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "lr",
       "seconds", "train_seconds", "images_per_s", "checkpoint", "per_class", "confusion", "samples"};
    - {"type": "end", "stopped": bool, "checkpoint", "resumable", ...the last epoch report...}: "checkpoint" is the
      file holding the latest state (this run's, or the resumed one if no epoch finished), "resumable" whether it
      keeps the optimizer state (every epoch's checkpoint but the final one's).

    `should_stop` is polled between batches; when it returns True the epoch in progress is abandoned and the last
    completed epoch's checkpoint stays on disk.
    """
    device = pick_device(cfg.device)
    train_full = D.load_dataset(cfg.dataset, "train", cfg.data_root, cfg.download, cfg.image_size, cfg.channels,
                                cfg.seed)
    in_channels = train_full.input_shape[0]
    cfg = resolve_config(cfg, in_channels)
    train_set, val_set = D.split_train_val(train_full, cfg.val_split, cfg.seed)
    if 0 < cfg.max_train_images < len(train_set):
        keep = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed + 1))
        train_set = train_set.subset(keep[:cfg.max_train_images])
    test_set = D.load_dataset(cfg.dataset, "test", cfg.data_root, cfg.download, cfg.image_size, cfg.channels,
                              cfg.seed) if cfg.test else None
    if len(train_set) < 2:
        raise D.DataError("the training set needs at least two images")

    torch.manual_seed(cfg.seed)
    size = train_set.input_shape[1]
    model_kwargs = dict(cfg.model_kwargs)
    if cfg.model == "alexnet" and cfg.pretrained:
        model_kwargs["pretrained"] = True
    model = models.create_model(cfg.model, len(train_set.classes), in_channels, size, **model_kwargs)
    model_kwargs.pop("pretrained", None)  # the weights travel in the checkpoint, not the flag
    if hasattr(model, "init_whitening"):
        pick = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))[:5000]
        sample = train_set.images[pick]
        model.init_whitening(D.normalise(sample, train_set.mean, train_set.std))
    model = model.to(device)
    # channels_last measured 1.7-2.7x faster for these convs on CPU; it is the fast layout on CUDA too.
    memory_format = torch.preserve_format if device.type == "mps" else torch.channels_last
    model = model.to(memory_format=memory_format)
    optimizer = _make_optimizer(cfg, model)

    use_amp = device.type == "cuda" and (cfg.amp is None or cfg.amp)
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if use_amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    aug_kind = "digits" if in_channels == 1 else "photos"
    # Its own seed offset (+1 draws the --max-train-images subset), so the flips do not follow that draw.
    flips = D.alternating_flips(len(train_set), cfg.seed + 2, device) if aug_kind == "photos" else None

    meta = ckpt.make_meta(cfg.model, cfg.dataset, train_set.classes, train_set.input_shape, train_set.mean,
                          train_set.std, model_kwargs, config=asdict(cfg), tta_flip=aug_kind == "photos",
                          tta_shift=cfg.tta_shift if aug_kind == "photos" else 0)
    history: list[dict] = []
    start_epoch, step, train_seconds = 1, 0, 0.0
    if cfg.resume:
        state = ckpt.load_checkpoint(cfg.resume)
        if state["model"] != cfg.model or state["dataset"] != cfg.dataset or "train_state" not in state:
            raise ckpt.CheckpointError(f"{cfg.resume} cannot resume this run (model/dataset differ or it holds "
                                       "no optimizer state)")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["train_state"]["optimizer"])
        ts = state["train_state"]
        start_epoch, step, train_seconds = ts["epoch"] + 1, ts["step"], ts["train_seconds"]
        history = list(state.get("history", []))
        if ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])

    train_images = train_set.images.to(device)
    train_labels = train_set.labels.to(device)
    val_dev = val_set.to(device) if val_set is not None else None
    test_dev = test_set.to(device) if test_set is not None else None
    yield {"type": "start", "config": asdict(cfg), "device": str(device), "amp": str(amp_dtype) if use_amp else None,
           "train_size": len(train_set), "val_size": len(val_set) if val_set else 0,
           "test_size": len(test_set) if test_set else 0, "classes": train_set.classes,
           "parameters": models.count_parameters(model), "steps_per_epoch": steps_per_epoch,
           "total_steps": total_steps, "start_epoch": start_epoch}

    report: dict | None = history[-1] if history else None
    # The file that holds the run's latest state, and whether it can be resumed: the resumed checkpoint until this
    # run writes its first epoch.
    latest = (str(cfg.resume), True) if cfg.resume else (None, False)
    stopped = False
    progress_every = max(1, steps_per_epoch // 20)
    out_of_time = False
    for epoch in range(start_epoch, cfg.epochs + 1):
        if step >= total_steps or out_of_time:
            break
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        model.train()
        t0 = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        for batch_index in D.iterate_batches(len(train_set), cfg.batch_size, g):
            if should_stop():
                stopped = True
                break
            if step >= total_steps:
                break
            if cfg.max_seconds and train_seconds + time.perf_counter() - t0 >= cfg.max_seconds:
                out_of_time = True
                break
            batch_index = batch_index.to(device)
            x = train_images[batch_index]
            y = train_labels[batch_index]
            if cfg.augment:
                x = D.augment_batch(x, aug_kind, g, flips(batch_index, epoch) if flips else None)
            else:
                x = x.float()
            x = D.normalise(x, train_set.mean, train_set.std)
            x = x.contiguous(memory_format=memory_format)
            lr = cfg.lr * _lr_factor(cfg.schedule, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            n = len(y)
            seen += n
            loss_sum += loss.item() * n
            correct += (logits.argmax(1) == y).sum().item()
            batches_done = math.ceil(seen / cfg.batch_size)
            if batches_done % progress_every == 0 or batches_done == steps_per_epoch:
                elapsed = time.perf_counter() - t0
                rate = seen / max(elapsed, 1e-9)
                left = min(len(train_set) - seen, (total_steps - step) * cfg.batch_size)
                yield {"type": "progress", "epoch": epoch, "epochs": cfg.epochs, "step": step,
                       "steps": total_steps, "batch": batches_done, "batches": steps_per_epoch,
                       "loss": loss.item(), "images_per_s": rate, "eta_s": left / max(rate, 1e-9)}
        if stopped or seen == 0:
            break
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        report = {"type": "epoch", "epoch": epoch, "epochs": cfg.epochs, "step": step,
                  "train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": lr,
                  "seconds": epoch_seconds, "train_seconds": train_seconds, "images_per_s": seen / epoch_seconds}
        last = epoch == cfg.epochs or step >= total_steps or out_of_time
        evaluate_now = last or epoch % cfg.eval_every == 0
        if val_dev is not None and evaluate_now:
            v = _event_metrics(model, val_dev, device, cfg, amp_dtype, meta, last)
            report.update(val_loss=v["loss"], val_acc=v["acc"])
        if test_dev is not None and evaluate_now:
            t = _event_metrics(model, test_dev, device, cfg, amp_dtype, meta, last)
            report.update(test_loss=t["loss"], test_acc=t["acc"], per_class=t["per_class"],
                          confusion=t["confusion"], samples=t["samples"])
        history.append({k: v for k, v in report.items() if k not in ("confusion", "samples", "type")})
        if last:
            # Calibrate on held-out data when there is some, else on (unaugmented) training images.
            calib = val_dev if val_dev is not None else train_set.subset(
                torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed))[:10_000]).to(device)
            meta["temperature"] = report["temperature"] = fit_temperature(model, calib, **tta_options(meta),
                                                                          device=device)
        if cfg.out:
            metrics = {k: report[k] for k in ("val_acc", "test_acc", "per_class", "train_seconds") if k in report}
            train_state = {"optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
                           "train_seconds": train_seconds, "scaler": scaler.state_dict() if scaler.is_enabled() else {}}
            ckpt.save_checkpoint(cfg.out, {**meta, "metrics": metrics, "history": history, "epoch": epoch},
                                 model.state_dict(), None if last else train_state)
            report["checkpoint"] = str(cfg.out)
            latest = (str(cfg.out), not last)
        yield report
        if should_stop():
            stopped = True
            break
    end = dict(report or {})
    end.update(type="end", stopped=stopped, checkpoint=latest[0], resumable=latest[1])
    yield end


# ---------------------------------------------------------------------------------------------------------------
# CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.train", description="Train a TinyVision model.")
    p.add_argument("--dataset", default="mnist", choices=D.DATASETS)
    p.add_argument("--model", default=None, help=f"one of: {', '.join(models.list_models())} "
                                                  "(default: digitnet for 1-channel data, cifarnet otherwise)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=OPTIMIZERS)
    p.add_argument("--schedule", choices=SCHEDULES)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--val-split", type=float, default=0.0, help="fraction of train held out for validation")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many optimizer steps (0: no limit)")
    p.add_argument("--max-seconds", type=float, default=0.0, help="stop after this much training time (0: no limit)")
    p.add_argument("--max-train-images", type=int, default=0,
                   help="train on a seeded subset of this many images (0: all)")
    p.add_argument("--tta-shift", type=int,
                   help="photos: also average views shifted by this many pixels (0: flip only)")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (always after the last)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--amp", choices=("auto", "on", "off"), default="auto", help="mixed precision (CUDA only)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--data-root", default=None, help="data folder (default: $TINYVISION_DATA or ./data)")
    p.add_argument("--no-download", dest="download", action="store_false")
    p.add_argument("--image-size", type=int, default=32, help="imagefolder: resize images to this size")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3), help="imagefolder: 1 (grey) or 3 (RGB)")
    p.add_argument("--pretrained", action="store_true", help="alexnet: start from ImageNet weights (online)")
    p.add_argument("--model-kwargs", type=json.loads, default={}, metavar="JSON",
                   help='extra constructor arguments, e.g. \'{"widths": [32, 64, 128]}\'')
    p.add_argument("--out", default=None, help="checkpoint path (default: runs/<dataset>-<model>.pt)")
    p.add_argument("--resume", default=None, help="continue from this checkpoint")
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    model = args.model or ("digitnet" if args.dataset == "mnist" or
                           (args.dataset == "imagefolder" and args.channels == 1) else "cifarnet")
    out = args.out or str(Path("runs") / f"{args.dataset}-{model}.pt")
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(model=model, out=out, amp={"auto": None, "on": True, "off": False}[args.amp])
    return TrainConfig(**values)


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = _parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        bar = None
        summary: dict = {}
        for event in train(cfg):
            kind = event["type"]
            if kind == "start":
                print(start_line(event), file=sys.stderr)
            elif kind == "progress":
                if bar is None:
                    bar = tqdm(total=event["batches"], desc=f"epoch {event['epoch']}/{event['epochs']}",
                               unit="batch", file=sys.stderr, leave=False)
                bar.n = event["batch"]
                bar.set_postfix(loss=f"{event['loss']:.3f}", img_s=f"{event['images_per_s']:.0f}", refresh=False)
                bar.refresh()
            elif kind == "epoch":
                if bar is not None:
                    bar.close()
                    bar = None
                print(epoch_line(event), file=sys.stderr)
            else:
                summary = event
        if bar is not None:
            bar.close()
    except (D.DataError, ckpt.CheckpointError, ValueError, FloatingPointError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last completed epoch's checkpoint is kept", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summarize(summary)))
    return 0


def summarize(event: dict) -> dict:
    """The `--json` summary of an epoch or end event."""
    return {k: event[k] for k in SUMMARY_KEYS if k in event}


def start_line(e: dict) -> str:
    """The log line for a start event (CLI and web app)."""
    c = e["config"]
    return (f"{c['model']} on {c['dataset']} ({e['train_size']} train, {e['val_size']} val, {e['test_size']} test) "
            f"| {e['parameters']:,} parameters | device {e['device']}{' amp ' + e['amp'] if e['amp'] else ''} "
            f"| {c['optimizer']} lr {c['lr']} batch {c['batch_size']} epochs {c['epochs']}")


def epoch_line(e: dict) -> str:
    """The log line for an epoch report (CLI and web app)."""
    parts = [f"epoch {e['epoch']}/{e['epochs']}", f"loss {e['train_loss']:.4f}", f"train_acc {e['train_acc']:.4f}"]
    if "val_acc" in e:
        parts.append(f"val_loss {e['val_loss']:.4f} val_acc {e['val_acc']:.4f}")
    if "test_acc" in e:
        parts.append(f"test_acc {e['test_acc']:.4f}")
    parts.append(f"lr {e['lr']:.4g} | {e['seconds']:.1f}s {e['images_per_s']:.0f} img/s")
    return " | ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
