"""Content-addressed blob storage on fsspec: a local folder by default, S3 to scale out.

A blob lives at ``blobs/sha256/ab/cd/abcd...``. It is written under a temporary name and
renamed into place on a local disk; on object stores a PUT is atomic already. Reads hash
what they return and fail loudly on a mismatch.

With a keyring, blobs are stored sealed (see `artifacts.encryption`); the digest stays the
sha256 of the plaintext, so addressing, dedupe and every reference are unchanged. Blobs
written before a key was configured still read, as plaintext.
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

from loopline.artifacts.encryption import Keyring, Writable, plaintext_chunks
from loopline.artifacts.rotation import StoredFiles
from loopline.core.errors import ArtifactCorrupted, InvalidInput, NotFound

_CHUNK = 1 << 20
STALE_TEMPORARY_S = 6 * 3600  # as long as a registration may stay PENDING
_DIGEST_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Blob:
    digest: str  # sha256, hex
    size: int


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob as the store holds it: what gc looks at."""

    digest: str
    size: int
    modified: float  # seconds since the epoch: written, or last put again


class BlobStore:
    def __init__(
        self, url: str, storage_options: dict[str, Any] | None = None, keyring: Keyring | None = None
    ) -> None:
        import fsspec

        self.url = url
        self.storage_options = dict(storage_options or {})
        self.keyring = keyring  # None: blobs are stored as they are
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
        if self._local and self._refresh(blob.digest):
            return blob  # stored already; its age starts again, so gc leaves it to its new owner
        if not self._local:  # an object's age cannot be touched: writing it again restarts it
            sealed = data if self.keyring is None else self.keyring.seal(data)
            self._fs.pipe_file(self._path(blob.digest), sealed)
            return blob

        def fill(out: Writable) -> Blob:
            out.write(data)
            return blob

        return self._write_local(fill)

    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        source = Path(path)
        if not self._local:
            blob = _read_file(source)
            # written even when stored already: that restarts its age, as gc's grace needs
            if self.keyring is None:
                self._fs.put_file(os.fspath(source), self._path(blob.digest))
                return blob
            with self._fs.open(self._path(blob.digest), "wb") as out:  # sealed as it streams
                writer = self.keyring.writer(out)
                _read_file(source, copy_to=writer)
                writer.close()
            return blob
        return self._write_local(lambda out: _read_file(source, copy_to=out))  # copy and hash in one pass

    def _refresh(self, digest: str) -> bool:
        """Restart the age of a stored blob (a local file's modification time); False when it
        is not stored, or gc took it away meanwhile: the caller then writes it again."""
        try:
            os.utime(self._path(digest))
        except FileNotFoundError:
            return False
        return True

    def stored(self) -> Iterator[StoredBlob]:
        """Every stored blob with its size and last modification (seconds since the epoch)."""
        top = f"{self._root}/blobs/sha256"
        if self._local:
            self._put_back_set_aside()
            for first in _folders(top):
                for second in _folders(first):
                    with os.scandir(second) as entries:
                        for entry in entries:
                            with contextlib.suppress(OSError):  # removed meanwhile
                                if _is_digest(entry.name) and entry.is_file():
                                    info = entry.stat()
                                    yield StoredBlob(entry.name, info.st_size, info.st_mtime)
            return
        for path, info in self._fs.find(top, detail=True).items():
            name = path.rsplit("/", 1)[-1]
            if _is_digest(name):
                yield StoredBlob(name, int(info.get("size") or 0), _modified(info))

    def remove(self, digest: str, *, modified_before: float | None = None) -> bool:
        """Delete the blob (its owner checked that nothing refers to it); False if absent.

        With `modified_before` (seconds since the epoch), only if it was last modified before
        then. On a local disk the file is first renamed aside, which a concurrent `put_*`
        cannot miss: its touch either lands before the rename (the age is checked again after
        it, and the blob put back) or fails after it (and the writer stores the blob anew)."""
        path = self._path(digest)
        self._verified.discard(digest)
        try:
            if modified_before is not None and self._local:
                return self._remove_unless_touched(digest, modified_before)
            try:
                if modified_before is not None and _modified(self._fs.info(path)) >= modified_before:
                    return False
                self._fs.rm_file(path)
            except FileNotFoundError:
                return False
            return True
        finally:  # after the blob: a concurrent reader cannot make the copy again from it
            if self.keyring is not None:
                (self.keyring.copies.path / "blobs" / digest).unlink(missing_ok=True)

    def _remove_unless_touched(self, digest: str, modified_before: float) -> bool:
        final = Path(self._path(digest))
        aside = Path(self._root, "tmp", f"gc-{digest}-{os.getpid()}-{time.monotonic_ns()}")
        try:
            if final.stat().st_mtime >= modified_before:
                return False
            os.rename(final, aside)
        except FileNotFoundError:
            return False
        try:
            if aside.stat().st_mtime >= modified_before:  # touched between the look and the rename
                os.replace(aside, final)  # a copy written meanwhile holds the same bytes
                return False
            aside.unlink()
        except FileNotFoundError:
            pass  # a clean-up of stale temporaries took it: it was old, so as intended
        return True

    def _put_back_set_aside(self) -> None:
        """Blobs a gc killed mid-removal left renamed aside go back in place, to be judged
        again: one it had found touched must not stay missing."""
        for path in Path(self._root, "tmp").glob("gc-*"):
            digest = path.name.split("-")[1]
            if _is_digest(digest):
                final = Path(self._path(digest))
                with contextlib.suppress(OSError):  # finished meanwhile by its own gc
                    final.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, final)

    def rotation_files(self) -> StoredFiles:
        """The blob files, as key rotation sees them (`loopline encryption`)."""
        return StoredFiles(
            self._fs,
            lambda: (self._path(blob.digest) for blob in self.stored()),
            lambda path: f"blob sha256:{path.rsplit('/', 1)[-1][:12]}…",
            (lambda _: str(Path(self._root, "tmp"))) if self._local else None,
        )

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

    def _write_local(self, fill: Callable[[Writable], Blob]) -> Blob:
        """Fill a temporary file (sealing what is written, with a keyring), then rename it to
        its digest: readers never see half a blob."""
        with tempfile.NamedTemporaryFile(dir=Path(self._root, "tmp"), delete=False) as out:
            try:
                if self.keyring is None:
                    blob = fill(out)
                else:
                    writer = self.keyring.writer(out)
                    blob = fill(writer)
                    writer.close()
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
        hasher, what = hashlib.sha256(), f"blob sha256:{digest[:12]}… of artifact {name!r}"
        with handle:
            for chunk in plaintext_chunks(handle, self.keyring, what):
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
        verified download, kept for next time, on a remote one.

        With a keyring, a decrypted, verified copy in the keyring's private folder of this
        process (mode 0700, on memory-backed storage when the machine has it: /dev/shm, else
        the temporary folder; never under the store), removed when the process ends."""
        if self.keyring is not None:
            copy = self.keyring.copies.path / "blobs" / digest
            if not copy.exists() or not self.exists(digest):  # an erased blob is not served from a copy
                self.download(digest, name, copy)
            return copy
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


def _read_file(path: Path, copy_to: Writable | None = None) -> Blob:
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


def _is_digest(name: str) -> bool:
    return len(name) == 64 and set(name) <= _DIGEST_HEX


def _folders(path: str) -> list[str]:
    """The sub-folders of `path` (none if it does not exist)."""
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir()]
    except FileNotFoundError:
        return []


def _modified(info: dict[str, Any]) -> float:
    """Last modification, in seconds since the epoch, of an fsspec `info` record."""
    found = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if found is None:
        return time.time()  # unknown: as if just written, so never old enough to remove
    return found.timestamp() if hasattr(found, "timestamp") else float(found)
