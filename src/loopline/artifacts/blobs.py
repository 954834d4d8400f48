"""Content-addressed blob storage on fsspec: a local folder by default, S3 to scale out.

A blob lives at ``blobs/sha256/ab/cd/abcd...``. It is written under a temporary name and
renamed into place on a local disk; on object stores a PUT is atomic already. Reads hash
what they return and fail loudly on a mismatch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loopline.core.errors import ArtifactCorrupted, InvalidInput, NotFound

_CHUNK = 1 << 20
STALE_TEMPORARY_S = 6 * 3600  # as long as a registration may stay PENDING
_DIGEST_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str  # sha256, hex
    size: int


class BlobStore:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url
        self.storage_options = dict(storage_options or {})
        self._fs, root = fsspec.core.url_to_fs(url, **self.storage_options)
        self._root = root.rstrip("/")
        self._local = "file" in self._fs.protocol or "local" in self._fs.protocol
        self._verified: set[str] = set()
        if self._local:
            Path(self._root, "tmp").mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> str:
        if len(digest) != 64 or not set(digest) <= _DIGEST_HEX:
            raise InvalidInput(f"{digest!r} is not a sha256 hex digest")
        return f"{self._root}/blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._path(digest)))

    def put_bytes(self, data: bytes) -> Blob:
        blob = Blob(hashlib.sha256(data).hexdigest(), len(data))
        if self.exists(blob.digest):
            return blob
        if not self._local:
            self._fs.pipe_file(self._path(blob.digest), data)
            return blob

        def fill(out: IO[bytes]) -> Blob:
            out.write(data)
            return blob

        return self._write_local(fill)

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        source = Path(path)
        if not self._local:
            blob = _read_file(source)
            if not self.exists(blob.digest):
                self._fs.put_file(os.fspath(source), self._path(blob.digest))
            return blob
        return self._write_local(lambda out: _read_file(source, copy_to=out))  # copy and hash in one pass

    def remove_stale_temporaries(self, older_than_s: float = STALE_TEMPORARY_S) -> int:
        """Remove the partial blobs that processes killed mid-write left behind (untouched for
        `older_than_s`; a write in progress keeps touching its file); returns how many."""
        if not self._local:
            return 0  # object stores write whole objects: nothing partial is left
        cutoff, removed = time.time() - older_than_s, 0
        for path in Path(self._root, "tmp").iterdir():
            with contextlib.suppress(OSError):  # gone meanwhile, or renamed into place
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def _write_local(self, fill: Callable[[IO[bytes]], Blob]) -> Blob:
        """Fill a temporary file, then rename it to its digest: readers never see half a blob."""
        with tempfile.NamedTemporaryFile(dir=Path(self._root, "tmp"), delete=False) as out:
            try:
                blob = fill(out)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                os.unlink(out.name)
                raise
        final = Path(self._path(blob.digest))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out.name, final)
        return blob

    def _chunks(self, digest: str, name: str) -> Iterator[bytes]:
        """The blob's bytes, hashed as they stream; the last step raises on a mismatch."""
        try:
            handle: IO[bytes] = self._fs.open(self._path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(
                f"artifact {name!r}: blob sha256:{digest} is missing from the artifact store {self.url}"
            ) from None
        hasher = hashlib.sha256()
        with handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
                yield chunk
        if hasher.hexdigest() != digest:
            raise ArtifactCorrupted(
                f"artifact {name!r} is corrupted: blob sha256:{digest} now hashes to "
                f"{hasher.hexdigest()}; restore it from a backup or log it again"
            )

    def read(self, digest: str, name: str) -> bytes:
        return b"".join(self._chunks(digest, name))

    def local_file(self, digest: str, name: str) -> Path:
        """A local file holding the blob's verified bytes, for readers that want a path
        (DuckDB, Parquet): the blob itself on a local store, hashed once per process; a
        verified download, kept for next time, on a remote one."""
        if self._local:
            path = Path(self._path(digest))
            if digest not in self._verified:
                for _ in self._chunks(digest, name):
                    pass
                self._verified.add(digest)
            return path
        cached = Path(tempfile.gettempdir(), "loopline-blobs", digest)
        if not cached.exists():
            self.download(digest, name, cached)
        return cached

    def download(self, digest: str, name: str, target: Path) -> None:
        """Write the blob to `target`, which only appears once its content is verified."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, prefix=".partial-") as out:
            try:
                for chunk in self._chunks(digest, name):
                    out.write(chunk)
            except BaseException:
                os.unlink(out.name)
                raise
        os.replace(out.name, target)


def _read_file(path: Path, copy_to: IO[bytes] | None = None) -> Blob:
    """Hash a file as it streams by, writing it to `copy_to` on the way."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
            if copy_to is not None:
                copy_to.write(chunk)
    return Blob(hasher.hexdigest(), size)
