"""Artifact names: user-chosen, so checked after full decoding before anything uses them.

Blobs are stored by content hash, so a name never becomes a storage path. Names still
become local paths when artifacts are downloaded, and they show up in URLs of the server:
a name must be a plain relative path in every decoding a consumer might apply.
"""

from __future__ import annotations

import mimetypes
import os
import re
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

from loopline.core.errors import InvalidInput

MAX_NAME_LENGTH = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


def _decodings(name: str) -> list[str]:
    """`name` and every form repeated URL-decoding and Unicode normalisation give it."""
    forms = [name]
    current = name
    for _ in range(8):
        decoded = unquote(current)
        if decoded == current:
            break
        forms.append(decoded)
        current = decoded
    forms.extend(unicodedata.normalize("NFKC", form) for form in list(forms))
    return forms


def check_artifact_name(name: object) -> str:
    """Return `name` if it is a safe relative path such as ``plots/roc.png``."""
    if not isinstance(name, str):
        raise InvalidInput(f"artifact name must be a string, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"artifact name must have 1 to {MAX_NAME_LENGTH} characters, got {len(name)}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"artifact name {name!r} is not valid UTF-8") from None
    for form in _decodings(name):
        problem = _path_problem(form)
        if problem:
            shown = repr(name) if form == name else f"{name!r} (decoded: {form!r})"
            raise InvalidInput(f"artifact name {shown} {problem}; use a relative path like 'plots/roc.png'")
    return name


def _path_problem(form: str) -> str | None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in form):
        return "contains a control character"
    if "\\" in form:
        return "contains a backslash"
    if form.startswith("/") or _DRIVE.match(form):
        return "is an absolute path"
    parts = form.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' path component"
    return None


def media_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def destination(root: Path, name: str) -> Path:
    """Where artifact `name` goes under `root`, refusing any route out (symlinks included)."""
    check_artifact_name(name)
    base = root.resolve()
    target = base.joinpath(*PurePosixPath(name).parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(base):
        raise InvalidInput(f"artifact {name!r} would be written outside {root} (through a symlink)")
    return target


def files_under(directory: Path) -> list[tuple[Path, str]]:
    """Every file below `directory` with its relative name; refuses symlinks that lead out of it."""
    base = directory.resolve()
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath, entry)
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                raise InvalidInput(f"{path} is a symlink to {path.resolve()}, outside {directory}")
        for filename in filenames:
            path = Path(dirpath, filename)
            found.append((path, path.relative_to(directory).as_posix()))
    return sorted(found, key=lambda item: item[1])
