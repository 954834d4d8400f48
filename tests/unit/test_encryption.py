"""The envelope format: keys parse strictly and never show, content round-trips at every
size, and a changed, moved, dropped or cut chunk fails authentication."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from loopline.artifacts import encryption
from loopline.artifacts.encryption import Keyring, key_id_of, plaintext_chunks, read_header
from loopline.artifacts.rotation import StoredFiles
from loopline.client.connection import tls_context
from loopline.core.errors import ArtifactCorrupted, EncryptionKeyError, InvalidInput

CHUNK = 64  # small chunks: a few hundred bytes make many of them
# Fixed keys where they name a test case: every xdist worker must collect the same ids.
FIXED_KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(32, 64))).decode()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encryption, "CHUNK_SIZE", CHUNK)


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def keyring(text: str) -> Keyring:
    parsed = Keyring.parse(text)
    assert parsed is not None
    return parsed


def opened(sealed: bytes, ring: Keyring | None, what: str = "blob sha256:ab12…") -> bytes:
    return b"".join(plaintext_chunks(io.BytesIO(sealed), ring, what))


def test_keys_parse_in_base64_or_hex_and_the_first_is_current() -> None:
    raw = os.urandom(32)
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    ring = keyring(f"new:{raw.hex()}, old:{base64.b64encode(raw).decode()},older:{urlsafe}")
    assert ring.current == "new" and ring.ids == ("new", "old", "older")
    assert Keyring.parse(None) is None and Keyring.parse(" ") is None
    assert raw.hex() not in repr(ring) and "new" in repr(ring)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k1:c2hvcnQ=", "encryption key 'k1' in LOOPLINE_ENCRYPTION_KEYS is not 32 bytes"),
        (f"k1:{'ab' * 31}", "is not 32 bytes"),
        ("k1:not base64 at all!", "is not 32 bytes"),
        (FIXED_KEY, "write it as ID:KEY"),
        (f"k 1:{FIXED_KEY}", "write it as ID:KEY"),
        (f"k1:{FIXED_KEY},k1:{OTHER_KEY}", "key id 'k1' is given twice"),
    ],
)
def test_a_malformed_key_is_refused_without_showing_it(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        Keyring.parse(text)
    secret = text.rpartition(":")[2]
    assert secret and secret[:8] not in str(caught.value)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 7])
def test_content_round_trips_at_every_size(size: int) -> None:
    ring, data = keyring(f"k1:{key()}"), os.urandom(size)
    sealed = ring.seal(data)
    assert opened(sealed, ring) == data
    assert key_id_of(io.BytesIO(sealed), "x") == "k1"
    assert ring.seal(data) != sealed  # a fresh data key per file


def test_writes_of_any_shape_make_the_same_plaintext() -> None:
    ring, data = keyring(f"k1:{key()}"), os.urandom(10 * CHUNK + 3)
    out = io.BytesIO()
    writer = ring.writer(out)
    for start in range(0, len(data), 37):
        writer.write(data[start : start + 37])
    writer.close()
    assert opened(out.getvalue(), ring) == data


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """The header and the sealed chunks of a file."""
    handle = io.BytesIO(sealed)
    header, _ = read_header(handle, "x")
    assert header is not None
    body = handle.read()
    size = header.chunk_size + 16
    return sealed[: len(sealed) - len(body)], [body[i : i + size] for i in range(0, len(body), size)]


def test_changed_moved_dropped_or_cut_chunks_fail() -> None:
    ring = keyring(f"k1:{key()}")
    head, chunks = _chunks(ring.seal(os.urandom(4 * CHUNK + 10)))
    assert len(chunks) == 5
    changed = bytearray(chunks[2])
    changed[3] ^= 0x80
    for broken in (
        [*chunks[:2], bytes(changed), *chunks[3:]],  # one bit changed
        [chunks[1], chunks[0], *chunks[2:]],  # two chunks swapped
        [*chunks[:2], *chunks[3:]],  # one dropped from the middle
        chunks[:4],  # the last one cut off: the file ends on a chunk boundary
        [*chunks, chunks[4]],  # the last one repeated
    ):
        with pytest.raises(ArtifactCorrupted, match=r"blob sha256:ab12… is damaged: its encrypted chunk \d"):
            opened(head + b"".join(broken), ring)
    with pytest.raises(ArtifactCorrupted, match="damaged encryption header"):
        opened(head[:20], ring)


def test_a_file_from_another_key_or_another_file_fails_clearly() -> None:
    ring = keyring(f"k1:{key()}")
    sealed = ring.seal(b"content")
    with pytest.raises(EncryptionKeyError, match="does not open it"):
        opened(sealed, keyring(f"k1:{key()}"))
    with pytest.raises(
        EncryptionKeyError, match="under key 'k1', which LOOPLINE_ENCRYPTION_KEYS does not hold"
    ):
        opened(sealed, keyring(f"k2:{key()}"))
    with pytest.raises(EncryptionKeyError, match="does not hold"):
        opened(sealed, None)
    _, chunks = _chunks(sealed)
    other_head, _ = _chunks(ring.seal(b"content"))
    with pytest.raises(ArtifactCorrupted, match="fails authentication"):  # another file's data key
        opened(other_head + b"".join(chunks), ring)


def test_plaintext_reads_as_it_is() -> None:
    for data in (b"", b"PAR1 plain parquet", os.urandom(3 * CHUNK)):
        assert opened(data, keyring(f"k1:{key()}")) == data
        assert opened(data, None) == data
        assert key_id_of(io.BytesIO(data), "x") is None


def test_rewrap_replaces_the_header_and_keeps_the_chunks(tmp_path: Path) -> None:
    import fsspec

    k1, k2 = key(), key()
    old = keyring(f"k1:{k1}")
    data = os.urandom(3 * CHUNK)
    (tmp_path / "sealed").write_bytes(old.seal(data))
    (tmp_path / "plain").write_bytes(data)
    paths = [str(tmp_path / "sealed"), str(tmp_path / "plain")]
    files = StoredFiles(fsspec.filesystem("file"), lambda: paths, lambda p: p, lambda _: str(tmp_path))
    _, before = _chunks((tmp_path / "sealed").read_bytes())

    rotated = keyring(f"k2:{k2},k1:{k1}")  # a new key first, the old one kept
    dry = files.rewrap(rotated, dry_run=True)
    assert (dry.rewrapped, dry.encrypted, dry.current) == (1, 1, 0)
    assert files.census() == {"k1": 1, "plaintext": 1}
    done = files.rewrap(rotated)
    assert (done.rewrapped, done.encrypted, done.problems) == (1, 1, [])
    assert files.census() == {"k2": 2}
    _, after = _chunks((tmp_path / "sealed").read_bytes())
    assert after == before  # only the header changed
    new_only = keyring(f"k2:{k2}")
    for path in paths:
        assert opened(Path(path).read_bytes(), new_only) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "sealed"]  # no staged file left

    missing = files.rewrap(keyring(f"k3:{key()}"))
    assert missing.rewrapped == 0 and len(missing.problems) == 2
    assert "encrypted under key 'k2', which LOOPLINE_ENCRYPTION_KEYS does not hold" in missing.problems[0]


def test_copies_go_to_a_private_folder_that_is_removed_with_its_keyring() -> None:
    ring = keyring(f"k1:{key()}")
    folder = ring.copies.path
    assert folder.stat().st_mode & 0o777 == 0o700
    assert str(folder).startswith(str(encryption.memory_backed_folder()))
    assert ring.copies.path == folder  # one per keyring
    del ring
    assert not folder.exists()


def test_a_ca_bundle_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"LOOPLINE_TLS_CA .*missing\.pem"):
        tls_context(tmp_path / "missing.pem")
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(InvalidInput, match="not a PEM certificate bundle"):
        tls_context(tmp_path / "junk.pem")
