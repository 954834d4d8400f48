"""What autolog changed in other libraries, kept so that disabling puts back exactly what was there.

Patching a class or module attribute is process-wide by nature, so this is autolog's one
piece of module-level state: `PATCHES`, a registry of the originals, the options the
wrappers read at call time, the libraries to patch when they are imported, and the
per-context depth of training calls (which makes only the outermost call log: a
Pipeline's, not its steps').
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from loopline.autolog._imports import PatchOnImport

Wrapper = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class AutologOptions:
    """How autolog logs while it is on."""

    log_models: bool = True
    silent: bool = False
    registered_model_name: str | None = None


class PatchRegistry:
    """The originals of every patched attribute, the options in force (None: autolog is
    off), and the depth of nested training calls in the current context."""

    def __init__(self) -> None:
        self.options: AutologOptions | None = None
        # (id of owner, attribute) -> (owner, attribute, original); the owner is held so its id stays unique.
        self._originals: dict[tuple[int, str], tuple[Any, str, Any]] = {}
        self._lock = threading.RLock()
        self._depth: contextvars.ContextVar[int] = contextvars.ContextVar("loopline_autolog_depth", default=0)
        self.on_import = PatchOnImport()

    @property
    def lock(self) -> threading.RLock:
        """Held while autolog is switched on or off, so that two threads cannot half-patch."""
        return self._lock

    def wrap(self, owner: Any, name: str, make: Callable[[Wrapper], Wrapper]) -> None:
        """Replace `owner.name` (its own attribute, not an inherited one) by `make(original)`;
        a second call for the same attribute does nothing, so patching twice is harmless."""
        with self._lock:
            key = (id(owner), name)
            if key in self._originals:
                return
            original = vars(owner)[name]
            replacement = make(original)
            self._originals[key] = (owner, name, original)
            setattr(owner, name, replacement)

    def is_patched(self, owner: Any, name: str) -> bool:
        """Whether `owner.name` is autolog's wrapper now."""
        return (id(owner), name) in self._originals

    def restore(self) -> None:
        """Put every original back, the last patched first, and patch no library imported later."""
        with self._lock:
            self.on_import.clear()
            for owner, name, original in reversed(list(self._originals.values())):
                setattr(owner, name, original)
            self._originals.clear()

    @contextlib.contextmanager
    def training_call(self) -> Iterator[bool]:
        """Count one training call for its duration; yields whether it is the outermost one
        in this context (the one that logs)."""
        depth = self._depth.get()
        token = self._depth.set(depth + 1)
        try:
            yield depth == 0
        finally:
            self._depth.reset(token)


PATCHES = PatchRegistry()
