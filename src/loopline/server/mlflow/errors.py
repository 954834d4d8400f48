"""Errors in MLflow's format, `{"error_code": ..., "message": ...}`, with the status codes an
MLflow server gives: the client's create-if-missing logic reads RESOURCE_DOES_NOT_EXIST."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from loopline.core.errors import (
    AlreadyExists,
    ApprovalRequired,
    Conflict,
    InvalidInput,
    LooplineError,
    NotFound,
    PermissionDenied,
    StoreError,
    TooManyAttempts,
    Unauthenticated,
)

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow")

_CODES: list[tuple[type[LooplineError], int, str]] = [
    (Unauthenticated, 401, "UNAUTHENTICATED"),
    (TooManyAttempts, 429, "REQUEST_LIMIT_EXCEEDED"),
    (PermissionDenied, 403, "PERMISSION_DENIED"),
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (AlreadyExists, 400, "RESOURCE_ALREADY_EXISTS"),
    (ApprovalRequired, 400, "INVALID_STATE"),
    (Conflict, 400, "INVALID_PARAMETER_VALUE"),
    (InvalidInput, 400, "INVALID_PARAMETER_VALUE"),
    (StoreError, 503, "TEMPORARILY_UNAVAILABLE"),
]
_HTTP_CODES = {404: "ENDPOINT_NOT_FOUND", 405: "ENDPOINT_NOT_FOUND", 401: "UNAUTHENTICATED"}


class MlflowError(BaseModel):
    """The body of every error of MLflow's API."""

    error_code: str
    message: str


RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": MlflowError, "description": description}
    for status, description in [
        (400, "bad input (INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, INVALID_STATE)"),
        (401, "no valid token (UNAUTHENTICATED)"),
        (403, "the role held is not enough (PERMISSION_DENIED)"),
        (404, "does not exist, or is not visible to the caller (RESOURCE_DOES_NOT_EXIST)"),
        (413, "the body is larger than the server accepts"),
        (415, "state-changing requests must not be forms"),
        (429, "too many failed logins from this address (REQUEST_LIMIT_EXCEEDED)"),
        (503, "the store is busy or unreachable (TEMPORARILY_UNAVAILABLE)"),
    ]
}


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PREFIXES)


def mlflow_error(status: int, code: str, message: str) -> Response:
    body = orjson.dumps({"error_code": code, "message": message})
    return Response(body, status, media_type="application/json")


def service_error(exc: LooplineError) -> Response:
    """A service's error as MLflow's server would answer it."""
    status, code = next(((s, c) for cls, s, c in _CODES if isinstance(exc, cls)), (500, "INTERNAL_ERROR"))
    return mlflow_error(status, code, str(exc))


def http_error(status: int, message: str) -> Response:
    code = _HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR")
    return mlflow_error(status, code, message)
