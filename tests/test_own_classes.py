"""Your own classes: class names, examples, .zip import/export (and every archive that must be
refused), the training config, transfer from a checkpoint, and the /train_own endpoint."""
import base64
import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.bad_inputs import zip_of
from core import checkpoint as ckpt
from core import models
from core import train as T
from core.folders import FOLDER_RECORD
from core.predictor import Predictor
from core.preparation import InputError
from core.services.archives import MAX_CLASSES, MAX_ZIP_ENTRIES, archive_kind
from core.services.own_classes import (
    ClassFolders,
    ExampleSet,
    check_class_name,
    sweep_sessions,
    train_own,
)
from core.services.runs import Trainer
from core.services.settings import ServerSettings
from core.services.shelf import Shelf
from core.transfer import load_source

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIGITS = str(ROOT / "checkpoints" / "handwriting-digitnet.pt")
ROOT_PHOTO = sorted((ROOT / "examples" / "photos").glob("*.[jp][pn]g"))[0]


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _canvas(shape: str, jitter: int = 0) -> np.ndarray:
    """A 400x400 white canvas with a black circle or cross (as a visitor would draw it), moved by
    `jitter`."""
    yy, xx = np.mgrid[:400, :400]
    cy, cx = 200 + jitter, 200 - jitter
    if shape == "circle":
        ink = np.abs(np.hypot(yy - cy, xx - cx) - (110 + jitter)) < 7
    else:
        ink = (np.abs((yy - cy) - (xx - cx)) < 9) | (np.abs((yy - cy) + (xx - cx)) < 9)
        ink &= (np.abs(yy - cy) < 120) & (np.abs(xx - cx) < 120)
    return np.where(ink[..., None], 0, 255).astype(np.uint8).repeat(3, 2)


def _photo(colour, size=48) -> bytes:
    rng = np.random.default_rng(sum(colour))
    a = np.clip(np.array(colour, np.float32) + rng.normal(0, 20, (size, size, 3)), 0,
                255).astype(np.uint8)
    return _png(a)


def _sketches(tmp_path, per_class=4) -> ExampleSet:
    ex = ExampleSet(tmp_path / "sketch", "sketch")
    for shape in ("circle", "cross"):
        ex.add_class(shape)
        for j in range(per_class):
            ex.add_sketch(shape, {"composite": _canvas(shape, 6 * j - 9)})
    return ex


# -- names and examples ---------------------------------------------------------------------------

@pytest.mark.parametrize("name",
                         ["", "   ", "a/b", "a\\b", "nul\x00", "x" * 41, "x" * 1000, ".hidden",
                          "..", "a:b"])
def test_bad_class_names_are_refused(name):
    with pytest.raises(InputError, match="class name"):
        check_class_name(name)


def test_classes_are_added_renamed_and_removed(tmp_path):
    ex = ExampleSet(tmp_path / "own", "sketch")
    assert ex.add_class("  circle ") == "circle"
    with pytest.raises(InputError, match="already"):
        ex.add_class("Circle")
    ex.add_class("cross")
    assert ex.rename_class("cross", "plus") == "plus"
    assert list(ex.counts()) == ["circle", "plus"]
    ex.remove_class("plus")
    assert list(ex.counts()) == ["circle"]
    with pytest.raises(InputError, match="no class"):
        ex.remove_class("plus")
    for i in range(MAX_CLASSES - 1):
        ex.add_class(f"c{i}")
    with pytest.raises(InputError, match=f"at most {MAX_CLASSES}"):
        ex.add_class("one too many")


