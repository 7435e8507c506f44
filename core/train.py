"""The training loop: a generator of progress events and per-epoch reports, shared by the CLI and
the web app.

    for event in train(TrainConfig(dataset="mnist", model="digitnet")):
        if event["type"] == "epoch": print(event["val_acc"])

Randomness (shuffling, augmentation) comes from a generator seeded by (seed, epoch), so a run
resumed from an epoch checkpoint replays exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt
from . import datasets, distill, distributed, models, transfer
from . import imagedata as D
from .augment import FlipMasks, alternating_flips, augment_batch
from .calibration import fit_temperature, fit_unsure_threshold, tta_options
from .config import TrainConfig, add_arguments, config_from_args, recorded, resolve_config
from .evaluate import evaluate_model

__all__ = ["TrainConfig", "SUMMARY_KEYS", "pick_device", "train", "summarize", "start_line",
           "epoch_line", "main"]

# The keys of the one-line JSON summary (`--json`); the web app's report uses the same.
SUMMARY_KEYS = ("epoch", "epochs", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc",
                "train_seconds", "images_per_s", "checkpoint", "stopped", "per_class", "val_parts",
                "test_parts")


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present, then Apple MPS, then CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _make_optimizer(cfg: TrainConfig, model: nn.Module,
                    norm_bias_lr_scale: float) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm/bias parameters: decaying them only fights the normalisation. A
    # model may ask for its BatchNorm shifts to learn faster (its spec's `norm_bias_lr_scale`); they
    # then decay by the same amount per step as the weights, so that they cannot drift without
    # bound.
    scale = float(norm_bias_lr_scale)
    fast = {id(m.bias) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.bias is not None} if scale != 1.0 else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay,
               "lr_scale": 1.0},
              {"params": [p for p in params if p.ndim <= 1 and id(p) not in fast],
               "weight_decay": 0.0,
               "lr_scale": 1.0}, {"params": [p for p in params if id(p) in fast],
                                  "weight_decay": cfg.weight_decay / scale, "lr_scale": scale}]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base lr at `step` of `total` (a pure function, so resuming needs no
    scheduler state)."""
    t = min(step / max(total, 1), 1.0)
    if schedule == "onecycle":
        warm = 0.2
        return 0.1 + 0.9 * t / warm if t < warm else max(0.0, (1 - t) / (1 - warm))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


@dataclass
class Run:
    """Everything one training holds: the resolved config, data on the device, the model and its
    optimizer, and where the run stands (epoch, step, time, history, the file with its latest
    state)."""
    cfg: TrainConfig
    device: torch.device
    train_set: D.ImageData  # on the device
    val_set: D.ImageData | None
    test_set: D.ImageData | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    flips: FlipMasks | None
    meta: dict
    parameters: int
    steps_per_epoch: int
    total_steps: int
    world: distributed.World
    trainer: nn.Module  # what training steps run through: `model`, or DDP over it across processes
    teacher: distill.Teacher | None = None
    start_epoch: int = 1
    step: int = 0
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    latest: tuple[str | None, bool] = (None, False)  # (checkpoint file, whether it can be resumed)

    @property
    def use_amp(self) -> bool:
        return self.amp_dtype is not None


@dataclass
class EpochResult:
    """What one pass over the training batches did, and why it ended."""
    # "done" (all batches), "stopped" (should_stop), "steps" (max_steps), "time" (max_seconds)
    ended: str
    seen: int
    loss_sum: float  # over every rank's images
    correct: float
    seconds: float
    lr: float


def _as_drawn(val: D.ImageData, plain: D.ImageData) -> D.ImageData:
    """The held-out images of a run with pen jitter, taken from the same split of the training set
    drawn without it: held-out writers are scored on strokes as they wrote them, the same images
    as in a run without jitter."""
    if not (torch.equal(val.labels, plain.labels) and torch.equal(val.groups, plain.groups)):
        raise RuntimeError("the held-out images drawn without jitter do not match the split")
    return plain


