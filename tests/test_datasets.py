"""The dataset registry: every spec, a tiny synthetic round trip of each loader, the real data on
the data folder, the pen-digit files (UNIPEN text, .Z archives, downloads), and the input kind a
checkpoint carries."""
from __future__ import annotations

import io
import math
import struct
import urllib.request
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from unipen_sample import UNIPEN_1A_TEST, UNIPEN_1A_WRITERS, synthetic_unipen, synthetic_unipen_1a

from bench import handwriting_mix
from conftest import ROOT
from core import checkpoint as ckpt
from core import datasets as DS
from core import imagedata as D
from core import kinds, models, pens, strokes
from core.augment import AUGMENTATIONS
from core.downloads import DOWNLOAD_TIMEOUT_S
from core.evaluate import evaluate_model
from core.imagedata import DataError
from core.kinds import DIGITS, PHOTOS
from core.kinds import NAMES as INPUT_KINDS
from core.predictor import Predictor
from core.preparation import InputError
from core.services.answers import Answers
from core.services.shelf import Shelf, tab_of
from core.train import TrainConfig, build_run
from core.unipen import UnipenError, decompress, parse

SAMPLE_Z = ROOT / "tests" / "fixtures" / "unipen-sample.tra.Z"


def _write_idx(folder, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, h,
                                                                     w) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049,
                                                                     n) + labels.tobytes())


