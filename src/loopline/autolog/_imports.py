"""Patch a library right after its first import.

Importing every installed training library when autolog is switched on would cost seconds
(scikit-learn's estimator list alone takes two, Lightning four) for libraries a program
may never use; so a library not imported yet is patched when the program imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


class PatchOnImport(importlib.abc.MetaPathFinder):
    """A finder placed first on `sys.meta_path` while some library awaits patching; it
    finds nothing itself, it only runs the patch after the real loader executed the module."""

    def __init__(self) -> None:
        self._pending: dict[str, Callable[[], None]] = {}
        self._searching = threading.local()  # names this thread is looking up through the other finders

    def watch(self, module: str, patch: Callable[[], None]) -> None:
        """Run `patch` now if `module` (a top-level name) is imported, else right after its import."""
        if module in sys.modules:
            patch()
            return
        self._pending[module] = patch
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def clear(self) -> None:
        """Forget every pending patch and leave `sys.meta_path`."""
        self._pending.clear()
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        searching: set[str] = self._searching.__dict__.setdefault("names", set())
        if fullname not in self._pending or fullname in searching:
            return None
        searching.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)  # the finders after this one
        finally:
            searching.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _PatchAfterExec(spec.loader, lambda: self._patch(fullname))
        return spec

    def _patch(self, module: str) -> None:
        patch = self._pending.pop(module, None)
        if not self._pending:
            self.clear()
        if patch is not None:
            patch()


class _PatchAfterExec(importlib.abc.Loader):
    """The real loader, then the patch; the module keeps the real loader afterwards."""

    def __init__(self, loader: importlib.abc.Loader, after: Callable[[], None]) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first: resources and reloads must not go through this one.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._after()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
