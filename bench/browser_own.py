"""Driving the Your classes tab in Chromium with the mouse: classes drawn, trained, then asked
(tests, screenshots).

Shapes are drawn with Playwright's real pointer (bench.browser_pen.drag) on the tab's pads; each
example at another place and size, as people do not draw one shape twice alike. The try-it pad
answers in the page once the trained model has loaded there.
"""
from __future__ import annotations

import math
import re

from bench.browser_pen import Network, answer, canvas_geometry, clear, drag, pad_ready


def circle(cx: float, cy: float, r: float) -> list:
    return [[(cx + r * math.cos(t / 16 * 2 * math.pi),
              cy + r * math.sin(t / 16 * 2 * math.pi)) for t in range(17)]]


def cross(cx: float, cy: float, r: float) -> list:
    return [[(cx - r, cy - r), (cx, cy), (cx + r, cy + r)],
            [(cx + r, cy - r), (cx, cy), (cx - r, cy + r)]]


SHAPES = {"circle": circle, "cross": cross}
# (centre x, centre y, size) on the 400 px canvas
PLACES = [(200, 200, 110), (170, 220, 80), (230, 180, 130)]
TRAIN_TIMEOUT_MS = 180_000


def wait_quiet(page, network: Network, quiet: float = 0.8) -> None:
    for _ in range(100):
        if network.quiet_for() >= quiet:
            return
        page.wait_for_timeout(100)


def teach(page, network: Network, shapes: dict = SHAPES, places: list = PLACES) -> None:
    """Open the tab, add each shape as a class and draw it at each place, adding every drawing to
    its class."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Your classes").click()
    page.wait_for_function("window.tvPads && window.tvPads['own-sketch']")
    summary = page.locator("#own-summary")
    for name, shape in shapes.items():
        page.locator("#own-new-name textarea, #own-new-name input").first.fill(name)
        page.locator("#own-add-class").click()
        expect(summary).to_contain_text(f"{name}: 0 examples")
        geometry = canvas_geometry(page, "own-sketch")
        for i, (cx, cy, r) in enumerate(places, start=1):
            drag(page, shape(cx, cy, r), geometry, max_points=16)
            page.locator("#own-add-sketch").click()
            expect(summary).to_contain_text(re.compile(rf"{name}: {i} examples?"))
            wait_quiet(page, network)
            # the pad is cleared in the browser once the example is in
            page.wait_for_function("window.tvPads['own-sketch'].strokes === 0")
    expect(summary).to_contain_text("Ready to train")


def train(page) -> str:
    """Click Train on my classes and wait for the run to end; returns the log."""
    from playwright.sync_api import expect

    page.locator("#own-train").click()
    log = page.locator("#own-log textarea")
    expect(log).to_have_value(re.compile(r"done: "), timeout=TRAIN_TIMEOUT_MS)
    return log.input_value()


def ask(page, shape, cleared: bool = True) -> str:
    """Draw `shape` on the try-it pad and read its answer (then clear the pad)."""
    page.locator("#own-try").scroll_into_view_if_needed()
    drag(page, shape(205, 195, 100), canvas_geometry(page, "own-try"), max_points=16)
    label = answer(page, "own-try")
    if cleared:
        clear(page, "own-try")
    return label


def try_pad_ready(page) -> bool:
    """Whether the try-it pad answers in the page (the trained model loaded there)."""
    page.wait_for_function("window.tvPads && window.tvPads['own-try']")
    return pad_ready(page, "own-try")
