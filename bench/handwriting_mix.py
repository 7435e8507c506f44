"""Tune the handwriting mix on the training writers only: MNIST plus pen renderings, scored on
held-out writers.

    python -m bench.handwriting_mix [--renders 4] [--unipen-renders 4] [--per-epoch 0]
                                    [--mnist-only | --no-unipen] [--model digitnet] [--epochs 12]

Trains digitnet (the shipped recipe; another `--model` with its own) with `--val-split 0.2`: 20% of
MNIST's training digits and a fifth of the pen writers (of pendigits' 30 and of UNIPEN's training
people), whole, are held out, so the validation figures say how the mix reads people it has not
learnt from. The evaluation writers (TINYVISION_PEN_DIGITS), MNIST test and UNIPEN's test people
are not used. `--renders` / `--unipen-renders` random renderings of each pendigits / UNIPEN digit
are made (cached), of which each epoch trains on `--per-epoch`, drawn afresh (0: all);
`--mnist-only` leaves the pen digits out of training, `--no-unipen` the UNIPEN ones (both still
scored on the held-out writers, the same split). `--teacher CHECKPOINT` also learns
that net's answers (core.distill); it must not have seen the held-out digits. `--seeds 0 1` trains
one net per seed on the first seed's split and also scores their average (the logits averaged, as a
shipped ensemble answers: `python -m core.checkpoint A B --out F`). Prints one JSON line per net
(and one for the average): validation accuracy per part and per held-out writer, train time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
    p.add_argument("--mnist-only", action="store_true")
    p.add_argument("--no-unipen", action="store_true")
    p.add_argument("--drop-sites", nargs="+", default=[], metavar="SITE",
                   help="leave these UNIPEN sites' people out of training (still scored)")
    p.add_argument("--model", default="digitnet")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: 12 for digitnet, else the model's recipe")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one net per seed, all on the "
                   "first seed's split; with several, their average is scored too")
    p.add_argument("--widths", type=json.loads, default=[32, 64, 128], help="digitnet's widths")
    p.add_argument("--teacher", default=None,
                   help="a checkpoint to distil from (trained without the held-out digits, e.g. "
                   "`core.train --dataset mnist --val-split 0.2`)")
    p.add_argument("--distill-weight", type=float, default=1.0)
    args = p.parse_args(argv)
    pens.PENDIGITS_RENDERS, datasets.HANDWRITING_PER_EPOCH = args.renders, args.per_epoch
    pens.UNIPEN_RENDERS = args.unipen_renders
    digitnet = args.model == "digitnet"
    epochs = args.epochs or (12 if digitnet else models.default_recipe(args.model,
                                                                       "sketch")["epochs"])
    split_seed = args.seeds[0]
    split = D.split_train_val
    held_out = {}  # the validation set the trainings use, kept to score the nets' average on

    def held_out_split(data, fraction, seed):
        # Every net holds out the same writers and MNIST digits (the first seed's), so their average
        # can be scored.
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
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for seed in args.seeds:
            out = str(Path(tmp) / f"seed{seed}.pt") if len(args.seeds) > 1 else None
            cfg = TrainConfig(dataset="handwriting", model=args.model, epochs=epochs,
                              eval_every=epochs, seed=seed, download=False, val_split=VAL_SPLIT,
                              test=False, model_kwargs={"widths": args.widths} if digitnet else {},
                              teacher=args.teacher, distill_weight=args.distill_weight, out=out)
            last = None
            for event in train(cfg):
                if event["type"] == "epoch":
                    last = event
                    print(f"seed {seed} epoch {event['epoch']}: {event['seconds']:.0f} s",
                          file=sys.stderr, flush=True)
            files.append(out)
            _report(args, cfg, seed, last["val_acc"], last["val_parts"], last["val_groups"],
                    last["train_seconds"])
        if len(files) > 1:
            # The trainings do not hand their nets out: each one's final checkpoint is read back.
            nets = [ckpt.build_from_checkpoint(ckpt.load_checkpoint(f)) for f in files]
            r = evaluate_model(models.Ensemble(nets), held_out["val"])
            _report(args, cfg, args.seeds, r["acc"], r["parts"], r["groups"], None)
    return 0


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
                "mnist_only": args.mnist_only,
                "no_unipen": args.no_unipen,
                "drop_sites": args.drop_sites,
                "teacher": args.teacher,
                "distill_weight": args.distill_weight if args.teacher else None,
                "epochs": cfg.epochs,
                "seed": seed,
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
