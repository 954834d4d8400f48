"""Identifiers handed out to users."""

from __future__ import annotations

import re
import uuid

_HEX_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    """A random 128-bit id as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def is_id(value: str) -> bool:
    return _HEX_ID.fullmatch(value) is not None
