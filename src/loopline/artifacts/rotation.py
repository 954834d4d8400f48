"""Key rotation over the files of an artifact store: which key seals each file, and moving
every file under the keyring's current key.

Rewrapping a sealed file only replaces its header (its data key wrapped under the current
key); the chunks are copied as they are. A plaintext file is sealed whole. Either way the new
file replaces the old one atomically (a rename on a local disk, a whole PUT on an object
store), so a reader sees the old file or the new one, both readable."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from loopline.artifacts.encryption import CHUNK_SIZE, Keyring, Writable, key_id_of, read_header
from loopline.core.errors import EncryptionKeyError, LooplineError

PLAINTEXT = "plaintext"  # the census's name for files sealed under no key
MAX_PROBLEMS = 20


@dataclass
class Rewrap:
    """What a rewrap did (or, in a dry run, would do) to a set of files."""

    rewrapped: int = 0  # sealed under an older key: header rewritten
    encrypted: int = 0  # plaintext: sealed
    current: int = 0  # already under the current key
    problems: list[str] = field(default_factory=list)  # files it could not move (a key missing...)

    def add(self, other: Rewrap) -> None:
        """Count `other`'s files in too."""
        self.rewrapped += other.rewrapped
        self.encrypted += other.encrypted
        self.current += other.current
        self.problems.extend(other.problems[: MAX_PROBLEMS - len(self.problems)])


@dataclass(frozen=True)
class StoredFiles:
    """A set of files of one filesystem (the blobs, or the tables), as rotation sees them."""

    fs: Any  # fsspec filesystem
    paths: Callable[[], Iterable[str]]
    describe: Callable[[str], str]  # how messages name a file: "blob sha256:ab12…"
    # Local disks: the folder where a file's new version is staged, then renamed over it.
    staging: Callable[[str], str] | None

    def census(self) -> Counter[str]:
        """How many files each key id seals (`PLAINTEXT`: none)."""
        found: Counter[str] = Counter()
        for path in self.paths():
            with self.fs.open(path, "rb") as handle:
                found[key_id_of(handle, self.describe(path)) or PLAINTEXT] += 1
        return found

    def rewrap(self, keyring: Keyring, *, dry_run: bool = False) -> Rewrap:
        """Put every file under `keyring.current`; files it cannot open are listed as problems."""
        report = Rewrap()
        for path in self.paths():
            what = self.describe(path)
            with self.fs.open(path, "rb") as handle:
                header, _ = read_header(handle, what)
            if header is not None and header.key_id == keyring.current:
                report.current += 1
                continue
            try:
                if header is not None:
                    keyring.data_key(header, what)  # fails now, for a key that is missing or wrong
                if not dry_run:
                    self._rewrite(path, keyring, what)
            except (EncryptionKeyError, OSError) as exc:
                if len(report.problems) < MAX_PROBLEMS:
                    report.problems.append(str(exc) if isinstance(exc, LooplineError) else f"{what}: {exc}")
                continue
            if header is None:
                report.encrypted += 1
            else:
                report.rewrapped += 1
        return report

    def _rewrite(self, path: str, keyring: Keyring, what: str) -> None:
        with self.fs.open(path, "rb") as source:
            if self.staging is None:
                with self.fs.open(path, "wb") as out:  # an object store shows the PUT only once complete
                    _move(source, out, keyring, what)
                return
            folder = self.staging(path)
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".rewrap-", delete=False) as out:
                try:
                    _move(source, out, keyring, what)
                    out.flush()
                    os.fsync(out.fileno())
                except BaseException:
                    os.unlink(out.name)
                    raise
        with contextlib.suppress(OSError):
            shutil.copymode(path, out.name)
        os.replace(out.name, path)


def _move(source: IO[bytes], out: Writable, keyring: Keyring, what: str) -> None:
    """Copy `source` to `out` under the current key: a new header before the same chunks, or
    a plaintext file sealed."""
    header, head = read_header(source, what)
    if header is not None:
        out.write(keyring.rewrapped(header, what).to_bytes())
        while chunk := source.read(CHUNK_SIZE):
            out.write(chunk)
        return
    writer = keyring.writer(out)
    writer.write(head)
    while chunk := source.read(CHUNK_SIZE):
        writer.write(chunk)
    writer.close()