def _idx_root(tmp_path, folder: str, n: int = 20):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / folder / "raw", prefix, rng.integers(0, 256, (n, 28, 28),
                                                                   dtype=np.uint8),
                   (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def _pen_root(tmp_path, text: str | None = None):
    """A data folder with a synthetic pendigits training file and UNIPEN 1a section."""
    (tmp_path / "pendigits").mkdir(parents=True, exist_ok=True)
    (tmp_path / "pendigits" / "pendigits-orig.tra").write_text(text or synthetic_unipen())
    synthetic_unipen_1a(tmp_path)
    return tmp_path


def _folder_root(tmp_path, classes=("a", "b"), n=5, size=12, mode="RGB"):
    for c in classes:
        (tmp_path / c).mkdir(parents=True)
        for i in range(n):
            Image.new(mode, (size, size), (i * 40,) * (3 if mode == "RGB" else 1)).save(
                tmp_path / c / f"{i}.png"
            )
    return tmp_path


# -- the registry ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DS.list_datasets())
def test_every_spec_is_complete_and_consistent(name):
    spec = DS.get_dataset_spec(name)
    assert spec.name == name and spec.label and spec.source and spec.licence
    assert spec.kind in INPUT_KINDS or (spec.kind is None and spec.folder)
    for channels in (1, 3):
        assert (
            spec.kind_for(channels) in INPUT_KINDS and spec.augment_for(channels) in AUGMENTATIONS
        )
        assert isinstance(spec.tta_flip_for(channels), bool)
        assert kinds.get_kind(spec.kind_for(channels)).fast_model in models.list_models()
        for model in models.list_models():
            assert models.default_recipe(model, spec.kind_for(channels))["epochs"] >= 1
    if spec.channels is not None:
        assert (
            len(spec.mean) == len(spec.std) == spec.channels
            and spec.size
            and len(spec.classes) >= 2
        )
    assert all(0 < s for s in spec.std)


def test_a_taken_or_inconsistent_dataset_is_refused():
    spec = DS.get_dataset_spec("mnist")
    with pytest.raises(ValueError, match="registered already"):
        DS.register(spec)
    with pytest.raises(ValueError, match="kind must be"):
        DS.register(DS.DatasetSpec("x-new", "X", spec.loader, "sound", 1, 28, None, (0.5,), (0.2,),
                                   "here", "none"))
    with pytest.raises(ValueError, match="unknown dataset"):
        DS.get_dataset_spec("imagenet")
    assert "x-new" not in DS.list_datasets()


# -- tiny synthetic round trips -------------------------------------------------------------------

@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_idx_datasets_round_trip(tmp_path, name, folder):
    root = _idx_root(tmp_path, folder)
    data = DS.load_dataset(name, "train", root=root, download=False)
    raw = np.frombuffer((root / folder / "raw" / "train-images-idx3-ubyte").read_bytes()[16:],
                        np.uint8)
    assert data.images.shape == (20, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images.flatten(), torch.from_numpy(raw.copy()))
    assert data.labels.tolist() == [i % 10 for i in range(20)]
    spec = DS.get_dataset_spec(name)
    assert data.classes == list(spec.classes) and (data.kind, data.mean) == (spec.kind, spec.mean)


def test_fashion_is_greyscale_with_its_own_augmentation_and_recipe(tmp_path):
    data = DS.load_dataset("fashion-mnist", "test", root=_idx_root(tmp_path, "FashionMNIST"),
                           download=False)
    digits = DS.load_dataset("mnist", "test", root=_idx_root(tmp_path, "MNIST"), download=False)
    assert (data.kind, data.augment, data.tta_flip) == ("greyscale", "shift-flip", True)
    assert (digits.kind, digits.augment, digits.tta_flip) == ("sketch", "digits", False)
    assert models.default_recipe("digitnet", "greyscale") != models.default_recipe("digitnet",
                                                                                   "sketch")


def test_cifar_jpeg_folder_round_trip(tmp_path):
    for split in ("train", "test"):
        for c in DS.CIFAR10_CLASSES:
            (tmp_path / "cifar10-jpeg" / split / c).mkdir(parents=True)
            Image.new("RGB", (32, 32), (200, 10, 10)).save(
                tmp_path / "cifar10-jpeg" / split / c / "0000.jpg"
            )
    data = DS.load_dataset("cifar10", "test", root=tmp_path, download=False)
    assert data.images.shape == (10, 3, 32, 32) and data.labels.tolist() == list(range(10))
    assert (data.kind, data.augment) == ("photo", "photos")


@pytest.mark.parametrize("channels,kind", [(1, "greyscale"), (3, "photo")])
def test_image_folder_kind_follows_its_channels(tmp_path, channels, kind):
    root = _folder_root(tmp_path, mode="L" if channels == 1 else "RGB")
    data = DS.load_dataset("imagefolder", "train", root=root, image_size=16, channels=channels)
    assert data.input_shape == (channels, 16,
                                16) and data.kind == kind and len(data.mean) == channels
    # A folder's classes may be mirror images of each other
    assert data.tta_flip is (kind == "photo")


def test_pendigits_round_trip_renders_like_the_sketchpad_with_whole_writers_held_out(tmp_path):
    root = _pen_root(tmp_path)
    train = DS.load_dataset("pendigits", "train", root=root, download=False)
    test = DS.load_dataset("pendigits", "test", root=root, download=False)
    r = pens.PENDIGITS_RENDERS
    # 5 writers: one held out, whole
    assert len(train) + len(test) == 50 * r and len(test) == 10 * r
    # Ink in every one
    assert train.images.shape[1:] == (1, 28, 28) and (train.images.flatten(1).amax(1) > 64).all()
    digits = parse(synthetic_unipen())
    labels = {w: [d["label"] for d in digits if d["writer"] == w] for w in range(1, 6)}
    held_out = [
        w
        for w, ls in labels.items()
        if sorted(np.repeat(ls, r).tolist()) == sorted(test.labels.tolist())
    ]
    assert held_out, "the test split is one writer's digits, every rendering"
    other = DS.load_dataset("pendigits", "test", root=root, download=False, seed=3)
    assert len(other) == len(test)  # another seed may hold out another writer, still whole
    again = DS.load_dataset("pendigits", "train", root=root, download=False)
    assert torch.equal(again.images, train.images)  # rendered once, then read from the cache
    # Random renderings differ: the same digit is drawn at other sizes and widths.
    assert not torch.equal(train.images[0], train.images[1])


def test_pendigits_test_file_is_used_when_present_and_handwriting_joins_mnist(tmp_path):
    root = _idx_root(_pen_root(tmp_path), "MNIST")
    (root / "pendigits" / "pendigits-orig.tes").write_text(synthetic_unipen(writers=2, seed=1))
    r = pens.PENDIGITS_RENDERS
    assert len(DS.load_dataset("pendigits", "train", root=root, download=False)) == 50 * r
    assert len(DS.load_dataset("pendigits", "test", root=root, download=False)) == 20 * r
    train = DS.load_dataset("handwriting", "train", root=root, download=False)
    test = DS.load_dataset("handwriting", "test", root=root, download=False)
    u = pens.UNIPEN_RENDERS
    # UNIPEN: 6 people (6 writer ids) in training, 3 people (4 ids) in the test split, 10 each
    assert len(train) == 20 + 50 * r + 60 * u and train.kind == "sketch"
    assert test.parts == {"mnist": (0, 20), "pendigits": (20, 20 + 20 * r),
                          "unipen": (20 + 20 * r, 20 + 20 * r + 40 * u)}
    assert "UNIPEN 1a: 100 digits of 9 people" in train.summary
    assert "10 fewer than 2 points" in train.summary
    (root / "pendigits" / "pendigits-orig.tes").unlink()
    assert DS.load_dataset("handwriting", "test", root=root, download=False).parts == {
        "mnist": (0, 20), "unipen": (20, 20 + 40 * u)}


def test_a_validation_split_of_handwriting_holds_out_whole_writers_and_scores_its_parts(tmp_path):
    root = _idx_root(_pen_root(tmp_path), "MNIST")
    data = DS.load_dataset("handwriting", "train", root=root, download=False)
    writers = data.groups[data.groups >= 0].unique()
    # 5 pendigits writers and UNIPEN's 6 training people
    assert len(writers) == 11 and int((data.groups < 0).sum()) == 20
    train, val = D.split_train_val(data, 0.4, seed=0)
    held = set(val.groups[val.groups >= 0].tolist())
    assert len(held) == 4 and not held & set(train.groups[train.groups >= 0].tolist())
    assert list(val.parts) == ["mnist", "pendigits", "unipen"] and val.parts["mnist"] == (0, 8)
    assert train.parts["mnist"] == (0, 12) and train.parts["unipen"][1] == len(train)
    assert bool((val.groups[:8] < 0).all()) and bool((val.groups[8:] >= 0).all())
    # The pen part of the validation set is every rendering of the held-out writers, and only
    # theirs.
    assert len(val) - 8 == int(torch.isin(data.groups, torch.tensor(sorted(held))).sum())
    assert torch.equal(D.split_train_val(data, 0.4, seed=0)[1].labels, val.labels)
    assert set(D.split_train_val(data, 0.4, seed=1)[1].groups.tolist()) != held | {-1}


def test_handwriting_can_train_each_epoch_on_some_of_a_digits_renderings(tmp_path, monkeypatch):
    root = _idx_root(_pen_root(tmp_path), "MNIST")
    monkeypatch.setattr(DS, "HANDWRITING_PER_EPOCH", 1)
    data = DS.load_dataset("handwriting", "train", root=root, download=False)
    r, u = pens.PENDIGITS_RENDERS, pens.UNIPEN_RENDERS
    assert data.per_epoch == 1 and D.epoch_size(data) == 20 + 50 + 60
    assert data.items[:20].eq(-1).all()
    assert torch.equal(data.items[20:20 + 50 * r], 20 + torch.arange(50 * r) // r)
    assert torch.equal(data.items[20 + 50 * r:], 20 + 50 * r + torch.arange(60 * u) // u)
    assert DS.load_dataset("handwriting", "test", root=root, download=False).items is None


def test_training_on_handwriting_reports_each_parts_validation_and_uses_some_renderings_an_epoch(
    tmp_path, monkeypatch
):
    from core.train import TrainConfig, train
    root = _idx_root(_pen_root(tmp_path), "MNIST")
    monkeypatch.setattr(DS, "HANDWRITING_PER_EPOCH", 1)
    cfg = TrainConfig(dataset="handwriting", model="lenet", epochs=2, batch_size=16,
                      data_root=str(root), download=False, val_split=0.4, test=False)
    events = list(train(cfg))
    start, epochs = events[0], [e for e in events if e["type"] == "epoch"]
    train_set, val = D.split_train_val(
        DS.load_dataset("handwriting", "train", root=root, download=False), 0.4, 0)
    # 12 MNIST images and one rendering of each training writer's digits an epoch
    (a, b), (c, d) = train_set.parts["pendigits"], train_set.parts["unipen"]
    pens_kept = (b - a) // pens.PENDIGITS_RENDERS + (d - c) // pens.UNIPEN_RENDERS
    assert D.epoch_size(train_set) == 12 + pens_kept
    assert start["steps_per_epoch"] == math.ceil((12 + pens_kept) / 16)
    assert epochs[-1]["step"] == 2 * start["steps_per_epoch"]
    assert set(epochs[-1]["val_parts"]) == {"mnist", "pendigits", "unipen"}
    assert "UNIPEN 1a: 100 digits of 9 people" in start["data"]
    # Each held-out writer is scored apart; together they make the pen parts.
    groups = epochs[-1]["val_groups"]
    assert set(groups) == set(val.groups[val.groups >= 0].tolist()) and len(groups) == 4
    pen_parts = [epochs[-1]["val_parts"][p] for p in ("pendigits", "unipen")]
    assert min(pen_parts) - 1e-6 <= min(groups.values()) <= max(pen_parts) + 1e-6


def test_unipen_text_errors_name_the_line():
    with pytest.raises(UnipenError, match="line 3"):
        parse('.SEGMENT DIGIT 0 ? "4"\n.COMMENT 4 1 0\n.PEN_UP\n')
    with pytest.raises(UnipenError, match="not one digit"):
        parse('.SEGMENT DIGIT 0 ? "x"\n')
    with pytest.raises(UnipenError, match="no writer"):
        parse('.SEGMENT DIGIT 0 ? "4"\n.PEN_DOWN\n 1 2\n.PEN_UP\n')
    with pytest.raises(UnipenError):
        decompress(b"\x1f\x9d\x90garbage")


def test_compressed_unipen_files_made_by_unix_compress_are_read():
    assert decompress(SAMPLE_Z.read_bytes()).decode() == synthetic_unipen()


def _archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_pendigits_download_unpacks_only_the_named_files(tmp_path, monkeypatch):
    body = _archive({"pendigits/pendigits-orig.tra.Z": SAMPLE_Z.read_bytes(),
                     "../../evil.tra.Z": b"x", "pendigits/readme.txt": b"hello"})
    asked = []

    def fake_urlopen(request, timeout=None):
        asked.append((getattr(request, "get_method", lambda: "GET")(), timeout))
        return _Response(b"" if getattr(request, "get_method", lambda: "GET")() == "HEAD" else body)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    data = DS.load_dataset("pendigits", "train", root=tmp_path)
    assert len(data) == 40 * pens.PENDIGITS_RENDERS
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["pendigits-orig.tra"]
    assert ("HEAD", DOWNLOAD_TIMEOUT_S) in asked and all(t == DOWNLOAD_TIMEOUT_S for _, t in asked)


@pytest.mark.parametrize("name, where, also", [
    ("pendigits", "pendigits/pendigits-orig.tra", []),
    ("unipen", "unipen/train_r01_v07", [pens.UNIPEN_DOI, "TINYVISION_DATA"]),
])
def test_pen_datasets_offline_or_with_downloads_off_name_the_folder(tmp_path, monkeypatch, name,
                                                                     where, also):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    for download in (True, False):
        with pytest.raises(DataError) as info:
            DS.load_dataset(name, "train", root=tmp_path, download=download)
        message = str(info.value)
        assert str(tmp_path / where) in message and all(part in message for part in also)


# -- UNIPEN section 1a ----------------------------------------------------------------------------

def test_unipen_round_trip_holds_out_whole_people_by_name(tmp_path):
    synthetic_unipen_1a(tmp_path)
    train = DS.load_dataset("unipen", "train", root=tmp_path, download=False)
    test = DS.load_dataset("unipen", "test", root=tmp_path, download=False)
    u = pens.UNIPEN_RENDERS
    # 10 writer ids of 9 people, 10 digits each (the dots are skipped); ibm's two sessions of
    # person 07 are one person, in the test split with aaa/1 and bbb/1.
    assert (len(train), len(test)) == (60 * u, 40 * u) and train.kind == "sketch"
    people = sorted({pens.person_of(f"{s}/{w}") for s, w in UNIPEN_1A_WRITERS})
    assert len(people) == 9
    assert {people[g] for g in test.groups.tolist()} == UNIPEN_1A_TEST
    assert not set(train.groups.tolist()) & set(test.groups.tolist())
    assert all(pens.in_test_split(p) == (p in UNIPEN_1A_TEST) for p in people)
    # Label n of writer k is (i + k) % 10: every digit occurs, each drawing u times in a row
    assert sorted(set(train.labels.tolist())) == list(range(10))
    assert torch.equal(train.labels[::u].repeat_interleave(u), train.labels)
    assert (train.images.flatten(1).amax(1) > 64).all()  # ink in every rendering (thin 1s too)
    assert "100 digits of 9 people (10 writer ids" in train.summary
    assert "10 fewer than 2 points" in train.summary


def test_stroke_jitter_moves_each_stroke_on_its_own_and_keeps_its_shape():
    rng = np.random.default_rng(0)
    seven = [[(100.0, 400.0), (300.0, 400.0), (150.0, 100.0)], [(120.0, 250.0), (260.0, 250.0)]]
    assert all(np.array_equal(a, np.array(s)) for a, s in zip(strokes.jittered(seven, rng, 0.0),
                                                              seven))
    bars = []
    for _ in range(50):
        moved = strokes.jittered(seven, rng, 0.1)
        for a, s in zip(moved, seven):
            s = np.array(s)
            # a stroke is turned, scaled and moved as a whole: its shape stays (distances in
            # proportion, by at most 10%), and no point goes far (the digit is 300 high)
            k = np.linalg.norm(a[1:] - a[0], axis=1) / np.linalg.norm(s[1:] - s[0], axis=1)
            assert np.allclose(k, k[0]) and 0.9 <= k[0] <= 1.1
            assert np.abs(a - s).max() <= 0.4 * 300
        bars.append(moved[1].mean(0) - moved[0].mean(0))
    # the bar lies differently against the rest from one rendering to the next
    assert np.ptp(np.array(bars), axis=0).min() > 10


def test_stroke_jitter_varies_training_renderings_only(tmp_path):
    synthetic_unipen_1a(tmp_path)
    plain = {s: DS.load_dataset("unipen", s, root=tmp_path, download=False)
             for s in ("train", "test")}
    jit = {s: DS.load_dataset("unipen", s, root=tmp_path, download=False, pen_jitter=0.1)
           for s in ("train", "test")}
    # the test people are drawn as recorded: the same images, with or without jitter
    assert torch.equal(jit["test"].images, plain["test"].images)
    assert torch.equal(jit["train"].labels, plain["train"].labels)
    changed = (jit["train"].images != plain["train"].images).flatten(1).any(1)
    assert changed.float().mean() > 0.5 and (jit["train"].images.flatten(1).amax(1) > 64).all()


def test_a_run_with_pen_jitter_is_validated_on_the_strokes_unmoved(tmp_path):
    root = str(_idx_root(_pen_root(tmp_path), "MNIST"))
    cfg = {"dataset": "handwriting", "data_root": root, "download": False, "val_split": 0.2,
           "test": False, "epochs": 1, "device": "cpu"}
    plain, jittered = build_run(TrainConfig(**cfg)), build_run(TrainConfig(**cfg, pen_jitter=0.1))
    # the same held-out writers, drawn as they wrote; only the training images move
    assert torch.equal(jittered.val_set.images.cpu(), plain.val_set.images.cpu())
    assert not torch.equal(jittered.train_set.images.cpu(), plain.train_set.images.cpu())
    with pytest.raises(ValueError, match="mnist has none"):
        build_run(TrainConfig(dataset="mnist", data_root=root, download=False, pen_jitter=0.1))


def test_the_mix_bench_draws_each_misread_pen_digit_once_and_counts_every_rendering(tmp_path):
    data = DS.load_dataset("handwriting", "train", root=_idx_root(_pen_root(tmp_path), "MNIST"),
                           download=False)

    class Zero(torch.nn.Module):  # answers 0 to everything
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()

    scored = evaluate_model(Zero(), data)  # what the bench scores, then draws
    assert torch.equal(scored["predictions"], torch.zeros(len(data), dtype=torch.long))
    assert scored["acc"] == pytest.approx((data.labels == 0).float().mean().item())
    text = handwriting_mix._misread(scored["predictions"], data, tmp_path / "misread.png")
    pen = data.labels[data.parts["pendigits"][0]:]
    digits = int((pen[::4] != 0).sum())  # 4 renderings of each, consecutive
    assert text.startswith(f"{digits} held-out pen digits misread")
    # every misread rendering counted: the ones read as 0
    assert f"1>0 {int((pen == 1).sum())}" in text
    assert Image.open(tmp_path / "misread.png").size[0] == 12 * 64


def test_unipen_digits_are_brought_into_the_tablet_box_whatever_the_sites_units():
    from core.strokes import TABLET
    for scale in (0.01, 1.0, 300.0):
        strokes = [[(10 * scale, 20 * scale), (10 * scale, 80 * scale)],
                   [(0, 50 * scale), (30 * scale, 50 * scale)]]
        out = pens.normalised(strokes)
        xs = [x for s in out for x, _ in s]
        ys = [y for s in out for _, y in s]
        # the taller side fills the box less its margins; the aspect and centre are kept
        assert max(ys) - min(ys) == pytest.approx(TABLET * (1 - 2 * pens.MARGIN))
        assert max(xs) - min(xs) == pytest.approx(TABLET * (1 - 2 * pens.MARGIN) / 2)
        assert (max(xs) + min(xs)) / 2 == pytest.approx(TABLET / 2)
        assert (max(ys) + min(ys)) / 2 == pytest.approx(TABLET / 2)


def _tar(tree, extra: dict[str, bytes] | None = None, link: str | None = None) -> bytes:
    """A .tar.gz of a synthetic distribution: its files under train_r01_v07/, plus `extra`."""
    import tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for f in sorted(tree.rglob("*")):
            if f.is_file():
                t.add(f, arcname=f"train_r01_v07/{f.relative_to(tree)}")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            t.addfile(info)
    return buffer.getvalue()


def _zenodo(monkeypatch, body: bytes, size: int | None = None) -> list[str]:
    """urlopen answering the UNIPEN record's JSON and its archive; returns the URLs asked."""
    import json
    asked = []
    archive_url = "https://zenodo.example/files/train_r01_v07.tgz"
    record = {"files": [{"key": "README.txt", "size": 10, "links": {"self": "x"}},
                        {"key": "train_r01_v07.tgz", "size": len(body) if size is None else size,
                         "links": {"self": archive_url}}]}

    def fake_urlopen(request, timeout=None):
        url = getattr(request, "full_url", request)
        method = getattr(request, "get_method", lambda: "GET")()
        assert timeout == DOWNLOAD_TIMEOUT_S
        asked.append(f"{method} {url}")
        if method == "HEAD":
            return _Response(b"")
        return _Response(json.dumps(record).encode() if url == pens.UNIPEN_RECORD else body)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return asked


def test_unipen_download_keeps_section_1a_and_its_includes_only(tmp_path, monkeypatch):
    source = synthetic_unipen_1a(tmp_path / "made")
    body = _tar(source, {"train_r01_v07/data/1b/aaa/x.dat": b".VERSION 1.0\n",
                         "train_r01_v07/doc/README": b"hello",
                         "train_r01_v07/include/aaa/unused.dat": b"not needed"})
    asked = _zenodo(monkeypatch, body)
    root = tmp_path / "data"
    data = DS.load_dataset("unipen", "test", root=root)
    assert len(data) == 40 * pens.UNIPEN_RENDERS
    kept = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert kept == sorted(f"unipen/{p.relative_to(source.parent)}" for p in source.rglob("*")
                          if p.is_file())
    assert f"GET {pens.UNIPEN_RECORD}" in asked and asked[-1].endswith("train_r01_v07.tgz")


@pytest.mark.parametrize("case", ["parent", "absolute", "link", "too large", "no section"])
def test_a_hostile_or_wrong_unipen_archive_is_refused_before_anything_is_written(
        tmp_path, monkeypatch, case):
    source = synthetic_unipen_1a(tmp_path / "made")
    body, size = {
        "parent": (_tar(source, {"train_r01_v07/../../evil.dat": b"x"}), None),
        "absolute": (_tar(source, {"/tmp/evil.dat": b"x"}), None),
        "link": (_tar(source, link="train_r01_v07/include/aaa/passwd"), None),
        "too large": (b"never read", pens.UNIPEN_MAX_ARCHIVE + 1),
        "no section": (_tar(tmp_path / "made" / "unipen" / "train_r01_v07" / "include"), None),
    }[case]
    _zenodo(monkeypatch, body, size)
    root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        DS.load_dataset("unipen", "train", root=root)
    message = str(info.value)
    assert {"parent": "refused", "absolute": "refused", "link": "refused",
            "too large": "larger than", "no section": "no train_r01_v07/data/1a"}[case] in message
    assert not [p for p in root.rglob("*") if p.is_file()]  # nothing extracted, no download left


# -- the real data --------------------------------------------------------------------------------

def test_real_fashion_mnist_is_exact(data_root):
    train = DS.load_dataset("fashion-mnist", "train", root=data_root, download=False)
    test = DS.load_dataset("fashion-mnist", "test", root=data_root, download=False)
    assert train.images.shape == (60_000, 1, 28, 28) and len(test) == 10_000
    assert (
        torch.bincount(train.labels).tolist() == [6000] * 10
        and torch.bincount(test.labels).tolist() == [1000] * 10
    )
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"


@pytest.mark.slow  # renders 7,494 drawings once (about 15 s)
def test_real_pendigits_30_writers_rendered_and_read_by_the_digit_model(data_root, monkeypatch):
    # The drawing is what is checked, not how many of each
    monkeypatch.setattr(pens, "PENDIGITS_RENDERS", 1)
    digits = parse((data_root / "pendigits" / "pendigits-orig.tra").read_text())
    assert len(digits) == 7494 and len({d["writer"] for d in digits}) == 30
    train = DS.load_dataset("pendigits", "train", root=data_root, download=False)
    test = DS.load_dataset("pendigits", "test", root=data_root, download=False)
    assert len(train) + len(test) == 7494 * pens.PENDIGITS_RENDERS and train.images.shape[1:] == (
        1,
        28,
        28,
    )
    assert (train.images.flatten(1).amax(1) > 128).float().mean() > 0.999  # ink present
    # Labels right: the MNIST-only digit model (never trained on these) reads most as labelled.
    assert _read_as_labelled(test, every=23) >= 0.9


def _read_as_labelled(data, every: int) -> float:
    """The share of every n-th image that the shipped MNIST-only digit model reads as its label."""
    predictor = Predictor.load(ROOT / "checkpoints" / "mnist-digitnet.pt")
    sample = torch.arange(0, len(data), every)
    right = sum(
        int(np.argmax(predictor.probabilities(data.images[i, 0].numpy()))) == int(data.labels[i])
        for i in sample
    )
    return right / len(sample)


@pytest.mark.slow  # parses and renders 13,376 drawings once (about 30 s)
def test_real_unipen_section_1a_read_whole_and_split_by_people(data_root, monkeypatch):
    monkeypatch.setattr(pens, "UNIPEN_RENDERS", 1)
    train = DS.load_dataset("unipen", "train", root=data_root, download=False)
    test = DS.load_dataset("unipen", "test", root=data_root, download=False)
    assert len(train) + len(test) == 13376 and 0.15 < len(test) / 13376 < 0.25
    assert "13,376 digits of 111 people (121 writer ids, 13 sites)" in train.summary
    assert len(set(train.groups.tolist()) | set(test.groups.tolist())) == 111
    assert not set(train.groups.tolist()) & set(test.groups.tolist())
    assert (train.images.flatten(1).amax(1) > 128).float().mean() > 0.999
    assert _read_as_labelled(test, every=13) >= 0.85  # labels right, as for pendigits


# -- the input kind a checkpoint carries ----------------------------------------------------------

def _checkpoint(path, dataset: str, channels: int = 1, kind: str | None = "greyscale",
                classes=None):
    classes = classes or DS.FASHION_CLASSES
    model = models.create_model("digitnet", len(classes), channels, 28)
    extra = {"kind": kind} if kind else {}
    meta = ckpt.make_meta("digitnet", dataset, classes, (channels, 28, 28), (0.3,) * channels,
                          (0.35,) * channels, **extra)
    ckpt.save_checkpoint(path, meta, model.state_dict())
    return path


def test_a_fashion_model_is_refused_by_the_draw_tab_and_answers_photos(tmp_path):
    answers = Answers(Shelf(_checkpoint(tmp_path / "ck" / "fashion-mnist-digitnet.pt",
                                        "fashion-mnist").parent))
    shelf = answers.shelf
    assert shelf.default(DIGITS) is None and shelf.default(PHOTOS) == "fashion-mnist-digitnet"
    with pytest.raises(InputError, match="unknown model"):
        answers.predict_digit(None, "fashion-mnist-digitnet")
    shoe = np.full((90, 120, 3), 250, np.uint8)
    shoe[40:70, 20:100] = 30  # a dark shoe on a white table
    label, seen, status = answers.classify_image(_save(shoe, tmp_path / "shoe.png"),
                                                 "fashion-mnist-digitnet")
    assert set(label) <= set(DS.FASHION_CLASSES) and "answered by" in status
    small = seen[::8, ::8]  # the 28x28 the model saw, enlarged 8x
    # Made light-on-dark
    assert small.shape == (28, 28) and small[0, 0] < 50 and small[14, 14] > 200


def _save(array, path):
    Image.fromarray(array).save(path)
    return str(path)


def test_checkpoints_of_an_older_release_land_in_the_right_tab(tmp_path):
    shipped = {p.stem: Predictor.load(p) for p in (ROOT / "checkpoints").glob("*.pt")}
    old = {k: p for k, p in shipped.items() if k.startswith(("mnist-", "cifar10-"))}
    # Written before kinds were recorded
    assert old and all("kind" not in p.meta for p in old.values())
    assert shipped["handwriting-digitnet"].meta["kind"] == "sketch"
    assert {tab_of(p) for k, p in shipped.items() if k.startswith(("mnist-",
                                                                   "handwriting-"))} == {DIGITS}
    assert {tab_of(p) for k, p in shipped.items() if k.startswith("cifar10-")} == {PHOTOS}
    old_folder = Predictor.load(_checkpoint(tmp_path / "f.pt", "imagefolder", kind=None,
                                            classes=list("ab")))
    assert old_folder.kind == "greyscale" and tab_of(old_folder) == PHOTOS
    new = Predictor.load(_checkpoint(tmp_path / "n.pt", "fashion-mnist"))
    assert new.meta["kind"] == "greyscale" and tab_of(new) == PHOTOS


def test_an_unknown_kind_in_a_checkpoint_is_refused(tmp_path):
    path = _checkpoint(tmp_path / "x.pt", "fashion-mnist")
    payload = torch.load(path, weights_only=True)
    payload["kind"] = "smell"
    torch.save(payload, path)
    with pytest.raises(ckpt.CheckpointError, match="unknown input kind"):
        ckpt.load_checkpoint(path)
