"""Streaming request bodies to a staging folder: nothing is held in memory, and the
caller never chooses where a file lands."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import Request

from loopline.artifacts import destination
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, NotFound

_OWNER = ".owner"
_MAX_AGE_S = 24 * 3600


async def stream_to(request: Request, target: Path) -> int:
    """Write the request body to `target` (created), returning its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with open(target, "wb") as out:
        async for chunk in request.stream():
            out.write(chunk)
            size += len(chunk)
    return size


@contextlib.contextmanager
def temporary_file(staging: Path) -> Iterator[Path]:
    staging.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=staging, prefix="body-")
    os.close(handle)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def new_upload(staging: Path, owner: Principal) -> str:
    """A fresh upload folder that only `owner` may fill and use; stale ones are removed."""
    _remove_stale(staging)
    upload_id = secrets.token_hex(16)
    folder = staging / "uploads" / upload_id
    (folder / "files").mkdir(parents=True)
    (folder / _OWNER).write_text(owner.name)
    return upload_id


def upload_files(staging: Path, upload_id: str, owner: Principal) -> Path:
    """The files folder of upload `upload_id`, if `owner` started it."""
    if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
        raise NotFound(f"upload {upload_id!r} does not exist")
    folder = staging / "uploads" / upload_id
    try:
        started_by = (folder / _OWNER).read_text()
    except FileNotFoundError:
        raise NotFound(f"upload {upload_id!r} does not exist") from None
    if started_by != owner.name:
        raise NotFound(f"upload {upload_id!r} does not exist")
    return folder / "files"


def upload_target(files: Path, path: str) -> Path:
    return destination(files, path)


def discard_upload(files: Path) -> None:
    shutil.rmtree(files.parent, ignore_errors=True)


def _remove_stale(staging: Path) -> None:
    """Uploads never used, and bodies a killed server was receiving, after a day."""
    cutoff = time.time() - _MAX_AGE_S
    root = staging / "uploads"
    for folder in root.iterdir() if root.is_dir() else ():
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
    for body in staging.glob("body-*"):
        with contextlib.suppress(OSError):
            if body.stat().st_mtime < cutoff:
                body.unlink()


DATA_FILE = "data.parquet"


@contextlib.contextmanager
def uploaded_table(staging: Path, upload_id: str, owner: Principal) -> Iterator[Path]:
    """The upload's `data.parquet` (rows a client staged), removed with the upload afterwards."""
    files = upload_files(staging, upload_id, owner)
    try:
        data = files / DATA_FILE
        if not data.is_file():
            raise InvalidInput(f"upload {upload_id} holds no {DATA_FILE}")
        yield data
    finally:
        discard_upload(files)
