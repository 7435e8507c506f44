"""The app as a public server: what a checkpoint may ask to build, what files keep, each visitor's
runs, models and trainings under quotas of their own, and what reaches a caller (core.services:
run_folders, visitor_models, runs, training_requests, texts, http_guard)."""
import gc
import json
import logging
import os
import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from bench.serving import free_port
from core import checkpoint as ckpt
from core import models
from core import train as T
from core.config import TrainConfig, recorded
from core.folders import image_files
from core.preparation import InputError
from core.services import runs as R
from core.services import texts
from core.services.own_classes import ClassFolders
from core.services.run_folders import RunFolders
from core.services.runs import Trainer
from core.services.settings import RUN_SECONDS, ServerSettings
from core.services.training_requests import TrainRequest, resume_config
from core.services.visitor_models import MODELS_FULL, VisitorModels, model_bytes

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"


# -- what a checkpoint may ask to build -----------------------------------------------------------

def _stopped_run(path: Path, config: dict, widths=(8, 16, 16)) -> Path:
    """A checkpoint of a stopped digitnet run (it holds optimizer state) with this stored
    config."""
    model_kwargs = {"widths": list(widths)}
    net = models.create_model("digitnet", 10, 1, 28, **model_kwargs)
    meta = ckpt.make_meta("digitnet", "mnist", [str(i) for i in range(10)], (1, 28, 28),
                          (0.1307,), (0.3081,), model_kwargs, kind="sketch", config=config)
    return ckpt.save_checkpoint(path, meta, net.state_dict(), train_state={"epoch": 1})


@pytest.mark.parametrize("asked", [{"widths": [32, 64, 100000]}, {"pretrained": True}, "x"])
def test_resume_builds_the_model_its_weights_say_whatever_the_stored_config_asks(tmp_path, asked):
    config = {**recorded(TrainConfig(epochs=2, batch_size=64)), "model_kwargs": asked}
    path = _stopped_run(tmp_path / "stopped.pt", config)
    cfg, _ = resume_config(str(path), ServerSettings.make(runs_root=tmp_path))
    assert cfg.model_kwargs == {"widths": [8, 16, 16]} and not cfg.pretrained
    assert cfg.epochs == 2 and cfg.resume == str(path)


def test_a_checkpoint_may_not_claim_more_memory_than_it_holds(tmp_path):
    # Weights saved as zero-stride views: one stored number "expanded" to a whole tensor
    net = models.create_model("digitnet", 10, 1, 28)
    expanded = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) if v.dim() else v
                for k, v in net.state_dict().items()}
    meta = ckpt.make_meta("digitnet", "mnist", [str(i) for i in range(10)], (1, 28, 28),
                          (0.1307,), (0.3081,), {}, kind="sketch")
    path = ckpt.save_checkpoint(tmp_path / "hollow.pt", meta, expanded)
    assert path.stat().st_size < 100_000
    with pytest.raises(ckpt.CheckpointError, match="larger than the data stored"):
        ckpt.load_checkpoint(path)
    # Settings asking for an enormous net are refused before anything is built (meta device)
    payload = ckpt.load_checkpoint(_stopped_run(tmp_path / "ok.pt", {}))
    with pytest.raises(ckpt.CheckpointError, match="parameters; at most"):
        ckpt.check_architecture({**payload, "model_kwargs": {"widths": [16, 32, 50_000_000]}})


@pytest.mark.parametrize("where", [{"epoch": -100_000}, {"epoch": 10**9},
                                   {"train_seconds": -1e12}, {"train_seconds": float("nan")},
                                   {"step": "x"}])
def test_resume_refuses_a_run_that_stood_where_no_run_can(tmp_path, data_root, where):
    cfg = TrainConfig(dataset="mnist", model="digitnet", epochs=3, batch_size=64,
                      max_train_images=128, data_root=data_root, download=False,
                      model_kwargs={"widths": [8, 16, 16]})
    run = T.build_run(cfg)
    state = {"optimizer": run.optimizer.state_dict(), "epoch": 0, "step": 2,
             "train_seconds": 1.0, **where}
    ckpt.save_checkpoint(tmp_path / "r.pt", run.meta, run.model.state_dict(), train_state=state)
    with pytest.raises(ckpt.CheckpointError, match="cannot resume this run: where it stood"):
        T.restore(run, str(tmp_path / "r.pt"))
    state.update({"epoch": 0, "step": 2, "train_seconds": 1.0})  # a real place resumes
    ckpt.save_checkpoint(tmp_path / "r.pt", run.meta, run.model.state_dict(), train_state=state)
    T.restore(run, str(tmp_path / "r.pt"))
    assert (run.start_epoch, run.step, run.train_seconds) == (1, 2, 1.0)