def test_sketches_are_stored_and_an_empty_pad_is_refused(tmp_path):
    ex = _sketches(tmp_path, per_class=2)
    assert ex.counts() == {"circle": 2, "cross": 2}
    assert "Ready to train" in ex.summary() and len(ex.gallery("circle")) == 2
    with pytest.raises(InputError, match="draw something"):
        ex.add_sketch("circle", {"composite": np.full((400, 400, 3), 255, np.uint8)})
    with pytest.raises(InputError, match="no class"):
        ex.add_sketch("square", {"composite": _canvas("circle")})
    with pytest.raises(InputError, match="not an image"):
        ex.add_sketch("circle", {"composite": None, "background": None,
                                 "layers": [_canvas("circle")]})
    with pytest.raises(InputError, match="expected a drawing"):
        ex.add_sketch("circle", "/etc/hostname")  # a path is no drawing: nothing is opened
    # What the page's pad sends: the drawing as a PNG data URL.
    buffer = io.BytesIO()
    Image.fromarray(_canvas("circle")).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    stored = ex.add_sketch("circle", url)
    assert np.array_equal(np.asarray(Image.open(stored)), _canvas("circle")[..., 0])


def test_uploaded_images_are_checked_and_the_bad_ones_counted(tmp_path):
    ex = ExampleSet(tmp_path / "photo", "photo")
    ex.add_class("red")
    files = [_photo((200, 30, 30)), _photo((210, 40, 20),
                                           size=2000), b"not an image", _png(np.zeros((1, 1, 3),
                                                                                      np.uint8))]
    report = ex.add_images("red", files)
    assert report.added == {"red": 2}
    assert report.skipped == {"files that are not readable images": 1,
                              "images that are too small": 1}
    stored = ex.classes()["red"]
    assert all(max(Image.open(f).size) <= 256 for f in stored)  # kept small; the models see 32 px
    assert "skipped 1 files that are not readable images" in report.message()


def test_a_huge_image_is_refused_before_it_is_decoded(tmp_path):
    ex = ExampleSet(tmp_path / "photo", "photo")
    ex.add_class("big")
    buf = io.BytesIO()
    # 20,000 x 20,000: compresses to a few hundred KB
    Image.new("L", (20_000, 20_000)).save(buf, format="PNG")
    report = ex.add_images("big", [buf.getvalue()])
    assert report.added == {} and report.skipped == {"images that are too large": 1}


def test_training_needs_two_classes_of_two_examples(tmp_path):
    ex = ExampleSet(tmp_path / "sketch", "sketch")
    with pytest.raises(InputError, match="at least 2 classes"):
        ex.train_config(None)
    ex.add_class("circle")
    ex.add_sketch("circle", {"composite": _canvas("circle")})
    ex.add_class("cross")
    with pytest.raises(InputError, match="at least 2 classes|at least 2 examples"):
        ex.train_config(None)
    ex.add_sketch("cross", {"composite": _canvas("cross")})
    with pytest.raises(InputError, match=r"add more to circle \(1\), cross \(1\)"):
        ex.train_config(None)


# -- archives -------------------------------------------------------------------------------------

def test_examples_round_trip_through_a_zip(tmp_path):
    ex = _sketches(tmp_path, per_class=2)
    archive = ex.export_zip(tmp_path / "mine.zip")
    assert archive_kind(archive) == "sketch"
    again = ExampleSet(tmp_path / "again", "sketch")
    report = again.import_zip(archive)
    assert report.added == {"circle": 2, "cross": 2} and again.counts() == ex.counts()
    photos = ExampleSet(tmp_path / "photos", "photo")
    with pytest.raises(InputError, match="holds sketch examples"):
        photos.import_zip(archive)


def test_a_zip_of_class_folders_under_one_top_folder(tmp_path):
    entries = {"shapes/": b"", "shapes/red/a.png": _photo((200, 0, 0)),
               "shapes/red/b.png": _photo((190, 10, 0)), "shapes/blue/a.png": _photo((0, 0, 200)),
               "shapes/blue/notes.txt": b"hello", "__MACOSX/shapes/._a.png": b"junk",
               "shapes/.DS_Store": b"junk"}
    ex = ExampleSet(tmp_path / "photo", "photo")
    report = ex.import_zip(zip_of(tmp_path / "a.zip", entries))
    assert ex.counts() == {"blue": 1, "red": 2}
    assert report.skipped == {"files that are not images": 1}


