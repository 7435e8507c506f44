"""Attacks on the served app by its visitors: many sessions churning checkpoints, one visitor
against another's run, a full training line, a stream nobody reads, oversized requests and a
tampered resume, while a probe keeps drawing digits.

    python -m bench.attacks [--sessions 10] [--cycles 10] [--data-root DIR]

The app is `python app.py --max-upload-mb 12 --max-train-seconds 120` in a subprocess
(bench.serving.running_app) on a temporary runs folder and upload cache. Visitors speak the page's
protocol (bench.serving.PageSession) or the REST API (/gradio_api/call/...), each in its own
session unless said. Every attack is judged refused or harmless:

a. Churn: each of --sessions sessions uploads --cycles checkpoints (the Train tab's upload event),
   six distinct files in turn (shipped ones and copies re-saved with one weight a float step
   away), each followed by Use and every second one by Download ONNX. Read before, after each
   round (one cycle of every session) and at the end: the app's RSS (VmRSS), its runs folder (run
   folders, files, MB) and the checkpoint and ONNX files of its upload cache. A session keeps its
   4 newest models and 3 newest run folders, so the figures rise until round 4 (the plateau, when
   every session is full) and then stay flat: RSS at the end within max(64 MB, 10%) of after round
   4, never more than 3 run folders a session, and no checkpoint or ONNX file added to the cache
   after round 2 (by then each distinct file was uploaded and exported once). Within the plateau
   RSS swings by up to ~150 MB from round to round, levelling off (over 22 rounds: +62, +20, +8 MB
   every 6 rounds, the churn's period); keeping the models each round drops would add ~75 MB a
   round.
b. Cross-session: session A trains a tiny run and stops it after its first epoch, then session B
   makes 24 uploads in a row: A's run folder is kept, and A's Use and Download ONNX still work.
c. Full line: 1 + MAX_WAITING + 2 trainings over REST, each its own session: exactly the last two
   are refused (TRAINER_FULL), each waiting one is told its place; a second training from the
   running session and from a waiting one is refused (ONE_TRAINING_EACH); all are stopped.
d. Unread: a REST training whose stream nobody opens must be stopped: the seconds until another
   session's training, waiting behind it, starts, and how the unread one ended (its stream, read
   afterwards: "stopped", where the 120 s cap would have ended it "done").
e. HTTP: deep_link and component_server are 404; a 20 MB JSON body is 413 (declared, and chunked
   without a length); uploads over the limit are 413 (the framework's limit, and the request
   body limit); A's stopped checkpoint, its stored config asking for widths [32, 64, 100000],
   resumes as the small model it holds (the resumed run's checkpoint has A's widths; RSS does not
   jump). No message or report returned to any caller names a server folder or a session. The
   app's log shows each refusal on one line, and no traceback or warning.
f. Throughout, a probe sends /predict_digit (a drawn 1) every 0.5 s: p50/p95 and failures per part.

Prints tables, then one JSON line; exits 1 if any check fails.
"""
from __future__ import annotations

import argparse
import html
import itertools
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

from bench.bad_inputs import drawn
from bench.latency import print_table
from bench.memory import rss_mb
from bench.serving import ROOT, PageSession, running_app
from core.services import texts
from core.services.run_folders import RUNS_PER_SESSION
from core.services.runs import MAX_WAITING
from core.services.visitor_models import SESSION_MODELS_KEPT

UPLOAD_MB, CAP_S = 12, 120  # the app's --max-upload-mb and --max-train-seconds here
APP_ARGS = ("--max-upload-mb", str(UPLOAD_MB), "--max-train-seconds", str(CAP_S))
# (shipped checkpoint, float steps added to its first weight): six distinct, valid files, every
# second one a 15 MB model (in memory), so that any 4 in a row (a full session) weigh the same
VARIANTS = (("cifar10-cifarnet", 0), ("mnist-digitnet", 0), ("cifar10-cifarnet", 1),
            ("cifar10-lenet", 0), ("cifar10-cifarnet", 2), ("handwriting-lenet", 0))
