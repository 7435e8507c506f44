"""Training runs for the web app (core.services: runs, training_requests, visitor_models) on real
MNIST, the bounds and upload checks, and `/train` over the API."""
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.bad_inputs import BAD_CHECKPOINTS, bad_checkpoints
from bench.serving import api_client, serve_app
from core import checkpoint as ckpt
from core import models
from core import train as T
from core.kinds import DIGITS
from core.preparation import InputError
from core.services.answers import Answers
from core.services.dashboard import OUTPUTS
from core.services.runs import Trainer, in_background
from core.services.settings import ServerSettings
from core.services.shelf import Shelf
from core.services.training_requests import (
    TrainRequest,
    check_checkpoint,
    check_request,
    offered_datasets,
)
from core.services.visitor_models import VisitorModels

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIGITS = ROOT / "checkpoints" / "mnist-digitnet.pt"
FIGURES = ("curves", "samples", "per_class", "confusion")
# Short epochs: 512 images at batch 128 are 4 steps, so a test sees several epochs in seconds.
SMALL = dict(max_train_images=512, batch_size=128)


@pytest.fixture
def service(tmp_path, data_root):
    # Every figure and progress line sent, for the per-epoch assertions below (the app's default
    # sends at most one set of figures a second: test_own_classes).
    return Trainer(ServerSettings.make(runs_root=tmp_path / "runs", data_root=data_root),
                   plot_every_s=0, progress_every_s=0)


def test_run_streams_start_progress_epochs_then_a_full_end_update(service, tmp_path):
    updates = list(service.run(TrainRequest(epochs=2, val_split=0.1, **SMALL), session="a"))
    start, *middle, end = updates
    assert set(start) == {"progress", "log",
                          "table"} and start["log"].startswith("digitnet on mnist (512 train")
    epochs = [u for u in middle if "report" in u]
    progress = [u for u in middle if u not in epochs]
    assert len(epochs) == 2 and all(set(u) <= {"progress", "curves"} for u in progress)
    assert middle.index(epochs[0]) > 0  # progress inside the first epoch came before its report
    # The curves move within an epoch: a progress update before the first report redraws them.
    assert any("curves" in u for u in middle[:middle.index(epochs[0])])
    for number, update in enumerate(epochs, 1):
        for name in FIGURES:
            assert (
                update[name].dtype == np.uint8
                and update[name].ndim == 3
                and update[name].shape[2] == 3
            )
        assert len(update["table"]) == number and update["report"]["epoch"] == number
    assert set(end) == set(OUTPUTS)
    report = end["report"]
    assert set(report) <= set(T.SUMMARY_KEYS)
    assert {"epoch", "test_acc", "val_acc", "train_seconds", "checkpoint", "stopped"} <= set(report)
    assert report["epoch"] == 2 and report["stopped"] is False and 0.0 <= report["test_acc"] <= 1.0
    # The log carries the CLI's lines, numbers included.
    meta = ckpt.load_checkpoint(end["checkpoint"])
    assert T.epoch_line({**meta["history"][-1], "epochs": 2}) in end["log"]
    assert Path(end["checkpoint"]).parent.parent == tmp_path / "runs" and "train_state" not in meta
    assert end["run"] == {"checkpoint": end["checkpoint"], "resumable": False}
    assert not service.busy()


