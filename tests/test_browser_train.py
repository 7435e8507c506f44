"""The Train tab in a real headless Chromium: train, watch it stream, stop, download, use the model
elsewhere.

The app runs as `python app.py` in a subprocess, exactly as a visitor's server would. A screenshot
of the tab goes to test-artifacts/train-tab.png.
"""
import re
import time
from pathlib import Path

import pytest

from bench.browser_pen import answer, canvas_geometry, drag
from bench.latency import payloads
from bench.serving import ARTIFACTS, api_client, chromium, running_app
from core import checkpoint as ckpt

pytestmark = pytest.mark.browser
# Copied to docs/train-tab.png for the README by hand, not by tests
SCREENSHOT = ARTIFACTS / "train-tab.png"


@pytest.fixture
def server(tmp_path, data_root):
    with running_app(str(data_root), tmp_path, log=tmp_path / "app.log") as (_, url):
        yield url


def _predict_digit(url: str, workdir: Path) -> str:
    sketch = payloads(workdir)["/predict_digit"][0]  # a drawn 1
    label, _, _ = api_client(url).predict(sketch, "mnist-digitnet", api_name="/predict_digit")
    return label["label"]


def _set_number(page, selector: str, value: str) -> None:
    """Type into one of the Train form's number boxes and make sure the value stays.

    On a slow machine a box that has just been shown (the Budget accordion opening) can still be
    given its initial value after the first keystrokes, so the value is read back after a pause and
    typed again if it was lost.
    """
    box = page.locator(selector)
    for _ in range(5):
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(500)
        if box.input_value() == value:
            return
    raise AssertionError(f"{selector} would not keep the value {value}: it shows "
                         f"{box.input_value()!r}")


def test_train_tab_streams_stops_downloads_and_offers_the_model(server, tmp_path):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)
        page.goto(server)
        page.get_by_role("tab", name="Train").click()

        # Choosing a model fills in its recipe; the fast preset puts digitnet's back.
        page.locator("#train-model input").click()
        page.get_by_role("option", name="lenet").click()
        expect(page.locator("#train-lr input")).to_have_value("0.002")
        page.locator("#train-fast").click()
        expect(page.locator("#train-lr input")).to_have_value("0.2")
        expect(page.locator("#train-dataset input")).to_have_value("MNIST (digits)")

        # Short epochs (512 images, 2 steps) and a step budget, so the run streams several epochs
        # quickly.
        _set_number(page, "#train-epochs input[type=number]", "40")
        page.locator("#train-budget button.label-wrap").click()
        _set_number(page, "#train-max-images input", "512")
        _set_number(page, "#train-max-steps input", "80")
        page.locator("#train-start").click()
        # The run really has the short epochs and the epoch count typed.
        expect(page.locator("#train-log textarea")).to_have_value(re.compile(r"\(512 train, .* "
                                                                             r"epochs 40\b"),
                                                                  timeout=120_000)

        seen = {"curves": set(), "samples": set()}
        deadline = time.monotonic() + 240
        while min(map(len, seen.values())) < 2:
            assert time.monotonic() < deadline, f"fewer than two streamed updates: {seen}"
            for name in seen:
                img = page.locator(f"#train-{name} img")
                if img.count():
                    seen[name].add(img.first.get_attribute("src"))
            page.wait_for_timeout(200)
        expect(page.locator("#train-progress")).to_contain_text("img/s")

        # Predictions answer while the training runs.
        assert _predict_digit(server, tmp_path) == "1"

        page.locator("#train-stop").click()
        expect(page.locator("#train-log textarea")).to_have_value(
            re.compile(r"stopped; the checkpoint of epoch \d+ is kept"), timeout=60_000)
        report = page.locator("#train-report")
        expect(report).to_contain_text("stopped")
        assert _predict_digit(server, tmp_path) == "1"

        with page.expect_download() as download:
            page.locator("#train-checkpoint a").first.click()
        saved = tmp_path / "downloaded.pt"
        download.value.save_as(saved)
        meta = ckpt.load_checkpoint(saved)
        assert meta["model"] == "digitnet" and meta["epoch"] >= 2 and "train_state" in meta
        ckpt.build_from_checkpoint(meta)

        page.locator("#train-use").click()
        expect(page.locator("#train-use-status")).to_contain_text("now selected")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.get_by_role("tab", name="Draw a digit").click()
        chosen = page.locator("#digit-model input")
        expect(chosen).to_have_value(re.compile(r"^yours: digitnet"))
        # A stroke on the pad is answered by this visitor's own model, in the page (exported for
        # it when chosen).
        own_name = chosen.input_value().removeprefix("yours: ")
        page.wait_for_function("document.querySelector('#sketch .tv-runtime').textContent"
                               ".includes('in this page')", timeout=120_000)
        drag(page, [[(200, 110), (200, 290)]], canvas_geometry(page))
        answer(page)
        status = page.inner_text("#sketch .tv-status")
        assert own_name in status and "answered in this page" in status
