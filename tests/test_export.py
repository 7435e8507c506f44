"""ONNX export (core.export) checked with onnxruntime: the file answers as the app does for the same
prepared image.

The reference is core.predictor.Predictor (what every tab answers with), one image at a time; the
exported graph takes the whole batch at once. Both compute in float32, so the probabilities agree to
~1e-6; TOLERANCE leaves room for the other kernels' summation order on other CPUs.
"""
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core import checkpoint as ckpt
from core import datasets, models
from core.evaluate import checkpoint_data
from core.export import DEFAULT_OPSET, INPUT, ExportError, export_onnx, main
from core.kinds import get_kind
from core.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "checkpoints").glob("*.pt"))
TOLERANCE = 1e-4
SHAPES = [(1, 28), (3, 32)]
# A full CIFAR-10 test set through the shipped photo ensemble with its six test-time views is
# 120,000 forward passes (about four minutes here, on each side): bench.onnx checks it; the tests
# check its 256 images.
FULL_TEST_SET = [p for p in SHIPPED if p.stem != "cifar10-cifarnet"]
DIGITS, PHOTOS = (
    ROOT / "checkpoints" / "mnist-digitnet.pt",
    ROOT / "checkpoints" / "cifar10-cifarnet.pt",
)


@pytest.fixture(scope="module")
def real_images(data_root) -> dict[int, torch.Tensor]:
    """256 real test images (uint8 NCHW) per channel count: MNIST digits, CIFAR-10 photos."""
    return {1: datasets.load_dataset("mnist", "test", data_root, False).images[:256],
            3: datasets.load_dataset("cifar10", "test", data_root, False).images[:256]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each shipped checkpoint exported once, on first use."""
    folder, files = tmp_path_factory.mktemp("onnx"), {}

    def get(path: Path) -> Path:
        if path not in files:
            files[path] = export_onnx(path, folder / f"{path.stem}.onnx")
        return files[path]
    return get


def onnx_answers(path: Path, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, score = session.run(None, {INPUT: images.float().numpy() / 255.0})
    return probs, score


def app_answers(predictor: Predictor, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    judged = [
        predictor.judge(im[0].numpy() if im.shape[0] == 1 else im.permute(1, 2, 0).numpy())
        for im in images
    ]
    return np.stack([j.probs for j in judged]), np.array([j.score for j in judged])


def assert_same_answers(predictor: Predictor, path: Path, images: torch.Tensor) -> None:
    probs, score = onnx_answers(path, images)
    want_probs, want_score = app_answers(predictor, images)
    assert probs.shape == want_probs.shape == (len(images), len(predictor.classes))
    assert np.abs(probs - want_probs).max() <= TOLERANCE
    assert np.abs(score - want_score).max() <= TOLERANCE * max(1.0, np.abs(want_score).max())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_checkpoint_answers_as_the_app_does(path, real_images, exported):
    predictor = Predictor.load(path)
    onnx = exported(path)
    assert_same_answers(predictor, onnx, real_images[predictor.input_shape[0]])
    meta = ort.InferenceSession(str(onnx)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == predictor.classes
    assert (
        meta["kind"] == predictor.kind
        and meta["preparation"] == get_kind(predictor.kind).preparation
    )
    assert float(meta["temperature"]) == predictor.meta["temperature"]
    assert float(meta["unsure_threshold"]) == predictor.unsure_threshold
    c, size, _ = predictor.input_shape
    assert f"[N, {c}, {size}, {size}]" in meta["input"]


@pytest.mark.slow
@pytest.mark.parametrize("path", FULL_TEST_SET, ids=lambda p: p.stem)
def test_onnx_top1_on_the_full_test_set_equals_the_checkpoints_figure(path, data_root, exported):
    """The figure a checkpoint records is core.evaluate's (`--record`; bench.onnx recomputes both
    side by side)."""
    payload = ckpt.load_checkpoint(path)
    test = checkpoint_data(payload, "test", str(data_root), download=False)
    probs = np.concatenate([onnx_answers(exported(path), test.images[i:i + 1000])[0]
                            for i in range(0, len(test), 1000)])
    right = int((probs.argmax(1) == test.labels.numpy()).sum())
    assert right == round(payload["metrics"]["test_acc"] * len(test))


def random_payload(name: str, channels: int, size: int) -> dict:
    """A checkpoint of a registered architecture with random weights, at a low temperature that
    spreads the answers (the test-time views are the shipped photo model's, checked above)."""
    torch.manual_seed(0)
    net = models.create_model(name, 10, channels, size)
    # BatchNorm statistics that are not the identity, so that they are exported too
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    photo = channels == 3
    meta = ckpt.make_meta(name, "cifar10" if photo else "mnist", [str(i) for i in range(10)],
                          (channels, size, size), (0.45,) * channels, (0.25,) * channels,
                          kind="photo" if photo else "sketch", temperature=0.25,
                          unsure_threshold=0.0)
    return {**meta, "state_dict": net.state_dict()}


@pytest.mark.parametrize("name", models.list_models())
@pytest.mark.parametrize("channels,size", SHAPES)
def test_every_architecture_exports_on_both_shapes(name, channels, size, real_images, tmp_path):
    payload = random_payload(name, channels, size)
    onnx = export_onnx(payload, tmp_path / f"{name}.onnx")
    # 32 images: the graph is what differs between architectures (the shipped files are checked on
    # 256 above).
    assert_same_answers(Predictor.from_payload(tmp_path / "random.pt", payload), onnx,
                        real_images[channels][:32])


def test_the_batch_is_dynamic_and_single_view_is_the_plain_model(real_images, tmp_path):
    payload = ckpt.load_checkpoint(PHOTOS)
    images = real_images[3][:9]
    onnx = export_onnx(payload, tmp_path / "plain.onnx", single_view=True)
    one_by_one = np.concatenate([onnx_answers(onnx,
                                              images[i:i + 1])[0] for i in range(len(images))])
    probs = onnx_answers(onnx, images)[0]
    assert np.abs(probs - one_by_one).max() <= TOLERANCE
    plain = Predictor.from_payload(PHOTOS, {**payload, "tta_flip": False, "tta_shift": 0})
    assert np.abs(probs - app_answers(plain, images)[0]).max() <= TOLERANCE
    with_views = app_answers(Predictor.from_payload(PHOTOS, payload), images)[0]
    # The views change the answers: they were left out
    assert np.abs(probs - with_views).max() > 10 * TOLERANCE
    meta = ort.InferenceSession(str(onnx)).get_modelmeta().custom_metadata_map
    assert meta["test_time_views"] == "as given" and meta["members"] == "2"


def test_cli_writes_the_file_and_refuses_bad_input_clearly(tmp_path, capsys):
    out = tmp_path / "digits.onnx"
    assert main([str(DIGITS), "--out", str(out), "--opset", "20"]) == 0
    assert out.is_file() and not list(tmp_path.glob(".*.tmp"))
    assert "opset 20" in capsys.readouterr().err
    assert main([str(DIGITS), "--out", str(out), "--opset", "9"]) == 2
    assert "the opset must be 18 to 23" in capsys.readouterr().err
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    assert main([str(broken), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "broken.pt is not a readable checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_model_that_cannot_be_exported_says_why(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        try:  # as torch.onnx does: its own error, raised from what it could not translate
            raise NotImplementedError("aten::weird_op has no ONNX translation")
        except NotImplementedError as cause:
            raise RuntimeError("Failed to export the model with torch.export.") from cause

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(ExportError,
                       match="digitnet could not be exported to ONNX: aten::weird_op has no"):
        export_onnx(DIGITS, tmp_path / "x.onnx", DEFAULT_OPSET)
    assert not list(tmp_path.iterdir())
