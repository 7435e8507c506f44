"""Few-shot quality and time of "your own classes": transfer from a shipped net vs from scratch.

    python -m bench.few_shot [--task fashion|fashion-photo|pen|both] [--shots 10 20]
                             [--seeds 0 1 2] [--split test|val]

fashion: N Fashion-MNIST training images per class (the digit model never saw clothes) in an image
folder, read as greyscale, trained as the app trains your classes (core.few_shot.few_shot_config),
from the shipped handwriting-digitnet (whole net fine-tuned, or its output layer alone) and from
scratch; scored on the 10,000 test images (`--split val`: on 2,000 other training images, the split
the recipe was tuned on). Anchor: a raw-pixel 1-nearest-neighbour on the same N images per class.
fashion-photo: the same images as 32x32 RGB photos, from the shipped cifarnet (the photo classes'
start). pen: N renders per digit, drawn from the strokes of 3 of the 30 pendigits training writers,
trained as sketches from mnist-digitnet (which never saw these pen strokes) and from scratch, scored
on one render of every digit of the other 27 writers. Seconds are from the click to a usable model:
reading the folder, training, the held-out check, calibration and the checkpoint written. Medians
over the seeds; 2 torch threads.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import checkpoint as ckpt  # noqa: E402
from core import datasets as DS  # noqa: E402
from core import pens  # noqa: E402
from core import train as T  # noqa: E402
from core.calibration import tta_options  # noqa: E402
from core.evaluate import evaluate_model  # noqa: E402
from core.few_shot import few_shot_config  # noqa: E402
from core.imagedata import ImageData, default_data_root  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STARTS = {"fashion": ROOT / "checkpoints" / "handwriting-digitnet.pt",
          "fashion-photo": ROOT / "checkpoints" / "cifar10-cifarnet.pt",
          "pen": ROOT / "checkpoints" / "mnist-digitnet.pt"}
KINDS = {"fashion": "greyscale", "fashion-photo": "photo", "pen": "sketch"}
MODES = {"transfer (fine-tune)": (True, True), "transfer (head only)": (True, False),
         "scratch": (False, True)}


def _write(folder: Path, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One PNG per image in a folder per class, named so that sorting keeps the dataset's label
    order."""
    for i, (image, label) in enumerate(zip(images, labels.tolist())):
        d = folder / f"class-{label:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(
            image[0].numpy() if len(image) == 1 else image.permute(1, 2, 0).numpy()
        ).save(d / f"{i}.png")


