"""Tune the handwriting mix on the training writers only: MNIST plus pen renderings, scored on
held-out writers.

    python -m bench.handwriting_mix [--renders 4] [--unipen-renders 4] [--per-epoch 0]
                                    [--jitter 0.1] [--mnist-only | --no-unipen] [--model digitnet]
                                    [--epochs 12]

Trains digitnet (the shipped recipe; another `--model` with its own) with `--val-split 0.2`: 20% of
MNIST's training digits and a fifth of the pen writers (of pendigits' 30 and of UNIPEN's training
people), whole, are held out, so the validation figures say how the mix reads people it has not
learnt from. The evaluation writers (TINYVISION_PEN_DIGITS), MNIST test and UNIPEN's test people
are not used. `--renders` / `--unipen-renders` random renderings of each pendigits / UNIPEN digit
are made (cached), of which each epoch trains on `--per-epoch`, drawn afresh (0: all);
`--jitter` moves each stroke of a training rendering on its own (core.train --pen-jitter; the
held-out writers are still scored on their strokes unmoved, the same images as without it);
`--mnist-only` leaves the pen digits out of training, `--no-unipen` the UNIPEN ones (both still
scored on the held-out writers, the same split). `--teacher CHECKPOINT` also learns that net's
answers (core.distill); it must not have seen the held-out digits.

Every net holds out the same writers and MNIST digits, those of `--split-seed` (default 0), whatever
its own seed. `--seeds 0 1` trains one net per seed and also scores their average (the logits
averaged, as a shipped ensemble answers: `python -m core.checkpoint A B --out F`); `--keep DIR`
keeps each net as DIR/seed<N>.pt, and `--average-with FILES` adds nets kept by earlier runs (of the
same split seed) to the average; `--seeds` with no seed trains nothing and scores those nets.
`--misread PNG` draws the held-out pen digits the last net (or the average) misreads. Prints one
JSON line per net (and one for the average): validation accuracy per part and per held-out writer,
train time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sheets import contact_sheet  # noqa: E402
from core import checkpoint as ckpt  # noqa: E402
from core import datasets, models, pens  # noqa: E402
from core import imagedata as D  # noqa: E402
from core.evaluate import evaluate_model  # noqa: E402
from core.imagedata import LoadArgs, default_data_root  # noqa: E402
from core.train import TrainConfig, train  # noqa: E402
from core.unipen import read_unipen_1a  # noqa: E402

VAL_SPLIT = 0.2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--renders", type=int, default=pens.PENDIGITS_RENDERS)
    p.add_argument("--per-epoch", type=int, default=datasets.HANDWRITING_PER_EPOCH,
                   help="renderings of each pen digit one epoch trains on, drawn afresh (0: all)")
    p.add_argument("--unipen-renders", type=int, default=pens.UNIPEN_RENDERS)
    p.add_argument("--jitter", type=float, default=0.0,
                   help="how far each stroke of a training rendering moves on its own (0: not)")
    p.add_argument("--mnist-only", action="store_true")
    p.add_argument("--no-unipen", action="store_true")
    p.add_argument("--drop-sites", nargs="+", default=[], metavar="SITE",
                   help="leave these UNIPEN sites' people out of training (still scored)")
    p.add_argument("--model", default="digitnet")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 12 for digitnet, else the model's recipe")
    p.add_argument("--seeds", type=int, nargs="*", default=[0], help="one net per seed, all on "
                   "--split-seed's split; with several, their average is scored too; none: only "
                   "score the --average-with nets")
    p.add_argument("--split-seed", type=int, default=0,
                   help="the seed of the held-out split, the same for every net")
    p.add_argument("--keep", default=None, metavar="DIR", help="keep each net as DIR/seed<N>.pt")
    p.add_argument("--average-with", nargs="+", default=[], metavar="CHECKPOINT",
                   help="nets kept by earlier runs on the same split, averaged with this run's")
    p.add_argument("--widths", type=json.loads, default=[32, 64, 128], help="digitnet's widths")
    p.add_argument("--teacher", default=None,
                   help="a checkpoint to distil from (trained without the held-out digits, e.g. "
                   "`core.train --dataset mnist --val-split 0.2`)")
    p.add_argument("--distill-weight", type=float, default=1.0)
    p.add_argument("--misread", type=Path, metavar="PNG",
                   help="draw the held-out pen digits the last net (or the average) misreads")
    args = p.parse_args(argv)
    if not args.seeds and not args.average_with:
        p.error("give --seeds to train, or --average-with to score kept nets")
    pens.PENDIGITS_RENDERS, datasets.HANDWRITING_PER_EPOCH = args.renders, args.per_epoch
    pens.UNIPEN_RENDERS = args.unipen_renders
    digitnet = args.model == "digitnet"
    epochs = args.epochs or (12 if digitnet else models.default_recipe(args.model,
                                                                       "sketch")["epochs"])
    split_seed = args.split_seed
    split = D.split_train_val
    held_out = {}  # the validation set the trainings use, kept to score the nets' average on

    def held_out_split(data, fraction, seed):
        # Every net holds out the same writers and MNIST digits (--split-seed's), so their average
        # can be scored. With jitter, core.train splits the set drawn without it too and scores
        # that validation side: the last split is the one scored.
        tr, held_out["val"] = split(data, fraction, split_seed)
        # --mnist-only / --no-unipen: the same split, then pen digits taken out of the training
        # side only.
        if args.mnist_only:
            tr = tr.subset(torch.arange(tr.parts["mnist"][1]))
        elif args.no_unipen:
            tr = tr.subset(torch.arange(tr.parts["unipen"][0]))
        if args.drop_sites:
            dropped = torch.tensor(_site_groups(args.drop_sites))
            tr = tr.subset(torch.nonzero(~torch.isin(tr.groups, dropped)).flatten())
        return tr, held_out["val"]

    D.split_train_val = held_out_split
    averaged = len(args.seeds) + len(args.average_with) > 1
    cfg = TrainConfig(dataset="handwriting", model=args.model, epochs=epochs, download=False,
                      val_split=VAL_SPLIT, test=False, pen_jitter=args.jitter,
                      model_kwargs={"widths": args.widths} if digitnet else {})
    if not args.seeds:  # score kept nets only: the same held-out images
        held_out_split(datasets.load_dataset("handwriting", "train", download=False), VAL_SPLIT,
                       split_seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        for seed in args.seeds:
            out = str(folder / f"seed{seed}.pt") if averaged or args.keep or args.misread else None
            cfg = replace(cfg, eval_every=epochs, seed=seed, teacher=args.teacher,
                          distill_weight=args.distill_weight, out=out)
            last = None
            for event in train(cfg):
                if event["type"] == "epoch":
                    last = event
                    print(f"seed {seed} epoch {event['epoch']}: {event['seconds']:.0f} s",
                          file=sys.stderr, flush=True)
            files.append(out)
            _report(args, cfg, seed, last["val_acc"], last["val_parts"], last["val_groups"],
                    last["train_seconds"])
        # The trainings do not hand their nets out: each one's final checkpoint is read back.
        files += args.average_with
        nets = [ckpt.build_from_checkpoint(ckpt.load_checkpoint(f)) for f in files if f]
        net = models.Ensemble(nets) if len(nets) > 1 else nets[-1] if nets else None
        if averaged or not args.seeds or args.misread:
            r = evaluate_model(net, held_out["val"])
        if averaged or not args.seeds:
            _report(args, cfg, args.seeds + args.average_with, r["acc"], r["parts"], r["groups"],
                    None)
        if args.misread:
            print(_misread(r["predictions"], held_out["val"], args.misread), file=sys.stderr)
    return 0


def _misread(answers: torch.Tensor, val: D.ImageData, picture: Path) -> str:
    """The held-out pen digits a net misreads (`answers`: its class for each image), drawn as it
    saw them (a digit's renderings are consecutive: each digit once, with how many of its
    renderings it misreads), and the confusions in a line, each misread rendering counted."""
    tiles, pairs = [], {}
    for part, (a, b) in val.parts.items():
        if part == "mnist":
            continue
        renders = pens.UNIPEN_RENDERS if part == "unipen" else pens.PENDIGITS_RENDERS
        wrong = torch.nonzero(answers[a:b] != val.labels[a:b]).flatten() + a
        by_digit: dict[int, list[int]] = {}
        for i in wrong.tolist():
            by_digit.setdefault((i - a) // renders, []).append(i)
        for _, missed in sorted(by_digit.items()):
            for i in missed:
                pair = int(val.labels[i]), int(answers[i])
                pairs[pair] = pairs.get(pair, 0) + 1
            label, answer = int(val.labels[missed[0]]), int(answers[missed[0]])
            tiles.append((val.images[missed[0], 0].numpy(),
                          f"{part[0]} {label}>{answer} {len(missed)}/{renders}"))
    contact_sheet(tiles, picture)
    confusions = ", ".join(f"{a}>{b} {n}" for (a, b), n in sorted(pairs.items(),
                                                                   key=lambda kv: -kv[1]))
    return f"{len(tiles)} held-out pen digits misread ({picture}): {confusions}"


def _site_groups(sites: list[str]) -> list[int]:
    """The handwriting mix's writer numbers of UNIPEN's people at these sites."""
    tree = pens.unipen_tree(LoadArgs(default_data_root(), True, False, None, None, 0))
    people = sorted({pens.person_of(d["writer"]) for d in read_unipen_1a(tree)[0]})
    return [datasets.UNIPEN_WRITERS + i for i, p in enumerate(people)
            if p.split("/")[0] in sites]


def _report(args, cfg: TrainConfig, seed, val_acc: float, parts: dict, writers: dict,
            seconds: float | None) -> None:
    print(
        json.dumps(
            {
                "model": cfg.model,
                "renders": args.renders,
                "unipen_renders": None if args.no_unipen else args.unipen_renders,
                "per_epoch": args.per_epoch,
                "jitter": None if isinstance(seed, list) else args.jitter,  # average: its nets'
                "mnist_only": args.mnist_only,
                "no_unipen": args.no_unipen,
                "drop_sites": args.drop_sites,
                "teacher": args.teacher,
                "distill_weight": args.distill_weight if args.teacher else None,
                "epochs": cfg.epochs,
                "seed": seed,
                "split_seed": args.split_seed,
                "model_kwargs": cfg.model_kwargs,
                "val_acc": val_acc,
                "val_parts": parts,
                "val_writers": {w: round(acc, 4) for w, acc in writers.items()},
                "train_seconds": None if seconds is None else round(seconds),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