def build_run(cfg: TrainConfig) -> Run:
    """Load the data, resolve the config against the model's recipe for its kind, build model and
    optimizer."""
    world = distributed.current()
    device = world.device or pick_device(cfg.device)
    source = transfer.load_source(cfg.init_from) if cfg.init_from else None
    if cfg.freeze_backbone and source is None:
        raise ValueError("freeze_backbone needs a checkpoint to start from (init_from / "
                         "--init-from)")
    if source is not None:
        source.check_model(cfg.model, cfg.model_kwargs)
        c, size, _ = source.input_shape
        # An image folder is read at the checkpoint's input unless asked otherwise (a kind fixes the
        # channels).
        cfg = replace(cfg, model_kwargs=source.model_kwargs, image_size=cfg.image_size or size,
                      channels=cfg.channels or (None if cfg.kind else c))

    if cfg.pen_jitter and not datasets.get_dataset_spec(cfg.dataset).pen_strokes:
        raise ValueError(f"--pen-jitter moves pen strokes: {cfg.dataset} has none (use it with "
                         f"{', '.join(datasets.pen_stroke_datasets())})")

    def load(split: str, jitter: float = cfg.pen_jitter) -> D.ImageData:
        data = datasets.load_dataset(cfg.dataset, split, cfg.data_root, cfg.download,
                                     cfg.image_size, cfg.channels, cfg.seed, cfg.kind, jitter)
        if source is None:
            return data
        source.check_input(data.input_shape)
        # The features were learnt on these statistics
        return replace(data, mean=source.mean, std=source.std)

    train_full = load("train")
    cfg = resolve_config(cfg, train_full.kind)
    train_set, val_set = D.split_train_val(train_full, cfg.val_split, cfg.seed)
    if val_set is not None and cfg.pen_jitter:
        val_set = _as_drawn(val_set, D.split_train_val(load("train", 0.0), cfg.val_split,
                                                       cfg.seed)[1])
    if 0 < cfg.max_train_images < len(train_set):
        keep = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(cfg.seed + 1))
        train_set = train_set.subset(keep[:cfg.max_train_images])
    test_set = load("test") if cfg.test else None
    if test_set is not None and len(test_set) == 0:
        test_set = None  # a folder too small to hold any image out
    if len(train_set) < max(2, world.size):
        raise D.DataError(f"the training set needs at least {max(2, world.size)} images")
    if cfg.batch_size % world.size:
        lower = max(world.size, cfg.batch_size - cfg.batch_size % world.size)
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch and does not divide "
                         f"among {world.size} processes: use {lower} or {lower + world.size}")

    torch.manual_seed(cfg.seed)
    spec = models.get_spec(cfg.model)
    c, size, _ = train_set.input_shape
    model_kwargs = dict(cfg.model_kwargs)
    options = {k: getattr(cfg, k) for k in spec.build_options if getattr(cfg, k)}
    model = models.create_model(cfg.model, len(train_set.classes), c, size, **model_kwargs,
                                **options)
    if source is not None:
        models.transfer_weights(model, source.net)
        if cfg.freeze_backbone:
            models.freeze_backbone(model)
    elif spec.prepare is not None:
        pick = torch.randperm(len(train_set),
                              generator=torch.Generator().manual_seed(cfg.seed))[:5000]
        spec.prepare(model, D.normalise(train_set.images[pick], train_set.mean, train_set.std))
    model = model.to(device)
    # channels_last measured 1.7-2.7x faster for these convs on CPU; it is the fast layout on CUDA
    # too.
    memory_format = torch.preserve_format if device.type == "mps" else torch.channels_last
    model = model.to(memory_format=memory_format)

    use_amp = device.type == "cuda" and (cfg.amp is None or cfg.amp)
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    amp_dtype = half if use_amp else None
    steps_per_epoch = len(D.batch_starts(D.epoch_size(train_set), cfg.batch_size, world.size))
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    # Its own seed offset (+1 draws the --max-train-images subset), so the flips do not follow that
    # draw.
    photos = train_set.augment == "photos"
    flips = alternating_flips(len(train_set), cfg.seed + 2, device) if photos else None
    meta = ckpt.make_meta(cfg.model, cfg.dataset, train_set.classes, train_set.input_shape,
                          train_set.mean, train_set.std, model_kwargs, kind=train_set.kind,
                          config=recorded(cfg), tta_flip=train_set.tta_flip,
                          tta_shift=cfg.tta_shift if train_set.tta_flip else 0)
    trainer = distributed.wrap(model, world)
    teacher = distill.load_teacher(cfg.teacher, train_set.classes, train_set.input_shape,
                                   cfg.distill_weight, device) if cfg.teacher else None
    on_device = [s.to(device) if s is not None else None for s in (train_set, val_set, test_set)]
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return Run(cfg, device, *on_device, model, _make_optimizer(cfg, model, spec.norm_bias_lr_scale),
               scaler, amp_dtype, memory_format, flips, meta, models.count_parameters(model),
               steps_per_epoch, total_steps, world, trainer, teacher)


