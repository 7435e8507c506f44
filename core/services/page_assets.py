"""The files the page loads beside Gradio's own: its scripts, the in-page runtime and the digit
models, served by the app from its own origin.

Each file's URL carries a hash of its bytes (`/gradio_api/tv/<hash>/<name>`), so it is cached for a
year and never asked again (`immutable`; an ETag answers a revalidation with 304); new bytes get a
new URL. Files are compressed once (brotli, gzip; kept in memory and in the cache folder), where
Gradio's own compression goes by extension and would send `.mjs`, `.wasm` and `.onnx` raw. The
prefix is under /gradio_api/: it reaches Python in every mode the app runs in.

The runtime is onnxruntime-web, a declared dependency (package.json): served from node_modules
where `npm ci` has been run, otherwise the page loads the same pinned files from a CDN and checks
them against their hashes (web/runtime.json).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import mimetypes
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import brotli
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["PageAssets", "PREFIX", "RUNTIME", "WEB_DIR", "sri", "runtime_sources",
           "page_compression"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
RUNTIME = json.loads((WEB_DIR / "runtime.json").read_text())
PREFIX = "/gradio_api/tv"
CACHE_FOREVER = "public, max-age=31536000, immutable"
# A page whose runtime has not started after this long answers through the app meanwhile.
STARTUP_MS = 5000
MEDIA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
               ".json": "application/json", ".onnx": "application/octet-stream"}
MIN_SAVING = 0.05  # a compressed copy is sent only when it is at least this much smaller
ENCODINGS = ("br", "gzip")


def _key(url: str) -> tuple[str, str]:
    digest, name = url.rsplit("/", 2)[-2:]
    return digest, name


def sri(data: bytes) -> str:
    """A subresource-integrity value (sha384) of these bytes."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "br":
        return brotli.compress(data, quality=6)
    return gzip.compress(data, compresslevel=6, mtime=0)


@dataclass
class _File:
    name: str
    make: Callable[[], bytes]  # the file's bytes, made on first use
    media_type: str
    digest: str
    cache: Path | None  # where compressed copies are kept between runs
    made: bytes | None = None
    encoded: dict[str, bytes | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data(self) -> bytes:
        with self.lock:
            if self.made is None:
                self.made = self.make()
            return self.made

    def variant(self, encoding: str) -> bytes | None:
        """The file compressed with `encoding`, None when that saves too little."""
        data = self.data
        with self.lock:
            if encoding not in self.encoded:
                self.encoded[encoding] = self._load_or_compress(data, encoding)
            return self.encoded[encoding]

    def _load_or_compress(self, data: bytes, encoding: str) -> bytes | None:
        stored = self.cache / f"{self.digest}.{encoding}" if self.cache else None
        if stored is not None and stored.is_file():
            packed = stored.read_bytes()
        else:
            packed = _compress(data, encoding)
            if stored is not None:
                stored.parent.mkdir(parents=True, exist_ok=True)
                tmp = stored.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(packed)
                os.replace(tmp, stored)
        return packed if len(packed) <= (1 - MIN_SAVING) * len(data) else None


class PageAssets:
    """Files in memory, served at PREFIX/<hash>/<name>; `remove` forgets one (a visitor's model)."""

    def __init__(self, cache: Path | None = None):
        self.cache = cache
        self._files: dict[tuple[str, str], _File] = {}
        self._lock = threading.Lock()

    def add(self, name: str, data: bytes) -> str:
        """Serve `data` as `name`; returns its URL (relative to the app's root)."""
        return self.add_made(name, hashlib.sha256(data).hexdigest()[:20], lambda: data)

    def add_made(self, name: str, digest: str, make: Callable[[], bytes]) -> str:
        """Serve as `name` what `make()` returns, made when it is first asked for; `digest` must
        change whenever those bytes would (it is their URL, cached for a year)."""
        media = MEDIA_TYPES.get(Path(name).suffix) or mimetypes.guess_type(name)[0]
        with self._lock:
            self._files.setdefault((digest, name), _File(
                name, make, media or "application/octet-stream", digest, self.cache))
        return f"{PREFIX.lstrip('/')}/{digest}/{name}"

    def data(self, url: str) -> bytes:
        """The bytes served at `url` (made now if they were not yet)."""
        return self._files[_key(url)].data

    def remove(self, url: str) -> None:
        with self._lock:
            self._files.pop(_key(url), None)

    def compress_all(self) -> threading.Thread:
        """Compress every file in a background thread (once: copies are kept in the cache)."""
        def work() -> None:
            for f in list(self._files.values()):
                for encoding in ENCODINGS:
                    f.variant(encoding)
        thread = threading.Thread(target=work, name="page-assets", daemon=True)
        thread.start()
        return thread

    async def _serve(self, request: Request) -> Response:
        f = self._files.get((request.path_params["digest"], request.path_params["name"]))
        if f is None:
            return Response(status_code=404)
        accepted = request.headers.get("accept-encoding", "")
        encoding = next((e for e in ENCODINGS if e in accepted), None)
        try:
            body = await run_in_threadpool(f.variant, encoding) if encoding else None
            data = body if body is not None else await run_in_threadpool(lambda: f.data)
        except Exception:  # a model that could not be exported: the page answers through the app
            log.exception("could not make %s", f.name)
            return Response(status_code=503, headers={"Cache-Control": "no-store"})
        encoding = encoding if body is not None else None
        etag = f'"{f.digest}{"-" + encoding if encoding else ""}"'
        headers = {"Cache-Control": CACHE_FOREVER, "ETag": etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if encoding:
            headers["Content-Encoding"] = encoding
        return Response(data, media_type=f.media_type, headers=headers)

    def route(self) -> Route:
        return Route(PREFIX + "/{digest}/{name}", self._serve, methods=["GET", "HEAD"])


def runtime_sources(assets: PageAssets, node_modules: Path = ROOT / "node_modules") -> dict:
    """Where the page loads onnxruntime-web from: this app (when `npm ci` put the pinned version in
    node_modules) and the pinned CDN copy with its hashes."""
    package = node_modules / RUNTIME["package"]
    cdn = {"module": RUNTIME["cdn"] + RUNTIME["module"], "wasm": RUNTIME["cdn"] + RUNTIME["wasm"],
           "integrity": RUNTIME["integrity"]}
    try:
        installed = json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        installed = None
    local = None
    if installed == RUNTIME["version"]:
        local = {}
        for part in ("module", "wasm"):  # read when first asked for, not at every start
            path = package / RUNTIME[part]
            digest = hashlib.sha256(f"{package.name}@{installed}/{RUNTIME[part]}".encode())
            local[part] = assets.add_made(path.name, digest.hexdigest()[:20], path.read_bytes)
    return {"local": local, "cdn": cdn, "version": RUNTIME["version"], "startup_ms": STARTUP_MS}


class _CompressPage:
    """Gzip the page's document and its config, which Gradio sends raw (it compresses by file
    extension, and these paths have none): about 300 KB on every visit, revisits included."""

    PATHS = ("/", "/config")

    def __init__(self, app):
        self.app, self.gzip = app, GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in self.PATHS:
            return await self.gzip(scope, receive, send)
        return await self.app(scope, receive, send)


def page_compression() -> Middleware:
    return Middleware(_CompressPage)
