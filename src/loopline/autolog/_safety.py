"""Autologging never breaks training: a failing logging step becomes one warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WARNING_PREFIX = "loopline autolog:"


def attempt(what: str, action: Callable[[], T], *, silent: bool) -> T | None:
    """`action()`, or None if it raised: then one RuntimeWarning saying it could not do
    `what` (none when `silent`). KeyboardInterrupt and SystemExit still go through."""
    try:
        return action()
    except Exception as exc:
        if not silent:
            message = " ".join(str(exc).split())[:500]
            warnings.warn(
                f"{WARNING_PREFIX} could not {what}: {type(exc).__name__}: {message}",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
