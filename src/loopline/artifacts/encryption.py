"""Encryption at rest: envelope keys, and the content sealed with AES-256-GCM in chunks.

Each file gets its own random 256-bit data key. The data key is kept in the file's header,
wrapped (AES-GCM) under a key-encryption key of LOOPLINE_ENCRYPTION_KEYS whose id is bound
to it as associated data, so rotating keys rewrites headers only.

The content is cut in chunks, each sealed under the data key. A chunk's nonce and associated
data carry its index and whether it is the last one: a chunk changed, moved, dropped or cut
off fails authentication, and so does a file truncated at a chunk boundary. Both ways
stream, with at most two chunks in memory.

Layout: MAGIC | version (1 byte) | key id length (1) | key id | chunk size (4, big-endian) |
wrap nonce (12) | wrapped data key (32 + 16-byte tag) | chunks (ciphertext + 16-byte tag).
A file that does not start with MAGIC is plaintext (written before a key was configured)
and reads as it is.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import shutil
import string
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from loopline.core.errors import ArtifactCorrupted, EncryptionKeyError, InvalidInput

MAGIC = b"\x93LLENC"
VERSION = 1
CHUNK_SIZE = 1 << 20
SETTING = "LOOPLINE_ENCRYPTION_KEYS"
NEW_KEY_COMMAND = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
_KEY_BYTES = 32
_TAG = 16
_NONCE = 12
_MAX_CHUNK = 64 << 20  # a header asking for more is damaged, not a real file
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_FOLDER_PREFIX = "loopline-plain-"


class Writable(Protocol):
    """Where bytes go: an open file, or an envelope writer in front of one."""

    def write(self, data: bytes, /) -> int:
        """Write `data`; returns how many bytes were taken."""
        ...


def decode_key(key_id: str, text: str) -> bytes:
    """A 32-byte key from its base64 or hex text; the error never shows the text."""
    text = text.strip()
    if len(text) == 2 * _KEY_BYTES and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    altchars = b"-_" if "-" in text or "_" in text else None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise InvalidInput(
            f"encryption key {key_id!r} in {SETTING} is not 32 bytes in base64 or hex "
            f"({len(raw)} bytes decoded); make a key with: {NEW_KEY_COMMAND}"
        )
    return raw


@dataclass(frozen=True, slots=True)
class Header:
    """The envelope of one file: which key wrapped its data key, and the wrapped key."""

    key_id: str
    chunk_size: int
    nonce: bytes
    wrapped_key: bytes

    def prefix(self) -> bytes:
        """The fields before the wrap nonce: authenticated when the data key is unwrapped."""
        key_id = self.key_id.encode()
        return MAGIC + bytes([VERSION, len(key_id)]) + key_id + self.chunk_size.to_bytes(4, "big")

    def to_bytes(self) -> bytes:
        """The header as it starts the file."""
        return self.prefix() + self.nonce + self.wrapped_key


def _read_exact(handle: IO[bytes], size: int) -> bytes:
    """`size` bytes, fewer only at the end of the file (object-store files may read short)."""
    parts, wanted = [], size
    while wanted > 0:
        part = handle.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def read_header(handle: IO[bytes], what: str) -> tuple[Header | None, bytes]:
    """The file's envelope, or None and the bytes read so far for a plaintext file."""
    head = _read_exact(handle, len(MAGIC))
    if head != MAGIC:
        return None, head
    fixed = _read_exact(handle, 2)
    if len(fixed) < 2 or fixed[0] != VERSION:
        version = fixed[0] if fixed else "missing"
        raise ArtifactCorrupted(
            f"{what} has an encryption header of version {version}, which this loopline does not read; "
            "upgrade loopline, or restore the file from a backup"
        )
    key_id = _read_exact(handle, fixed[1]).decode("ascii", errors="replace")
    size = 4 + _NONCE + _KEY_BYTES + _TAG
    rest = _read_exact(handle, size)
    chunk_size = int.from_bytes(rest[:4], "big")
    if len(rest) < size or not _KEY_ID.fullmatch(key_id) or not 0 < chunk_size <= _MAX_CHUNK:
        raise ArtifactCorrupted(f"{what} has a damaged encryption header; restore it from a backup")
    return Header(key_id, chunk_size, rest[4 : 4 + _NONCE], rest[4 + _NONCE :]), b""


def _chunk_nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(_NONCE - 1, "big") + (b"\x01" if last else b"\x00")


def _chunk_data(header: Header, index: int, last: bool) -> bytes:
    return MAGIC + bytes([VERSION]) + header.chunk_size.to_bytes(4, "big") + _chunk_nonce(index, last)


class EnvelopeWriter:
    """Seals what is written to it into `out`; `close()` seals the last chunk (it does not
    close `out`). A chunk is held back until more comes, since only the last one is marked."""

    def __init__(self, out: Writable, header: Header, data_key: bytes) -> None:
        self._out = out
        self._header = header
        self._cipher = AESGCM(data_key)
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        out.write(header.to_bytes())

    def write(self, data: bytes, /) -> int:
        """Take `data`; every full chunk but the newest is sealed and written at once."""
        self._buffer += data
        size, start = self._header.chunk_size, 0
        while len(self._buffer) - start > size:
            self._seal(bytes(self._buffer[start : start + size]), last=False)
            start += size
        del self._buffer[:start]
        return len(data)

    def close(self) -> None:
        """Seal and write what is left, as the last chunk (once)."""
        if not self._closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._closed = True

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        nonce = _chunk_nonce(self._index, last)
        self._out.write(self._cipher.encrypt(nonce, chunk, _chunk_data(self._header, self._index, last)))
        self._index += 1


