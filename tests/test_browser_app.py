"""The app in a real browser, every request outside the app blocked: pen digits drawn on the Draw
tab's pad and answered in the page, the page's 28x28 and answers against Python's, touch, the
server's answers where the runtime cannot load, and a photo uploaded.

Recorded pen trajectories (TINYVISION_PEN_DIGITS, evaluation only) are drawn on the pad: one digit
with Playwright's mouse, 103 as the pointer events of mouse drags (bench/browser_pen.py, also
`python -m bench.browser_pen`), more than a thousand with the pad's own drawing code for the parity
check. Screenshots and summaries go to test-artifacts/.
"""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from app import BRUSH_RADIUS
from bench import pendigits
from bench.browser_pen import (
    CANVAS,
    Network,
    answer,
    canvas_geometry,
    clear,
    drag,
    gradio_label,
    open_app,
    pad_ready,
    replay,
    subsample,
)
from bench.serving import ARTIFACTS, chromium, serve_app
from conftest import PEN_DIGITS, ROOT
from core.datasets import CIFAR10_CLASSES
from core.predictor import Predictor
from core.preparation import sketch_to_digit
from core.strokes import layout_strokes, render

pytestmark = pytest.mark.browser
CIFAR_CLASSES = set(CIFAR10_CLASSES)
SHIPPED = ROOT / "checkpoints" / "handwriting-digitnet.pt"


