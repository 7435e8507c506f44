"""The predictor tabs' answers on real inputs, and the app's API through gradio_client against a
live local server."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench import pendigits
from bench.latency import sketch_payload
from bench.serving import api_client, serve_app
from conftest import ROOT
from core.datasets import CIFAR10_CLASSES
from core.kinds import DIGITS, PHOTOS
from core.preparation import InputError
from core.services.answers import Answers
from core.services.shelf import Shelf
from core.services.texts import EMPTY_PHOTO, EMPTY_SKETCH, GENERIC_ERROR
from core.strokes import layout_strokes, render

CAT = ROOT / "examples" / "photos" / "cat.jpg"
HORSE = ROOT / "examples" / "photos" / "horse.png"  # RGBA
CIFAR_CLASSES = set(CIFAR10_CLASSES)


@pytest.fixture(scope="module")
def answers():
    return Answers(Shelf())


@pytest.fixture(scope="module")
def pen():
    return pendigits.load()[::50]  # 35 digits from every writer


def test_every_shipped_checkpoint_loads_and_both_tabs_have_a_model(answers):
    shelf = answers.shelf
    shipped = sorted(p.stem for p in (ROOT / "checkpoints").glob("*.pt"))
    assert sorted(shelf.models) == shipped
    assert shelf.default(DIGITS) == "handwriting-digitnet"
    assert shelf.default(PHOTOS) is not None
    for tab in (DIGITS, PHOTOS):
        for label, key in shelf.choices(tab):
            assert key in shelf.models and label


def _canvas(digit, size, ink, background, layout="big"):
    channels = len(background)
    rgb = render(layout_strokes(digit["strokes"], size, layout), size, size / 16)
    mask = rgb[..., 0] < 128
    out = np.empty((size, size, channels), np.uint8)
    out[:] = background
    out[mask] = ink
    return out


SKETCH_STYLES = {
    "black on white, 400": (400, (0, 0, 0), (255, 255, 255)),
    "white on black, 280": (280, (255, 255, 255), (0, 0, 0)),
    "blue on transparent RGBA, 600": (600, (20, 40, 200, 255), (0, 0, 0, 0)),
    "black on white RGBA, 800": (800, (0, 0, 0, 255), (255, 255, 255, 255)),
}


@pytest.mark.parametrize("style", SKETCH_STYLES)
def test_predict_digit_on_real_pen_digits_in_any_canvas_style(answers, pen, style):
    size, ink, background = SKETCH_STYLES[style]
    correct = 0
    for d in pen:
        label, seen, status = answers.predict_digit({"composite": _canvas(d, size, ink, background),
                                                     "layers": []}, "mnist-digitnet")
        assert set(label) <= set("0123456789") and len(label) == 3
        # The top 3 of ten probabilities: each in [0, 1], most likely first, together at most the
        # whole.
        probs = list(label.values())
        assert all(0 <= p <= 1 for p in probs) and probs == sorted(probs, reverse=True)
        assert 0.5 < sum(probs) <= 1 + 1e-6
        assert seen.shape[0] == seen.shape[1] >= 28 and seen.dtype == np.uint8
        assert "answered by" in status
        correct += max(label, key=label.get) == str(d["label"])
    assert correct / len(pen) >= 0.9, f"{correct}/{len(pen)}"


def test_sketch_from_layers_only_is_read(answers, pen):
    layer = _canvas(pen[0], 400, (0, 0, 0, 255), (0, 0, 0, 0))
    label, _, _ = answers.predict_digit({"background": None, "layers": [layer], "composite": None})
    assert max(label, key=label.get) == str(pen[0]["label"])


@pytest.mark.parametrize("sketch", [None, {"composite": np.full((400, 400, 3), 255, np.uint8),
                                           "layers": []}, {"composite": np.zeros((300, 500, 4),
                                                                                 np.uint8),
                                                           "layers": []}])
def test_empty_canvas_asks_for_a_digit(answers, sketch):
    assert answers.predict_digit(sketch) == (None, None, EMPTY_SKETCH)


def test_unknown_or_wrong_kind_of_model_is_refused(answers):
    with pytest.raises(InputError, match="unknown model"):
        answers.predict_digit(None, "no-such-model")
    with pytest.raises(InputError, match="unknown model"):
        answers.predict_digit(None, answers.shelf.default(PHOTOS))
    with pytest.raises(InputError, match="unknown model"):
        answers.classify_image(None, 42)


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


def test_classify_real_photos_in_many_modes(answers, tmp_path):
    cat = Image.open(CAT)
    inputs = {"jpeg": str(CAT), "rgba png": str(HORSE), "grey": _save(cat.convert("L"),
                                                                      tmp_path / "grey.png"),
              "16-bit": _save(Image.fromarray(np.asarray(cat.convert("L"), np.uint16) * 257),
                              tmp_path / "16.png"), "palette": _save(cat.convert("P"),
                                                                     tmp_path / "pal.png"),
              "cmyk": _save(cat.convert("CMYK"), tmp_path / "cmyk.jpg"),
              "gradio payload": {"path": str(CAT), "orig_name": "cat.jpg"},}
    for name, value in inputs.items():
        label, seen, status = answers.classify_image(value)
        assert set(label) <= CIFAR_CLASSES and len(label) == 5, name
        assert seen.ndim == 3 and seen.shape[2] == 3, name
        assert "answered by" in status, name


def test_no_photo_shows_the_prompt(answers):
    assert answers.classify_image(None) == (None, None, EMPTY_PHOTO)


def test_bad_photos_are_clear_input_errors(answers, tmp_path):
    raw = (ROOT / "examples" / "photos" / "cat.jpg").read_bytes()
    cases = {
        "truncated.jpg": (raw[: len(raw) // 3], "could not be decoded|truncated"),
        "text.png": (b"hello, I am not a picture", "not an image"),
        "empty.png": (b"", "empty|not an image"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=message):
            answers.classify_image(str(path))
    tiny = _save(Image.new("RGB", (1, 1), "red"), tmp_path / "one.png")
    with pytest.raises(InputError, match="1x1 pixels"):
        answers.classify_image(tiny)
    huge = _save(Image.new("L", (8000, 8000)), tmp_path / "huge.png")
    with pytest.raises(InputError, match="too large|pixels"):
        answers.classify_image(huge)
    with pytest.raises(InputError):
        answers.classify_image(12345)


# ------------------------------------------------------------------------------------------------
# The API through gradio_client

@pytest.fixture(scope="module")
def served_shelf():
    return Shelf()


@pytest.fixture(scope="module")
def client(served_shelf):
    with serve_app(shelf=served_shelf) as url:
        yield api_client(url)


def _sketch_payload(array: np.ndarray, path) -> dict:
    Image.fromarray(array).save(path)
    return sketch_payload(path)


def test_api_lists_both_endpoints(client):
    endpoints = client.view_api(return_format="dict")["named_endpoints"]
    assert {"/predict_digit", "/classify_image"} <= set(endpoints)


def test_api_predict_digit_on_a_real_pen_digit(client, pen, tmp_path):
    d = pen[1]
    label, seen, status = client.predict(_sketch_payload(_canvas(d, 400, (0, 0, 0), (255, 255,
                                                                                     255)),
                                                         tmp_path / "d.png"), "mnist-digitnet",
                                         api_name="/predict_digit")
    assert label["label"] == str(d["label"])
    assert len(label["confidences"]) == 3
    assert Image.open(seen).size[0] >= 28
    assert "answered by" in status


def test_api_classify_image(client):
    from gradio_client import handle_file

    label, seen, status = client.predict(handle_file(str(CAT)), None, api_name="/classify_image")
    assert label["label"] in CIFAR_CLASSES and len(label["confidences"]) == 5
    assert "answered by" in status


def test_api_same_photo_from_many_clients_at_once_gets_whole_images(client):
    """Identical answers must not share one cache file that every request rewrites (a download that
    read it while another request truncated it got an empty body): each answer's image is its own
    file, complete."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import handle_file

    def classify(_):
        return client.predict(handle_file(str(CAT)), None, api_name="/classify_image")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(classify, range(24)))
    tags = set()
    for label, seen, _ in answers:
        with Image.open(seen) as image:
            image.load()
            tags.add(image.info.get("answer"))
        assert label["label"] == answers[0][0]["label"]
    assert None not in tags and len(tags) == len(answers)