def restore(run: Run, path: str) -> None:
    """Continue from a checkpoint of an epoch of the same model and dataset: weights, optimizer,
    where it stood."""
    state = ckpt.load_checkpoint(path)
    same = state["model"] == run.cfg.model and state["dataset"] == run.cfg.dataset
    if not same or "train_state" not in state:
        raise ckpt.CheckpointError(f"{os.path.basename(path)} cannot resume this run "
                                   "(model/dataset differ or it holds no optimizer state)")
    ts = state["train_state"]
    epoch, step, seconds = (ts.get(k) if isinstance(ts, dict) else None
                            for k in ("epoch", "step", "train_seconds"))
    if not (type(epoch) is int and 0 <= epoch < run.cfg.epochs and type(step) is int
            and step >= 0 and isinstance(seconds, (int, float)) and 0 <= seconds < math.inf):
        raise ckpt.CheckpointError(f"{os.path.basename(path)} cannot resume this run: where it "
                                   f"stood (epoch {epoch!r} of {run.cfg.epochs}, step {step!r}, "
                                   f"{seconds!r} s) is not a run of these settings")
    run.model.load_state_dict(state["state_dict"])
    run.optimizer.load_state_dict(ts["optimizer"])
    run.start_epoch, run.step, run.train_seconds = ts["epoch"] + 1, ts["step"], ts["train_seconds"]
    run.history = list(state.get("history", []))
    if ts.get("scaler"):
        run.scaler.load_state_dict(ts["scaler"])
    run.latest = (str(path), True)  # until this run writes its first epoch


def _check_finite(loss_sum: float, step: int) -> None:
    if not math.isfinite(loss_sum):
        raise FloatingPointError(f"loss became {loss_sum} by step {step}; lower the learning rate")


