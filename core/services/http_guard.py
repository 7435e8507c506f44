"""What the server refuses before the web framework sees a request: routes a public app does not
offer, and request bodies larger than anything the page sends.

- The web framework's "deep link" route saves and replays any session's page values to whoever
  names the session: a public app offers no such thing (404).
- Uploads are bounded by the framework's own size limit (`launch(max_file_size=...)`), but a JSON
  call may carry an image inline (a data URL) past it: every other request body is cut off at
  MAX_BODY_BYTES (413), read or not.

    launch(app_kwargs={"middleware": [http_guard(max_upload_bytes)]})
"""
from __future__ import annotations

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

__all__ = ["http_guard", "MAX_BODY_BYTES", "CLOSED_PATHS", "TOO_LARGE"]

MAX_BODY_BYTES = 16 << 20  # a photo inline in a JSON call fits; the pad's drawings are ~20 KB
CLOSED_PATHS = ("/gradio_api/deep_link", "/deep_link")
UPLOAD_PATH = "/gradio_api/upload"
TOO_LARGE = "the request is larger than this server accepts"


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
