import json

import pytest
import torch

from core import checkpoint as ckpt
from core import train as T


def _events(cfg, **kw):
    return list(T.train(cfg, **kw))


@pytest.mark.slow
def test_real_mnist_few_hundred_steps_learns(data_root, tmp_path):
    cfg = T.TrainConfig(dataset="mnist", model="digitnet", data_root=str(data_root), max_steps=200,
                        val_split=0.2, out=str(tmp_path / "m.pt"))
    events = _events(cfg)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "progress" in kinds and "epoch" in kinds
    report = [e for e in events if e["type"] == "epoch"][-1]
    assert report["test_acc"] > 0.95 and report["val_acc"] > 0.95
    assert set(report["per_class"]) == {str(i) for i in range(10)}
    meta = ckpt.load_checkpoint(tmp_path / "m.pt")
    assert meta["metrics"]["test_acc"] == pytest.approx(report["test_acc"])
    # label smoothing leaves the net under-confident; the fitted temperature sharpens it
    assert 0.2 <= meta["temperature"] < 1.0


@pytest.fixture
def tiny_folder(tmp_path):
    """Two separable classes of 12x12 grey images: bright left half vs bright right half."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("test", 16)):
        for label, name in enumerate(("left", "right")):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, (12, 12)).astype(np.uint8)
                if label == 0:
                    a[:, :6] += 150
                else:
                    a[:, 6:] += 150
                Image.fromarray(a).save(tmp_path / "data" / split / name / f"{i}.png")
    return tmp_path / "data"


def _tiny_cfg(root, tmp_path, **kw):
    base = dict(dataset="imagefolder", model="digitnet", data_root=str(root), image_size=12,
                channels=1, epochs=3, batch_size=16, lr=0.05, augment=False,
                out=str(tmp_path / "tiny.pt"))
    base.update(kw)
    return T.TrainConfig(**base)


def test_tiny_run_lowers_loss(tiny_folder, tmp_path):
    reports = [e for e in _events(_tiny_cfg(tiny_folder, tmp_path,
                                            epochs=4)) if e["type"] == "epoch"]
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
    assert reports[-1]["test_acc"] >= 0.9


def test_resume_equals_uninterrupted(tiny_folder, tmp_path):
    full = _tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "full.pt"), epochs=3, augment=True)
    _events(full)
    stop_after = {"n": 0}

    def stop():
        return stop_after["n"] >= 2

    part = _tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "part.pt"), epochs=3, augment=True)
    for e in T.train(part, should_stop=stop):
        if e["type"] == "epoch":
            stop_after["n"] += 1
    assert ckpt.load_checkpoint(tmp_path / "part.pt")["epoch"] == 2
    resumed = _tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "part.pt"), epochs=3,
                        augment=True, resume=str(tmp_path / "part.pt"))
    end = _events(resumed)[-1]
    assert end["epoch"] == 3
    a = ckpt.load_checkpoint(tmp_path / "full.pt")["state_dict"]
    b = ckpt.load_checkpoint(tmp_path / "part.pt")["state_dict"]
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


def test_stop_flag_ends_between_batches_and_keeps_last_epoch(tiny_folder, tmp_path):
    seen = {"progress": 0}

    def stop():
        return seen["progress"] >= 1

    events = []
    for e in T.train(_tiny_cfg(tiny_folder, tmp_path, epochs=5, batch_size=4), should_stop=stop):
        events.append(e)
        if e["type"] == "progress" and e["epoch"] == 2:
            seen["progress"] += 1
    assert events[-1]["type"] == "end" and events[-1]["stopped"]
    assert events[-1]["epoch"] == 1
    assert ckpt.load_checkpoint(tmp_path / "tiny.pt")["epoch"] == 1


@pytest.mark.parametrize(
    "field,value",
    [
        ("epochs", 10**6),
        ("batch_size", 10**6),
        ("lr", -1.0),
        ("lr", float("nan")),
        ("val_split", 0.9),
        ("optimizer", "rmsprop"),
        ("model", "nope"),
        ("epochs", "3"),
    ],
)
def test_bounds_are_enforced(field, value):
    cfg = T.TrainConfig(**{"dataset": "mnist", "model": "digitnet", field: value})
    with pytest.raises(ValueError):
        T.resolve_config(cfg, "sketch")


def test_defaults_come_from_the_model_recipe():
    cfg = T.resolve_config(T.TrainConfig(dataset="cifar10", model="cnn"), "photo")
    got = (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.momentum, cfg.tta_shift)
    assert got == ("adam", 1e-3, 128, 0.9, 0)
    cfg = T.resolve_config(T.TrainConfig(dataset="cifar10", model="cifarnet"), "photo")
    assert (cfg.momentum, cfg.tta_shift) == (0.85, 1)
    cfg = T.resolve_config(T.TrainConfig(dataset="cifar10", model="cifarnet", momentum=0.5,
                                         tta_shift=0), "photo")
    assert (cfg.momentum, cfg.tta_shift) == (0.5, 0)


def test_norm_shifts_learn_faster_where_the_model_asks(tiny_folder, tmp_path):
    # cifarnet asks for its BatchNorm shifts to learn 64x faster, with the same decay per step as
    # its weights.
    def first_epoch_only(cfg):
        # Stopped after epoch 1 of 3, so the checkpoint keeps its optimizer state.
        done: list[dict] = []
        for e in T.train(cfg, should_stop=lambda: bool(done)):
            if e["type"] == "epoch":
                done.append(e)
        return ckpt.load_checkpoint(cfg.out)["train_state"]["optimizer"]["param_groups"]

    groups = first_epoch_only(_tiny_cfg(tiny_folder, tmp_path, model="cifarnet", weight_decay=1e-3))
    fast = [g for g in groups if g["lr_scale"] != 1.0]
    slow = [g for g in groups if g["lr_scale"] == 1.0 and g["weight_decay"] > 0]
    assert len(fast) == 1 and len(slow) == 1
    assert fast[0]["lr"] == pytest.approx(64 * slow[0]["lr"]) and slow[0]["lr"] > 0
    assert fast[0]["lr"] * fast[0]["weight_decay"] == pytest.approx(
        slow[0]["lr"] * slow[0]["weight_decay"]
    )
    plain = first_epoch_only(_tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "plain.pt")))
    assert {g["lr_scale"] for g in plain} == {1.0}


def test_only_the_last_evaluation_pays_for_shifted_views(tiny_folder, tmp_path, monkeypatch):
    calls = []
    real = T.evaluate_model

    def spy(*args, **kw):
        calls.append((kw["tta_flip"], kw["tta_shift"]))
        return real(*args, **kw)

    monkeypatch.setattr(T, "evaluate_model", spy)
    _events(_tiny_cfg(tiny_folder, tmp_path, channels=3, epochs=3, tta_shift=1))
    assert calls == [(True, 0), (True, 0), (True, 1)]
    assert ckpt.load_checkpoint(tmp_path / "tiny.pt")["tta_shift"] == 1


def test_cli_json_last_line(tiny_folder, tmp_path, capsys):
    rc = T.main(["--dataset", "imagefolder", "--data-root", str(tiny_folder), "--image-size", "12",
                 "--channels", "1", "--epochs", "1", "--batch-size", "16", "--out",
                 str(tmp_path / "cli.pt"), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"test_acc", "train_seconds", "epochs", "checkpoint"} <= set(summary)
    assert summary["checkpoint"] == str(tmp_path / "cli.pt")

    from core import evaluate as E
    # the checkpoint keeps the folder's name, not where it is: the folder is asked for again
    assert E.main(["--checkpoint", str(tmp_path / "cli.pt"), "--json"]) == 2
    assert "--data-root" in capsys.readouterr().err
    assert E.main(["--checkpoint", str(tmp_path / "cli.pt"), "--data-root", str(tiny_folder),
                   "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["test_acc"] == pytest.approx(summary["test_acc"])
    assert set(result["per_class"]) == {"left", "right"}


def test_cli_reports_missing_data_cleanly(tmp_path, capsys):
    rc = T.main(["--dataset", "imagefolder", "--data-root", str(tmp_path / "missing"), "--out",
                 str(tmp_path / "x.pt")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_teacher_steers_the_training_and_is_recorded(tiny_folder, tmp_path):
    _events(_tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "teacher.pt"), epochs=2))
    plain = _events(_tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "plain.pt"), epochs=1,
                              seed=1))
    taught = _events(_tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "taught.pt"), epochs=1,
                               seed=1, teacher=str(tmp_path / "teacher.pt"), distill_weight=2.0))
    assert taught[-1]["type"] == plain[-1]["type"] == "end"
    # same seed, same batches: only the teacher's term differs, and it adds to the loss
    loss = [[e for e in ev if e["type"] == "epoch"][0]["train_loss"] for ev in (plain, taught)]
    assert loss[1] > loss[0]
    a = ckpt.load_checkpoint(tmp_path / "plain.pt")["state_dict"]
    b = ckpt.load_checkpoint(tmp_path / "taught.pt")["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    # the teacher by its name: a run's record holds no paths of the machine that trained it
    assert ckpt.load_checkpoint(tmp_path / "taught.pt")["config"]["teacher"] == "teacher.pt"


def test_a_teacher_of_other_classes_or_a_negative_weight_is_refused(tiny_folder, tmp_path):
    from core.distill import load_teacher
    _events(_tiny_cfg(tiny_folder, tmp_path, out=str(tmp_path / "teacher.pt"), epochs=1))
    with pytest.raises(ValueError, match="same classes"):
        load_teacher(tmp_path / "teacher.pt", ["a", "b"], (1, 12, 12), 1.0, torch.device("cpu"))
    with pytest.raises(ValueError, match="distill_weight"):
        T.resolve_config(T.TrainConfig(dataset="mnist", distill_weight=-1.0), "sketch")
