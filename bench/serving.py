"""The app served locally for tests and benches, and the headless browser that opens it.

`serve_app` runs it in this process (app.launch, shipped checkpoints); `start_app`/`running_app` run
`python app.py` in a subprocess, as a visitor's server would, so a measuring client never shares its
process. `chromium` is Debian's /usr/bin/chromium driven by Playwright (never `playwright install`:
it downloads a browser). `PageSession` speaks the app's HTTP protocol the way its page does, for
events gradio_client cannot reach and for load that gradio_client's own CPU use would distort.
`api_client` is the gradio_client Client they all use.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TINYVISION_TEST_ARTIFACTS", ROOT / "test-artifacts"))
# Debian's; set for another system
CHROMIUM = os.environ.get("TINYVISION_CHROMIUM", "/usr/bin/chromium")
# Every request outside the app fails at once: a proxy nobody listens on (loopback bypasses it),
# as on an offline machine.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--proxy-server=http://127.0.0.1:9"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_client(url: str, ssl_verify: bool = False):
    """A gradio_client Client for `url`.

    gradio_client opens a new httpx client for each of its requests (queue join, event stream, file
    upload and download). With certificate verification on, each of them loads the CA bundle: about
    60 ms of CPU here, some 270 ms per prediction, spent on the machine that also runs the app. A
    plain-HTTP URL has no certificate to verify, so verification stays off there unless asked for;
    an https URL is always verified.
    """
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=ssl_verify or url.startswith("https:"))


@contextmanager
def serve_app(**build_kwargs) -> Iterator[str]:
    """The real app (app.launch, shipped checkpoints) in this process on 127.0.0.1:<free port>;
    yields its URL."""
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
    """`python app.py [args]` on a free port, runs in workdir/runs; stdout+stderr to `log` (default:
    discarded).

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
    """A context giving (process or None, url): the app at `url`, else one started with
    `running_app`."""
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


class PageSession:
    """One open page's session with the app over HTTP: upload files, join the queue, read the event
    stream.

    `call` runs one event (found by api_name, or by the elem_id and trigger of the component that
    fires it) and returns (success, output data or error message).
    """

    def __init__(self, url: str, timeout: float = 120):
        import httpx

        self.http = httpx.Client(base_url=url, timeout=timeout)
        self.config = self.http.get("config").json()
        self.session = uuid.uuid4().hex[:10]

    def __enter__(self) -> PageSession:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def event(self, api_name: str | None = None, elem_id: str | None = None,
              trigger: str | None = None) -> tuple[int, int | None]:
        """(fn_index, trigger_id) of an event; of a component event with several listeners (Resume
        also shows the queue's note at once), the one with the most outputs."""
        if api_name is not None:
            return next(
                d["id"] for d in self.config["dependencies"] if d.get("api_name") == api_name
            ), None
        target = next(
            c["id"]
            for c in self.config["components"]
            if c.get("props", {}).get("elem_id") == elem_id
        )
        fn = max((d for d in self.config["dependencies"]
                  if [target, trigger] in [list(t) for t in d["targets"]]),
                 key=lambda d: len(d["outputs"]))
        return fn["id"], target

    def upload(self, path: Path, data: bytes | None = None) -> dict:
        """A file sent to the upload route, as the FileData payload an input then carries."""
        body = path.read_bytes() if data is None else data
        r = self.http.post("gradio_api/upload", files={"files": (path.name, body)})
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, event: tuple[int, int | None], inputs: list[Any]) -> tuple[bool, Any]:
        fn_index, trigger_id = event
        joined = self.http.post("gradio_api/queue/join", json={"data": inputs, "fn_index": fn_index,
                                                               "trigger_id": trigger_id,
                                                               "session_hash": self.session,
                                                               "event_data": None})
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "gradio_api/queue/data",
                              params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                msg = json.loads(line[5:]) if line.startswith("data:") else {}
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    output = msg.get("output") or {}
                    return bool(msg.get("success")), output.get("data", output.get("error"))
        raise RuntimeError("the event stream ended without a result")