def test_checkpoints_and_reports_keep_no_paths_of_the_machine(tmp_path, data_root):
    out = tmp_path / "deep" / "folder" / "run.pt"
    cfg = TrainConfig(dataset="mnist", data_root=str(data_root), epochs=1, max_train_images=128,
                      batch_size=64, test=False, out=str(out), init_from=str(SHIPPED /
                                                                             "mnist-digitnet.pt"))
    events = list(T.train(cfg))
    stored = ckpt.load_checkpoint(out)["config"]
    assert stored["data_root"] == Path(data_root).name and stored["out"] == "run.pt"
    assert stored["init_from"] == "mnist-digitnet.pt"
    text = json.dumps(stored) + json.dumps(events[0]["config"])
    assert str(tmp_path) not in text and str(data_root) not in text and str(ROOT) not in text


def test_no_update_of_a_run_names_where_the_server_keeps_it(tmp_path, data_root):
    from core.services.dashboard import OUTPUTS

    service = Trainer(ServerSettings.make(runs_root=tmp_path / "runs", data_root=data_root),
                      plot_every_s=0, progress_every_s=0)
    updates = list(service.run(TrainRequest(epochs=1, max_train_images=256, batch_size=128),
                               session="a"))
    assert Path(updates[-1]["run"]["checkpoint"]).is_file()  # the server keeps it, for the page
    shown = json.dumps([{k: u[k] for k in OUTPUTS if k in u and k not in ("curves", "samples",
                        "per_class", "confusion", "checkpoint", "run")} for u in updates])
    assert "report" in shown and "digitnet.pt" in shown
    assert str(tmp_path) not in shown and str(data_root) not in shown


def test_a_folder_run_resumes_on_the_folder_the_visitor_names(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "shapes").mkdir(parents=True)
    settings = ServerSettings.make(runs_root=tmp_path / "runs", folder_root=allowed)
    config = {**recorded(TrainConfig(dataset="imagefolder", data_root=str(allowed / "shapes"))),
              "model_kwargs": {}}
    meta_path = _stopped_run(tmp_path / "folder.pt", config)
    payload = ckpt.load_checkpoint(meta_path)
    payload["dataset"] = "imagefolder"
    torch.save(payload, meta_path)
    with pytest.raises(InputError, match="name that folder"):
        resume_config(str(meta_path), settings)
    cfg, _ = resume_config(str(meta_path), settings, folder="shapes")
    assert cfg.data_root == str((allowed / "shapes").resolve())
    with pytest.raises(InputError, match="outside the allowed folder"):
        resume_config(str(meta_path), settings, folder="../..")


# -- each visitor's run folders --------------------------------------------------------------------

def _fill(folder: Path, size: int) -> None:
    (folder / "model.pt").write_bytes(b"\0" * size)


def test_a_visitors_runs_are_theirs_to_lose(tmp_path):
    folders = RunFolders(tmp_path, runs_per_session=3)
    mine = folders.new("alice")
    _fill(mine, 1000)
    folders.release(mine)
    # Another visitor's burst of uploads cannot remove it
    for _ in range(25):
        run = folders.new("mallory")
        _fill(run, 1000)
        folders.release(run)
    assert mine.is_dir()
    assert folders.usage()["sessions"] == {"alice": 1000, "mallory": 3000}
    # Their own newer runs do, beyond the session's quota (the newest kept)
    made = [folders.new("alice") for _ in range(3)]
    assert not mine.exists() and all(p.is_dir() for p in made)
    # Named by a random id: nothing about the session in it
    assert all("alice" not in p.name and len(p.name) == len("run-") + 16 for p in made)