@pytest.mark.parametrize("entries,links,message", [
    ({"../evil/a.png": b"x"}, (), "unsafe path"),
    ({"/etc/evil/a.png": b"x"}, (), "unsafe path"),
    ({"red\\a.png": b"x"}, (), "unsafe path"),
    ({"red/link.png": b"/etc/passwd"}, ("red/link.png",), "symbolic link"),
    ({"red/inner.zip": b"PK"}, (), "another archive"),
    ({"a.png": b"x"}, (), "not in class folders"),
    ({}, (), "no files"),
])
def test_unsafe_or_useless_archives_are_refused(tmp_path, entries, links, message):
    ex = ExampleSet(tmp_path / "photo", "photo")
    with pytest.raises(InputError, match=message):
        ex.import_zip(zip_of(tmp_path / "bad.zip", entries, links))
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()
    assert ex.counts() == {}


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path):
    # 50 MB of zeros: ~50 KB packed
    bomb = zip_of(tmp_path / "bomb.zip", {"red/a.png": bytes(50 << 20)})
    ex = ExampleSet(tmp_path / "photo", "photo")
    with pytest.raises(InputError, match="times its packed size"):
        ex.import_zip(bomb)
    too_big = zip_of(tmp_path / "big.zip", {f"c{i}/a.png": bytes(45 << 20) for i in range(10)})
    with pytest.raises(InputError, match="unpacks to more than"):
        ex.import_zip(too_big)


def test_too_many_entries_or_classes_and_files_that_are_not_zips(tmp_path):
    ex = ExampleSet(tmp_path / "photo", "photo")
    many = zip_of(tmp_path / "many.zip", {f"c/{i}.png": b"" for i in range(MAX_ZIP_ENTRIES + 1)})
    with pytest.raises(InputError, match="entries"):
        ex.import_zip(many)
    for n, message in ((30, "30 class folders; at most 20"), (10_000, "10000 entries")):
        with pytest.raises(InputError, match=message):
            ex.import_zip(zip_of(tmp_path / f"classes{n}.zip",
                                 {f"c{i}/a.png": b"x" for i in range(n)}))
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(InputError, match="not a .zip"):
        ex.import_zip(tmp_path / "fake.zip")
    long_name = zip_of(tmp_path / "long.zip", {("x" * 1000) + "/a.png": _photo((1, 2, 3))})
    with pytest.raises(InputError, match="class name"):
        ex.import_zip(long_name)
    assert ex.counts() == {}


def test_old_session_folders_are_swept(tmp_path):
    for name in ("gone", "here", "stale"):
        (tmp_path / name / "sketch").mkdir(parents=True)
    ended = {"gone": time.time() - 3700}
    removed = sweep_sessions(tmp_path, ended, now=time.time())
    assert removed == ["gone"] and ended == {}
    assert sorted(sweep_sessions(tmp_path, {}, now=time.time() + 2 * 86_400)) == ["here", "stale"]


# -- training -------------------------------------------------------------------------------------

def test_transfer_copies_every_weight_but_the_head():
    source = models.create_model("digitnet", 10, 1, 28)
    target = models.create_model("digitnet", 3, 1, 28)
    head, _ = models.head_of(target)
    assert models.transfer_weights(target, source) == len(target.state_dict()) - 2
    for k, v in target.state_dict().items():
        if not k.startswith(head + "."):
            assert torch.equal(v, source.state_dict()[k])
    models.freeze_backbone(target)
    assert [n for n, p in target.named_parameters() if p.requires_grad] == [f"{head}.weight",
                                                                            f"{head}.bias"]


def test_sketch_classes_train_from_the_shipped_digit_model(tmp_path):
    ex = _sketches(tmp_path, per_class=5)
    cfg = ex.train_config(SHIPPED_DIGITS, fine_tune=True)
    assert cfg.kind == "sketch" and cfg.model == "digitnet" and not cfg.freeze_backbone
    out = tmp_path / "own.pt"
    *_, end = T.train(cfg.__class__(**{**cfg.__dict__, "out": str(out)}))
    assert end["test_acc"] == 1.0  # one held-out drawing of each class
    payload = ckpt.load_checkpoint(out)
    assert payload["kind"] == "sketch" and payload["classes"] == ["circle", "cross"]
    # The digit model's normalisation, which its features were learnt on
    assert payload["mean"] == [0.1307]
    predictor = Predictor.load(out)
    from bench.unsure import letters
    from core.preparation import sketch_to_digit
    for shape in ("circle", "cross"):
        judgement = predictor.judge(sketch_to_digit({"composite": _canvas(shape, 15)}))
        assert predictor.classes[int(np.argmax(judgement.probs))] == shape and not judgement.unsure
    # Its "not sure" threshold was fitted on augmented views of the few examples: letters are none
    # of its classes.
    typed = [
        predictor.judge(sketch_to_digit({"composite": a})).unsure
        for a in letters(10, np.random.default_rng(0))
    ]
    assert sum(typed) >= 6