def test_stop_after_an_epoch_keeps_it_and_resume_finishes_the_run(service):
    updates = []
    for update in service.run(TrainRequest(epochs=3, **SMALL), session="a"):
        updates.append(update)
        if "report" in update:
            assert service.busy() and not service.stop("someone-else")
            assert service.stop("a")
    end = updates[-1]
    assert sum("report" in u for u in updates[:-1]) == 1  # (the end update repeats everything)
    assert end["report"]["stopped"] is True and end["report"]["epoch"] == 1
    assert end["run"]["resumable"] and "train_state" in ckpt.load_checkpoint(end["checkpoint"])
    assert "stopped; the checkpoint of epoch 1 is kept" in end["log"]
    # A stopped run's file resumes anywhere.
    assert VisitorModels(service.folders).adopt(end["checkpoint"], {})[3]["resumable"]

    # Stopped again before the resumed run finishes an epoch: the file it resumed from is still the
    # one to keep.
    interrupted = []
    for update in service.run(TrainRequest(), session="a", resume_from=end["run"]["checkpoint"]):
        interrupted.append(update)
        if len(interrupted) == 2:  # the first progress event
            service.stop("a")
    assert interrupted[-1]["report"]["stopped"] is True and interrupted[-1]["report"]["epoch"] == 1
    assert interrupted[-1]["run"] == {"checkpoint": end["checkpoint"], "resumable": True}

    resumed = list(service.run(TrainRequest(), session="a", resume_from=end["run"]["checkpoint"]))
    # The history so far
    assert [row[0] for row in resumed[0]["table"]] == ["1"] and "curves" in resumed[0]
    last = resumed[-1]
    assert last["report"]["epoch"] == 3 and last["report"]["stopped"] is False
    assert [row[0] for row in last["table"]] == ["1", "2", "3"]
    # Every run has its own folder
    assert Path(last["checkpoint"]).parent != Path(end["checkpoint"]).parent
    with pytest.raises(InputError, match="nothing to resume"):
        next(service.run(TrainRequest(), session="a", resume_from=last["checkpoint"]))


def test_stop_inside_the_first_epoch_ends_at_once_without_a_checkpoint(service):
    updates = []
    for update in service.run(TrainRequest(epochs=1, max_train_images=4096, batch_size=64),
                              session="b"):
        updates.append(update)
        if len(updates) == 2:  # the first progress event
            service.stop("b")
    assert len(updates) == 3 and updates[-1]["report"]["stopped"] is True
    assert updates[-1]["checkpoint"] is None and not updates[-1]["run"]["resumable"]
    assert "no checkpoint to keep" in updates[-1]["log"] and not service.busy()


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_a_run_steps_in_its_own_nicer_thread_only_when_asked_and_errors_reach_the_caller():
    seen, ended = [], []

    def events(fail: bool):
        for i in range(3):
            seen.append((i, threading.get_ident(), _niceness()))
            yield i
        if fail:
            raise FloatingPointError("loss is nan")

    stream = in_background(events(False), niceness=5, on_end=lambda: ended.append(1))
    assert next(stream) == 0
    time.sleep(0.2)
    assert len(seen) == 1  # the run waits for its caller, as if the caller stepped it itself
    assert list(stream) == [1, 2] and ended == [1]  # on_end ran before the caller saw the end
    assert {thread for _, thread, _ in seen} != {threading.get_ident()} and len(
        {t for _, t, _ in seen}
    ) == 1
    if sys.platform.startswith("linux"):
        # The caller's own priority is unchanged
        assert {nice for *_, nice in seen} == {min(19, _niceness() + 5)}
    with pytest.raises(FloatingPointError, match="loss is nan"):
        list(in_background(events(True), on_end=lambda: ended.append(2)))
    assert ended == [1, 2]


def test_a_caller_that_leaves_returns_at_once_and_the_run_is_closed_in_its_thread():
    closed, ended = threading.Event(), threading.Event()

    def events():
        try:
            while True:
                yield "batch"
        finally:
            time.sleep(0.5)  # a run that takes a while to wind up
            closed.set()

    stream = in_background(events(), on_end=ended.set)
    assert next(stream) == "batch"
    t0 = time.perf_counter()
    # The page went away: Gradio closes the stream from its event loop, which must not block
    stream.close()
    assert time.perf_counter() - t0 < 0.3 and not ended.is_set()
    assert ended.wait(10) and closed.is_set()