ONNX_EVERY = 2  # cycles: an export takes a second or more of CPU
FLAT_MB, FLAT_FRACTION = 64.0, 0.10
TINY = dict(epochs=4, max_train_images=512)  # seconds a run; stopped after its first epoch
# A run that holds the trainer until stopped (or the app's cap), sending progress all along: small
# batches, so that training, not the test set's evaluation, takes most of an epoch
HOLD = dict(epochs=200, max_train_images=512, batch_size=8, lr=0.02)
B_UPLOADS = 24
BIG_WIDTHS = [32, 64, 100_000]  # digitnet so built: ~58M parameters, 230 MB of weights
RSS_JUMP_MB = 200.0  # a resumed run loads its data; the big model alone would take 230 MB
PROBE_EVERY_S = 0.5
PARTS = ("a. churn", "b. cross-session", "c. full line", "d. unread", "e. HTTP and resume")


# ------------------------------------------------------------------------------------------------
# The app and what it says

@dataclass
class App:
    """The app under attack, and everything it answered to callers (for the path scan)."""
    proc: Any
    url: str
    workdir: Path
    said: list[str] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)

    @property
    def runs(self) -> Path:
        return self.workdir / "runs"

    def page(self) -> PageSession:
        page = PageSession(self.url)
        self.sessions.add(page.session)
        return page

    def call(self, page: PageSession, inputs: list, api_name: str | None = None,
             elem_id: str | None = None, trigger: str = "click") -> tuple[bool, Any]:
        ok, out = page.call(page.event(api_name, elem_id, trigger), inputs)
        self.said += messages(out)
        return ok, out

    def upload(self, page: PageSession, path: Path) -> tuple[bool, Any]:
        """A checkpoint through the Train tab's upload event (adopted as the session's model)."""
        return self.call(page, [page.upload(path), None], elem_id="train-upload",
                         trigger="upload")


def messages(value: Any) -> list[str]:
    """The text of an answer as a caller sees it: every string in it (a dict's values after their
    key) but a file's server path and download URL."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        is_file = (value.get("meta") or {}).get("_type") == "gradio.FileData"
        return [f"{k}: {s}" for k, v in value.items() if not (is_file and k in ("path", "url"))
                for s in messages(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in messages(v)]
    return []


def leaks(said: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Where answers name any of `secrets` (server folders, session ids): the text around it."""
    found = []
    for text in said:
        for secret in (s for s in secrets if s and s in text):
            at = text.index(secret)
            found.append(text[max(0, at - 80):at + len(secret) + 40])
    return found


def train_data(**changes) -> list:
    """/train's inputs: the fast preset with `changes`, in the form's order."""
    from core.services.training_requests import TrainRequest

    return list(asdict(TrainRequest(**changes)).values())


def stop(app: App, session: str) -> str:
    """/stop_training for one session (Stop on its page)."""
    r = httpx.post(f"{app.url}gradio_api/run/stop_training",
                   json={"data": [], "session_hash": session}, timeout=30)
    text = str(r.json().get("data", [r.text])[0])
    app.said.append(text)
    return text


def file_sizes(files: Iterable[Path]) -> list[int]:
    sizes = []
    for f in files:
        try:
            sizes.append(f.stat().st_size)
        except OSError:  # removed while counted
            continue
    return sizes


def snapshot(app: App) -> dict:
    """RSS, the runs folder and the upload cache's checkpoint and ONNX files."""
    folders = [p for p in app.runs.glob("run-*") if p.is_dir()]
    run_files = file_sizes(f for p in folders for f in p.rglob("*") if f.is_file())
    cached = file_sizes(f for f in (app.workdir / "cache").rglob("*")
                        if f.suffix in (".pt", ".onnx") and f.is_file())
    return {"rss_mb": round(rss_mb(app.proc.pid), 1), "run_folders": len(folders),
            "run_files": len(run_files), "run_mb": round(sum(run_files) / 2**20, 1),
            "cache_files": len(cached), "cache_mb": round(sum(cached) / 2**20, 1)}


# ------------------------------------------------------------------------------------------------
# REST calls and their streams

