"""Shared fixtures: real data comes from TINYVISION_DATA (CI points it at its data folder).

Markers: `browser` (drives headless Chromium) and `slow` (trains or replays for a minute or more);
`python -m pytest -m "not browser and not slow"` is the quick run. Outside CI a browser test is
skipped, saying why, when Chromium or Playwright is missing; in CI (CI=true) that is a failure.
"""
import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Each test process (each worker of a parallel run) has its own Gradio file cache and training-runs
# folder, and so do the apps it starts: Gradio names a cached file by its content, and an app of one
# worker rewrote such a file while an app of the other was serving it ("Too little data for declared
# Content-Length").
_PROCESS_TMP = Path(tempfile.mkdtemp(prefix="tinyvision-tests-"))
atexit.register(shutil.rmtree, _PROCESS_TMP, ignore_errors=True)
os.environ.setdefault("GRADIO_TEMP_DIR", str(_PROCESS_TMP / "gradio"))
os.environ.setdefault("TINYVISION_RUNS", str(_PROCESS_TMP / "runs"))
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TINYVISION_DATA", ROOT.parent / "shared" / "datasets"))
PEN_DIGITS = Path(os.environ.get("TINYVISION_PEN_DIGITS",
                                 ROOT.parent / "shared" / "pen-digits" / "pen_digits_dev.json"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    from bench.serving import CHROMIUM

    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install -r requirements-dev.txt)"
    return None


# The longest test files, longest first. They are collected before the others, so that the README's
# parallel run (`pytest -n 2 --dist loadfile --no-loadscope-reorder`) starts them at once instead of
# ending on them.
LONGEST_FILES = ("test_browser_app.py", "test_browser_own_classes.py", "test_browser_train.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    # Stable: each file keeps its own order
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_runtest_setup(item):
    # A hook, not a fixture: it runs before the module-scoped fixtures that start the browser.
    if item.get_closest_marker("browser") is None:
        return
    reason = browser_missing()
    if reason and IN_CI:
        pytest.fail(f"browser test cannot run in CI: {reason}")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"real data expected at {DATA} (set TINYVISION_DATA)")
    return DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # One cache per test run: real decodes are shared, nothing is written to the user's home.
    # Parallel workers (pytest -n) share their run's folder; the cache writes atomically.
    base = tmp_path_factory.getbasetemp()
    run = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    monkeypatch.setenv("TINYVISION_CACHE", str(run / "cache"))