def test_a_run_left_by_its_caller_ends_on_its_own_and_frees_the_session(service):
    run = service.run(TrainRequest(epochs=1, max_train_images=4096, batch_size=64), session="c")
    next(run)
    t0 = time.perf_counter()
    run.close()
    assert time.perf_counter() - t0 < 1
    deadline = time.time() + 60
    while service.busy() and time.time() < deadline:
        time.sleep(0.05)
    assert not service.busy()
    end = list(service.run(TrainRequest(epochs=1, **SMALL), session="c"))[-1]
    assert end["report"]["epoch"] == 1 and not service.busy()


@pytest.mark.parametrize("change, message", [
    (dict(epochs=10 ** 6), "epochs must be a number between 1 and 200"),
    (dict(epochs=2.5), "epochs must be a whole number"),
    (dict(batch_size=0), "batch_size must be a number between 1 and 4096"),
    (dict(lr=float("nan")), "lr must be a number between"),
    (dict(lr="0.1"), "lr must be a number"),
    (dict(val_split=0.9), "val_split must be a number between 0.0 and 0.5"),
    (dict(max_steps=-1), "max_steps must be a number between 0"),
    (dict(max_seconds=1e9), "max_seconds must be a number between"),
    (dict(max_train_images=True), "max_train_images must be a number"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'"),
    (dict(model="resnet"), "unknown model 'resnet'"),
    (dict(dataset="imagenet"), "unknown dataset 'imagenet'"),
    (dict(dataset="imagefolder", folder="x"), "not enabled on this server"),
    (dict(augment="yes"), "augment must be true or false"),
])
def test_bounds_are_enforced_with_clear_messages(tmp_path, change, message):
    service = Trainer(ServerSettings.make(runs_root=tmp_path))
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        next(service.run(TrainRequest(**change)))
    # Refused before any run folder exists
    assert not service.busy() and not any(tmp_path.iterdir())


def test_defaults_are_the_fast_preset_and_the_time_cap_holds(tmp_path):
    cfg = check_request(TrainRequest(), ServerSettings.make(runs_root=tmp_path))
    recipe = models.default_recipe("digitnet", "sketch")
    assert (cfg.dataset, cfg.model) == ("mnist", "digitnet")
    assert {k: getattr(cfg, k) for k in recipe} == recipe
    capped = ServerSettings.make(runs_root=tmp_path, max_seconds=30)
    assert [capped.run_seconds(check_request(TrainRequest(max_seconds=s), capped).max_seconds)
            for s in (0, 10, 100)] == [30, 10, 30]


def test_folder_datasets_stay_inside_the_allowed_root(tmp_path):
    root = tmp_path / "allowed"
    (root / "shapes" / "a").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    settings = ServerSettings.make(runs_root=tmp_path / "runs", folder_root=root)
    assert "imagefolder" in offered_datasets(settings)
    assert "imagefolder" not in offered_datasets(ServerSettings.make())
    cfg = check_request(TrainRequest(dataset="imagefolder", model="lenet", folder="shapes"),
                        settings)
    assert cfg.data_root == str((root / "shapes").resolve()) and cfg.channels == 3
    for folder, message in (
        ("../secret", "outside the allowed folder"),
        (str(tmp_path / "secret"), "outside"),
        ("escape", "outside"),
        ("shapes/../../secret", "outside"),
        ("missing", "does not exist"),
        ("", "give the image folder"),
    ):
        with pytest.raises(InputError, match=message):
            check_request(TrainRequest(dataset="imagefolder", folder=folder), settings)


# ------------------------------------------------------------------------------------------------
# Checkpoints a visitor uploads, and models offered to one session only

@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_bad_uploads_are_refused_and_nothing_runs(tmp_path, name):
    marker = tmp_path / "code-ran"
    files = bad_checkpoints(tmp_path / "uploads", marker)
    path, message = files[name]
    models = VisitorModels(Trainer(ServerSettings.make(runs_root=tmp_path / "runs")).folders)
    with pytest.raises(InputError, match=message):
        models.adopt(str(path), {})
    assert not marker.exists() and not list((tmp_path / "runs").glob("run-*/*"))


def test_uploaded_model_is_offered_to_that_session_only(tmp_path):
    answers = Answers(Shelf())
    models = VisitorModels(Trainer(ServerSettings.make(runs_root=tmp_path / "runs")).folders)
    check_checkpoint(SHIPPED_DIGITS)
    own, kind, key, run, message = models.adopt(str(SHIPPED_DIGITS), {})
    assert kind == DIGITS and key == "yours-1" and "Draw a digit" in message
    assert run == {"checkpoint": run["checkpoint"],
                   "resumable": False} and Path(run["checkpoint"]).is_file()
    assert answers.shelf.choices(DIGITS, own)[0] == (f"yours: {own[key].name}", key)
    sketch = np.full((280, 280, 3), 255, np.uint8)
    sketch[40:240, 130:160] = 0
    label, _, _ = answers.predict_digit(sketch, key, own)
    assert max(label, key=label.get) == "1"
    # another visitor (no session models) cannot reach it, and learns nothing of whose it was
    with pytest.raises(InputError, match="'yours-1' is no longer held"):
        answers.predict_digit(sketch, key)
    again, _, same, _ = models.use(run["checkpoint"], own)
    assert same == key and len(again) == 1
    with pytest.raises(InputError, match="no checkpoint yet"):
        models.use(None, own)



def test_onnx_download_of_an_uploaded_model_is_written_once_beside_it(tmp_path):
    import onnxruntime as ort

    models = VisitorModels(Trainer(ServerSettings.make(runs_root=tmp_path / "runs")).folders)
    with pytest.raises(InputError, match="no checkpoint yet"):
        models.onnx(None)
    with pytest.raises(InputError, match="files are gone"):
        models.onnx(str(tmp_path / "runs" / "gone.pt"))  # a run folder already removed
    run = models.adopt(str(SHIPPED_DIGITS), {})[3]
    path = Path(models.onnx(run["checkpoint"]))
    assert path.parent == Path(run["checkpoint"]).parent and path.suffix == ".onnx"
    session = ort.InferenceSession(str(path))
    probs, _ = session.run(None, {"image": np.zeros((3, 1, 28, 28), np.float32)})
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
    written = path.stat().st_mtime_ns
    # Not again
    assert models.onnx(run["checkpoint"]) == str(path) and path.stat().st_mtime_ns == written

# ------------------------------------------------------------------------------------------------
# Through the API of a launched app

@pytest.fixture(scope="module")
def served(tmp_path_factory, data_root):
    settings = ServerSettings.make(runs_root=tmp_path_factory.mktemp("runs"), data_root=data_root)
    with serve_app(settings=settings) as url:
        yield url


def test_api_train_with_defaults_and_a_step_budget_returns_the_report(served):
    client = api_client(served)
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = {p["parameter_name"]: p for p in api["/train"]["parameters"]}
    assert all(p["parameter_has_default"] for p in params.values())
    assert (
        params["dataset"]["parameter_default"] == "mnist"
        and params["model"]["parameter_default"] == "digitnet"
    )
    # The session-models state is hidden: the predictors' API is what it was.
    assert [p["parameter_name"] for p in api["/predict_digit"]["parameters"]] == ["sketch", "model"]
    assert [p["parameter_name"] for p in api["/classify_image"]["parameters"]] == ["photo", "model"]

    outputs = client.submit(max_steps=3, max_train_images=600,
                            api_name="/train").result(timeout=300)
    report = next(o for o in outputs if isinstance(o, dict) and "train_seconds" in o)
    assert report["epoch"] == 1 and report["stopped"] is False and 0.0 <= report["test_acc"] <= 1.0
    downloaded = next(o for o in outputs if isinstance(o, str) and o.endswith(".pt"))
    assert ckpt.load_checkpoint(downloaded)["model"] == "digitnet"
    assert client.predict(api_name="/stop_training") == "No training of yours is running."