def test_photo_classes_train_from_the_shipped_photo_model(tmp_path):
    ex = ExampleSet(tmp_path / "photo", "photo")
    for name, colour in (("red", (210, 30, 30)), ("blue", (30, 30, 210))):
        ex.add_class(name)
        ex.add_images(name, [_photo(tuple(max(0, c - 12 * j) for c in colour)) for j in range(3)])
    cfg = ex.train_config(str(ROOT / "checkpoints" / "cifar10-cifarnet.pt"))
    assert cfg.model == "cifarnet" and cfg.kind == "photo" and cfg.batch_size == 6
    out = tmp_path / "photos.pt"
    for _ in T.train(cfg.__class__(**{**cfg.__dict__, "out": str(out)})):
        pass
    predictor = Predictor.load(out)
    assert predictor.kind == "photo" and predictor.name.startswith("cifarnet (blue, red")
    from core.preparation import photo_to_input
    for name, colour in (("red", (190, 40, 40)), ("blue", (40, 40, 190))):
        probs = predictor.probabilities(photo_to_input(_photo(colour, size=64)))
        assert predictor.classes[int(np.argmax(probs))] == name


def test_frozen_backbone_keeps_the_features(tmp_path):
    ex = _sketches(tmp_path, per_class=3)
    cfg = ex.train_config(SHIPPED_DIGITS, fine_tune=False)
    out = tmp_path / "frozen.pt"
    for _ in T.train(cfg.__class__(**{**cfg.__dict__, "out": str(out), "epochs": 3})):
        pass
    # The features it started from: the shipped net's (an ensemble's first member, core.transfer).
    trained, shipped = (
        ckpt.load_checkpoint(out)["state_dict"],
        load_source(SHIPPED_DIGITS).net.state_dict(),
    )
    kept = [k for k in trained if not k.startswith("head.")]
    assert kept and all(torch.equal(trained[k], shipped[k]) for k in kept)


