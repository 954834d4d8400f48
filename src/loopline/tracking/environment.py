"""What a run records about where it ran: source (entry point, git) and environment."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopline.core.entities import Source

_GIT_TIMEOUT_S = 5
_SOURCE_TTL_S = 10.0  # a sweep of many short runs asks git once, a notebook still sees new commits
# The user's code a loopline process runs for them (a pipeline's module, run by the CLI or a
# worker): its file is the runs' entry point, its repository their commit. An environment
# variable, so that the processes a pipeline's steps run in see it too.
ENTRY_POINT_VARIABLE = "LOOPLINE_ENTRY_POINT"
_source_cache: dict[str | None, tuple[float, Source]] = {}


def capture_source() -> Source:
    """The entry point and git state of this process (or of the pipeline module it runs),
    asked of git at most every few seconds."""
    entry = os.environ.get(ENTRY_POINT_VARIABLE)
    cached = _source_cache.get(entry)
    if cached is not None and time.monotonic() - cached[0] < _SOURCE_TTL_S:
        return cached[1]
    source = _read_source(entry)
    _source_cache[entry] = (time.monotonic(), source)
    return source


@contextlib.contextmanager
def entry_point(path: str | None) -> Iterator[None]:
    """Runs started inside record `path` (the user's module) as their entry point."""
    previous = os.environ.get(ENTRY_POINT_VARIABLE)
    if path is None or previous is not None:  # unknown, or an outer pipeline named it already
        yield
        return
    os.environ[ENTRY_POINT_VARIABLE] = path
    try:
        yield
    finally:
        os.environ.pop(ENTRY_POINT_VARIABLE, None)


def _read_source(entry: str | None) -> Source:
    main = sys.modules.get("__main__")
    main_file = entry or getattr(main, "__file__", None)
    entry_point = str(Path(main_file).resolve()) if main_file else "<interactive>"
    directory = Path(main_file).resolve().parent if main_file else Path.cwd()
    commit, dirty = _git_state(directory)
    return Source(entry_point=entry_point, git_commit=commit, git_dirty=dirty)


def _git_state(directory: Path) -> tuple[str | None, bool | None]:
    """HEAD's commit and whether tracked files differ from it, in one `git status` call."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    if out.returncode != 0:
        return None, None
    commit = None
    dirty = False
    for line in out.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif not line.startswith("#"):
            dirty = True
    return commit, dirty


@functools.cache
def capture_environment() -> dict[str, Any]:
    """Python and the versions of every installed distribution (once per process, and read
    from a cache kept per environment: reading 300 packages' metadata takes a quarter second)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": _cached_packages(),
    }


def _cached_packages() -> dict[str, str]:
    """The installed distributions, cached under a fingerprint of the import path: installing
    or removing one changes its folder's modification time, hence the fingerprint."""
    cached = _cache_dir() / f"{_fingerprint()}.json"
    with contextlib.suppress(OSError, ValueError):
        found = json.loads(cached.read_text(encoding="utf-8"))
        if isinstance(found, dict) and all(isinstance(v, str) for v in found.values()):
            return found
    packages = _installed_packages()
    with contextlib.suppress(OSError):  # a read-only home only costs the cache
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cached.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(packages, out)
        os.replace(temporary, cached)
    return packages


def _installed_packages() -> dict[str, str]:
    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


def _fingerprint() -> str:
    entries = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            entries.append(f"{entry}\0{os.stat(entry or '.').st_mtime_ns}")
    return hashlib.sha256("\n".join([sys.executable, *entries]).encode()).hexdigest()[:32]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "loopline" / "environments"
