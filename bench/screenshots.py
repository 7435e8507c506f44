"""The README's screenshots of the four tabs, taken in headless Chromium on the real app.

    python -m bench.screenshots [--out docs] [--data-root DIR]

Draw a digit: a recorded pen digit replayed on the canvas (bench.browser_pen's pointer replay) and
its answer. Classify a photo: the example cat uploaded. Train: the fast preset (digitnet, one epoch
of MNIST) run to the end, its curves, samples, per-class bars and confusion matrix on the page. Your
classes: a circle and a cross class drawn three times each with the mouse, trained, and a cross
asked (bench.browser_own). The app runs as `python app.py` in a subprocess, as a visitor's server
would; the training needs MNIST in the data folder (TINYVISION_DATA).
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pendigits  # noqa: E402
from bench.browser_pen import (  # noqa: E402
    CANVAS,
    Network,
    answer,
    canvas_geometry,
    draw,
    gradio_label,
    open_app,
)
from bench.serving import ROOT, chromium, running_app  # noqa: E402
from core.strokes import layout_strokes  # noqa: E402

# The fast preset takes well under a minute of training on 2 cores; this bounds a slow machine
TRAIN_SECONDS = 900


def draw_tab(page, out: Path) -> str:
    digit = next(d for d in pendigits.load() if d["label"] == 4 and len(d["strokes"]) == 2)
    draw(page, layout_strokes(digit["strokes"], CANVAS, "big"), canvas_geometry(page))
    label = answer(page)
    page.screenshot(path=str(out / "draw-tab.png"))
    return label


def photo_tab(page, out: Path) -> str:
    page.get_by_role("tab", name="Classify a photo").click()
    page.locator("#photo input[type=file]").set_input_files(
        str(ROOT / "examples" / "photos" / "cat.jpg")
    )
    label = gradio_label(page, "#photo-label")
    page.screenshot(path=str(out / "photo-tab.png"))
    return label


def train_tab(page, out: Path) -> str:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Train").click()
    page.locator("#train-fast").click()
    page.locator("#train-start").click()
    log = page.locator("#train-log textarea")
    expect(log).to_have_value(re.compile(r"test_acc"), timeout=TRAIN_SECONDS * 1000)
    expect(page.locator("#train-checkpoint a").first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)  # the last figures arrive with the final update
    page.screenshot(path=str(out / "train-tab.png"), full_page=True)
    return re.search(r"test_acc \S+", log.input_value()).group(0)


def own_tab(page, out: Path) -> str:
    from bench.browser_own import SHAPES, ask, teach, train, try_pad_ready

    network = Network(page)
    teach(page, network)
    train(page)
    try_pad_ready(page)  # the trained model loaded into the page: it answers there, as visitors see
    label = ask(page, SHAPES["cross"], cleared=False)
    page.wait_for_timeout(1000)
    # Down to the try-it column's last button: the metrics table and log below it say nothing new.
    bottom = page.evaluate("() => "
                           "document.querySelector('#own-use').getBoundingClientRect().bottom + "
                           "window.scrollY")
    width = page.viewport_size["width"]
    page.screenshot(path=str(out / "own-tab.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": width, "height": bottom + 16})
    return label


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs"),
                   help="folder for draw-tab.png, photo-tab.png, train-tab.png, own-tab.png")
    p.add_argument("--data-root", default=None, help="data folder (default: $TINYVISION_DATA)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as workdir,
        running_app(args.data_root, Path(workdir)) as (_, url),
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        open_app(page, url)
        print("draw:", draw_tab(page, out))
        print("photo:", photo_tab(page, out))
        print("train:", train_tab(page, out))
        print("your classes:", own_tab(page, out))
    print(f"screenshots in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
