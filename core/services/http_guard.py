"""What the server refuses before the web framework sees a request: routes a public app does not
offer, and request bodies larger than anything the page sends.

- The web framework's "deep link" route saves and replays any session's page values to whoever
  names the session: a public app offers no such thing (404). Nor its component server route,
  which runs a component's server-side helpers (the hidden sketchpad's layer store would take an
  index that allocates a list of that length): the page calls none of them.
- An upload is refused (507) while the upload folder's disk has less than MIN_FREE_BYTES free.
- Uploads are bounded by the framework's own size limit (`launch(max_file_size=...)`), but a JSON
  call may carry an image inline (a data URL) past it: every other request body is cut off at
  MAX_BODY_BYTES (413), read or not.

    launch(app_kwargs={"middleware": [http_guard(max_upload_bytes)]})
"""
from __future__ import annotations

import os
import shutil
import tempfile

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

__all__ = ["http_guard", "MAX_BODY_BYTES", "CLOSED_PATHS", "TOO_LARGE", "DISK_FULL",
           "MIN_FREE_BYTES"]

MAX_BODY_BYTES = 16 << 20  # a photo inline in a JSON call fits; the pad's drawings are ~20 KB
CLOSED_PATHS = ("/gradio_api/deep_link", "/deep_link", "/gradio_api/component_server",
                "/component_server")
MIN_FREE_BYTES = 2 << 30  # uploads stop before the disk fills
UPLOAD_PATH = "/gradio_api/upload"
TOO_LARGE = "the request is larger than this server accepts"
DISK_FULL = "the server has no room for uploads right now; try again later"


def _free_bytes() -> int:
    """Free space on the disk of the framework's upload folder (or its nearest existing parent)."""
    folder = os.path.abspath(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


class _Guard:
    def __init__(self, app, max_upload_bytes: int, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_upload_bytes, self.max_body_bytes = max_upload_bytes, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        if path in CLOSED_PATHS:
            return await PlainTextResponse("Not Found", 404)(scope, receive, send)
        if path == UPLOAD_PATH and _free_bytes() < MIN_FREE_BYTES:
            return await PlainTextResponse(DISK_FULL, 507)(scope, receive, send)
        # An upload carries its files; the framework checks each against its own limit.
        limit = self.max_body_bytes + (self.max_upload_bytes if path == UPLOAD_PATH else 0)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await PlainTextResponse(TOO_LARGE, 413)(scope, receive, send)
        seen = 0
        over = False

        async def counted():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True  # the framework is told the body ended, and answers nothing
                    return {"type": "http.disconnect"}
            return message

        async def sending(message):
            if not over:
                await send(message)

        try:
            await self.app(scope, counted, sending)
        except Exception:
            if not over:
                raise  # (cut short, the framework may raise on the body it never got)
        if over:
            await PlainTextResponse(TOO_LARGE, 413)(scope, receive, send)


def http_guard(max_upload_bytes: int) -> Middleware:
    """The guard as a middleware for the app's server (uploads up to `max_upload_bytes`)."""
    return Middleware(_Guard, max_upload_bytes=max_upload_bytes)
