import pickle

import pytest
import torch

from core import checkpoint as ckpt
from core import models


def _save(path, model_name="digitnet", channels=1, size=28):
    model = models.create_model(model_name, 10, channels, size)
    meta = ckpt.make_meta(model_name, "mnist", [str(i) for i in range(10)], (channels, size, size), (0.1,), (0.3,))
    ckpt.save_checkpoint(path, meta, model.state_dict())
    return model


def test_round_trip(tmp_path):
    model = _save(tmp_path / "a.pt").eval()
    payload = ckpt.load_checkpoint(tmp_path / "a.pt")
    rebuilt = ckpt.build_from_checkpoint(payload)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(model(x), rebuilt(x))
    assert payload["versions"]["torch"] == torch.__version__
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


class Evil:
    def __reduce__(self):
        return (exec, ("open('/tmp/tinyvision-pwned', 'w').write('x')",))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    target = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "payload": Evil()}, target)
    with pytest.raises(ckpt.CheckpointError, match="could run code"):
        ckpt.load_checkpoint(target)
    import os
    assert not os.path.exists("/tmp/tinyvision-pwned")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", pickle.dumps({"a": 1})])
def test_garbage_is_refused(tmp_path, content):
    (tmp_path / "g.pt").write_bytes(content)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(tmp_path / "g.pt")


def test_truncated_and_foreign_files_are_refused(tmp_path):
    _save(tmp_path / "a.pt")
    data = (tmp_path / "a.pt").read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(tmp_path / "t.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ckpt.CheckpointError, match="not a TinyVision checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")


def test_weights_of_another_architecture_are_refused(tmp_path):
    _save(tmp_path / "a.pt")
    payload = ckpt.load_checkpoint(tmp_path / "a.pt")
    payload["model"] = "lenet"
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.build_from_checkpoint(payload)


def test_tampered_weights_are_refused(tmp_path):
    _save(tmp_path / "a.pt")
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = torch.zeros(1)
    torch.save(payload, tmp_path / "b.pt")
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.build_from_checkpoint(ckpt.load_checkpoint(tmp_path / "b.pt"))


def test_quantized_export_is_small_and_close(tmp_path):
    torch.manual_seed(0)
    model = _save(tmp_path / "cnn.pt", "cnn").eval()
    ckpt.export_checkpoint(tmp_path / "cnn.pt", tmp_path / "cnn-q.pt", quantize=True)
    assert (tmp_path / "cnn-q.pt").stat().st_size < 10 * 2**20 < (tmp_path / "cnn.pt").stat().st_size
    rebuilt = ckpt.build_from_checkpoint(ckpt.load_checkpoint(tmp_path / "cnn-q.pt"))
    x = torch.randn(4, 1, 28, 28)
    a, b = model(x), rebuilt(x)
    assert (a - b).abs().max() < 0.05 * a.abs().max()
