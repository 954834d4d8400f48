"""The content-addressed blob store on a local folder and on an S3-compatible server."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from loopline.artifacts import BlobStore
from loopline.core.errors import ArtifactCorrupted, InvalidInput, NotFound
from loopline.wiring.settings import Settings
from tests.conftest import free_port

BUCKET = "loopline-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1: real HTTP, real s3fs, no AWS."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    if request.param == "local":
        return BlobStore(str(tmp_path / "blobs"))
    endpoint = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from loopline.wiring.backends import open_blob_store

    prefix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    settings = Settings(artifacts_uri=f"s3://{BUCKET}/{prefix}", s3_endpoint_url=endpoint)
    return open_blob_store(settings)


def test_blobs_are_addressed_by_content(blob_store: BlobStore, tmp_path: Path) -> None:
    data = b"weights" * 10_000
    blob = blob_store.put_bytes(data)
    assert blob.digest == hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert blob_store.read(blob.digest, "model.bin") == data
    source = tmp_path / "same.bin"
    source.write_bytes(data)
    assert blob_store.put_file(source) == blob  # same content, same blob
    assert blob_store.exists(blob.digest)


def test_a_large_file_streams_in_and_out(blob_store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * 20_000)  # 5 MB, several chunks
    blob = blob_store.put_file(source)
    target = tmp_path / "out" / "big.bin"
    blob_store.download(blob.digest, "big.bin", target)
    assert target.read_bytes() == source.read_bytes()


def test_a_missing_blob_names_the_artifact(blob_store: BlobStore) -> None:
    with pytest.raises(NotFound, match=r"artifact 'model\.bin': blob sha256:0{64} is missing"):
        blob_store.read("0" * 64, "model.bin")


def test_digests_are_checked_before_they_become_paths(blob_store: BlobStore) -> None:
    with pytest.raises(InvalidInput, match="not a sha256 hex digest"):
        blob_store.read("../../etc/passwd", "x")


def _tamper(blob_store: BlobStore, digest: str, data: bytes) -> None:
    path = blob_store._path(digest)
    blob_store._fs.pipe_file(path, data)


def test_a_tampered_blob_is_refused_and_names_the_artifact(blob_store: BlobStore, tmp_path: Path) -> None:
    blob = blob_store.put_bytes(b"the real model")
    _tamper(blob_store, blob.digest, b"a trojan model")
    with pytest.raises(
        ArtifactCorrupted, match=rf"artifact 'model.bin' is corrupted: blob sha256:{blob.digest}"
    ):
        blob_store.read(blob.digest, "model.bin")
    target = tmp_path / "out" / "model.bin"
    with pytest.raises(ArtifactCorrupted):
        blob_store.download(blob.digest, "model.bin", target)
    assert not target.exists()  # nothing unverified is left where the caller looks
    assert list(target.parent.iterdir()) == []


def test_a_failed_local_write_leaves_no_temporary_file_and_no_blob(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "missing-source")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert not (tmp_path / "blobs" / "blobs").exists()


def test_partial_blobs_left_by_killed_writers_are_removed_once_stale(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    leftovers = tmp_path / "blobs" / "tmp"
    (leftovers / "tmpdead").write_bytes(b"x" * 1000)  # a writer killed seven hours ago
    os.utime(leftovers / "tmpdead", (time.time() - 7 * 3600,) * 2)
    (leftovers / "tmplive").write_bytes(b"y")  # a write under way
    assert store.remove_stale_temporaries() == 1
    assert [p.name for p in leftovers.iterdir()] == ["tmplive"]
    assert store.put_bytes(b"still works").size == 11


def test_parquet_tables_on_s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pyarrow as pa

    from loopline.artifacts.tables import TableArea

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    prefix = hashlib.sha256(str(tmp_path).encode()).hexdigest()[:12]
    area = TableArea(f"s3://{BUCKET}/{prefix}/tables", {"client_kwargs": {"endpoint_url": s3_endpoint}})
    for day in ("2026-11-21", "2026-11-22"):
        area.append("predictions", [("deployment", "churn"), ("date", day)], pa.table({"x": [1.0, 2.0]}))
    assert len(area.files("predictions")) == 2
    table = area.read("predictions", [("deployment", "churn")])
    assert table.num_rows == 4 and sorted(set(table.column("date").to_pylist())) == [
        "2026-11-21",
        "2026-11-22",
    ]