def test_api_bad_inputs_are_clear_errors_and_the_app_keeps_serving(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    text = tmp_path / "fake.png"
    text.write_bytes(b"definitely not a png")
    tiny = _save(Image.new("RGB", (1, 1)), tmp_path / "tiny.png")
    cases = [
        ((handle_file(str(text)), None), "/classify_image", "not an image"),
        ((handle_file(tiny), None), "/classify_image", "1x1"),
        (
            (handle_file(str(CAT)), "../../etc/passwd"),
            "/classify_image",
            "unknown model|not in the list of choices",
        ),
        ((None, "no-such-model"), "/predict_digit", "unknown model|not in the list of choices"),
        (("a string, not an image", None), "/classify_image", "^expected an uploaded image file"),
        ((12345, None), "/predict_digit", "^expected an uploaded image file"),
        (
            ({"composite": 5, "layers": "x"}, None),
            "/predict_digit",
            "^expected an uploaded image file",
        ),
    ]
    for args, api, message in cases:
        with pytest.raises(AppError, match=message) as info:
            client.predict(*args, api_name=api)
        assert "Traceback" not in str(info.value)
    empty = _sketch_payload(np.full((200, 200, 3), 255, np.uint8), tmp_path / "blank.png")
    label, seen, status = client.predict(empty, None, api_name="/predict_digit")
    assert not label and seen is None and "Draw a digit" in status
    label, _, _ = client.predict(handle_file(str(HORSE)), None, api_name="/classify_image")
    assert label["label"] in CIFAR_CLASSES


def test_api_an_unexpected_error_is_generic_for_the_caller_and_logged_in_full(client, served_shelf,
                                                                              monkeypatch, caplog):
    """Only messages written for users reach them: a server error's text (here naming a server path)
    stays in the log, with its traceback, and the caller gets the generic message."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError


    def broken(*args, **kwargs):
        raise RuntimeError("/srv/tinyvision/private/checkpoints/x.pt: disk on fire")

    monkeypatch.setattr(served_shelf, "predictor", broken)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(CAT)), None, api_name="/classify_image")
    assert str(info.value) == GENERIC_ERROR
    logged = [r for r in caplog.records if r.exc_info and "disk on fire" in str(r.exc_info[1])]
    assert logged, "the traceback is in the server's log"
    monkeypatch.undo()
    label, _, _ = client.predict(handle_file(str(CAT)), None, api_name="/classify_image")
    assert label["label"] in CIFAR_CLASSES
