"""The Your classes tab in a real headless Chromium: two sketch classes drawn with the mouse,
trained, then read.

A visitor adds "circle" and "cross", draws each three times with the mouse (Playwright's real
pointer), trains from the shipped digit model, draws one of each on the tab's try-it pad and reads
the right label off the page (bench/browser_own.py), then downloads the model as ONNX. A screenshot
goes to test-artifacts/own-tab.png.
"""
import json
import re

import onnxruntime as ort
import pytest

from bench.browser_own import SHAPES, ask, teach, train, try_pad_ready
from bench.browser_pen import Network
from bench.serving import ARTIFACTS, chromium, running_app

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path, data_root):
    with running_app(str(data_root), tmp_path, log=tmp_path / "app.log") as (_, url):
        yield url


def test_two_drawn_classes_train_are_read_back_and_download_as_onnx(server, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
        page.set_default_timeout(60_000)
        network = Network(page)
        page.goto(server)
        teach(page, network)
        log = train(page)
        assert re.search(r"digitnet on imagefolder \(6 train, 0 val, 0 test\)", log)
        assert try_pad_ready(page), "the trained model answers in the page"
        for name, shape in SHAPES.items():
            assert ask(page, shape, cleared=False) == name
            assert "answered in this page" in page.inner_text("#own-try .tv-status")
            page.click("#own-try .tv-clear")
        page.screenshot(path=str(ARTIFACTS / "own-tab.png"), full_page=True)
        page.locator("#own-onnx").click()  # the model to take anywhere
        with page.expect_download() as download:
            page.locator("#own-onnx-file a").first.click()
        saved = tmp_path / "mine.onnx"
        download.value.save_as(saved)
    meta = ort.InferenceSession(str(saved)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == list(SHAPES) and meta["kind"] == "sketch"
