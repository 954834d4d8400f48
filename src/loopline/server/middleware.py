"""The guard in front of every route: body size limits, no state change from browser forms,
and a JSON 500 for what nothing else caught."""

from __future__ import annotations

import contextlib
import logging

from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopline.server.encoding import error_response
from loopline.server.options import ServerOptions

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    pass


_UPLOAD_SUFFIXES = ("/artifacts/", "/files/")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def _loopback(host: bytes) -> bool:
    name = host.decode("latin-1").lower()
    if not name.startswith("[") or "]:" in name:
        name = name.rsplit(":", 1)[0]
    return name in _LOOPBACK_NAMES


class RequestGuard:
    """Body size limits (413), counted as the body streams as well as from Content-Length, and
    no state change from a browser form (415): a cross-site form can send neither JSON nor
    the token header without the browser asking first.

    An unexpected exception is answered here with a JSON 500 and not raised further: raised
    to the server, it would make it close the client's keep-alive connection."""

    def __init__(self, app: ASGIApp, options: ServerOptions) -> None:
        self.app = app
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        method = scope["method"]
        path: str = scope["path"]
        if self.options.embedded is not None and not _loopback(headers.get(b"host", b"")):
            # Embedded mode acts as the owner for anyone: only a page served from a loopback
            # name may talk to it, not one whose DNS name was rebound to 127.0.0.1.
            response = error_response(
                421, "misdirected", "this server answers only at 127.0.0.1 or localhost"
            )
            await response(scope, receive, send)
            return
        is_upload = method == "PUT" and any(s in path for s in _UPLOAD_SUFFIXES)
        limit = self.options.max_upload_bytes if is_upload else self.options.max_json_bytes
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        # An upload may be text/plain (MLflow's client sends each file's own type): a browser
        # sends no cross-site PUT without asking first, so only forms' methods are refused.
        if method in ("POST", "PUT", "PATCH", "DELETE") and content_type in _FORM_TYPES and not is_upload:
            response = error_response(
                415, "unsupported_media_type", f"{method} {path} takes application/json, not {content_type}"
            )
            await response(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0
        exceeded = started = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                exceeded = True
                raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not exceeded:  # once the body is too large, the app's own answer is replaced
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            with contextlib.suppress(BodyTooLarge):
                await self.app(scope, counted, guarded_send)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            log.exception("unexpected error on %s %s", method, path)
            message = f"internal error ({type(exc).__name__}); see the server log"
            await error_response(500, "internal", message)(scope, receive, send)
            return
        if exceeded:
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Response:
    return error_response(413, "body_too_large", f"the request body is larger than {limit:,} bytes")
