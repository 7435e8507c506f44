"""How often the shipped models say "not sure: this does not look like any of ..." on what they know
and on what they do not.

    python -m bench.unsure [--n 2000] [--data-root DIR]

Photo model (cifar10-cifarnet): CIFAR-10 test images (in distribution), Fashion-MNIST and MNIST test
images as 32x32 RGB photos, and the example photos that are none of CIFAR-10's classes (rocket,
astronaut, coffee). Digit model (handwriting-digitnet): MNIST test digits and the recorded pen
digits of other writers (in distribution: they must stay unflagged), and, through the Draw tab's
preprocessing, random scribbles, letters drawn by a program (DejaVu Sans, A-Z and a-z, at random
sizes and places) and Fashion-MNIST items. For each set: the share flagged at the checkpoint's
stored threshold, and the AUROC of the energy score between the in-distribution test set and that
set (1.0: every outside input scores below every inside one), beside that of the top softmax
probability. Scores are computed in batches exactly as `Predictor.judge` does one image (same
normalisation, test-time views, temperature).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pendigits  # noqa: E402
from bench.few_shot import grey_to_photos  # noqa: E402
from bench.latency import print_table  # noqa: E402
from core import datasets as DS  # noqa: E402
from core.calibration import energy_score, predict_logits, tta_options  # noqa: E402
from core.imagedata import default_data_root  # noqa: E402
from core.predictor import Predictor  # noqa: E402
from core.preparation import photo_to_input, sketch_to_digit  # noqa: E402
from core.strokes import CANVAS, layout_strokes, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOT_CIFAR = ("rocket.jpg", "astronaut.jpg", "coffee.jpg")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def scores(predictor: Predictor, images: torch.Tensor,
           batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(energy score, top probability) of uint8 (N, C, H, W) model inputs, as Predictor.judge
    computes them."""
    meta, t = predictor.meta, float(predictor.meta.get("temperature", 1.0))
    logits = torch.cat([predict_logits(predictor.model, images[i:i + batch].float(), meta["mean"],
                                       meta["std"], **tta_options(meta)) for i in range(0,
                                                                                        len(images),
                                                                                        batch)])
    return energy_score(logits, t), torch.softmax(logits / t, 1).max(1).values


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """The probability that an inside input scores above an outside one (scores are continuous: no
    ties)."""
    s = torch.cat([inside, outside]).double()
    ranks = torch.empty_like(s)
    ranks[s.argsort()] = torch.arange(1, len(s) + 1, dtype=torch.double)
    n, m = len(inside), len(outside)
    return ((ranks[:n].sum() - n * (n + 1) / 2) / (n * m)).item()


def sketches(canvases: list[np.ndarray]) -> torch.Tensor:
    """400x400 drawings through the Draw tab's preprocessing (blank ones dropped): uint8 (N, 1, 28,
    28)."""
    digits = [sketch_to_digit({"composite": c}) for c in canvases]
    kept = [np.clip(d * 255 + 0.5, 0, 255).astype(np.uint8) for d in digits if d is not None]
    return torch.from_numpy(np.stack(kept))[:, None]


def scribbles(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random pen scribbles: 1-4 strokes of 3-12 random points each, drawn as a visitor's strokes
    are."""
    out = []
    for _ in range(n):
        strokes = [rng.uniform(60, 340, (rng.integers(3, 13),
                                         2)).tolist() for _ in range(rng.integers(1, 5))]
        out.append(render(strokes, CANVAS, float(rng.choice([8, 12, 24]))))
    return out


def letters(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Letters A-Z and a-z typed in DejaVu Sans at a random size and place on a white 400 px
    canvas."""
    alphabet = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    alphabet += [a.lower() for a in alphabet]
    out = []
    for i in range(n):
        im = Image.new("RGB", (CANVAS, CANVAS), "white")
        size = int(rng.integers(120, 300))
        font = ImageFont.truetype(FONT, size)
        ImageDraw.Draw(im).text((int(rng.integers(20, 120)), int(rng.integers(0, 80))),
                                alphabet[i % len(alphabet)], fill="black", font=font)
        out.append(np.asarray(im))
    return out


def photo_rows(n: int, root: Path) -> tuple[list[list], float]:
    predictor = Predictor.load(ROOT / "checkpoints" / "cifar10-cifarnet.pt")
    inside = scores(predictor, DS.load_dataset("cifar10", "test", root).images[:n])
    sets = {"Fashion-MNIST test as photos": grey_to_photos(DS.load_dataset("fashion-mnist", "test",
                                                                           root).images[:n]),
            "MNIST test as photos": grey_to_photos(DS.load_dataset("mnist", "test",
                                                                   root).images[:n])}
    examples = ROOT / "examples" / "photos"
    judged = {name: predictor.judge(photo_to_input(examples / name)) for name in NOT_CIFAR}
    return _rows(predictor, "CIFAR-10 test", inside, sets) + [
        [f"example photo {name}", 1, f"{int(j.unsure)}/1", "", "", f"{j.score:.2f}"]
        for name, j in judged.items()
    ], predictor.unsure_threshold


def digit_rows(n: int, root: Path) -> tuple[list[list], float]:
    predictor = Predictor.load(ROOT / "checkpoints" / "handwriting-digitnet.pt")
    inside = scores(predictor, DS.load_dataset("mnist", "test", root).images[:n])
    rng = np.random.default_rng(0)
    pen = [render(layout_strokes(d["strokes"], CANVAS, "recorded"), CANVAS,
                  8) for d in pendigits.load()]
    fashion = DS.load_dataset("fashion-mnist", "test", root).images[:n]
    sets = {"pen digits of other writers (in distribution)": sketches(pen),
            "random scribbles": sketches(scribbles(n, rng)),
            "letters A-Z, a-z": sketches(letters(min(n, 520), rng)),
            "Fashion-MNIST items, drawn": sketches([np.repeat(255 - f[0].numpy()[..., None], 3,
                                                              2) for f in fashion])}
    return _rows(predictor, "MNIST test", inside, sets), predictor.unsure_threshold


def _rows(predictor: Predictor, inside_name: str, inside: tuple,
          sets: dict[str, torch.Tensor]) -> list[list]:
    t = predictor.unsure_threshold
    energy, top = inside
    rows = [[inside_name + " (in distribution)", len(energy),
             f"{(energy < t).float().mean().item():.1%}", "", "", f"{energy.median().item():.2f}"]]
    for name, images in sets.items():
        e, p = scores(predictor, images)
        rows.append([name, len(e), f"{(e < t).float().mean().item():.1%}",
                     f"{auroc(energy, e):.3f}", f"{auroc(top, p):.3f}", f"{e.median().item():.2f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="images per dataset set")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    root = Path(args.data_root) if args.data_root else default_data_root()
    headers = ["inputs", "n", "flagged 'not sure'", "AUROC vs in-distribution",
               "AUROC of the top probability", "median score"]
    for title, rows_of in (("photo model cifar10-cifarnet", photo_rows),
                           ("digit model handwriting-digitnet", digit_rows)):
        rows, threshold = rows_of(args.n, root)
        print(f"\n{title} (threshold {threshold})\n")
        print_table(headers, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
