"""Errors at the HTTP edge: each service error becomes its status code with a JSON body of a
stable `code`; bad requests are 4xx, never 500."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopline.core.errors import (
    AlreadyExists,
    ApprovalRequired,
    ArtifactCorrupted,
    Conflict,
    InvalidInput,
    LooplineError,
    NotFound,
    PermissionDenied,
    ProviderUnavailable,
    StoreError,
    TooManyAttempts,
    Unauthenticated,
    error_code,
    error_details,
)
from loopline.server.encoding import error_response
from loopline.server.mlflow import errors as mlflow
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
    (ProviderUnavailable, 502),
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


ErrorPage = Callable[[Request, int, Exception], Response]
"""Renders an error as a web page, for requests outside the API (the UI's pages)."""


def status_of(exc: LooplineError) -> int:
    """The HTTP status of a service error."""
    return next((s for cls, s in _STATUS if isinstance(exc, cls)), 500)


def _page(request: Request, status: int, exc: Exception) -> Response | None:
    error_page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if error_page is None or request.url.path.startswith(("/api/", "/health", "/openapi.json", "/docs")):
        return None
    return error_page(request, status, exc)


def handle_errors(app: FastAPI) -> None:
    """Install the handlers that turn every exception into a JSON error answer."""

    @app.exception_handler(LooplineError)
    async def service_error(request: Request, exc: LooplineError) -> Response:
        status = status_of(exc)
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, exc)
        if mlflow.is_mlflow_path(request.url.path):
            return mlflow.service_error(exc)
        if (shown := _page(request, status, exc)) is not None:
            return shown
        response = error_response(status, error_code(type(exc)), str(exc), error_details(exc))
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors() if isinstance(e, dict)
        ]
        if mlflow.is_mlflow_path(request.url.path):
            return mlflow.mlflow_error(
                400, "INVALID_PARAMETER_VALUE", "; ".join(problems) or "invalid request"
            )
        if (shown := _page(request, 422, InvalidInput("; ".join(problems) or "invalid request"))) is not None:
            return shown
        body = {
            "error": {"code": "invalid_input", "message": "; ".join(problems) or "invalid request"},
            "detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
        }
        return Response(orjson.dumps(body, default=str), 422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if mlflow.is_mlflow_path(request.url.path):
            return mlflow.http_error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")
        if (shown := _page(request, exc.status_code, exc)) is not None:
            return shown
        return error_response(exc.status_code, code, str(exc.detail))

    # Any other exception is answered by the RequestGuard middleware, which keeps the
    # connection open (a handler here would answer, then re-raise to the server).