def test_past_the_total_others_left_runs_go_first_and_a_live_visitors_newest_never(tmp_path):
    folders = RunFolders(tmp_path, runs_per_session=3, total_max_bytes=5000)
    gone, live = folders.new("left"), folders.new("alice")
    for run in (gone, live):
        _fill(run, 2000)
        folders.release(run)
    folders.session_ended("left")
    run = folders.new("bob")  # 4,000 bytes held: room
    _fill(run, 2000)
    folders.release(run)
    assert gone.is_dir()
    newer = folders.new("bob")  # 6,000: the visitor who left makes room
    assert not gone.exists() and live.is_dir() and run.is_dir()
    _fill(newer, 2000)
    folders.release(newer)
    # bob's older run makes room next; alice's only run is never someone else's to remove
    third = folders.new("bob")
    assert not run.exists() and live.is_dir() and newer.is_dir()
    _fill(third, 2000)
    folders.release(third)
    carol = folders.new("carol")  # bob's older run goes
    assert not newer.exists() and live.is_dir() and third.is_dir()
    _fill(carol, 2000)
    folders.release(carol)
    with pytest.raises(InputError, match="as many visitors' runs"):
        folders.new("dave")  # each live visitor's newest is all that is left: full
    assert live.is_dir() and third.is_dir() and carol.is_dir()


def test_run_folders_of_an_earlier_server_count_as_left(tmp_path):
    old = tmp_path / "run-0123456789abcdef"
    old.mkdir()
    _fill(old, 4000)
    folders = RunFolders(tmp_path, total_max_bytes=5000)
    run = folders.new("alice")
    _fill(run, 2000)
    folders.release(run)
    folders.new("alice")
    assert not old.exists() and run.is_dir()


def test_own_classes_folders_are_named_by_random_ids(tmp_path):
    classes = ClassFolders(tmp_path)
    a = classes.examples("session-hash-a", "sketch")
    a.add_class("circle")
    assert "session-hash-a" not in str(a.folder) and a.folder.is_dir()
    assert classes.examples("session-hash-a", "sketch").folder == a.folder
    classes.session_ended("session-hash-a")
    assert classes.examples("session-hash-a", "sketch").folder != a.folder


# -- each visitor's models in memory ---------------------------------------------------------------

def test_visitors_models_in_memory_are_bounded_in_all_and_freed_with_their_state(tmp_path):
    one = SHIPPED / "mnist-digitnet.pt"
    size = model_bytes(VisitorModels(RunFolders(tmp_path / "probe")).load(one))
    gc.collect()
    service = VisitorModels(RunFolders(tmp_path / "runs"), max_bytes=int(2.5 * size))
    states = [service.adopt(str(one), {}, session=f"s{i}")[0] for i in range(2)]
    assert service.held_bytes() == 2 * size
    with pytest.raises(InputError, match="as many visitors' models"):
        service.adopt(str(one), {}, session="s2")
    states.pop()  # a session's state dropped (it ended, or its time to live passed)
    gc.collect()
    assert service.held_bytes() == size
    states.append(service.adopt(str(one), {}, session="s2")[0])
    assert MODELS_FULL.startswith("the server holds")
    # a model trained in Your classes is counted the same way
    from core.services.own_classes import trained_model
    with pytest.raises(InputError, match="as many visitors' models"):
        trained_model({"run": {"checkpoint": str(one)}}, service.load)


def test_a_model_let_go_is_named_as_such_when_asked_for():
    import numpy as np

    from core.services.answers import Answers
    from core.services.shelf import Shelf

    sketch = np.full((280, 280, 3), 255, np.uint8)
    sketch[40:240, 130:160] = 0
    with pytest.raises(InputError, match="'yours-3' is no longer held on the server"):
        Answers(Shelf()).predict_digit(sketch, "yours-3", {})  # its state expired


def test_the_same_upload_again_makes_no_new_copy(tmp_path):
    folders = RunFolders(tmp_path / "runs")
    service = VisitorModels(folders)
    own = {}
    for _ in range(10):
        own, _, key, run, _ = service.adopt(str(SHIPPED / "mnist-digitnet.pt"), own, "alice")
    assert len(own) == 1 and folders.usage()["folders"] == 1 and key == "yours-1"
    other = service.adopt(str(SHIPPED / "mnist-digitnet.pt"), {}, "bob")[3]
    assert other["checkpoint"] != run["checkpoint"] and folders.usage()["folders"] == 2


# -- the trainer's line ----------------------------------------------------------------------------

class _Held:
    """A stand-in for core.train.train: a run of `steps` events, each let through by `go`."""

    def __init__(self):
        self.go, self.started, self.stopped = threading.Semaphore(0), [], []

    def __call__(self, cfg, should_stop):
        self.started.append(cfg)
        for step in range(1000):
            if should_stop():
                self.stopped.append(cfg)
                return
            self.go.acquire(timeout=5)
            yield {"type": "step", "n": step}


