"""Domain values to JSON and back: what the server sends and the remote client rebuilds.

One generic codec driven by the dataclasses' own type hints, so a new field travels
without a hand-written serializer on either side.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def to_wire(value: Any) -> Any:
    """A JSON-ready copy of `value` (dataclasses, named tuples, enums, containers)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: to_wire(v) for k, v in value._asdict().items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_wire(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE[str(value)]  # JSON has no NaN or infinity
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_wire(kind: Any, data: Any) -> Any:
    """Rebuild a value of type `kind` from what `to_wire` made of it."""
    if data is None or kind is Any:
        return data
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return from_wire(options[0], data) if len(options) == 1 else data
    if origin is dict:
        return {k: from_wire(args[1], v) for k, v in data.items()}
    if origin is list:
        return [from_wire(args[0], v) for v in data]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_wire(args[0], v) for v in data)
        return tuple(from_wire(a, v) for a, v in zip(args, data, strict=True))
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind):
            hints = _hints(kind)
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: from_wire(hints[k], v) for k, v in data.items() if k in names})
        if issubclass(kind, tuple) and hasattr(kind, "_fields"):
            hints = _hints(kind)
            return kind(**{k: from_wire(hints[k], data[k]) for k in kind._fields})
        if issubclass(kind, enum.Enum):
            return kind(data)
        if kind is float and isinstance(data, int | str):
            return float(data)  # "NaN", "Infinity" and "-Infinity" too
    return data


def decode(kind: type[T], data: Any) -> T:
    """`from_wire`, typed for the common case of one dataclass."""
    value: T = from_wire(kind, data)
    return value
