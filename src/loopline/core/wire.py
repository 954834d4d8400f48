"""Domain values to JSON and back: what the server sends and the remote client rebuilds.

One generic codec driven by the dataclasses' own type hints, so a new field travels
without a hand-written serializer on either side. Decoders are built once per type:
a page of a thousand runs decodes in a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
Decoder = Callable[[Any], Any]
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


def metric_to_wire(key: str, value: float, step: int, timestamp: int) -> dict[str, Any]:
    """One metric value as JSON: the hot path of remote logging, so no generic encoding."""
    finite = value - value == 0  # False for NaN and the infinities
    return {"key": key, "value": value if finite else _NON_FINITE[str(value)], "step": step,
            "timestamp": timestamp}  # fmt: skip


def _same(data: Any) -> Any:
    return data


def _float(data: Any) -> float:
    """A number; "NaN", "Infinity", "-Infinity"; or null, which stands for NaN."""
    return math.nan if data is None else float(data)


@cache
def _decoder(kind: Any) -> Decoder:
    if kind is Any or kind in (str, int, bool, type(None)):
        return _same
    if kind is float:
        return _float
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            return _same
        inner = _decoder(options[0])
        return _same if inner is _same else (lambda data: None if data is None else inner(data))
    if origin is dict:
        value = _decoder(args[1])
        if value is _float:  # metrics: numbers as they are, only "NaN" and the like converted
            return lambda data: {k: v if type(v) is float else _float(v) for k, v in data.items()}
        return _same if value is _same else (lambda data: {k: value(v) for k, v in data.items()})
    if origin is list:
        item = _decoder(args[0])
        return _same if item is _same else (lambda data: [item(v) for v in data])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            each = _decoder(args[0])
            return lambda data: tuple(each(v) for v in data)
        parts = [_decoder(a) for a in args]
        return lambda data: tuple(p(v) for p, v in zip(parts, data, strict=True))
    if isinstance(kind, type):
        if dataclasses.is_dataclass(kind) or (issubclass(kind, tuple) and hasattr(kind, "_fields")):
            return _record(kind)
        if issubclass(kind, enum.Enum):
            return _member(kind)
    return _same


def _member(kind: type[enum.Enum]) -> Decoder:
    """A dict lookup: calling an enum class costs a microsecond, a run page has hundreds."""
    members = {member.value: member for member in kind}

    def member(data: Any) -> Any:
        try:
            return members[data]
        except (KeyError, TypeError):
            return kind(data)  # raises the enum's own error

    return member


def _record(kind: type) -> Decoder:
    """A dataclass or named tuple from its JSON object; unknown keys (a newer server's) are ignored.

    Only the fields whose JSON form differs from the value (enums, floats, nested records)
    are converted: a page of runs is mostly strings and integers."""
    hints = typing.get_type_hints(kind)
    names = [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else kind._fields  # type: ignore[attr-defined]
    known = frozenset(names)
    converted = [(name, decoder) for name in names if (decoder := _decoder(hints[name])) is not _same]

    def build(data: dict[str, Any]) -> Any:
        values = dict(data) if data.keys() <= known else {k: v for k, v in data.items() if k in known}
        for name, convert in converted:
            if name in values:
                values[name] = convert(values[name])
        return kind(**values)

    return build


def from_wire(kind: Any, data: Any) -> Any:
    """Rebuild a value of type `kind` from its JSON form."""
    return _decoder(kind)(data)


def decode(kind: type[T], data: Any) -> T:
    """`from_wire`, typed for the common case of one dataclass."""
    value: T = from_wire(kind, data)
    return value