class _Dash:
    def __init__(self, *args):
        pass

    def update(self, event):
        return {"progress": f"step {event['n']}"}


@pytest.fixture
def held(monkeypatch, tmp_path):
    fake = _Held()
    monkeypatch.setattr(R, "train", fake)
    monkeypatch.setattr(R, "Dashboard", _Dash)
    monkeypatch.setattr(R, "WAIT_POLL_S", 0.05)
    trainer = Trainer(ServerSettings.make(runs_root=tmp_path / "runs"), max_waiting=2)
    return trainer, fake


def _config() -> TrainConfig:
    return TrainConfig(epochs=1)


def test_one_training_each_and_a_bounded_line_that_refuses_with_a_message(held):
    trainer, fake = held
    first = trainer.stream(_config(), [], "a")
    fake.go.release()
    assert next(first)["progress"] == "step 0" and trainer.busy()
    with pytest.raises(InputError, match="running or waiting already"):
        next(trainer.stream(_config(), [], "a"))
    waiting = [trainer.stream(_config(), [], s) for s in ("b", "c")]
    assert [next(w)["progress"] for w in waiting] == [
        texts.progress_html(0.0, texts.waiting(1)), texts.progress_html(0.0, texts.waiting(2))]
    with pytest.raises(InputError, match="line of trainings waiting is full"):
        next(trainer.stream(_config(), [], "d"))
    # b gives up its place while waiting; c moves up, then runs when a is over
    assert trainer.stop("b") and next(waiting[0])["progress"].count("Stopped before it started")
    assert next(waiting[1]) == {"progress": texts.progress_html(0.0, texts.waiting(1))}
    assert trainer.stop("a")
    fake.go.release()
    assert list(first) == []
    fake.go.release()
    assert next(waiting[1])["progress"] == "step 0" and len(fake.started) == 2
    waiting[1].close()


def test_a_caller_who_leaves_the_line_or_stops_reading_frees_the_trainer(held):
    trainer, fake = held
    first = trainer.stream(_config(), [], "a")
    fake.go.release()
    next(first)
    second = trainer.stream(_config(), [], "b")
    next(second)
    second.close()  # the page closed while waiting
    assert trainer._line == ["a"]
    reading = [True]
    third = trainer.stream(_config(), [], "c", listening=lambda: reading[0])
    next(third)
    first.close()  # the running one's caller left: its run ends in its own thread
    deadline = time.time() + 10
    while trainer._line[:1] == ["a"] and time.time() < deadline:
        fake.go.release()
        time.sleep(0.05)
    for _ in range(3):
        fake.go.release()
        update = next(third)
    assert update["progress"].startswith("step")
    reading[0] = False  # nobody reads its updates any more
    fake.go.release()
    rest = list(third)
    assert len(rest) <= 2 and fake.stopped and not trainer.busy()


def test_an_archive_is_not_read_when_its_training_could_not_join_the_line(held, tmp_path):
    from core.services.own_classes import train_archive
    from core.services.shelf import Shelf

    trainer, fake = held
    runs = [trainer.stream(_config(), [], s) for s in "abc"]  # 1 running + 2 waiting: full
    for run in runs:
        next(run)
    not_read = tmp_path / "never-opened.zip"  # not even a file: its reading would fail otherwise
    for session, refusal in (("d", texts.TRAINER_FULL), ("a", texts.ONE_TRAINING_EACH)):
        with pytest.raises(InputError, match=re.escape(refusal[:30])):
            train_archive(trainer, Shelf(), ClassFolders(tmp_path / "classes"), str(not_read),
                          "sketch", "transfer", session)
    for run in runs:
        run.close()


def test_a_run_past_its_cap_in_wall_time_is_stopped_whatever_its_training_time(held,
                                                                                monkeypatch):
    # Training time is what the cap counts; evaluation comes on top. A run that spends its time
    # outside training (one batch an epoch, a large test set) is stopped on the wall clock.
    trainer, fake = held
    monkeypatch.setattr(R, "WALL_FACTOR", 0.0)
    monkeypatch.setattr(R, "WALL_MARGIN_S", 0.3)
    run = trainer.stream(TrainConfig(epochs=1, max_seconds=100), [], "a")
    fake.go.release()
    next(run)
    time.sleep(0.6)  # "evaluating": no event, past the wall deadline
    fake.go.release()
    list(run)
    assert fake.stopped and not trainer.busy()


