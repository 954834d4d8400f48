"""Checks on names and values that callers send, with messages that say what and where."""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable
from typing import Any

from loopline.core.entities import Metric
from loopline.core.errors import InvalidInput

MAX_KEY_LENGTH = 250
MAX_NAME_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 8000
MAX_TAG_VALUE_LENGTH = 8000
MAX_STEP = 2**63 - 1

# Keys of params, metrics and tags: word characters (any script), and - . / : and space.
_KEY = re.compile(r"[\w\-./: ]+")


def check_text(kind: str, text: object, max_length: int) -> str:
    """A string of at most `max_length` characters, valid UTF-8 and without NUL."""
    if not isinstance(text, str):
        raise InvalidInput(f"{kind} must be a string, got {type(text).__name__}: {text!r:.80}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{kind} {text!r:.80} is not valid UTF-8 (bad character at index {exc.start})"
        ) from None
    if "\x00" in text:
        raise InvalidInput(f"{kind} {text!r:.80} contains a NUL character")
    if len(text) > max_length:
        raise InvalidInput(f"{kind} {text[:40]!r}... is {len(text)} characters; the limit is {max_length}")
    return text


def check_key(kind: str, key: object) -> str:
    """A param, metric or tag key; `kind` names it in the message ("metric key")."""
    key = check_text(kind, key, MAX_KEY_LENGTH)
    if not key or key != key.strip():
        raise InvalidInput(f"{kind} {key!r} must be non-empty without leading or trailing spaces")
    if not _KEY.fullmatch(key):
        bad = next(ch for ch in key if not _KEY.fullmatch(ch))
        raise InvalidInput(
            f"{kind} {key!r} contains {bad!r}; use letters, digits, '_', '-', '.', '/', ':' or spaces"
        )
    return key


def check_name(kind: str, name: object) -> str:
    """A human-facing name: experiment, run, project. Printable text, trimmed."""
    name = check_text(kind, name, MAX_NAME_LENGTH)
    if not name.strip():
        raise InvalidInput(f"{kind} must not be empty")
    if any(not ch.isprintable() for ch in name):
        raise InvalidInput(f"{kind} {name!r} contains a control character")
    return name


def check_param_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return check_text(f"value of param {key!r}", text, MAX_PARAM_VALUE_LENGTH)


def check_tag_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return check_text(f"value of tag {key!r}", text, MAX_TAG_VALUE_LENGTH)


def check_metric_value(key: str, value: Any) -> float:
    """Metric values are floats; NaN and +/-inf are kept (a diverging loss is information)."""
    if type(value) is float:  # the common case, without the cost of an ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(
            f"value of metric {key!r} must be a real number, got {type(value).__name__}: {value!r:.80}"
        )
    return float(value)


def check_step(key: str, step: object) -> int:
    if type(step) is int and 0 <= step <= MAX_STEP:
        return step
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise InvalidInput(f"step of metric {key!r} must be an integer, got {step!r:.80}")
    if not 0 <= int(step) <= MAX_STEP:
        raise InvalidInput(f"step of metric {key!r} must be between 0 and {MAX_STEP}, got {step}")
    return int(step)


def check_metrics(metrics: Iterable[Metric]) -> list[Metric]:
    """Validate metric values; each distinct key is checked once."""
    checked: list[Metric] = []
    keys: set[str] = set()
    for metric in metrics:
        if type(metric.key) is not str:  # an object is unhashable: checked before the set lookup
            raise InvalidInput(f"metric key must be a string, got {type(metric.key).__name__}")
        if metric.key not in keys:
            check_key("metric key", metric.key)
            keys.add(metric.key)
        value = check_metric_value(metric.key, metric.value)
        step = check_step(metric.key, metric.step)
        if type(metric.timestamp) is not int or not 0 <= metric.timestamp < 2**63:
            raise InvalidInput(f"timestamp of metric {metric.key!r} must be milliseconds since the epoch")
        checked.append(
            metric
            if value is metric.value and step is metric.step
            else Metric(metric.key, value, step, metric.timestamp)
        )
    return checked
