"""The Train tab in a real headless Chromium: train, watch it stream, stop, download, use the model elsewhere.

The app runs as `python app.py` in a subprocess, exactly as a visitor's server would. A screenshot of the tab goes to
test-artifacts/ (and docs/train-tab.png, which the README shows).
"""
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = (ROOT / "test-artifacts" / "train-tab.png", ROOT / "docs" / "train-tab.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, data_root):
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "TINYVISION_DATA": str(data_root), "TINYVISION_RUNS": str(tmp_path / "runs"),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the app did not start: {(tmp_path / 'app.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _drawn_one(path: Path) -> Path:
    canvas = np.full((400, 400, 3), 255, np.uint8)
    canvas[80:320, 185:215] = 0
    Image.fromarray(canvas).save(path)
    return path


def _predict_digit(url: str, png: Path) -> str:
    from gradio_client import Client, handle_file

    sketch = {"background": handle_file(str(png)), "layers": [], "composite": handle_file(str(png))}
    label, _, _ = Client(url, verbose=False).predict(sketch, "mnist-digitnet", api_name="/predict_digit")
    return label["label"]


def test_train_tab_streams_stops_downloads_and_offers_the_model(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    png = _drawn_one(tmp_path / "one.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
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

            # Short epochs (512 images, 2 steps) and a step budget, so the run streams several epochs quickly.
            epochs = page.locator("#train-epochs input[type=number]")
            epochs.fill("40")
            epochs.press("Enter")
            page.locator("#train-budget button.label-wrap").click()
            page.locator("#train-max-images input").fill("512")
            page.locator("#train-max-steps input").fill("80")
            page.locator("#train-max-steps input").press("Tab")
            page.locator("#train-start").click()

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
            assert _predict_digit(server, png) == "1"

            page.locator("#train-stop").click()
            expect(page.locator("#train-log textarea")).to_have_value(
                re.compile(r"stopped; the checkpoint of epoch \d+ is kept"), timeout=60_000)
            report = page.locator("#train-report")
            expect(report).to_contain_text("stopped")
            assert _predict_digit(server, png) == "1"

            with page.expect_download() as download:
                page.locator("#train-checkpoint a").first.click()
            saved = tmp_path / "downloaded.pt"
            download.value.save_as(saved)
            meta = ckpt.load_checkpoint(saved)
            assert meta["model"] == "digitnet" and meta["epoch"] >= 2 and "train_state" in meta
            ckpt.build_from_checkpoint(meta)

            page.locator("#train-use").click()
            expect(page.locator("#train-use-status")).to_contain_text("now selected")
            for path in SCREENSHOTS:
                path.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(path), full_page=True)
            page.get_by_role("tab", name="Draw a digit").click()
            chosen = page.locator("#digit-model input")
            expect(chosen).to_have_value(re.compile(r"^yours: digitnet"))
            # A stroke on the canvas is answered by this visitor's own model.
            box = page.locator("#sketch canvas").first.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y - 90)
            page.mouse.down()
            for step in range(1, 19):
                page.mouse.move(x, y - 90 + 10 * step)
            page.mouse.up()
            own_name = chosen.input_value().removeprefix("yours: ")
            expect(page.locator("#digit-status")).to_contain_text(f"answered by {own_name}")
        finally:
            browser.close()