def test_a_checkpoint_that_does_not_fit_the_data_is_refused_with_the_fix(tmp_path):
    ex = ExampleSet(tmp_path / "photo", "photo")
    for name, colour in (("red", (200, 0, 0)), ("blue", (0, 0, 200))):
        ex.add_class(name)
        ex.add_images(name, [_photo(colour), _photo(tuple(c // 2 for c in colour))])
    cfg = T.TrainConfig(dataset="imagefolder", model="digitnet", data_root=str(ex.folder),
                        kind="photo", init_from=SHIPPED_DIGITS, epochs=1)
    with pytest.raises(ValueError,
                       match=r"takes 1x28x28 images but this data is 3x28x28.*--channels 1"):
        list(T.train(cfg))
    with pytest.raises(ValueError, match="holds a digitnet"):
        list(T.train(T.TrainConfig(dataset="imagefolder", model="lenet", data_root=str(ex.folder),
                                   init_from=SHIPPED_DIGITS)))
    with pytest.raises(ValueError, match="needs a checkpoint to start from"):
        list(T.train(T.TrainConfig(dataset="imagefolder", data_root=str(ex.folder),
                                   freeze_backbone=True)))


def test_cli_transfer_on_a_sketch_folder(tmp_path, capsys):
    ex = _sketches(tmp_path, per_class=5)
    # A folder of drawings made elsewhere: the kind is asked for
    (ex.folder / FOLDER_RECORD).unlink()
    out = tmp_path / "cli.pt"
    rc = T.main(["--dataset", "imagefolder", "--data-root", str(ex.folder), "--kind", "sketch",
                 "--init-from", SHIPPED_DIGITS, "--freeze-backbone", "--epochs", "2", "--out",
                 str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and 0.0 <= summary["test_acc"] <= 1.0
    payload = ckpt.load_checkpoint(out)
    assert payload["kind"] == "sketch" and payload["input_shape"] == [1, 28, 28]
    # the starting checkpoint by its name: a run's record holds no paths of the machine it ran on
    assert payload["config"]["init_from"] == Path(SHIPPED_DIGITS).name
    assert payload["config"]["freeze_backbone"] is True


def test_the_service_streams_a_run_on_own_classes(tmp_path):
    service = Trainer(ServerSettings.make(runs_root=tmp_path / "runs"))
    folders = ClassFolders(tmp_path / "runs" / "classes")
    ex = folders.examples("visitor1", "sketch")
    for shape in ("circle", "cross"):
        ex.add_class(shape)
        for j in range(3):
            ex.add_sketch(shape, {"composite": _canvas(shape, 5 * j)})
    t0 = time.monotonic()
    shelf = Shelf()
    assert str(shelf.start_point("sketch")) == SHIPPED_DIGITS
    updates = list(train_own(service, shelf, ex, "transfer", True, "visitor1"))
    seconds = time.monotonic() - t0
    last = updates[-1]
    assert last["run"]["checkpoint"] and "done" in last["log"] and "curves" in last
    # 200 one-step epochs: figures are drawn at most every PLOT_EVERY_S, progress lines at most four
    # times a second.
    assert len(last["table"]) == 200
    assert sum("curves" in u for u in updates) <= seconds / service.plot_every_s + 2
    assert sum(set(u) == {"progress"} for u in updates) <= seconds / service.progress_every_s + 2
    # in a folder of the session's own, named by a random id, not by the session's (a credential)
    assert ex.folder.parent.parent == folders.root and "visitor1" not in str(ex.folder)
    assert folders.examples("visitor1", "sketch").folder == ex.folder
    assert folders.examples("visitor2", "sketch").folder != ex.folder
    with pytest.raises(InputError, match="kind of examples"):
        folders.examples("visitor1", "video")
    with pytest.raises(InputError, match="true or false"):
        list(train_own(service, shelf, ex, "scratch", "yes", ""))


# -- through the API of a launched app ------------------------------------------------------------

def test_train_own_endpoint_trains_on_a_zip_and_refuses_a_bad_one(tmp_path, data_root):
    from gradio_client import handle_file

    from bench.serving import api_client, serve_app

    archive = _sketches(tmp_path, per_class=5).export_zip(tmp_path / "shapes.zip")
    (tmp_path / "bad.zip").write_bytes(b"not a zip at all")
    with serve_app(settings=ServerSettings.make(runs_root=tmp_path / "runs",
                                                data_root=data_root)) as url:
        client = api_client(url)
        api = client.view_api(return_format="dict",
                              print_info=False)["named_endpoints"]["/train_own"]
        assert [p["parameter_name"] for p in api["parameters"]] == ["path", "kind", "start"]
        report, checkpoint = client.predict(handle_file(str(archive)), "", "transfer",
                                            api_name="/train_own")
        # One held-out drawing of each class
        assert report["stopped"] is False and report["test_acc"] == 1.0
        payload = ckpt.load_checkpoint(checkpoint)
        assert payload["classes"] == ["circle", "cross"] and payload["kind"] == "sketch"
        with pytest.raises(Exception, match="not a .zip archive"):
            client.predict(handle_file(str(tmp_path / "bad.zip")), "photo", "transfer",
                           api_name="/train_own")
        with pytest.raises(Exception, match="start from 'transfer' or 'scratch'"):
            client.predict(handle_file(str(archive)), "", "magic", api_name="/train_own")
        label, _, _ = client.predict(handle_file(str(ROOT_PHOTO)), api_name="/classify_image")
        assert label["label"]  # still serving
    # The API's examples are not kept
    assert not list((tmp_path / "runs" / "classes").rglob("*.png"))
