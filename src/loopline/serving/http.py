"""The few HTTP pieces the server needs on raw ASGI: reading a bounded body, answering
JSON, and errors that are always a 4xx JSON body for bad input."""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Any
Send = Any


class HttpError(Exception):
    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(499, "the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is over the limit of {limit:,} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def respond(send: Send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any) -> None:
    await respond(send, status, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))


MAX_ERROR_CHARS = 2000  # an error says what is wrong and where; it never echoes a huge input


# Stable codes, as the team server gives them: one error shape for both servers.
ERROR_CODES = {
    400: "invalid_input", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
    415: "unsupported_media_type", 422: "invalid_input", 500: "internal", 503: "unavailable",
    504: "timeout",
}  # fmt: skip


async def respond_error(send: Send, error: HttpError) -> None:
    """`{"error": {"code", "message", "details"}}`, the team server's shape."""
    code = ERROR_CODES.get(error.status, "http_error")
    answer = {"code": code, "message": error.message, "details": error.details}
    body = orjson.dumps({"error": answer}, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(body) > MAX_ERROR_CHARS * 4:  # long details (every bad column of a wide body): cut
        cut = {"code": code, "message": error.message[:MAX_ERROR_CHARS], "details": {"truncated": True}}
        body = orjson.dumps({"error": cut})
    await respond(send, error.status, body)
