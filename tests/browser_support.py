"""Shared pieces of the browser tests: the app served on a free local port, and headless Debian Chromium.

Playwright drives /usr/bin/chromium (never `playwright install`: it would download a browser).
"""
from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TINYVISION_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(**build_kwargs) -> Iterator[str]:
    """The real app (app.launch, shipped checkpoints) on 127.0.0.1:<free port>; yields its URL."""
    import app

    port = free_port()
    demo = app.launch(app.build_app(**build_kwargs), server_name="127.0.0.1", server_port=port,
                      prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