def test_a_public_server_caps_every_run_unless_the_operator_says_otherwise(tmp_path):
    assert ServerSettings.make(runs_root=tmp_path).run_seconds(0) == RUN_SECONDS
    assert ServerSettings.from_args([]).max_seconds == RUN_SECONDS
    assert ServerSettings.from_args(["--max-train-seconds", "0"]).run_seconds(0) == 0
    assert ServerSettings.from_args(["--max-upload-mb", "5"]).max_upload_mb == 5
    with pytest.raises(ValueError, match="max_upload_mb"):
        ServerSettings.make(runs_root=tmp_path, max_upload_mb=0)


# -- what reaches a caller -------------------------------------------------------------------------

def test_messages_name_files_never_where_the_server_keeps_them(tmp_path):
    message = ("MNIST not found under /srv/data (expected /srv/data/MNIST/raw/train.gz); see "
               "https://doi.org/10.5281/zenodo.1195803 or 1/2 of /tmp/runs/run-ab12/x.pt")
    assert texts.public(message) == ("MNIST not found under data (expected train.gz); see "
                                     "https://doi.org/10.5281/zenodo.1195803 or 1/2 of x.pt")
    broken = tmp_path / "private" / "broken.pt"
    broken.parent.mkdir()
    broken.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(broken)
    assert str(info.value).startswith("broken.pt is not a readable checkpoint: it is not a PyTorch")
    assert str(tmp_path) not in str(info.value) and "zip" not in str(info.value).lower()
    with pytest.raises(ckpt.CheckpointError) as info:
        ckpt.load_checkpoint(tmp_path / "private" / "missing.pt")
    assert str(tmp_path) not in str(info.value)


def test_links_in_an_allowed_folder_lead_nowhere_outside_it(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "photo.png").write_bytes(b"x")
    allowed = tmp_path / "allowed" / "set"
    (allowed / "cats").mkdir(parents=True)
    (allowed / "cats" / "a.png").write_bytes(b"x")
    os.symlink(secret / "photo.png", allowed / "cats" / "b.png")
    os.symlink(secret, allowed / "cats" / "more")
    os.symlink(allowed / "cats" / "a.png", allowed / "cats" / "c.png")  # inside: followed
    assert [p.name for p in image_files(allowed)] == ["a.png", "c.png"]


# -- the launched app ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    import app

    runs = tmp_path_factory.mktemp("runs")
    demo = app.build_app(settings=ServerSettings.make(runs_root=runs, max_upload_mb=1))
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               quiet=True)
    yield f"http://127.0.0.1:{port}", demo
    demo.close()