def rest_call(app: App, api_name: str, data: list, session: str | None = None) -> str:
    """A REST call (/gradio_api/call/<api_name>); its event id. No stream is opened."""
    body: dict = {"data": data}
    if session:
        body["session_hash"] = session
        app.sessions.add(session)
    r = httpx.post(f"{app.url}gradio_api/call/{api_name}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()["event_id"]


class Stream(threading.Thread):
    """Reads the event stream of a REST call (of its session: a second call of the same session
    reports here too): (seconds since `t0`, event, data) for each event but heartbeats."""

    def __init__(self, app: App, api_name: str, event_id: str, t0: float | None = None):
        super().__init__(daemon=True)
        self.app, self.address = app, f"{app.url}gradio_api/call/{api_name}/{event_id}"
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[tuple[float, str, Any]] = []

    def run(self) -> None:
        event = None
        with httpx.stream("GET", self.address, timeout=None) as r:
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event != "heartbeat":
                    data = json.loads(line[5:])
                    self.app.said += messages(data)
                    self.events.append((time.monotonic() - self.t0, event, data))

    def said(self, text: str, event: str | None = None) -> bool:
        return any(text in json.dumps(d, ensure_ascii=False) for _, e, d in self.events
                   if event in (None, e))

    def last_progress(self) -> str:
        """The text of its last progress bar."""
        bars = (re.search(r'tv-progress-text">(.*?)</div>', d[0]) for _, e, d in
                reversed(self.events) if e in ("generating", "complete") and isinstance(d, list)
                and isinstance(d[0], str))
        return html.unescape(next((b.group(1) for b in bars if b), ""))

    def started(self) -> float | None:
        """When its training started (its first progress that is not its place in the line)."""
        return next((t for t, e, d in self.events if e == "generating" and isinstance(d[0], str)
                     and "Waiting for its turn" not in d[0]), None)


def streamed(app: App, api_name: str, data: list, session: str | None = None) -> Stream:
    t0 = time.monotonic()
    stream = Stream(app, api_name, rest_call(app, api_name, data, session), t0)
    stream.start()
    return stream


def wait_for(condition, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


# ------------------------------------------------------------------------------------------------
# Raw HTTP: a body the server refuses while it is still being sent

def raw_post(url: str, path: str, headers: dict[str, str], body: Iterable[bytes]) -> tuple[int,
                                                                                         str]:
    """POST `body` (chunks) to `path` over a plain socket, reading the answer while it is sent (a
    refusal comes before the body is through, and the server then closes). (status, text)."""
    host = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host.netloc, "Connection": "close",
                                                 **headers}.items())
    sock = socket.create_connection((host.hostname, host.port), timeout=60)

    def send() -> None:
        try:
            sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
            for chunk in body:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed: the rest is not wanted
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or len(answer) < _answer_length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    finally:
        sock.close()
        sender.join(timeout=30)
    head_part, _, text = answer.partition(b"\r\n\r\n")
    status = int(head_part.split()[1]) if head_part.startswith(b"HTTP/") else 0
    return status, text.decode(errors="replace")


def _answer_length(answer: bytes) -> int:
    """The bytes of a whole answer whose head has arrived (its Content-Length; else unbounded)."""
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return math.inf


def zeros(total: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    for start in range(0, total, chunk):
        yield bytes(min(chunk, total - start))


def oversized_json(url: str, mb: int = 20) -> list[dict]:
    """A JSON call of `mb` MB to the queue, its length declared and chunked without one: 413."""
    inner = mb << 20
    prefix = b'{"fn_index": 0, "session_hash": "oversized", "data": ["'
    suffix = b'"]}'

    def body() -> Iterator[bytes]:
        yield prefix
        for chunk in zeros(inner):
            yield chunk.replace(b"\0", b"A")
        yield suffix

    def chunked() -> Iterator[bytes]:
        for part in body():
            yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
        yield b"0\r\n\r\n"

    length = len(prefix) + inner + len(suffix)
    rows = []
    for how, headers, chunks in [
        ("declared", {"Content-Type": "application/json", "Content-Length": str(length)}, body()),
        ("chunked", {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
         chunked()),
    ]:
        status, text = raw_post(url, "/gradio_api/queue/join", headers, chunks)
        rows.append({"attack": f"JSON body of {mb} MB ({how})", "answer": f"{status} {text}",
                     "harmless": status == 413})
    return rows


def oversized_uploads(url: str, limit_mb: int) -> list[dict]:
    """Uploads just over the app's upload limit (the framework refuses it) and over the request
    body limit (the server refuses it before reading): both 413."""
    from core.services.http_guard import MAX_BODY_BYTES

    rows = []
    body_mb = limit_mb + (MAX_BODY_BYTES >> 20)
    for mb, who in [(limit_mb + 1, f"over the upload limit of {limit_mb} MB"),
                    (body_mb + 1, f"over the upload body limit of {body_mb} MB")]:
        boundary = uuid.uuid4().hex
        start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                 f"filename=\"big.pt\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        end = f"\r\n--{boundary}--\r\n".encode()
        size = mb << 20
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(start) + size + len(end))}
        status, text = raw_post(url, "/gradio_api/upload", headers,
                                itertools.chain([start], zeros(size), [end]))
        rows.append({"attack": f"upload of {mb} MB ({who})",
                     "answer": f"{status} {text[:120]}", "harmless": status == 413})
    return rows