def _per_class(labels: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    picked = []
    for c in torch.unique(labels):
        index = torch.nonzero(labels == c).flatten()
        picked.append(index[torch.randperm(len(index), generator=g)[:n]])
    return torch.cat(picked)


def one_run(train: ImageData, kind: str, start: Path | None, fine_tune: bool, seed: int,
            hold: ImageData, evaluation: ImageData) -> tuple[float, float]:
    """Train on `train` (+ `hold` as the app's held-out fifth) in a fresh folder; (accuracy on
    `evaluation`, s)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "classes"
        _write(folder / "train", train.images, train.labels)
        _write(folder / "test", hold.images, hold.labels)
        cfg = few_shot_config(folder, kind, len(train), start, fine_tune, seed)
        cfg = replace(cfg, out=str(Path(tmp) / "model.pt"))
        t0 = time.perf_counter()
        for _ in T.train(cfg):
            pass
        seconds = time.perf_counter() - t0
        payload = ckpt.load_checkpoint(cfg.out)
    model = ckpt.build_from_checkpoint(payload)
    scored = replace(evaluation, mean=tuple(payload["mean"]), std=tuple(payload["std"]))
    return evaluate_model(model, scored, **tta_options(payload))["acc"], seconds


def nearest_neighbour(train: ImageData, evaluation: ImageData) -> float:
    a = train.images.flatten(1).float()
    b = evaluation.images.flatten(1).float()
    d = torch.cdist(b, a)
    return (train.labels[d.argmin(1)] == evaluation.labels).float().mean().item()


def fashion_sets(shots: int, seed: int, split: str,
                 data_root: Path) -> tuple[ImageData, ImageData, ImageData]:
    full = DS.load_dataset("fashion-mnist", "train", data_root)
    g = torch.Generator().manual_seed(seed)
    # The app's hold-out of shots + hold_n examples per class (a fifth, rounded down)
    hold_n = max(1, shots // 4)
    picked = _per_class(full.labels, shots + hold_n, g)
    per = picked.view(10, shots + hold_n)
    train, hold = full.subset(per[:, :shots].flatten()), full.subset(per[:, shots:].flatten())
    if split == "val":
        rest = torch.ones(len(full), dtype=torch.bool)
        rest[picked] = False
        rest_index = torch.nonzero(rest).flatten()
        evaluation = full.subset(rest_index[_per_class(full.labels[rest_index], 200, g)])
    else:
        evaluation = DS.load_dataset("fashion-mnist", "test", data_root)
    return train, hold, evaluation


def grey_to_photos(images: torch.Tensor) -> torch.Tensor:
    """uint8 greyscale (N, 1, H, W) images as the 32x32 RGB photos a photo model takes."""
    x = torch.nn.functional.interpolate(images.float(), size=32, mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).byte().expand(-1, 3, -1, -1).contiguous()


def as_photos(data: ImageData) -> ImageData:
    return replace(data, images=grey_to_photos(data.images), kind="photo", augment="photos",
                   tta_flip=True)


def pen_sets(shots: int, seed: int, data_root: Path) -> tuple[ImageData, ImageData, ImageData]:
    """Renders of 3 writers' digits (train + hold-out) and one render of each digit of the other
    writers."""

    data = pens.rendered_pen_file(data_root / "pendigits" / pens.PENDIGITS_FILES["train"],
                                  pens.PENDIGITS_RENDERS)
    writers = torch.unique(data["writers"])
    g = torch.Generator().manual_seed(seed)
    few = writers[torch.randperm(len(writers), generator=g)[:3]]
    mine = torch.isin(data["writers"], few)
    classes = [str(i) for i in range(10)]

    def subset(index: torch.Tensor) -> ImageData:
        return ImageData(data["images"][index], data["labels"][index], classes, (0.1307,), (0.3081,
                                                                                            ),
                         "pen", "sketch", "digits", False)

    hold_n = max(1, shots // 4)
    candidates = torch.nonzero(mine).flatten()
    picked = candidates[_per_class(data["labels"][candidates], shots + hold_n, g)]
    per = picked.view(10, -1)
    others = torch.nonzero(~mine).flatten()
    # Renders of a digit are consecutive
    one_render = others[torch.arange(0, len(others), pens.PENDIGITS_RENDERS)]
    return subset(per[:, :shots].flatten()), subset(per[:, shots:].flatten()), subset(one_render)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=(*STARTS, "both"), default="both",
                   help="both: fashion and pen")
    p.add_argument("--shots", type=int, nargs="+", default=[10, 20])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--split", choices=("test", "val"), default="test", help="fashion: score on the "
                   "test set, or on 2,000 other training images (for tuning)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    root = Path(args.data_root) if args.data_root else default_data_root()
    tasks = ["fashion", "pen"] if args.task == "both" else [args.task]
    print("| task | images per class | start | accuracy (median) | per seed | seconds (median) |")
    print("|---|---|---|---|---|---|")
    for task in tasks:
        kind = KINDS[task]
        for shots in args.shots:
            sets = [
                pen_sets(shots, s, root)
                if task == "pen"
                else fashion_sets(shots, s, args.split, root)
                for s in args.seeds
            ]
            if task == "fashion-photo":
                sets = [tuple(as_photos(d) for d in three) for three in sets]
            knn = [nearest_neighbour(train, evaluation) for train, _, evaluation in sets]
            print(f"| {task} | {shots} | raw-pixel 1-NN | {statistics.median(knn):.2%} | "
                  f"{' '.join(f'{a:.3f}' for a in knn)} | |", flush=True)
            for mode in args.modes:
                transfer, fine_tune = MODES[mode]
                results = [one_run(train, kind, STARTS[task] if transfer else None, fine_tune, seed,
                                   hold, ev) for seed, (train, hold, ev) in zip(args.seeds, sets)]
                accs, secs = [a for a, _ in results], [s for _, s in results]
                print(f"| {task} | {shots} | {mode} | {statistics.median(accs):.2%} | "
                      f"{' '.join(f'{a:.3f}' for a in accs)} | {statistics.median(secs):.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