def _post(url: str, body: bytes, kind: str = "application/json") -> tuple[int, str]:
    """POST `body`; the status and text of the answer, also when the server answers before it has
    read the whole body (then closes the connection)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.putrequest("POST", parts.path)
    conn.putheader("Content-Type", kind)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    try:
        for i in range(0, len(body), 1 << 16):
            conn.send(body[i:i + (1 << 16)])
    except OSError:
        pass  # answered (and closed) early
    response = conn.getresponse()
    text = response.read().decode(errors="replace")
    conn.close()
    return response.status, text


def test_the_server_offers_no_deep_links_and_refuses_oversized_bodies(small_app):
    url, _ = small_app
    try:
        urllib.request.urlopen(f"{url}/gradio_api/deep_link?session_hash=x", timeout=30)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == 404
    # Nor the components' server helpers (the sketchpad's layer store)
    status, _ = _post(f"{url}/gradio_api/component_server", b"{}")
    assert status == 404
    # An image inline in a JSON call, past the body limit
    data = "data:image/png;base64," + "A" * (17 << 20)
    status, text = _post(f"{url}/gradio_api/call/classify_image",
                         json.dumps({"data": [{"url": data}, None]}).encode())
    assert status == 413 and "larger than this server accepts" in text
    # An upload past the server's limit (1 MB here)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x.pt\""
            f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + b"\0" * (2 << 20) + (
        f"\r\n--{boundary}--\r\n").encode()
    status, _ = _post(f"{url}/gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")
    assert status == 413
    # The same sent in chunks, its length not declared
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=60)
    conn.putrequest("POST", "/gradio_api/call/classify_image")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for _ in range(20):
            chunk = b"A" * (1 << 20)
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except OSError:
        pass
    response = conn.getresponse()
    assert response.status == 413 and b"larger than" in response.read()
    conn.close()
    # and the app answers as before
    status, text = _post(f"{url}/gradio_api/call/classify_image", b'{"data": [null, null]}')
    assert status == 200 and "event_id" in text


def test_a_refused_input_is_one_line_in_the_log_and_no_traceback(small_app, caplog, capfd):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, _ = small_app
    client = Client(url + "/", verbose=False)
    with caplog.at_level(logging.INFO, logger="tinyvision"):
        for args, api in [((12345, None), "/predict_digit"), (("x", None), "/classify_image")]:
            with pytest.raises(AppError, match="expected an uploaded image file") as info:
                client.predict(*args, api_name=api)
            assert api[1:] in str(info.value)
        # a value the web framework's own component refuses (not one of the choices)
        with pytest.raises(AppError, match="not in the list of choices|choose one of"):
            client.predict(None, "no-such-model", api_name="/predict_digit")
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused")]
    assert len(refusals) == 3 and not any(r.exc_info for r in refusals)
    assert "Traceback" not in capfd.readouterr().err


def test_a_rest_training_nobody_reads_is_stopped(small_app, monkeypatch, data_root, caplog):
    import app

    url, demo = small_app
    monkeypatch.setattr(app, "UNREAD_LIMIT", 3)
    monkeypatch.setattr(demo.trainer, "progress_every_s", 0.0)
    fields = {"dataset": "mnist", "model": "digitnet", "epochs": 200, "batch_size": 64,
              "max_train_images": 256}
    names = [f for f in app.REQUEST_FIELDS]
    request = TrainRequest(**{k: v for k, v in fields.items()})
    caplog.set_level(logging.INFO, logger="tinyvision")
    status, text = _post(f"{url}/gradio_api/call/train",
                         json.dumps({"data": [getattr(request, n) for n in names]}).encode())
    assert status == 200 and "event_id" in text

    def stopped() -> bool:
        return any("nobody reads is stopped" in r.getMessage() for r in caplog.records)

    # 200 epochs would take minutes: the run is stopped once 3 updates wait unread
    deadline = time.time() + 90
    while not stopped() and time.time() < deadline:
        time.sleep(0.2)
    assert stopped(), "the run nobody reads was stopped"
    deadline = time.time() + 30
    while demo.trainer.busy() and time.time() < deadline:
        time.sleep(0.2)
    assert not demo.trainer.busy()


# -- what the framework keeps of a session --------------------------------------------------------

def test_a_drawing_is_read_from_its_composite_and_no_session_keeps_what_it_sent():
    import app

    big = {"path": "/tmp/gradio/x/huge.png", "meta": {"_type": "gradio.FileData"}}
    sent = {"background": big, "layers": [big] * 100, "composite": big}
    assert app._composite_only(sent) == {"background": None, "layers": [], "composite": big}
    # no composite: the background is the drawing
    assert app._composite_only({"background": big, "layers": [big]})["composite"] == big

    class Block:
        _id = 7

    class State:
        config_values = {7: {"props": {"value": "x" * 1000}}, 8: {"props": {"value": "kept"}}}

    state = State()
    app._forget_values(state, [Block()])
    assert state.config_values == {7: {"props": {"value": None}}, 8: {"props": {"value": "kept"}}}


def test_a_visitors_large_model_answers_through_the_server_not_the_page(tmp_path):
    from core.predictor import Predictor
    from core.services.page_assets import PageAssets
    from core.services.page_models import PAGE_MAX_PARAMETERS, PageModels

    pages = PageModels(PageAssets(), tmp_path / "cache", SHIPPED)
    meta = ckpt.make_meta("cnn", "mnist", [str(i) for i in range(10)], (1, 28, 28), (0.1307,),
                          (0.3081,), {}, kind="sketch")
    big = models.create_model("cnn", 10, 1, 28)
    assert models.count_parameters(big) > PAGE_MAX_PARAMETERS
    path = ckpt.save_checkpoint(tmp_path / "yours" / "big.pt", meta, big.state_dict())
    assert pages.spec(Predictor.load(path)) is None
    small = ckpt.save_checkpoint(tmp_path / "yours" / "small.pt", {**meta, "model": "digitnet"},
                                 models.create_model("digitnet", 10, 1, 28).state_dict())
    assert pages.spec(Predictor.load(small))["onnx"]
    # a shipped model runs in the page whatever its size
    assert pages.spec(Predictor.load(SHIPPED / "mnist-cnn.pt"))["onnx"]