class Keyring:
    """The key-encryption keys by id: the first seals new files, every one opens the files
    it sealed (rotation: put a new key first, keep the old ones until `rewrap` is done).
    Also owns the private folder where decrypted copies go for readers that need a path."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise InvalidInput(f"{SETTING} holds no key: write it as ID:KEY[,ID:KEY...]")
        self._keys = dict(keys)
        self.current = next(iter(keys))
        self.copies = PlaintextFolder()

    @classmethod
    def parse(cls, text: str | None) -> Keyring | None:
        """`ID:KEY[,ID:KEY...]`, newest first (LOOPLINE_ENCRYPTION_KEYS); None when unset."""
        keys: dict[str, bytes] = {}
        for i, item in enumerate(p.strip() for p in (text or "").split(",") if p.strip()):
            key_id, sep, key = item.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise InvalidInput(
                    f"{SETTING}, key {i + 1}: write it as ID:KEY, the id of at most 32 letters, digits, '.', "
                    "'_' or '-'"
                )
            if key_id in keys:
                raise InvalidInput(f"{SETTING}: key id {key_id!r} is given twice")
            keys[key_id] = decode_key(key_id, key)
        return cls(keys) if keys else None

    @property
    def ids(self) -> tuple[str, ...]:
        """The key ids, the current one first."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(ids={self.ids!r})"  # never the keys

    def writer(self, out: Writable) -> EnvelopeWriter:
        """A writer sealing a new file into `out` under a fresh data key and the current key."""
        data_key = AESGCM.generate_key(bit_length=256)
        return EnvelopeWriter(out, self._wrap(self.current, data_key, CHUNK_SIZE), data_key)

    def seal(self, data: bytes) -> bytes:
        """`data`, sealed whole (small files)."""
        sealed = bytearray()

        class Sink:
            def write(self, part: bytes, /) -> int:
                sealed.extend(part)
                return len(part)

        writer = self.writer(Sink())
        writer.write(data)
        writer.close()
        return bytes(sealed)

    def rewrapped(self, header: Header, what: str) -> Header:
        """`header` with its data key wrapped under the current key instead."""
        return self._wrap(self.current, self.data_key(header, what), header.chunk_size)

    def data_key(self, header: Header, what: str) -> bytes:
        """The file's data key, unwrapped; a clear error when this keyring cannot."""
        key = self._keys.get(header.key_id)
        if key is None:
            raise EncryptionKeyError(missing_key_message(what, header.key_id))
        try:
            return AESGCM(key).decrypt(header.nonce, header.wrapped_key, header.prefix())
        except InvalidTag:
            raise EncryptionKeyError(
                f"{what} is encrypted under key {header.key_id!r}, and the key {SETTING} holds under that id "
                "does not open it (a different key given the same id?); set the key it was written with"
            ) from None

    def _wrap(self, key_id: str, data_key: bytes, chunk_size: int) -> Header:
        draft = Header(key_id, chunk_size, secrets.token_bytes(_NONCE), b"")
        wrapped = AESGCM(self._keys[key_id]).encrypt(draft.nonce, data_key, draft.prefix())
        return Header(key_id, chunk_size, draft.nonce, wrapped)


def missing_key_message(what: str, key_id: str) -> str:
    """The error for file `what`, sealed under `key_id`, which the keys configured lack."""
    return (
        f"{what} is encrypted under key {key_id!r}, which {SETTING} does not hold; "
        f"add that key to {SETTING} (keep old keys listed until `loopline encryption rewrap` has run)"
    )


def plaintext_chunks(
    handle: IO[bytes], keyring: Keyring | None, what: str, size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """The file's content: decrypted and authenticated chunk by chunk if it is sealed, as it
    is if it is plaintext. `what` names the file in errors."""
    header, head = read_header(handle, what)
    if header is None:
        if head:
            yield head
        while chunk := handle.read(size):
            yield chunk
        return
    if keyring is None:
        raise EncryptionKeyError(missing_key_message(what, header.key_id))
    cipher = AESGCM(keyring.data_key(header, what))
    sealed_size = header.chunk_size + _TAG
    current, index = _read_exact(handle, sealed_size), 0
    while True:
        following = _read_exact(handle, sealed_size)
        last = not following
        try:
            yield cipher.decrypt(_chunk_nonce(index, last), current, _chunk_data(header, index, last))
        except InvalidTag:
            raise ArtifactCorrupted(
                f"{what} is damaged: its encrypted chunk {index} fails authentication (changed, truncated "
                "or reordered); restore it from a backup"
            ) from None
        if last:
            return
        current, index = following, index + 1


def key_id_of(handle: IO[bytes], what: str) -> str | None:
    """The id of the key a file is sealed under; None for plaintext."""
    header, _ = read_header(handle, what)
    return None if header is None else header.key_id


def memory_backed_folder() -> Path:
    """/dev/shm when this machine has a writable one (decrypted copies then never reach a
    disk), else the temporary folder."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


class PlaintextFolder:
    """A private folder (mode 0700) of this process for decrypted copies, on memory-backed
    storage when available (/dev/shm), else in the temporary folder; never under the store.
    Removed when its keyring goes or the process exits; folders that killed processes left
    are removed when the next one is made."""

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The folder, made on first use."""
        with self._lock:
            if self._path is None:
                base = memory_backed_folder()
                _remove_orphans(base)
                self._path = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-", dir=base))
                weakref.finalize(self, shutil.rmtree, self._path, True)
            return self._path


def _remove_orphans(base: Path) -> None:
    """Remove the copy folders of this user's processes that are gone."""
    for folder in base.glob(f"{_FOLDER_PREFIX}*"):
        pid = folder.name[len(_FOLDER_PREFIX) :].split("-", 1)[0]
        try:
            if folder.stat().st_uid != os.getuid() or not pid.isdigit():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive under another user, or gone meanwhile
            continue
