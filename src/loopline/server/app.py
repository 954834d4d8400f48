"""The team server: the services over HTTP, as `/api/v1/...`, for many users at once.

Handlers are thin: they authenticate the caller, hand the principal to a service, and
encode what it returns. Every rule (who may do what included) lives in the services.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopline import __version__
from loopline.backends import Backends
from loopline.core.errors import (
    AlreadyExists,
    ApprovalRequired,
    ArtifactCorrupted,
    Conflict,
    InvalidInput,
    LooplineError,
    NotFound,
    PermissionDenied,
    StoreError,
    TooManyAttempts,
    Unauthenticated,
    error_code,
    error_details,
)
from loopline.core.wire import to_wire
from loopline.server.logins import FailedLogins
from loopline.server.schemas import ErrorBody

log = logging.getLogger("loopline.server")

_STATUS: list[tuple[type[LooplineError], int]] = [
    (Unauthenticated, 401),
    (TooManyAttempts, 429),
    (PermissionDenied, 403),
    (NotFound, 404),
    (AlreadyExists, 409),
    (ApprovalRequired, 409),
    (Conflict, 409),
    (InvalidInput, 400),
    (ArtifactCorrupted, 500),
    (StoreError, 503),
]
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (400, "bad input"),
        (401, "no valid token"),
        (403, "the role held is not enough"),
        (404, "does not exist, or is not visible to the caller"),
        (409, "conflicts with what is stored"),
        (413, "the body is larger than the server accepts"),
        (415, "state-changing requests must send JSON"),
        (429, "too many failed logins from this address: wait Retry-After seconds"),
    ]
}


@dataclass(frozen=True)
class ServerOptions:
    max_json_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 2 * 1024**3
    staging_dir: Path | None = None  # uploads in progress; default: a folder beside the artifacts
    max_failed_logins: int = 20  # per client address and minute; then 429 until the minute has passed


def json_response(value: Any, status: int = 200) -> Response:
    """orjson encodes dataclasses and enums natively, far faster than walking them."""
    if isinstance(value, dict) and "items" in value:
        value = {**value, "items": [_exact(item) for item in value["items"]]}
    elif isinstance(value, list):
        value = [_exact(item) for item in value]
    else:
        value = _exact(value)
    return Response(orjson.dumps(value, default=to_wire, option=_JSON), status, media_type="application/json")


def _exact(value: Any) -> Any:
    """orjson writes NaN and the infinities as null: the rare run or version whose metrics
    hold one goes through to_wire, which writes them as "NaN", "Infinity", "-Infinity"."""
    metrics = getattr(value, "metrics", None)
    if isinstance(metrics, dict) and not math.isfinite(sum(metrics.values())):
        return to_wire(value)  # (or the sum overflowed: to_wire is only slower then, not wrong)
    return value


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(orjson.dumps(body, default=str), status, media_type="application/json")


_JSON = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


class BodyTooLarge(Exception):
    pass


_UPLOAD_SUFFIXES = ("/artifacts/", "/files/")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


class RequestGuard:
    """Body size limits (413), counted as the body streams as well as from Content-Length, and
    no state change from a browser form (415): a cross-site form can send neither JSON nor
    the token header without the browser asking first."""

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
        is_upload = method == "PUT" and any(s in path for s in _UPLOAD_SUFFIXES)
        limit = self.options.max_upload_bytes if is_upload else self.options.max_json_bytes
        content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
        if method in ("POST", "PUT", "PATCH", "DELETE") and content_type in _FORM_TYPES:
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
        exceeded = False

        async def counted() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                exceeded = True
                raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:  # once the body is too large, the app's own answer is replaced
                await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counted, guarded_send)
        if exceeded:
            await _too_large(limit)(scope, receive, send)


def _too_large(limit: int) -> Response:
    return error_response(413, "body_too_large", f"the request body is larger than {limit:,} bytes")


def default_staging(artifacts_url: str) -> Path:
    """Uploads land beside a local artifact store (one filesystem: moving them in is cheap),
    or in the temporary folder when the store is remote."""
    if "://" in artifacts_url and not artifacts_url.startswith("file://"):
        return Path(tempfile.gettempdir(), "loopline-staging")
    return Path(artifacts_url.removeprefix("file://")).parent / "staging"


def create_app(backends: Backends, options: ServerOptions = ServerOptions()) -> FastAPI:
    from loopline.server.routes import governance, operations, registry, tracking

    app = FastAPI(
        title="loopline",
        version=__version__,
        description="Tracking, registry, deployments, monitoring and governance of loopline.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.backends = backends
    app.state.options = options
    app.state.failed_logins = FailedLogins(options.max_failed_logins)
    app.state.staging = options.staging_dir or default_staging(backends.blobs.url)
    for module in (tracking, registry, operations, governance):
        app.include_router(module.router, prefix="/api/v1", responses=ERROR_RESPONSES)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(LooplineError)
    async def service_error(_request: Request, exc: LooplineError) -> Response:
        status = next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        response = error_response(status, error_code(type(exc)), str(exc), error_details(exc))
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors() if isinstance(e, dict)
        ]
        body = {
            "error": {"code": "invalid_input", "message": "; ".join(problems) or "invalid request"},
            "detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
        }
        return Response(orjson.dumps(body, default=str), 422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the server log")

    app.add_middleware(RequestGuard, options=options)
    return app


def app_from_environment() -> FastAPI:
    """The app of one server worker process, configured from LOOPLINE_* variables."""
    from loopline.backends import open_backends
    from loopline.settings import Settings

    settings = Settings()
    options = ServerOptions(
        max_json_bytes=settings.server_max_json_mb * 1024 * 1024,
        max_upload_bytes=settings.server_max_upload_mb * 1024 * 1024,
        max_failed_logins=settings.server_max_failed_logins,
    )
    return create_app(open_backends(settings), options)