def closed_routes(url: str, session: str) -> list[dict]:
    """The deep-link routes (another session's page values) and the components' server helpers
    (the hidden sketchpad's layer store, asked for a billion-entry list): 404."""
    rows = []
    for path in ("gradio_api/deep_link", "deep_link"):
        r = httpx.get(f"{url}{path}", params={"session_hash": session}, timeout=30)
        rows.append({"attack": f"GET /{path}?session_hash=<another session>",
                     "answer": f"{r.status_code} {r.text[:80]}", "harmless": r.status_code == 404})
    r = httpx.post(f"{url}gradio_api/component_server", timeout=30,
                   data={"component_id": "1", "fn_name": "accept_blobs", "session_hash": session,
                         "data": json.dumps({"type": "layer", "index": 10**9, "id": "x"})},
                   files={"file": ("x.png", b"x", "image/png")})
    rows.append({"attack": "POST /gradio_api/component_server (accept_blobs, index 10^9)",
                 "answer": f"{r.status_code} {r.text[:80]}", "harmless": r.status_code == 404})
    return rows


# ------------------------------------------------------------------------------------------------
# Checkpoints

def variants(folder: Path) -> list[Path]:
    """VARIANTS as files: a shipped checkpoint, or a copy re-saved (core.checkpoint) with its first
    floating-point weight moved up by that many float steps (other bytes, the same valid model)."""
    import torch

    from core import checkpoint as ckpt

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name, steps in VARIANTS:
        shipped = ROOT / "checkpoints" / f"{name}.pt"
        if not steps:
            files.append(shipped)
            continue
        payload = ckpt.load_checkpoint(shipped)
        weights = payload.pop("state_dict")
        key = next(k for k, v in weights.items() if v.is_floating_point())
        moved = weights[key].clone(memory_format=torch.contiguous_format)
        first = moved.view(-1)[:1]
        for _ in range(steps):
            first.copy_(torch.nextafter(first, torch.full_like(first, math.inf)))
        files.append(ckpt.save_checkpoint(folder / f"{name}-{steps}.pt", payload,
                                          {**weights, key: moved}))
    return files


def tampered(checkpoint: Path, folder: Path, widths: list[int] = BIG_WIDTHS) -> Path:
    """A copy of a stopped run's checkpoint whose stored config asks for model_kwargs `widths` (its
    weights and own model_kwargs unchanged)."""
    from core import checkpoint as ckpt

    payload = ckpt.load_checkpoint(checkpoint)
    weights, state = payload.pop("state_dict"), payload.pop("train_state")
    payload["config"] = {**payload.get("config", {}), "model_kwargs": {"widths": widths}}
    return ckpt.save_checkpoint(folder / "stopped-run.pt", payload, weights, state)


def stopped_run(app: App, page: PageSession) -> tuple[Path, bool]:
    """A tiny run of `page`'s session stopped after its first epoch: (its checkpoint, whether the
    stream said it stopped and the file can be resumed)."""
    from core import checkpoint as ckpt

    name = "run-*/mnist-digitnet.pt"
    before = set(app.runs.glob(name))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        out=app.call(page, train_data(**TINY), api_name="train")), daemon=True)
    worker.start()
    if not wait_for(lambda: set(app.runs.glob(name)) - before or not worker.is_alive(), 300):
        raise RuntimeError("the tiny run wrote no checkpoint in 300 s")
    stop(app, page.session)
    worker.join(timeout=300)
    made = sorted(set(app.runs.glob(name)) - before)
    if not made or "out" not in result:
        raise RuntimeError(f"the tiny run ended without a checkpoint: {result.get('out')}")
    ok, out = result["out"]
    return made[0], ok and "stopped" in json.dumps(out) and "train_state" in ckpt.load_checkpoint(
        made[0])


