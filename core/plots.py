"""Training figures as RGB arrays: loss/accuracy curves, a grid of test samples, per-class accuracy,
confusion matrix.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot, no global figure
state), so the web app can draw them from several worker threads at once.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["render", "curves", "sample_grid", "per_class_bars", "confusion_matrix", "WRONG",
           "RIGHT"]

WRONG, RIGHT = "#d62728", "#2ca02c"
DPI = 100
SPLITS = (("train", "#1f77b4"), ("val", "#ff7f0e"), ("test", "#2ca02c"))


def render(fig: Figure) -> np.ndarray:
    """The figure as an (H, W, 3) uint8 array."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def curves(history: list[dict], live: list[tuple[float, float, float]] | None = None) -> np.ndarray:
    """Loss and accuracy: the training run's running figures as a line through `live` points
    (fractional epoch, running loss, running accuracy) when given, and each epoch's figures for
    train, val and test (the splits in `history`) as points at the epoch's end."""
    # A fixed layout: the constrained one costs as much again, and these are redrawn while a
    # training runs.
    fig = Figure(figsize=(6.4, 2.8), dpi=DPI)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.9, wspace=0.22)
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    if live:
        xs, losses, accs = zip(*live)
        for ax, ys in ((loss_ax, losses), (acc_ax, accs)):
            ax.plot(xs, ys, color=SPLITS[0][1], linewidth=1.2, alpha=0.8, label="train (running)")
    for split, colour in SPLITS:
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            key = f"{split}_{metric}"
            points = [(e, h[key]) for e, h in zip(epochs, history) if key in h]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", color=colour, label=split,
                        linestyle="-" if len(points) > 1 else "")
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if epochs or live:
            ax.set_xlim(left=0)
            ax.legend(fontsize=8)
    return render(fig)


def sample_grid(images: np.ndarray, true: list[int], pred: list[int], classes: list[str],
                columns: int = 8) -> np.ndarray:
    """Test images with true and predicted labels; wrong predictions titled and framed in red.

    `images` is (N, H, W) or (N, H, W, 3) uint8.
    """
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(columns * 0.95, rows * 1.15), dpi=DPI, layout="constrained")
    fig.suptitle("test samples: prediction (true label when wrong)", fontsize=10)
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, t, p in zip(axes, images, true, pred):
        ok = t == p
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_title(classes[p] if ok else f"{classes[p]}\n(true {classes[t]})", fontsize=7,
                     color=RIGHT if ok else WRONG)
        if not ok:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(WRONG)
                spine.set_linewidth(2.5)
    return render(fig)


def per_class_bars(per_class: dict[str, float]) -> np.ndarray:
    """Horizontal bars of test accuracy per class, the weakest in red."""
    names, accs = list(per_class), list(per_class.values())
    fig = Figure(figsize=(4.0, 0.28 * len(names) + 0.9), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    worst = min(accs) if accs else 0.0
    ax.barh(names, accs, color=[WRONG if a == worst else "#1f77b4" for a in accs])
    for y, a in enumerate(accs):
        ax.text(min(a, 1.0) - 0.01, y, f"{a:.1%}", va="center", ha="right", fontsize=7,
                color="white")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_title("test accuracy per class", fontsize=10)
    ax.tick_params(labelsize=8)
    return render(fig)


def confusion_matrix(confusion: list[list[int]], classes: list[str]) -> np.ndarray:
    """Rows: true class, columns: predicted class; counts written in the cells when there are few
    classes."""
    m = np.asarray(confusion)
    k = len(classes)
    fig = Figure(figsize=(4.4, 4.0), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    # Log scale keeps the off-diagonal mistakes visible next to diagonals of thousands.
    ax.imshow(np.log1p(m), cmap="Blues")
    if k <= 12:
        threshold = np.log1p(m).max() / 2
        for i in range(k):
            for j in range(k):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if np.log1p(m[i, j]) > threshold else "black")
    ax.set_xticks(range(k), classes, rotation=90 if max(map(len, classes)) > 2 else 0, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.set_title("confusion matrix (test)", fontsize=10)
    return render(fig)
