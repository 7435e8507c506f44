"""The app in a real browser: real pen digits drawn on the sketchpad with the mouse, a photo uploaded.

Replays recorded pen trajectories (../shared/pen-digits, evaluation only) as mouse drags on the page's canvas,
reads the label the page shows and checks accuracy; uploads a photo and a broken file. Screenshots go to
test-artifacts/.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from bench import pendigits
from browser_support import ARTIFACTS, chromium, serve_app
from conftest import PEN_DIGITS, ROOT

CANVAS = 400  # the app's sketch canvas, in image pixels
EVERY = 17  # every 17th recorded digit: 103 digits from all writers
MIN_ACCURACY = 0.95
CIFAR_CLASSES = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}


@pytest.fixture(scope="module")
def page():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_app() as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("#sketch canvas", timeout=60_000)
        yield page


def _canvas_geometry(page) -> tuple[float, float, float]:
    """(centre x, centre y, screen pixels per image pixel) of the drawing area inside the sketchpad."""
    box = page.locator("#sketch canvas").first.bounding_box()
    zoom_text = page.locator("#sketch").get_by_text(re.compile(r"^\d+%$")).first.inner_text()
    zoom = int(zoom_text.rstrip("%")) / 100
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, zoom


class Network:
    """Counts the page's requests (uploads of the canvas, queue joins, file fetches; not the long-lived event
    stream) to know when it is quiet."""

    IGNORED = ("/queue/data", "/heartbeat")

    def __init__(self, page):
        self.in_flight = 0
        self.last = time.monotonic()
        page.on("request", self._start)
        page.on("requestfinished", self._end)
        page.on("requestfailed", self._end)

    def _watched(self, request) -> bool:
        return not any(w in request.url for w in self.IGNORED)

    def _start(self, request):
        if self._watched(request):
            self.in_flight += 1
            self.last = time.monotonic()

    def _end(self, request):
        if self._watched(request):
            self.in_flight -= 1
            self.last = time.monotonic()

    def quiet_for(self) -> float:
        return 0.0 if self.in_flight > 0 else time.monotonic() - self.last


def _settled_label(page, selector: str, network: Network | None = None, quiet: float = 0.8,
                   timeout: float = 60.0) -> str:
    """The label a gr.Label shows once the page has sent nothing for `quiet` seconds, no request for it is
    pending, and it has stopped changing."""
    value = page.locator(f"{selector} [data-testid='label-output-value']")
    tracker = page.locator(f"{selector} [data-testid='status-tracker']")
    deadline = time.monotonic() + timeout
    last, stable = None, 0
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        busy = "hide" not in (tracker.get_attribute("class") or "") if tracker.count() else False
        busy = busy or (network is not None and network.quiet_for() < quiet)
        text = value.first.inner_text() if value.count() else None
        if text and not busy and text == last:
            stable += 1
            if stable >= 2:
                return text
        else:
            stable = 0
        last = text
    page.screenshot(path=str(ARTIFACTS / f"never-settled-{selector.strip('#')}.png"))
    raise AssertionError(f"{selector} never settled (last value {last!r})")


# The same pointer events a mouse drag produces, dispatched on the sketchpad's canvas in one go. Playwright's
# page.mouse sends each move through the browser's input pipeline and waits for a frame; with the GPU disabled
# the editor's WebGL canvas is rendered in software (~0.7 s a frame here), so the 100-digit replay uses these and
# one digit is also drawn with page.mouse (test_real_mouse_drag_draws_a_digit).
POINTER_REPLAY = """async (strokes) => {
  const frame = () => new Promise(resolve => requestAnimationFrame(() => resolve()));
  let target = null;  // whatever a real mouse would hit at the stroke's first point
  const fire = (type, p, buttons) => target.dispatchEvent(new PointerEvent(type, {clientX: p[0], clientY: p[1],
      bubbles: true, cancelable: true, composed: true, pointerId: 1, pointerType: 'mouse', isPrimary: true,
      button: 0, buttons: buttons, view: window}));
  for (const s of strokes) {
    target = document.elementFromPoint(s[0][0], s[0][1]);
    fire('pointerover', s[0], 0);
    fire('pointerdown', s[0], 1);
    await frame();  // the editor may start a stroke asynchronously, as it would between real mouse events
    for (const p of s.slice(1)) fire('pointermove', p, 1);
    await frame();
    fire('pointerup', s[s.length - 1], 0);
    await frame();
  }
}"""


def _to_screen(strokes, geometry):
    cx, cy, zoom = geometry
    return [[(cx + (x - CANVAS / 2) * zoom, cy + (y - CANVAS / 2) * zoom) for x, y in s] for s in strokes]


def _draw(page, strokes, geometry) -> None:
    page.evaluate(POINTER_REPLAY, _to_screen(strokes, geometry))


def _drag(page, strokes, geometry, max_points: int = 12) -> None:
    """Draw with Playwright's real mouse: press, move through (a subsample of) the points, release."""
    for stroke in _to_screen(strokes, geometry):
        step = max(1, len(stroke) // max_points)
        points = stroke[::step] + [stroke[-1]]
        page.mouse.move(*points[0])
        page.mouse.down()
        for p in points[1:]:
            page.mouse.move(*p)
        page.mouse.up()


def _clear(page, network: Network, quiet: float = 0.8, button: str = "#clear-sketch") -> None:
    """Click Clear and wait until the blank canvas is back (the editor reloads it) before the next digit."""
    page.click(button)
    page.wait_for_function("() => !document.querySelector(\"#digit-label [data-testid='label-output-value']\")",
                           timeout=15_000)
    deadline = time.monotonic() + 30
    while network.quiet_for() < quiet and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_timeout(300)  # the editor redraws the blank background; a person takes longer than this


def test_pen_digits_drawn_in_the_browser(page):
    digits = pendigits.load(PEN_DIGITS)[::EVERY]
    assert len(digits) >= 100
    geometry = _canvas_geometry(page)
    network = Network(page)
    results, redrawn = [], []
    t0 = time.monotonic()
    for i, d in enumerate(digits):
        layout = "recorded" if i % 2 == 0 else "big"
        strokes = pendigits.layout_strokes(d, CANVAS, layout)
        _draw(page, strokes, geometry)
        try:
            predicted = _settled_label(page, "#digit-label", network, timeout=12)
        except AssertionError:
            # Now and then, right after a clear, this slow software-rendered browser loses a stroke or its input
            # event. The replay then reloads the page and draws the digit again on a fresh canvas, and counts it.
            redrawn.append(i)
            page.reload()
            page.wait_for_selector("#sketch canvas", timeout=60_000)
            geometry = _canvas_geometry(page)
            _draw(page, strokes, geometry)
            predicted = _settled_label(page, "#digit-label", network)
        results.append({"label": d["label"], "writer": d["writer"], "layout": layout, "predicted": predicted})
        if i < 3 or predicted != str(d["label"]):
            page.screenshot(path=str(ARTIFACTS / f"draw-{i:03d}-{d['label']}-as-{predicted}.png"))
        _clear(page, network, button="#sketch button[aria-label='Clear canvas']")
    seconds = time.monotonic() - t0
    correct = sum(r["predicted"] == str(r["label"]) for r in results)
    accuracy = correct / len(results)
    summary = {"digits": len(results), "correct": correct, "accuracy": accuracy, "seconds": round(seconds, 1),
               "redrawn_after_reload": redrawn,
               "errors": [r for r in results if r["predicted"] != str(r["label"])]}
    (ARTIFACTS / "browser-pen-digits.json").write_text(json.dumps(summary, indent=1))
    print(f"browser replay: {correct}/{len(results)} = {accuracy:.1%} in {seconds:.0f} s "
          f"({len(redrawn)} drawn again on a reloaded page)")
    assert len(redrawn) <= len(results) // 4, summary
    assert accuracy >= MIN_ACCURACY, summary


def test_real_mouse_drag_draws_a_digit(page):
    digit = next(d for d in pendigits.load(PEN_DIGITS) if d["label"] == 7 and len(d["strokes"]) == 1)
    network = Network(page)
    _drag(page, pendigits.layout_strokes(digit, CANVAS, "big"), _canvas_geometry(page))
    assert _settled_label(page, "#digit-label", network, quiet=1.5) == "7"
    page.screenshot(path=str(ARTIFACTS / "draw-mouse-7.png"))
    _clear(page, network)


def test_empty_canvas_shows_the_prompt_not_a_guess(page):
    assert page.locator("#digit-label [data-testid='label-output-value']").count() == 0
    assert "Draw a digit" in page.inner_text("#digit-status")


def test_photo_upload_and_a_broken_file(page, tmp_path):
    page.get_by_role("tab", name="Classify a photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(ROOT / "examples" / "photos" / "cat.jpg"))
    label = _settled_label(page, "#photo-label")
    assert label in CIFAR_CLASSES
    assert "answered by" in page.inner_text("#photo-status")
    page.screenshot(path=str(ARTIFACTS / "photo-cat.png"))

    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"this is not a picture")
    page.locator("#photo button[aria-label='Clear']").first.click()
    page.locator("#photo input[type=file]").set_input_files(str(broken))
    page.get_by_text("not an image").first.wait_for(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "photo-broken.png"))
    assert page.locator("#photo-label [data-testid='label-output-value']").count() == 0

    # The app keeps serving after the refusal.
    page.locator("#photo button[aria-label='Clear']").first.click()
    page.locator("#photo input[type=file]").set_input_files(str(ROOT / "examples" / "photos" / "horse.png"))
    assert _settled_label(page, "#photo-label") in CIFAR_CLASSES
