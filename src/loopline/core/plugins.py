"""Plug-ins other packages declare through entry points (model flavors, notifiers)."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

from loopline.core.errors import ContractViolation

PLUGIN_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")


def installed_plugins(group: str, key: str, taken: set[str]) -> dict[str, Any]:
    """The plug-ins of entry-point `group`, by their attribute `key` (a lowercase name that no
    other plug-in has, nor one of `taken`); a class is instantiated. Sorted by entry name."""
    found: dict[str, Any] = {}
    for entry in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
        loaded = entry.load()
        plugin = loaded() if isinstance(loaded, type) else loaded
        name = getattr(plugin, key, None)
        if not isinstance(name, str) or not PLUGIN_NAME.fullmatch(name):
            raise ContractViolation(f"{entry.value} in {group} has no valid {key} (a-z, 0-9, _): {name!r}")
        if name in found or name in taken:
            raise ContractViolation(f"{entry.value} in {group} has the {key} {name!r} of another one")
        found[name] = plugin
    return found
