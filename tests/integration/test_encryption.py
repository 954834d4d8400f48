"""Encryption at rest on a real store: every blob and prediction-log file is ciphertext on
disk, everything reads back, wrong or missing keys and tampering fail clearly, and rotation
moves every file under a new key (plaintext files too) so that old keys can go."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from loopline.artifacts import BlobStore
from loopline.artifacts.encryption import Keyring
from loopline.core.errors import ArtifactCorrupted, EncryptionKeyError
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.reports import deployment_report
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import Invoke
from tests.integration.serving_helpers import cancer_data, register_cancer_models, running_server

MARKER = "SECRET-MARKER-7f3a9c"  # in an artifact, a dataset and every logged request id
PREDICT = "/v1/deployments/cancer/predict"
REQUESTS = 20


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def backends_over(store: MetadataStore, artifacts: Path, keys: str | None) -> Backends:
    return Backends(store, BlobStore(str(artifacts), keyring=Keyring.parse(keys)))


def fill(backends: Backends) -> tuple[str, str]:
    """A run with an artifact, two model versions, a dataset and a served deployment whose
    log and feedback carry MARKER; returns (run id, dataset uri)."""
    services = backends.services(local_owner())
    tracker = Tracker(services.tracking, registry=services.registry)
    register_cancer_models(tracker)
    tracker.close()
    run = services.tracking.start_run("secrets")
    services.tracking.log_artifact_bytes(run.id, "notes.txt", f"the password is {MARKER}".encode())
    version, _ = services.datasets.register(
        "customers", pd.DataFrame({"name": [MARKER, "other"], "x": [1, 2]})
    )
    services.deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    features, target = cancer_data()
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        labels = []
        for i in range(REQUESTS):
            request = {"records": [features.iloc[i].to_dict()]}
            answer = client.post(PREDICT, json=request, headers={"X-Request-Id": f"{MARKER}-{i}"})
            labels.append({"request_id": answer.json()["request_id"], "label": int(target.iloc[i])})
        assert client.post("/v1/deployments/cancer/feedback", json={"labels": labels}).status_code == 202
    return run.id, version.uri


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def assert_reads_back(backends: Backends, run_id: str) -> None:
    services = backends.services(local_owner())
    assert services.tracking.read_artifact(run_id, "notes.txt") == f"the password is {MARKER}".encode()
    path = services.tracking.artifact_file(run_id, "notes.txt")[1]
    assert MARKER in path.read_text()
    version = services.datasets.get("customers", 1)
    assert services.datasets.read(version).to_pandas()["name"].tolist() == [MARKER, "other"]
    features, _ = cancer_data()
    model = services.registry.load("models:/cancer/1")
    assert len(model.predict(features.head(3))) == 3
    (arm,) = deployment_report(backends.tables, "cancer", services.deployments.policy("cancer")).arms
    assert (arm.requests, arm.labelled) == (REQUESTS, REQUESTS)
    log = backends.tables.read("predictions", [("deployment", "cancer")]).to_pandas()
    assert sorted(log["request_id"]) == sorted(f"{MARKER}-{i}" for i in range(REQUESTS))


def test_blobs_and_logs_are_ciphertext_on_disk_and_read_back(store: MetadataStore, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    backends = backends_over(store, artifacts, f"k1:{new_key()}")
    run_id, _ = fill(backends)
    tables = [p for p in files_under(artifacts / "tables") if p.suffix == ".parquet"]
    assert tables and len(files_under(artifacts / "blobs")) > 5
    for path in files_under(artifacts):
        content = path.read_bytes()
        assert MARKER.encode() not in content, path
        assert not content.startswith(b"PAR1") and not content.startswith(b"PK"), path  # no Parquet, no zip
    assert_reads_back(backends, run_id)
    copies = backends.blobs.keyring.copies.path if backends.blobs.keyring else None
    assert copies is not None and not copies.is_relative_to(tmp_path)  # plaintext never lands in the store
    assert copies.stat().st_mode & 0o777 == 0o700


def test_a_wrong_or_missing_key_fails_clearly(store: MetadataStore, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    run_id, _ = fill(backends_over(store, artifacts, f"k1:{new_key()}"))
    for keys, message in [
        (
            f"k1:{new_key()}",
            "encrypted under key 'k1', and the key LOOPLINE_ENCRYPTION_KEYS holds under that id",
        ),
        (f"k2:{new_key()}", "encrypted under key 'k1', which LOOPLINE_ENCRYPTION_KEYS does not hold"),
        (None, "encrypted under key 'k1', which LOOPLINE_ENCRYPTION_KEYS does not hold"),
    ]:
        backends = backends_over(store, artifacts, keys)
        services = backends.services(local_owner())
        with pytest.raises(EncryptionKeyError, match=message) as caught:
            services.tracking.read_artifact(run_id, "notes.txt")
        assert "blob sha256:" in str(caught.value) and "notes.txt" in str(caught.value)
        with pytest.raises(EncryptionKeyError, match=message) as caught:
            deployment_report(backends.tables, "cancer", services.deployments.policy("cancer"))
        assert "table file predictions/deployment=cancer/" in str(caught.value)


def test_a_changed_byte_fails_authentication(store: MetadataStore, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    backends = backends_over(store, artifacts, f"k1:{new_key()}")
    services = backends.services(local_owner())
    run = services.tracking.start_run("tamper")
    entry = services.tracking.log_artifact_bytes(run.id, "big.bin", os.urandom(3 << 20))
    blob = next(p for p in files_under(artifacts / "blobs") if p.name == entry.digest)
    content = bytearray(blob.read_bytes())
    content[len(content) // 2] ^= 1
    blob.write_bytes(content)
    with pytest.raises(ArtifactCorrupted, match="chunk 1 fails authentication"):
        services.tracking.read_artifact(run.id, "big.bin")
    content[len(content) // 2] ^= 1
    blob.write_bytes(content[: (1 << 20) + 200])  # cut after the first chunk: the rest is missing
    with pytest.raises(ArtifactCorrupted, match="fails authentication"):
        services.tracking.read_artifact(run.id, "big.bin")


def test_rotation_moves_every_file_under_the_new_key(
    store: MetadataStore, tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = tmp_path / "artifacts"  # where the `cli` fixture's store keeps its artifacts
    run_id, _ = fill(backends_over(store, artifacts, None))  # written before encryption was on
    old, new = f"k1:{new_key()}", f"k2:{new_key()}"
    monkeypatch.setenv("LOOPLINE_ENCRYPTION_KEYS", old)
    assert_reads_back(backends_over(store, artifacts, old), run_id)  # plaintext still reads
    code, out, _ = cli("encryption", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["current_key"] == "k1" and set(status["blobs"]) == {"plaintext"}
    plaintext = status["blobs"]["plaintext"] + status["tables"]["plaintext"]

    code, out, _ = cli("encryption", "rewrap", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["total"]["encrypted"] == plaintext
    assert MARKER.encode() in b"".join(p.read_bytes() for p in files_under(artifacts))  # nothing changed
    code, out, _ = cli("encryption", "rewrap", "--json")
    assert code == 0 and json.loads(out)["total"] == {
        "rewrapped": 0, "encrypted": plaintext, "current": 0, "problems": []
    }  # fmt: skip
    assert all(MARKER.encode() not in p.read_bytes() for p in files_under(artifacts))

    monkeypatch.setenv("LOOPLINE_ENCRYPTION_KEYS", f"{new},{old}")  # a new key first, the old one kept
    code, out, _ = cli("encryption", "rewrap")
    assert code == 0 and "put every file under key 'k2'" in out
    code, out, _ = cli("encryption", "status", "--json")
    status = json.loads(out)
    assert set(status["blobs"]) == set(status["tables"]) == {"k2"}
    assert status["blobs"]["k2"] + status["tables"]["k2"] == plaintext

    monkeypatch.setenv("LOOPLINE_ENCRYPTION_KEYS", new)  # the old key is gone: everything still reads
    assert_reads_back(backends_over(store, artifacts, new), run_id)
    code, out, _ = cli("encryption", "rewrap", "--json")
    assert code == 0 and json.loads(out)["total"]["current"] == plaintext

    monkeypatch.setenv("LOOPLINE_ENCRYPTION_KEYS", f"k3:{new_key()}")  # k2 missing: reported, exit 1
    code, out, _ = cli("encryption", "rewrap")
    assert code == 1 and "encrypted under key 'k2', which LOOPLINE_ENCRYPTION_KEYS does not hold" in out

    code, out, _ = cli("audit", "list", "--action", "encryption.rewrap", "--json")
    entries = json.loads(out)
    assert [e["after"]["key"] for e in entries] == ["k3", "k2", "k1"]  # newest first; dry runs leave none
    assert entries[-1]["details"]["encrypted"] == plaintext


def test_rewrap_without_keys_says_how_to_make_one(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPLINE_ENCRYPTION_KEYS", raising=False)
    code, _, err = cli("encryption", "rewrap")
    assert code == 1 and "LOOPLINE_ENCRYPTION_KEYS is not set" in err and "os.urandom(32)" in err
    monkeypatch.setenv("LOOPLINE_ENCRYPTION_KEYS", "k1:c2hvcnQ=")
    code, _, err = cli("encryption", "status")
    assert code == 1 and "encryption key 'k1'" in err and "c2hvcnQ" not in err  # never the key itself
