"""What the page loads beside Gradio's own files (core.services.page_assets, page_models): the
pinned runtime, the digit models as ONNX + JSON, served with year-long caching and compression, and
the server's answer to a drawing when the page cannot answer it itself."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.kinds import DIGITS
from core.predictor import Predictor
from core.preparation import SKETCH, InputError, open_drawing, sketch_to_digit
from core.services.answers import Answers
from core.services.page_assets import RUNTIME, PageAssets, runtime_sources, sri
from core.services.page_models import WEB_MAX_IR, WEB_MAX_OPSET, PageModels, describe
from core.services.shelf import CHECKPOINT_DIR, Shelf
from core.strokes import layout_strokes, render

ROOT = Path(__file__).resolve().parents[1]


def _client(assets: PageAssets) -> TestClient:
    return TestClient(Starlette(routes=[assets.route()]))


def test_files_are_served_by_their_hash_cached_for_a_year_and_compressed_once(tmp_path):
    assets = PageAssets(tmp_path / "cache")
    body = b"const answer = 42;\n" * 500
    url = assets.add("pad.js", body)
    assert url.startswith("gradio_api/tv/") and url.endswith("/pad.js")
    assert assets.add("pad.js", body) == url and assets.add("pad.js", body + b"//") != url
    client = _client(assets)
    r = client.get("/" + url, headers={"Accept-Encoding": "br, gzip"})
    assert r.status_code == 200 and r.content == body  # the client undoes the encoding
    assert r.headers["content-encoding"] == "br" and "immutable" in r.headers["cache-control"]
    assert r.headers["content-type"].startswith("text/javascript")
    etag = r.headers["etag"].replace("-br", "-gzip")
    again = client.get("/" + url, headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    plain = client.get("/" + url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == body
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        f"{url.split('/')[-2]}.{e}" for e in ("br", "gzip"))  # kept for the next start
    assert client.get("/gradio_api/tv/0000/pad.js").status_code == 404
    assets.remove(url)
    assert client.get("/" + url).status_code == 404


def test_a_file_that_cannot_be_made_is_no_server_error_for_the_page(tmp_path):
    assets = PageAssets()
    url = assets.add_made("model.onnx", "feedface", lambda: 1 / 0)
    r = _client(assets).get("/" + url)
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"


def test_the_runtime_is_pinned_once_and_served_only_as_installed(tmp_path):
    package = json.loads((ROOT / "package.json").read_text())
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pinned = RUNTIME["version"]
    assert package["dependencies"][RUNTIME["package"]] == pinned
    assert lock["packages"][f"node_modules/{RUNTIME['package']}"]["version"] == pinned
    assert RUNTIME["cdn"].endswith(f"{RUNTIME['package']}@{pinned}/")
    installed = ROOT / "node_modules" / RUNTIME["package"]
    assert installed.is_dir(), "`npm ci` installs the page's runtime (.ci/run does)"
    for part in ("module", "wasm"):  # the CDN copy is checked against the installed bytes
        assert sri((installed / RUNTIME[part]).read_bytes()) == RUNTIME["integrity"][part]
    assets = PageAssets()
    sources = runtime_sources(assets)
    assert sources["local"] and sources["cdn"]["integrity"] == RUNTIME["integrity"]
    wasm = _client(assets).get("/" + sources["local"]["wasm"], headers={"Accept-Encoding": "br"})
    assert wasm.headers["content-type"] == "application/wasm"
    assert int(wasm.headers["content-length"]) < 4 << 20  # 14.8 MB, sent as about 2.9 MB
    # Without `npm ci`, the page is sent to the CDN copy only.
    assert runtime_sources(PageAssets(), tmp_path / "no_node_modules")["local"] is None


def test_a_digit_model_becomes_an_onnx_file_the_runtime_reads_and_its_description(tmp_path):
    shelf = Shelf()
    predictor = shelf.models["handwriting-digitnet"]
    assets = PageAssets()
    pads = PageModels(assets, tmp_path / "onnx", shelf.folder)
    spec = pads.spec(predictor)
    assert pads.spec(predictor) == spec and pads.spec(shelf.models["cifar10-cifarnet"]) is None
    model = onnx.load_from_string(assets.data(spec["onnx"]))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert model.ir_version <= WEB_MAX_IR and opset <= WEB_MAX_OPSET
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1  # the shipped folder is untouched
    meta = json.loads(assets.data(spec["meta"]))
    assert meta == json.loads(json.dumps(describe(predictor)))
    assert meta["classes"] == [str(i) for i in range(10)] and meta["top_k"] == 3
    assert meta["preparation"] == SKETCH and meta["unsure_threshold"] == predictor.unsure_threshold
    assert meta["unsure_message"].startswith("Not sure: this does not look like any of 0, 1")


def test_a_visitors_model_is_exported_beside_its_checkpoint(tmp_path):
    run = tmp_path / "run-1"
    run.mkdir()
    (run / "mine.pt").write_bytes((ROOT / "checkpoints" / "mnist-digitnet.pt").read_bytes())
    assets = PageAssets()
    pads = PageModels(assets, tmp_path / "onnx", CHECKPOINT_DIR)
    spec = pads.spec(Predictor.load(run / "mine.pt"))
    assert assets.data(spec["onnx"]) == (run / "mine.onnx").read_bytes()
    assert not (tmp_path / "onnx").exists()


def _png_url(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_drawing_from_the_page_is_read_with_the_apps_limits():
    canvas = render(layout_strokes([[(250, 100), (250, 400)]], 400, "big"), 400, 12)
    assert np.array_equal(open_drawing(_png_url(canvas)), canvas)
    for bad, message in [(None, "expected a drawing"), ("data:image/jpeg;base64,AAAA",
                                                        "expected a drawing"),
                         ("data:image/png;base64,!!!", "not base64"),
                         ("data:image/png;base64," + base64.b64encode(b"nope").decode(),
                          "not an image"),
                         ("data:image/png;base64," + "A" * (5 << 20), "larger than")]:
        with pytest.raises(InputError, match=message):
            open_drawing(bad)


def test_the_servers_answer_to_a_drawing_says_which_drawing_and_what_the_model_saw():
    answers = Answers(Shelf())
    canvas = render(layout_strokes([[(150, 450), (350, 450), (220, 50)]], 400, "big"), 400, 12)
    reply = answers.drawing_answer({"id": 7, "png": _png_url(canvas)}, None, {})
    assert reply["id"] == 7 and reply["label"] == "7" and len(reply["top"]) == 3
    assert np.allclose(np.array(reply["digit"]).reshape(28, 28), sketch_to_digit(canvas),
                       atol=1e-4)
    blank = answers.drawing_answer({"id": 8, "png": _png_url(np.full((400, 400, 3), 255,
                                                                     np.uint8))}, None, {})
    assert blank["id"] == 8 and blank["label"] is None and blank["digit"] is None
    refused = answers.drawing_answer({"id": True, "png": "not a drawing"}, None, {})
    assert refused["id"] is None and refused["label"] is None and "expected a drawing" in \
        refused["error"]
    wrong = answers.drawing_answer({"id": 9, "png": _png_url(canvas)}, "cifar10-cifarnet", {})
    assert "unknown model" in wrong["error"] and wrong["id"] == 9
    assert answers.shelf.default(DIGITS) == "handwriting-digitnet"


def test_the_app_serves_the_page_files_beside_gradio(tmp_path):
    import urllib.request

    from bench.serving import serve_app

    with serve_app() as url:
        html = urllib.request.urlopen(url).read().decode()
        assert "gradio_api/tv/" in html or "gradio_api/tv/" in urllib.request.urlopen(
            url + "config").read().decode()
        config = json.loads(urllib.request.urlopen(url + "config").read())
        pad = next(c for c in config["components"] if c.get("props", {}).get("elem_id") == "sketch")
        props = pad["props"].get("props", pad["props"])
        model = props["model"]
        request = urllib.request.Request(url + model["onnx"], headers={"Accept-Encoding": "br"})
        with urllib.request.urlopen(request, timeout=120) as r:
            assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
            assert r.headers["Content-Encoding"] == "br"
        assert props["runtime"]["local"] and props["preparation"] == SKETCH


def test_compression_runs_once_in_the_background(tmp_path):
    assets = PageAssets(tmp_path)
    url = assets.add("a.json", b'{"x": 1}' * 1000)
    assets.compress_all().join(30)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".br", ".gzip"]
    assert url.endswith("/a.json")