@pytest.fixture(scope="module")
def app_url():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_app() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(app_url, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_app(page, app_url)
    assert pad_ready(page), "the in-page runtime and model load from the app itself"
    yield page
    page.close()


def _clear_digit(predictor: Predictor) -> list:
    """A one-stroke pen 3 the shipped model reads confidently when drawn as the mouse will."""
    for d in pendigits.load(PEN_DIGITS):
        if d["label"] == 3 and len(d["strokes"]) == 1:
            strokes = layout_strokes(d["strokes"], CANVAS, "big")
            x = sketch_to_digit({"composite": render(subsample(strokes), CANVAS, 2 * BRUSH_RADIUS)})
            if x is not None and predictor.probabilities(x)[3] > 0.9:
                return strokes
    raise AssertionError("no pen 3 found")


def test_a_mouse_drawing_is_answered_in_the_page_without_a_request(page):
    strokes = _clear_digit(Predictor.load(SHIPPED))
    network = Network(page)
    drag(page, strokes, canvas_geometry(page))
    assert answer(page) == "3"
    status = page.inner_text("#sketch .tv-status")
    assert "answered in this page" in status and "digitnet" in status
    assert page.locator("#sketch .tv-top li").count() == 3  # the top 3, best first
    assert network.sent == [], "drawing sent nothing to the server"
    page.screenshot(path=str(ARTIFACTS / "draw-mouse-3.png"))
    # Undo takes the last stroke back; Clear empties the pad and brings the prompt back.
    drag(page, [[(60, 380), (340, 380)]], canvas_geometry(page))
    answer(page)
    page.click("#sketch .tv-undo")
    assert answer(page) == "3"
    clear(page)
    assert answer(page) == "" and "Draw a digit" in page.inner_text("#sketch .tv-status")
    assert network.sent == []


def _decode(png: str) -> np.ndarray:
    data = base64.b64decode(png.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_page_prepares_and_answers_as_python_does(page):
    """The 103 replayed pen digits and 1,100 more, drawn with the pad's own code (two layouts, four
    brushes): the page's 28x28 against core.preparation's on the very same canvas, and the page's
    top 1 against the server's (the same checkpoint through core.predictor)."""
    predictor = Predictor.load(SHIPPED)
    digits = pendigits.load(PEN_DIGITS)
    replayed = digits[::17]
    others = [d for i, d in enumerate(digits) if i % 17][:1100]
    worst, compared, disagree = 0.0, 0, []
    for batch_start in range(0, len(replayed) + len(others), 100):
        batch = (replayed + others)[batch_start:batch_start + 100]
        layouts = ["recorded" if (batch_start + i) % 2 == 0 else "big" for i in range(len(batch))]
        brush = (6, 12, 18, 24)[batch_start // 100 % 4]
        drawings = [layout_strokes(d["strokes"], CANVAS, layout)
                    for d, layout in zip(batch, layouts)]
        for d, got in zip(batch, page.evaluate("([s, w]) => window.tvPads.sketch.prepareMany(s, w)",
                                               [drawings, brush])):
            ours = sketch_to_digit({"composite": _decode(got["png"])})
            assert (ours is None) == (got["digit"] is None)
            if ours is None:
                continue
            compared += 1
            worst = max(worst, float(np.abs(ours.ravel() - np.array(got["digit"])).max()))
            if int(np.argmax(predictor.probabilities(ours))) != got["top"]:
                disagree.append(d)
    summary = {"drawings": len(replayed) + len(others), "compared": compared,
               "max_abs_pixel_difference": worst, "top1_disagreements": len(disagree)}
    (ARTIFACTS / "browser-parity.json").write_text(json.dumps(summary, indent=1))
    print(summary)
    assert compared >= 1200 and worst < 1e-4 and not disagree, summary


def test_replay_of_103_pen_digits_in_the_page(page):
    """Every 17th recorded digit, alternately as recorded (small, off-centre) and big, drawn with
    pointer events and answered in the page; Clear between digits."""
    summary = replay(page, pendigits.load(PEN_DIGITS)[::17])
    (ARTIFACTS / "browser-pen-digits.json").write_text(json.dumps(summary, indent=1))
    print(f"browser replay: {summary['correct']}/{summary['digits']} in {summary['seconds']} s, "
          f"latency {summary['latency_ms']}")
    assert summary["digits"] == 103 and summary["path"] == "page"
    assert summary["correct"] >= 101, summary["errors"]
    assert summary["requests"] == [], "no request while drawing"
    assert summary["answers"] >= 103


def test_the_pad_draws_strokes_as_core_renders_them(page):
    """Training data is drawn by core.strokes as the pad draws: a pen digit drawn on the page and by
    core, both through the same preparation, cover the same ink."""
    digit = pendigits.load(PEN_DIGITS)[5]
    strokes = layout_strokes(digit["strokes"], CANVAS, "big")
    got = page.evaluate("(s) => window.tvPads.sketch.prepareMany([s])", strokes)[0]
    seen = np.array(got["digit"]).reshape(28, 28)
    ours = sketch_to_digit({"composite": render(strokes, CANVAS, 2 * BRUSH_RADIUS)})
    a, b = seen > 0.3, ours > 0.3
    assert (a & b).sum() / (a | b).sum() >= 0.7, "the ink of the page's drawing and core's overlap"
    assert np.abs(seen - ours).mean() < 0.08


def test_a_finger_draws_without_scrolling_the_page(app_url, browser):
    context = browser.new_context(viewport={"width": 412, "height": 915}, has_touch=True,
                                  is_mobile=True)
    phone = context.new_page()
    open_app(phone, app_url)
    assert pad_ready(phone)
    phone.locator("#sketch .tv-canvas").scroll_into_view_if_needed()
    scrolled = phone.evaluate("window.scrollY")
    left, top, zoom = canvas_geometry(phone)
    cdp = context.new_cdp_session(phone)
    points = [(200, 60 + 14 * i) for i in range(21)]  # a 1, top to bottom
    for i, (x, y) in enumerate(points):
        kind = "touchStart" if i == 0 else "touchMove"
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
            {"x": left + x * zoom, "y": top + y * zoom}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    assert answer(phone) == "1"
    assert phone.evaluate("window.scrollY") == scrolled, "drawing did not scroll the page"
    context.close()


def test_without_the_runtime_the_server_answers_and_says_so(app_url, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_app(page, app_url, server=True)
    assert not pad_ready(page)
    assert "Answered by the server" in page.inner_text("#sketch .tv-runtime")
    network = Network(page)
    summary = replay(page, pendigits.load(PEN_DIGITS)[::170])
    assert summary["path"] == "server" and summary["correct"] >= summary["digits"] - 1, summary
    assert any("/queue/join" in url for url in network.sent)
    assert "answered by the server" in page.inner_text("#sketch .tv-status") or \
        page.evaluate("window.tvPads.sketch.label") == ""
    page.close()


def test_an_empty_pad_shows_the_prompt_not_a_guess(page):
    clear(page)
    assert page.locator("#sketch .tv-top li").count() == 0
    assert "Draw a digit" in page.inner_text("#sketch .tv-status")


def _upload(page, path) -> None:
    """The photo tab, then the file chosen in its upload box."""
    page.get_by_role("tab", name="Classify a photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(path))


def test_photo_upload_and_a_broken_file(app_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    open_app(page, app_url)
    _upload(page, ROOT / "examples" / "photos" / "cat.jpg")
    assert gradio_label(page, "#photo-label") in CIFAR_CLASSES
    assert "answered by" in page.inner_text("#photo-status")
    page.screenshot(path=str(ARTIFACTS / "photo-cat.png"))

    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"this is not a picture")
    open_app(page, app_url)  # a fresh page
    _upload(page, broken)
    page.get_by_text("not an image").first.wait_for(timeout=20_000)
    page.screenshot(path=str(ARTIFACTS / "photo-broken.png"))
    assert page.locator("#photo-label [data-testid='label-output-value']").count() == 0

    # The app keeps serving after the refusal.
    open_app(page, app_url)
    _upload(page, ROOT / "examples" / "photos" / "horse.png")
    assert gradio_label(page, "#photo-label") in CIFAR_CLASSES
    page.close()
