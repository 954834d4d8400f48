"""Answers as JSON: orjson over dataclasses and enums, and the one shape of every error."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi.responses import Response

from loopline.core.wire import to_wire


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
