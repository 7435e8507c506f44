"""Shared fixtures: real data comes from TINYVISION_DATA (CI points it at ../shared/datasets)."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TINYVISION_DATA", ROOT.parent / "shared" / "datasets"))
PEN_DIGITS = Path(os.environ.get("TINYVISION_PEN_DIGITS", ROOT.parent / "shared" / "pen-digits" / "pen_digits_dev.json"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA / "MNIST" / "raw").is_dir():
        pytest.fail(f"real data expected at {DATA} (set TINYVISION_DATA)")
    return DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # One cache per test session: real decodes are shared, nothing is written to the user's home.
    monkeypatch.setenv("TINYVISION_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
