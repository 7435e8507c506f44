"""Reliability through the API of a real `python app.py`: bad input of every kind, refused training
requests and checkpoint uploads, and the app killed (SIGKILL) during a training. The full corpus,
load, memory and fault figures come from the scripts in bench/ (README, "Reliability"); these are
their fast parts, on the same code.
"""
import pytest

from bench.bad_inputs import (
    BAD_ARCHIVES,
    BAD_CHECKPOINTS,
    FILES,
    TRAIN_REFUSALS,
    WRONG_TYPES,
    archive_refusals,
    checkpoint_hashes,
    folder_root,
    healthy,
    make_corpus,
    run_corpus,
    run_files,
    training_refusals,
)
from bench.faults import kill_app_during_training
from bench.serving import api_client, running_app


@pytest.fixture(scope="module")
def app(tmp_path_factory, data_root):
    workdir = tmp_path_factory.mktemp("reliability")
    with running_app(str(data_root), workdir, ("--allow-folders", str(folder_root(workdir))),
                     workdir / "app.log") as (proc, url):
        yield proc, url, workdir


def test_one_of_every_bad_input_is_a_prediction_or_a_clear_error_and_the_app_keeps_serving(app):
    proc, url, workdir = app
    cases = make_corpus(workdir / "corpus", variants=1)
    assert {c.category for c in cases} == {*FILES, *WRONG_TYPES, "unknown model"}
    assert {c.endpoint for c in cases} == {"/predict_digit", "/classify_image"}
    client = api_client(url)
    rows, unclear = run_corpus(client, proc, cases)
    assert unclear == []
    assert sum(r["count"] for r in rows) == len(cases)
    assert proc.poll() is None and healthy(client, workdir)


def test_bad_training_requests_and_checkpoint_uploads_are_refused_and_nothing_runs(app):
    proc, url, workdir = app
    before = checkpoint_hashes()
    rows = training_refusals(url, workdir)
    assert len(rows) == len(TRAIN_REFUSALS) + len(BAD_CHECKPOINTS) + 1  # + the code-ran check
    assert [r for r in rows if not r["clear refusal"]] == []
    assert run_files(workdir) == []  # refused before any run folder was filled
    assert checkpoint_hashes() == before
    assert proc.poll() is None


def test_bad_archives_of_own_classes_are_refused_and_nothing_is_written(app):
    proc, url, workdir = app
    rows = archive_refusals(url, workdir)
    assert len(rows) == len(BAD_ARCHIVES) + 1  # + the nothing-written check
    assert [r for r in rows if not r["clear refusal"]] == []
    assert proc.poll() is None and healthy(api_client(url), workdir)


@pytest.mark.slow
def test_app_killed_during_a_training_restarts_and_the_shipped_checkpoints_are_untouched(app,
                                                                                         data_root):
    # Last in this file: it kills the module's app, then starts and stops its own on the same run
    # folder.
    proc, url, workdir = app
    result = kill_app_during_training(
        proc,
        url,
        workdir,
        str(data_root),
        dict(epochs=1, max_train_images=4096, batch_size=32),
        retrain_steps=2,
    )
    checks = {k: v for k, v in result.items() if not k.endswith(" s")}
    assert checks == {"killed while training": True, "exit by SIGKILL": True,
                      "shipped checkpoints unchanged after the kill": True,
                      "serves a prediction after restart": True, "trains after restart": True,
                      "shipped checkpoints unchanged at the end": True,
                      "tracebacks in the restarted app's log": 0}
