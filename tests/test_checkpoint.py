import json
import pickle

import pytest
import torch

from core import checkpoint as ckpt
from core import models


def _save(path, model_name="digitnet", channels=1, size=28):
    model = models.create_model(model_name, 10, channels, size)
    meta = ckpt.make_meta(model_name, "mnist", [str(i) for i in range(10)], (channels, size, size),
                          (0.1,), (0.3,))
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
    """Unpickling it would write `marker`: the proof that a load ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('x')",))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    target, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"format": ckpt.FORMAT, "payload": Evil(marker)}, target)
    with pytest.raises(ckpt.CheckpointError, match="could run code"):
        ckpt.load_checkpoint(target)
    assert not marker.exists()


@pytest.mark.parametrize(
    "version,message",
    [
        (ckpt.VERSION + 1, "newer release"),
        ("1", "invalid format version"),
        (None, "invalid format version"),
    ],
)
def test_format_version_is_checked(tmp_path, version, message):
    _save(tmp_path / "a.pt")
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    payload["version"] = version
    torch.save(payload, tmp_path / "b.pt")
    with pytest.raises(ckpt.CheckpointError, match=message):
        ckpt.load_checkpoint(tmp_path / "b.pt")
    assert ckpt.load_checkpoint(tmp_path / "a.pt")["version"] == ckpt.VERSION


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
    assert (
        (tmp_path / "cnn-q.pt").stat().st_size < 10 * 2**20 < (tmp_path / "cnn.pt").stat().st_size
    )
    rebuilt = ckpt.build_from_checkpoint(ckpt.load_checkpoint(tmp_path / "cnn-q.pt"))
    x = torch.randn(4, 1, 28, 28)
    a, b = model(x), rebuilt(x)
    assert (a - b).abs().max() < 0.05 * a.abs().max()


def _trained_like(path, seed, **meta_extra):
    """A digitnet with seed-dependent weights and BatchNorm statistics, saved with training
    metadata."""
    torch.manual_seed(seed)
    model = models.create_model("digitnet", 10, 1, 28)
    model.train()
    # Moves the running statistics away from their defaults
    model(torch.randn(64, 1, 28, 28) * 2 + seed)
    meta = ckpt.make_meta("digitnet", "mnist", [str(i) for i in range(10)], (1, 28, 28), (0.1,),
                          (0.3,), config={"seed": seed}, metrics={"test_acc": 0.9 + seed / 100,
                                                                  "train_seconds": 10.0 + seed},
                          temperature=0.5, history=[{"epoch": 1, "train_seconds": 10.0 + seed}],
                          **meta_extra)
    ckpt.save_checkpoint(path, meta, model.state_dict(), train_state={"epoch": 1})
    return model.eval()


def test_ensemble_export_averages_the_members_logits(tmp_path):
    a, b = _trained_like(tmp_path / "a.pt", 0), _trained_like(tmp_path / "b.pt", 1)
    ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ab.pt")
    payload = ckpt.load_checkpoint(tmp_path / "ab.pt")
    assert payload["members"] == 2 and "train_state" not in payload
    # A member's accuracy, temperature and curves are not the average's: they must be measured
    # again.
    assert "metrics" not in payload and "temperature" not in payload and "history" not in payload
    assert [r["seed"] for r in payload["member_runs"]] == [0, 1]
    assert [r["train_seconds"] for r in payload["member_runs"]] == [10.0, 11.0]
    ensemble = ckpt.build_from_checkpoint(payload)
    x = torch.randn(5, 1, 28, 28)
    assert not torch.allclose(a(x), b(x))
    assert torch.allclose(ensemble(x), (a(x) + b(x)) / 2, atol=1e-6)


def test_a_predictor_answers_for_an_ensemble_with_one_stacked_net(tmp_path):
    """The app answers single sketches through the members stacked into one net: the ensemble's
    probabilities."""
    from core.calibration import predict_logits
    from core.predictor import Predictor

    for seed, name in enumerate(("a.pt", "b.pt")):
        _trained_like(tmp_path / name, seed)
    ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ab.pt")
    predictor = Predictor.load(tmp_path / "ab.pt")
    assert isinstance(predictor.model, models.Ensemble) and not isinstance(predictor.net,
                                                                           models.Ensemble)
    image = torch.rand(28, 28)
    want = torch.softmax(predict_logits(predictor.model, image[None, None] * 255, (0.1,), (0.3,)),
                         1)[0]
    assert torch.allclose(torch.from_numpy(predictor.probabilities(image.numpy())), want, atol=1e-5)


def test_ensemble_members_must_share_architecture_and_data(tmp_path):
    _trained_like(tmp_path / "a.pt", 0)
    _trained_like(tmp_path / "other-classes.pt", 1)
    payload = ckpt.load_checkpoint(tmp_path / "other-classes.pt")
    payload["classes"] = [f"c{i}" for i in range(10)]
    ckpt.save_checkpoint(tmp_path / "other-classes.pt", payload, payload.pop("state_dict"))
    _save(tmp_path / "lenet.pt", "lenet", 3, 32)
    for other, field in (("other-classes.pt", "classes"), ("lenet.pt", "model")):
        with pytest.raises(ckpt.CheckpointError, match=field):
            ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / other], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / "a.pt"], tmp_path / "aa.pt")
    with pytest.raises(ckpt.CheckpointError, match="already an ensemble"):
        ckpt.export_checkpoint([tmp_path / "aa.pt", tmp_path / "a.pt"], tmp_path / "bad.pt")


@pytest.mark.parametrize("members", [0, 9, "2", 1.5, True])
def test_invalid_member_count_is_refused(tmp_path, members):
    _save(tmp_path / "a.pt")
    payload = ckpt.load_checkpoint(tmp_path / "a.pt")
    payload["members"] = members
    ckpt.save_checkpoint(tmp_path / "a.pt", payload, payload.pop("state_dict"))
    with pytest.raises(ckpt.CheckpointError, match="member count"):
        ckpt.load_checkpoint(tmp_path / "a.pt")


def test_ensemble_with_missing_member_weights_is_refused(tmp_path):
    _trained_like(tmp_path / "a.pt", 0)
    ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / "a.pt"], tmp_path / "aa.pt")
    payload = ckpt.load_checkpoint(tmp_path / "aa.pt")
    payload["members"] = 3  # claims a third member whose weights are not there
    with pytest.raises(ckpt.CheckpointError, match="do not fit"):
        ckpt.build_from_checkpoint(payload)


def test_half_export_halves_the_file_and_keeps_the_outputs(tmp_path):
    model = _trained_like(tmp_path / "a.pt", 0)
    ckpt.export_checkpoint(tmp_path / "a.pt", tmp_path / "a16.pt", half=True)
    ckpt.export_checkpoint(tmp_path / "a.pt", tmp_path / "a32.pt")
    assert (tmp_path / "a16.pt").stat().st_size < 0.6 * (tmp_path / "a32.pt").stat().st_size
    payload = ckpt.load_checkpoint(tmp_path / "a16.pt")
    assert (
        payload["stored_as"] == "float16"
        and payload["state_dict"]["head.weight"].dtype == torch.float16
    )
    assert payload["metrics"]["test_acc"] == 0.9  # one model: its own measurements still hold
    rebuilt = ckpt.build_from_checkpoint(payload)
    assert all(
        p.dtype == torch.float32 for p in rebuilt.state_dict().values() if p.is_floating_point()
    )
    x = torch.randn(8, 1, 28, 28)
    a, b = model(x), rebuilt(x)
    assert not torch.equal(a, b)  # the weights were rounded...
    assert (a - b).abs().max() < 1e-2 * a.abs().max()  # ...by float16's 3 significant digits


def test_export_cli(tmp_path, capsys):
    _trained_like(tmp_path / "a.pt", 0)
    _trained_like(tmp_path / "b.pt", 1)
    assert ckpt.main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out",
                      str(tmp_path / "ab.pt"), "--half"]) == 0
    assert "an ensemble of 2" in capsys.readouterr().err
    assert ckpt.load_checkpoint(tmp_path / "ab.pt")["members"] == 2
    assert ckpt.main([str(tmp_path / "a.pt"), str(tmp_path / "missing.pt"), "--out",
                      str(tmp_path / "x.pt")]) == 2
    assert "missing.pt is not a file" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_an_exported_ensemble_is_measured_and_named_as_one(tmp_path, data_root, capsys):
    from core import evaluate
    from core.predictor import Predictor

    _trained_like(tmp_path / "a.pt", 0)
    _trained_like(tmp_path / "b.pt", 1)
    ckpt.export_checkpoint([tmp_path / "a.pt", tmp_path / "b.pt"], tmp_path / "ab.pt", half=True)
    assert evaluate.main(["--checkpoint", str(tmp_path / "ab.pt"), "--data-root", str(data_root),
                          "--json", "--calibrate", "--record"]) == 0
    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    payload = ckpt.load_checkpoint(tmp_path / "ab.pt")
    assert payload["metrics"]["test_acc"] == measured["test_acc"]
    assert payload["metrics"]["per_class"] == measured["per_class"]
    assert 0.2 <= payload["temperature"] <= 3.0
    # Still stored as exported
    assert payload["state_dict"]["members.1.head.weight"].dtype == torch.float16
    assert (
        Predictor.load(tmp_path / "ab.pt").name
        == f"digitnet ×2 (mnist, test {measured['test_acc']:.2%})"
    )