class Peak(threading.Thread):
    """The highest RSS of a process while it runs (sampled every 0.1 s)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.mb, self.done = pid, rss_mb(pid), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.mb = max(self.mb, rss_mb(self.pid))


def oversized_resume(app: App, checkpoint: Path) -> list[dict]:
    """Resume `checkpoint` (a stopped run) tampered to ask for BIG_WIDTHS, from a new session: it
    must resume as the small model its weights are."""
    from core import checkpoint as ckpt

    own = ckpt.load_checkpoint(checkpoint)["model_kwargs"]
    with app.page() as page:
        adopted, note = app.upload(page, tampered(checkpoint, app.workdir / "tampered"))
        before = rss_mb(app.proc.pid)
        peak = Peak(app.proc.pid)
        peak.start()
        ok, out = app.call(page, [None, ""], elem_id="train-resume")
        peak.done.set()
        peak.join()
    built, parameters, answer = None, 0, str(out)[:160]
    if ok and isinstance(out[8], dict):
        path = app.workdir / "resumed.pt"
        path.write_bytes(httpx.get(out[8]["url"], timeout=60).content)
        payload = ckpt.load_checkpoint(path)
        built = payload["model_kwargs"]
        parameters = sum(t.numel() for t in payload["state_dict"].values())
        answer = (f"resumed to epoch {payload.get('epoch')}: model_kwargs {built}, {parameters:,} "
                  f"parameters; RSS {before:.0f} -> peak {peak.mb:.0f} MB")
    return [{"attack": f"resume a checkpoint whose stored config asks widths {BIG_WIDTHS}",
             "answer": answer if adopted else str(note)[:160],
             "harmless": adopted and ok and built == own and parameters < 1_000_000
             and peak.mb - before < RSS_JUMP_MB}]


def log_lines(log: Path) -> dict:
    """What the app logged: its refusal lines (each must be one line), tracebacks and warnings
    (each several lines; a refused input must cause neither)."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    refused = [i for i, line in enumerate(lines) if "refused" in line]
    continued = [i for i in refused if i + 1 < len(lines)
                 and (lines[i + 1][:1].isspace() or lines[i + 1].startswith("Traceback"))]
    return {"refusal lines": len(refused), "refusals on several lines": len(continued),
            "tracebacks": sum(line.startswith("Traceback") for line in lines),
            "warnings": sum(bool(re.search(r"\w+Warning: ", line)) for line in lines)}


def log_clean(log: dict) -> bool:
    return not (log["refusals on several lines"] or log["tracebacks"] or log["warnings"])


# ------------------------------------------------------------------------------------------------
# The probe