def run_epoch(run: Run, epoch: int,
              should_stop: Callable[[], bool]) -> Generator[dict, None, EpochResult]:
    """One pass over the training batches, yielding progress events a few times; returns why it
    ended.

    Loss and accuracy are summed on the device; the host reads them (one sync) only at progress
    points, where a loss that is no longer finite ends the run.
    """
    cfg, model, train, world = run.cfg, run.model, run.train_set, run.world
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    # Every rank draws the same permutation from `g`; each augments its own part of a batch with its
    # own draws.
    augment_g = g if world.size == 1 else torch.Generator().manual_seed(cfg.seed * 100_003 + epoch
                                                                        + 7_919 * world.rank)
    run.trainer.train()
    if cfg.freeze_backbone:
        models.hold_norms(model)
    t0 = time.perf_counter()
    seen, batches_done, lr, ended = 0, 0, cfg.lr, "done"
    # This rank's sums of loss and right answers; `distributed.total` adds the ranks' when they are
    # read.
    sums = torch.zeros(2, device=run.device)
    progress_every = max(1, run.steps_per_epoch // 20)
    # The renderings this epoch uses, where a drawing has several (the same on every rank); None:
    # every image.
    pool = D.epoch_pool(train, torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 104_729))
    n = len(train) if pool is None else len(pool)
    for batch_index in D.iterate_batches(n, cfg.batch_size, g, world.size):
        if pool is not None:
            batch_index = pool[batch_index]
        elapsed = run.train_seconds + time.perf_counter() - t0
        timed = bool(cfg.max_seconds) and elapsed >= cfg.max_seconds
        stop, timed = distributed.agree([should_stop(), timed], world, run.device)
        if stop:
            ended = "stopped"
            break
        if run.step >= run.total_steps:
            ended = "steps"
            break
        if timed:
            ended = "time"
            break
        part, share = distributed.rank_part(batch_index, world)
        part = part.to(run.device)
        x, y = train.images[part], train.labels[part]
        if cfg.augment:
            flip = run.flips(part, epoch) if run.flips else None
            x = augment_batch(x, train.augment, augment_g, flip)
        else:
            x = x.float()
        seen_x = x
        x = D.normalise(x, train.mean, train.std).contiguous(memory_format=run.memory_format)
        lr = cfg.lr * _lr_factor(cfg.schedule, run.step, run.total_steps)
        for group in run.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
            logits = run.trainer(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if run.teacher is not None:
                loss = loss + run.teacher.loss(logits, seen_x, y)
        run.optimizer.zero_grad(set_to_none=True)
        # A part smaller than the others (the last batch's) weighs as its images do in the global
        # mean.
        run.scaler.scale(loss if share == 1.0 else loss * share).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.step += 1
        batches_done += 1
        seen += len(batch_index)
        sums += torch.stack([loss.detach().float() * len(y), (logits.argmax(1) == y).sum().float()])
        if batches_done % progress_every == 0 or batches_done == run.steps_per_epoch:
            loss_sum, correct = distributed.total(sums, world).tolist()
            _check_finite(loss_sum, run.step)
            elapsed = time.perf_counter() - t0
            rate = seen / max(elapsed, 1e-9)
            left = min(n - seen, (run.total_steps - run.step) * cfg.batch_size)
            yield {"type": "progress", "epoch": epoch, "epochs": cfg.epochs, "step": run.step,
                   "steps": run.total_steps, "batch": batches_done, "batches": run.steps_per_epoch,
                   "loss": loss.item(), "train_loss": loss_sum / seen, "train_acc": correct / seen,
                   "images_per_s": rate, "eta_s": left / max(rate, 1e-9)}
    loss_sum, correct = distributed.total(sums, world).tolist()
    if seen:
        _check_finite(loss_sum, run.step)
    return EpochResult(ended, seen, loss_sum, correct, time.perf_counter() - t0, lr)


def _event_metrics(run: Run, data: D.ImageData, last: bool) -> dict:
    # Shifted views triple the cost of an evaluation; epochs before the last are scored on flips
    # alone.
    tta = tta_options(run.meta) if last else {**tta_options(run.meta), "tta_shift": 0}
    return evaluate_model(run.model, data, device=run.device, batch_size=max(256,
                                                                             run.cfg.batch_size),
                          amp_dtype=run.amp_dtype, **tta)


def finish_epoch(run: Run, epoch: int, result: EpochResult, last: bool) -> dict:
    """The epoch's report: train figures, evaluation when due, calibration after the last, the
    checkpoint.

    Across processes, rank 0 alone evaluates (on the whole sets), calibrates and writes; the others
    wait for it."""
    cfg, main = run.cfg, run.world.main
    run.train_seconds += result.seconds
    report = {"type": "epoch", "epoch": epoch, "epochs": cfg.epochs, "step": run.step,
              "train_loss": result.loss_sum / result.seen,
              "train_acc": result.correct / result.seen, "lr": result.lr, "seconds": result.seconds,
              "train_seconds": run.train_seconds, "images_per_s": result.seen / result.seconds}
    if main and (last or epoch % cfg.eval_every == 0):
        if run.val_set is not None:
            v = _event_metrics(run, run.val_set, last)
            report.update(val_loss=v["loss"], val_acc=v["acc"])
            if v["parts"]:
                report["val_parts"] = v["parts"]
            if v["groups"]:  # held out whole (e.g. writers): how each of them reads
                report["val_groups"] = v["groups"]
        if run.test_set is not None:
            t = _event_metrics(run, run.test_set, last)
            report.update(test_loss=t["loss"], test_acc=t["acc"], per_class=t["per_class"],
                          confusion=t["confusion"], samples=t["samples"])
            if t["parts"]:  # a test set of several sources, each scored apart
                report["test_parts"] = t["parts"]
    run.history.append({k: v for k, v in report.items()
                        if k not in ("confusion", "samples", "type")})
    if main and last:
        # Calibrate on held-out data when there is some, else on (unaugmented) training images.
        calib = run.val_set
        if calib is None:
            g = torch.Generator().manual_seed(cfg.seed)
            calib = run.train_set.subset(torch.randperm(len(run.train_set), generator=g)[:10_000])
        run.meta["temperature"] = report["temperature"] = fit_temperature(
            run.model, calib, **tta_options(run.meta), device=run.device)
        # "None of my classes" below the score UNSURE_PASS of held-out images reach; without a
        # validation split, of training images seen through the training augmentation (views the
        # model did not learn).
        run.meta["unsure_threshold"] = report["unsure_threshold"] = fit_unsure_threshold(
            run.model, calib, run.meta["temperature"], **tta_options(run.meta), device=run.device,
            augment=run.val_set is None, seed=cfg.seed)
    if cfg.out and main:
        metrics = {k: report[k] for k in ("val_acc", "test_acc", "per_class", "train_seconds",
                                          "test_parts", "val_parts") if k in report}
        train_state = {"optimizer": run.optimizer.state_dict(), "epoch": epoch, "step": run.step,
                       "train_seconds": run.train_seconds,
                       "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else {}}
        ckpt.save_checkpoint(cfg.out, {**run.meta, "metrics": metrics, "history": run.history,
                                       "epoch": epoch}, run.model.state_dict(),
                             None if last else train_state)
    if cfg.out:
        report["checkpoint"] = str(cfg.out)
        run.latest = (str(cfg.out), not last)
    distributed.barrier(run.world)
    return report


def start_event(run: Run) -> dict:
    return {"type": "start", "config": recorded(run.cfg), "device": str(run.device),
            "amp": str(run.amp_dtype) if run.use_amp else None, "train_size": len(run.train_set),
            "val_size": len(run.val_set) if run.val_set else 0,
            "test_size": len(run.test_set) if run.test_set else 0, "classes": run.train_set.classes,
            "parameters": run.parameters, "steps_per_epoch": run.steps_per_epoch,
            "total_steps": run.total_steps, "start_epoch": run.start_epoch,
            "processes": run.world.size, "backend": run.world.backend,
            "data": run.train_set.summary}


def train(cfg: TrainConfig, should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict]:
    """Train as configured, yielding events:

    - {"type": "start", ...}: resolved config, dataset sizes, device, parameter count;
    - {"type": "progress", "epoch", "step", "steps", "batch", "batches", "loss" (the batch's),
       "train_loss" and "train_acc" (running, over the epoch so far), "images_per_s", "eta_s"} a
       few times an epoch;
    - {"type": "epoch", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "lr",
       "seconds", "train_seconds", "images_per_s", "checkpoint", "per_class", "confusion",
       "samples"};
    - {"type": "end", "stopped": bool, "checkpoint", "resumable", ...the last epoch report...}:
       "checkpoint" is the file holding the latest state (this run's, or the resumed one if no
       epoch finished), "resumable" whether it keeps the optimizer state (every epoch's checkpoint
       but the final one's).

    `should_stop` is polled between batches; when it returns True the epoch in progress is abandoned
    and the last completed epoch's checkpoint stays on disk.
    """
    run = build_run(cfg)
    if run.cfg.resume:
        restore(run, run.cfg.resume)
    yield start_event(run)
    report: dict | None = run.history[-1] if run.history else None
    stopped = False
    for epoch in range(run.start_epoch, run.cfg.epochs + 1):
        if run.step >= run.total_steps:
            break
        result = yield from run_epoch(run, epoch, should_stop)
        if result.ended == "stopped" or result.seen == 0:
            stopped = result.ended == "stopped"
            break
        last = epoch == run.cfg.epochs or run.step >= run.total_steps or result.ended == "time"
        report = finish_epoch(run, epoch, result, last)
        yield report
        if should_stop():
            stopped = True
            break
        if result.ended == "time":
            break
    end = dict(report or {})
    end.update(type="end", stopped=stopped, checkpoint=run.latest[0], resumable=run.latest[1])
    yield end


# ------------------------------------------------------------------------------------------------
# CLI

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core.train",
                                description="Train a TinyVision model.")
    add_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary as the last line")
    return p


def _interrupt(signum: int, frame) -> None:
    # SIGTERM (torchrun's stop, a job scheduler's) ends the run as Ctrl-C does
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """The CLI; under torchrun, one process of a distributed run (core.distributed), of which rank 0
    prints."""
    from tqdm import tqdm

    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    world = distributed.SINGLE
    try:
        world = distributed.join(args.device)
        cfg = config_from_args(args)
        bar = None
        summary: dict = {}
        for event in train(cfg):
            kind = event["type"]
            if not world.main:
                continue
            if kind == "start":
                print(start_line(event), file=sys.stderr)
            elif kind == "progress":
                if bar is None:
                    bar = tqdm(total=event["batches"],
                               desc=f"epoch {event['epoch']}/{event['epochs']}", unit="batch",
                               file=sys.stderr, leave=False)
                bar.n = event["batch"]
                bar.set_postfix(loss=f"{event['loss']:.3f}", img_s=f"{event['images_per_s']:.0f}",
                                refresh=False)
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
        # Under torchrun, a failing rank says so (a peer that died shows here as a closed
        # connection).
        rank = f"rank {world.rank}: " if world.size > 1 else ""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {rank}{reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if world.main:
            print("interrupted; the last completed epoch's checkpoint is kept", file=sys.stderr)
        return 130
    finally:
        distributed.leave()
    if args.json and world.main:
        print(json.dumps(summarize(summary)))
    return 0


def summarize(event: dict) -> dict:
    """The `--json` summary of an epoch or end event."""
    return {k: event[k] for k in SUMMARY_KEYS if k in event}


def start_line(e: dict) -> str:
    """The log line for a start event (CLI and web app), and what the data's loader said."""
    c = e["config"]
    several = e.get("processes", 1) > 1
    processes = f" x {e['processes']} processes ({e['backend']})" if several else ""
    line = (f"{c['model']} on {c['dataset']} ({e['train_size']} train, {e['val_size']} val, "
            f"{e['test_size']} test) | {e['parameters']:,} parameters | device "
            f"{e['device']}{' amp ' + e['amp'] if e['amp'] else ''}{processes} | {c['optimizer']} "
            f"lr {c['lr']} batch {c['batch_size']} epochs {c['epochs']}")
    return line + (f"\n{e['data']}" if e.get("data") else "")


def epoch_line(e: dict) -> str:
    """The log line for an epoch report (CLI and web app)."""
    parts = [f"epoch {e['epoch']}/{e['epochs']}", f"loss {e['train_loss']:.4f}",
             f"train_acc {e['train_acc']:.4f}"]
    def by_part(key: str) -> str:  # a set of several sources: each one's accuracy too
        return "".join(f" {name} {acc:.4f}" for name, acc in e.get(key, {}).items())
    if "val_acc" in e:
        parts.append(f"val_loss {e['val_loss']:.4f} val_acc "
                     f"{e['val_acc']:.4f}{by_part('val_parts')}")
    if "test_acc" in e:
        parts.append(f"test_acc {e['test_acc']:.4f}{by_part('test_parts')}")
    parts.append(f"lr {e['lr']:.4g} | {e['seconds']:.1f}s {e['images_per_s']:.0f} img/s")
    return " | ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
