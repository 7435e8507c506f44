"""The app served locally for tests and benches, and the headless browser that opens it.

`serve_app` runs it in this process (app.launch, shipped checkpoints); `start_app`/`running_app` run
`python app.py` in a subprocess, as a visitor's server would, so a measuring client never shares its process.
`chromium` is Debian's /usr/bin/chromium driven by Playwright (never `playwright install`: it downloads a browser).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, nullcontext, suppress
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
    """The real app (app.launch, shipped checkpoints) in this process on 127.0.0.1:<free port>; yields its URL."""
    sys.path.insert(0, str(ROOT))
    import app

    port = free_port()
    demo = app.launch(app.build_app(**build_kwargs), server_name="127.0.0.1", server_port=port,
                      prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def start_app(data_root: str | None, workdir: Path, args: tuple[str, ...] = (),
              log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`python app.py [args]` on a free port, runs in workdir/runs; stdout+stderr to `log` (default: discarded).

    Raises RuntimeError (with the log's tail) if it exits or does not answer within 180 s.
    """
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "TINYVISION_RUNS": str(workdir / "runs"), "GRADIO_ANALYTICS_ENABLED": "False"}
    if data_root:
        env["TINYVISION_DATA"] = str(data_root)
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT)
    if log:
        out.close()  # the child holds its own copy
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
                raise RuntimeError(f"the app did not start\n{tail}") from None
            time.sleep(0.5)


@contextmanager
def running_app(data_root: str | None, workdir: Path, args: tuple[str, ...] = (),
                log: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """`start_app`, stopped (SIGTERM, then SIGKILL) on leaving, even when the body failed."""
    proc, url = start_app(data_root, workdir, args, log)
    try:
        yield proc, url
    finally:
        for stop in (proc.terminate, proc.kill):  # SIGKILL only if SIGTERM has not ended it in 30 s
            stop()
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
                break


def app_at(url: str | None, data_root: str | None, workdir: Path):
    """A context giving (process or None, url): the app at `url`, else one started with `running_app`."""
    return nullcontext((None, url)) if url else running_app(data_root, workdir)


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