class Probe(threading.Thread):
    """Sends /predict_digit (a drawn 1, as the page does) every PROBE_EVERY_S; (part, seconds,
    answered right) for each call, tagged with the part under way."""

    def __init__(self, app: App, sketch: Path):
        super().__init__(daemon=True)
        self.app, self.sketch, self.part = app, sketch, "start"
        self.samples: list[tuple[str, float, bool]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with self.app.page() as page:
            drawing = page.upload(self.sketch)
            value = {"background": drawing, "layers": [], "composite": drawing}
            event = page.event(api_name="predict_digit")
            while not self.done.is_set():
                t0 = time.perf_counter()
                try:
                    ok, out = page.call(event, [value, None, None])
                    right = ok and (out[0] or {}).get("label") == "1"
                except Exception:  # counted: an answer that never came is a failure
                    right = False
                took = time.perf_counter() - t0
                self.samples.append((self.part, took, right))
                self.done.wait(max(0.0, PROBE_EVERY_S - took))

    def rows(self) -> list[list]:
        rows = []
        for part in ("start", *PARTS, "all"):
            took = [s for p, s, _ in self.samples if part in (p, "all")]
            failed = sum(not ok for p, _, ok in self.samples if part in (p, "all"))
            if took:
                ms = np.array(took) * 1000
                rows.append([part, len(took), f"{np.median(ms):.0f}",
                             f"{np.percentile(ms, 95):.0f}", f"{ms.max():.0f}", failed])
        return rows


# ------------------------------------------------------------------------------------------------
# The attacks

def churn(app: App, files: list[Path], sessions: int, cycles: int) -> tuple[list[dict], dict]:
    """a: every session uploads, uses and (every ONNX_EVERY cycles) exports `cycles` checkpoints;
    the snapshot before, after each round, and the failed calls."""
    rounds = [{"round": "before", **snapshot(app)}]
    failed = {"upload": 0, "use": 0, "onnx": 0}
    with ExitStack() as stack:
        pages = [stack.enter_context(app.page()) for _ in range(sessions)]
        for cycle in range(1, cycles + 1):
            for s, page in enumerate(pages):
                failed["upload"] += not app.upload(page, files[(s + cycle) % len(files)])[0]
                failed["use"] += not app.call(page, [None, None], elem_id="train-use")[0]
                if cycle % ONNX_EVERY == 0:
                    failed["onnx"] += not app.call(page, [None], elem_id="train-onnx")[0]
            rounds.append({"round": cycle, **snapshot(app)})
    return rounds, failed


def churn_checks(rounds: list[dict], failed: dict, sessions: int) -> list[tuple[str, str, bool]]:
    """a's checks: every call answered, and the figures flat once every session is full."""
    full = rounds[min(len(rounds) - 1, SESSION_MODELS_KEPT)]
    cached = rounds[min(len(rounds) - 1, ONNX_EVERY)]
    end = rounds[-1]
    growth = end["rss_mb"] - full["rss_mb"]
    allowed = max(FLAT_MB, FLAT_FRACTION * full["rss_mb"])
    most = max(r["run_folders"] for r in rounds)
    plateau = [r["rss_mb"] for r in rounds[rounds.index(full):]]
    return [
        ("a. every upload, Use and ONNX call answered", json.dumps(failed),
         not any(failed.values())),
        (f"a. RSS flat after round {full['round']}: the end within {allowed:.0f} MB",
         f"{full['rss_mb']:.0f} -> {end['rss_mb']:.0f} MB ({growth:+.0f}); rounds {full['round']}"
         f"-{end['round']} span {min(plateau):.0f}-{max(plateau):.0f} MB", growth <= allowed),
        (f"a. run folders at most {RUNS_PER_SESSION} a session ({sessions * RUNS_PER_SESSION})",
         f"most {most}, end {end['run_folders']}", most <= sessions * RUNS_PER_SESSION),
        (f"a. no cached checkpoint or ONNX file added after round {cached['round']}",
         f"{cached['cache_files']} files {cached['cache_mb']} MB -> {end['cache_files']} files "
         f"{end['cache_mb']} MB", end["cache_files"] <= cached["cache_files"]
         and end["cache_mb"] <= cached["cache_mb"]),
    ]


def cross_session(app: App, files: list[Path]) -> tuple[Path, list[tuple[str, str, bool]]]:
    """b: A's stopped run survives B's uploads: its Use and Download ONNX work."""
    with app.page() as a, app.page() as b:
        checkpoint, resumable = stopped_run(app, a)
        t0 = time.perf_counter()
        accepted = sum(app.upload(b, files[i % len(files)])[0] for i in range(B_UPLOADS))
        seconds = time.perf_counter() - t0
        used, used_note = app.call(a, [None, None], elem_id="train-use")
        exported, onnx = app.call(a, [None], elem_id="train-onnx")
    onnx_name = onnx[0].get("orig_name") if exported and isinstance(onnx[0], dict) else onnx
    return checkpoint, [
        ("b. A's tiny run stopped after an epoch, resumable", checkpoint.name, resumable),
        (f"b. B's {B_UPLOADS} uploads in a row accepted", f"{accepted} in {seconds:.1f} s",
         accepted == B_UPLOADS),
        ("b. A's run folder kept after B's uploads", str(checkpoint.is_file()),
         checkpoint.is_file()),
        ("b. A's Use still works", str(used_note[-1])[:80] if used else str(used_note)[:80], used),
        ("b. A's Download ONNX still works", str(onnx_name)[:80], exported),
    ]


def full_line(app: App) -> tuple[list[list], list[tuple[str, str, bool]]]:
    """c: one training runs, MAX_WAITING wait, two more are refused; a second one from a session
    in the line is refused; all are stopped."""
    sessions = [f"line{i}-{uuid.uuid4().hex[:8]}" for i in range(1 + MAX_WAITING + 2)]
    streams = []
    for session in sessions:  # in this order: the first has the trainer, the next ones wait
        streams.append(streamed(app, "train", train_data(**HOLD), session))
        wait_for(lambda: streams[-1].events, 5)
    admitted, overflow = streams[:1 + MAX_WAITING], streams[1 + MAX_WAITING:]
    placed = wait_for(lambda: admitted[0].started() is not None and all(
        s.said(texts.waiting(i)) for i, s in enumerate(admitted[1:], 1)), 120)
    refused = wait_for(lambda: all(not s.is_alive() for s in overflow), 60)
    for i in (0, 1):  # the running session, then a waiting one, ask again
        rest_call(app, "train", train_data(**HOLD), sessions[i])
    twice = wait_for(lambda: all(admitted[i].said(texts.ONE_TRAINING_EACH, "error")
                                 for i in (0, 1)), 60)
    for session in reversed(sessions[:1 + MAX_WAITING]):  # the waiting first: none then starts
        stop(app, session)
    ended = wait_for(lambda: not any(s.is_alive() for s in streams), 120)
    rows = []
    for i, s in enumerate(streams):
        role = "training" if i == 0 else f"waiting {i}" if i <= MAX_WAITING else "overflow"
        last = s.events[-1] if s.events else (0, "none", None)
        said = ("TRAINER_FULL" if s.said(texts.TRAINER_FULL) else
                texts.waiting(i) if i and s.said(texts.waiting(i)) else
                "started" if s.started() is not None else "-")
        rows.append([role, said, "yes" if s.said(texts.ONE_TRAINING_EACH) else "no", last[1],
                     f"{last[0]:.1f}"])
    only_overflow = (all(s.said(texts.TRAINER_FULL, "error") for s in overflow)
                     and not any(s.said(texts.TRAINER_FULL) for s in admitted))
    stopped = (all(s.events and s.events[-1][1] == "complete" for s in admitted)
               and all(s.said(texts.STOPPED_WAITING) for s in admitted[1:]))
    return rows, [
        ("c. the first trains, each waiting one is told its place", str(placed), placed),
        (f"c. exactly the {len(overflow)} over the line refused with TRAINER_FULL",
         str(refused and only_overflow), refused and only_overflow),
        ("c. a second training from a session in the line refused (ONE_TRAINING_EACH)",
         str(twice), twice),
        ("c. all stopped by /stop_training (the waiting ones before starting)",
         str(ended and stopped), ended and stopped),
    ]


def unread(app: App) -> tuple[float | None, list[tuple[str, str, bool]]]:
    """d: a REST training nobody reads; the seconds until a read one waiting behind it starts. Its
    stream, opened afterwards, says how it ended and how many updates had piled up."""
    t0 = time.monotonic()
    unread_id = rest_call(app, "train", train_data(**HOLD))  # no session, no stream opened
    time.sleep(3)
    watcher = Stream(app, "train", rest_call(app, "train", train_data(epochs=1,
                                                                      max_train_images=256),
                                             f"watcher-{uuid.uuid4().hex[:8]}"), t0)
    watcher.start()
    wait_for(lambda: watcher.started() is not None or not watcher.is_alive(), 4 * CAP_S, 0.5)
    freed = watcher.started()
    waited = watcher.said(texts.waiting(1))
    late = Stream(app, "train", unread_id, t0)
    late.start()
    late.join(timeout=120)
    watcher.join(timeout=120)
    done = bool(watcher.events) and watcher.events[-1][1] == "complete"
    ended = late.last_progress()
    stopped = "stopped" in ended and freed is not None and freed <= CAP_S
    return freed, [
        ("d. a read training waited behind the unread one", str(waited), waited),
        (f"d. the unread training stopped before the {CAP_S} s cap", f"{freed:.1f} s, "
         f"{len(late.events)} updates unread, then: "
         f"{ended[:60]}" if freed is not None else "never", stopped),
        ("d. the training behind it then ran to the end", str(done), done),
    ]


# ------------------------------------------------------------------------------------------------

@contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ with `values` (what a subprocess started here inherits), restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=10, help="sessions churning checkpoints (a)")
    p.add_argument("--cycles", type=int, default=10, help="uploads of each session (a)")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    data_root = args.data_root or os.environ.get("TINYVISION_DATA") or str(ROOT / "data")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        files = variants(workdir / "variants")
        Image.fromarray(drawn(0)).save(workdir / "one.png")
        with environment(GRADIO_TEMP_DIR=str(workdir / "cache")):
            proc, url = stack.enter_context(running_app(args.data_root, workdir, APP_ARGS,
                                                        workdir / "app.log"))
        app = App(proc, url, workdir)
        probe = Probe(app, workdir / "one.png")
        probe.start()
        wait_for(lambda: probe.samples, 120)
        checks: list[tuple[str, str, bool]] = []

        probe.part = PARTS[0]
        rounds, failed = churn(app, files, args.sessions, args.cycles)
        checks += churn_checks(rounds, failed, args.sessions)
        probe.part = PARTS[1]
        checkpoint, found = cross_session(app, files)
        checks += found
        probe.part = PARTS[2]
        line_rows, found = full_line(app)
        checks += found
        probe.part = PARTS[3]
        freed, found = unread(app)
        checks += found
        probe.part = PARTS[4]
        with app.page() as someone:
            attacks = (closed_routes(url, someone.session) + oversized_json(url)
                       + oversized_uploads(url, UPLOAD_MB) + oversized_resume(app, checkpoint))
        app.said += [r["answer"] for r in attacks]
        probe.done.set()
        probe.join(timeout=150)
        final = snapshot(app)
        secrets = [str(workdir), str(Path(data_root).resolve()), data_root, str(ROOT),
                   tempfile.gettempdir() + "/", *app.sessions]
        leaked = leaks(app.said, secrets)
        log = log_lines(workdir / "app.log")
        alive = proc.poll() is None

    failures = sum(not ok for _, _, ok in probe.samples)
    checks += [(f"e. {r['attack']}", r["answer"].replace("|", "/")[:120], r["harmless"])
               for r in attacks]
    checks += [
        (f"e. no answer names a server folder or a session ({len(app.said)} texts scanned)",
         f"{len(leaked)} do (as {', '.join(sorted({t.split(': ')[0] for t in leaked}))}), e.g. "
         f"{leaked[0]}" if leaked else "none", not leaked),
        ("f. the probe answered throughout (every call right)",
         f"{len(probe.samples)} calls, {failures} failed", bool(probe.samples) and not failures),
        ("the app's log: each refusal one line, no traceback or warning", json.dumps(log),
         log_clean(log)),
        ("the app still running at the end", str(alive), alive),
    ]
    seconds = time.perf_counter() - started

    print(f"\na. Churn: {args.sessions} sessions x {args.cycles} uploads of {len(files)} distinct "
          f"checkpoints, each with Use, ONNX every {ONNX_EVERY}\n")
    keys = ["rss_mb", "run_folders", "run_files", "run_mb", "cache_files", "cache_mb"]
    print_table(["after round", "RSS MiB", "run folders", "run files", "runs MiB",
                 "cached .pt/.onnx", "cached MiB"],
                [[r["round"], *(r[k] for k in keys)] for r in rounds]
                + [["(end of all parts)", *(final[k] for k in keys)]])
    print(f"\nc. Full line: {len(line_rows)} REST trainings (1 running, {MAX_WAITING} waiting)\n")
    print_table(["role", "told", "second call refused here", "last event", "at s"], line_rows)
    print("\nf. The probe (/predict_digit every 0.5 s), by part\n")
    print_table(["part", "calls", "p50 ms", "p95 ms", "max ms", "failures"], probe.rows())
    print(f"\nChecks ({seconds:.0f} s)\n")
    print_table(["check", "result", "pass"], [[c, r, ok] for c, r, ok in checks])
    ms = np.array([s for _, s, _ in probe.samples]) * 1000 if probe.samples else np.zeros(1)
    print(json.dumps({
        "bench": "attacks", "sessions": args.sessions, "cycles": args.cycles,
        "seconds": round(seconds), "rounds": rounds, "end": final,
        "unread_stopped_s": round(freed, 1) if freed is not None else None,
        "probe": {"calls": len(probe.samples), "failures": failures,
                  "p50_ms": round(float(np.median(ms))),
                  "p95_ms": round(float(np.percentile(ms, 95)))},
        "failed": [c for c, _, ok in checks if not ok],
        "passed": all(ok for _, _, ok in checks)}))
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
