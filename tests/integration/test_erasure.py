"""`erase`: one entity's rows leave the prediction logs and the dataset versions, no file of
the store keeps the value, and lineage and the audit trail say what happened."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from loopline.artifacts import BlobStore
from loopline.artifacts.encryption import Keyring, key_id_of, plaintext_chunks
from loopline.artifacts.tables import TableArea
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, NotFound, PermissionDenied
from loopline.core.privacy import ERASED
from loopline.predictions.log import (
    ERRORS,
    FEEDBACK,
    PREDICTIONS,
    PredictionChunk,
    PredictionLog,
    RecordChunk,
)
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from loopline.wiring.local import LocalServices
from tests.conftest import Invoke, grant
from tests.integration.api_helpers import running_api

ADA = "ada.lovelace@example.org"  # the entity erased
GRACE = "grace.hopper@example.org"
ALAN = "alan.turing@example.org"


def _chunk(request_id: str, emails: list[str], deployment: str = "churn-prod") -> PredictionChunk:
    inputs = pd.DataFrame({"email": emails, "age": [36.0 + i for i in range(len(emails))]})
    return PredictionChunk(
        request_id=request_id, at_ms=time.time_ns() // 1_000_000, deployment=deployment, arm="main",
        model="churn", version=1, latency_ms=1.0, columns=["email", "age"], inputs=inputs,
        predictions=np.ones(len(emails), dtype=np.int64), proba=None, classes=None,
    )  # fmt: skip


def _log_traffic(area: TableArea) -> None:
    """Requests of Ada, Grace and Alan (one of them a batch), their labels, two refusals, and a
    deployment that logged Ada as the join key of its online features."""
    now = time.time_ns() // 1_000_000
    log = PredictionLog(area, flush_interval=0.05)

    async def scenario() -> None:
        log.start()
        await log.append(_chunk("r1", [ADA]))
        await log.append(_chunk("r2", [GRACE]))
        await log.append(_chunk("r3", [ALAN, ADA]))
        labels = [("r1", 0), ("r2", 0), ("r3", 0), ("r3", 1)]
        records = [{"request_id": r, "row": row, "label": "1", "at_ms": now} for r, row in labels]
        await log.append(RecordChunk(FEEDBACK, "churn-prod", now, records))
        refusals = [
            {"request_id": "r4", "arm": "main", "version": 1, "status": 422, "at_ms": now,
             "error": f"column 'age' of {ADA}: not a number"},
            {"request_id": "r5", "arm": "main", "version": 1, "status": 422, "at_ms": now,
             "error": "column 'age': not a number"},
        ]  # fmt: skip
        await log.append(RecordChunk(ERRORS, "churn-prod", now, refusals))
        await log.append(
            PredictionChunk(
                request_id="s1", at_ms=now, deployment="scores", arm="main", model="score", version=1,
                latency_ms=1.0, columns=["x"], inputs=np.array([[1.0]]), predictions=np.array([0.5]),
                proba=None, classes=None, entities={"email": [ADA]},
            )
        )  # fmt: skip
        await log.close()

    asyncio.run(scenario())


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": [ADA, GRACE, ALAN, ADA],
            "age": [36, 85, 41, 36],
            "spend": [10.5, 20.0, 30.25, 40.0],
        }
    )


def _populated(store: MetadataStore, blobs: BlobStore) -> LocalServices:
    """The store's owner, with a dataset holding Ada twice and a prediction log that names her."""
    services = Backends(store, blobs).services(local_owner())
    services.datasets.register("customers", _customers())
    services.datasets.register("regions", pd.DataFrame({"region": ["north", "south"], "n": [1, 2]}))
    _log_traffic(services.backends.tables)
    return services


@pytest.fixture
def owner(store: MetadataStore, blobs: BlobStore) -> LocalServices:
    return _populated(store, blobs)


def _files_holding(home: Path, value: str) -> list[str]:
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and value.encode() in p.read_bytes()
    )


def _decrypted_holding(home: Path, keyring: Keyring, value: str) -> list[str]:
    """The files under `home` whose content, decrypted, holds `value`."""
    found = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            if value.encode() in b"".join(plaintext_chunks(handle, keyring, str(path))):
                found.append(str(path.relative_to(home)))
    return found


def _key_id(path: Path) -> str | None:
    with path.open("rb") as handle:
        return key_id_of(handle, str(path))


def _snapshot(home: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in home.rglob("*") if p.is_file()}


def _uses_sqlite(store: MetadataStore) -> bool:
    return store.db.dialect == "sqlite"


def test_erase_leaves_no_file_holding_the_value_and_keeps_everyone_else(
    owner: LocalServices, store: MetadataStore, tmp_path: Path
) -> None:
    assert _files_holding(tmp_path, ADA)  # the logs (and on SQLite the database) hold her address
    before = owner.datasets.get("customers")
    original = owner.datasets.read(before)
    report = owner.privacy.erase("email", ADA, reason="request #42")

    assert _files_holding(tmp_path, ADA) == []  # blobs, Parquet logs, the SQLite database and its log
    assert not report.dry_run and report.not_erased == []
    logs = {log.deployment: log for log in report.logs}
    assert (logs["churn-prod"].predictions, logs["churn-prod"].feedback, logs["churn-prod"].errors) == (
        2,
        2,
        1,
    )
    assert (logs["scores"].predictions, logs["scores"].files_removed) == (1, 1)

    area = owner.backends.tables
    kept = area.read(PREDICTIONS, [("deployment", "churn-prod")]).to_pandas()
    assert sorted(zip(kept["request_id"], kept["input.email"], strict=True)) == [("r2", GRACE), ("r3", ALAN)]
    labels = area.read(FEEDBACK).to_pandas()
    assert sorted(zip(labels["request_id"], labels["row"], strict=True)) == [("r2", 0), ("r3", 0)]
    assert list(area.read(ERRORS).to_pandas()["request_id"]) == ["r5"]
    assert area.files(PREDICTIONS, [("deployment", "scores")]) == []

    # the dataset: a new version without her rows, the old one erased and pointing at it
    [erased] = report.datasets
    assert (erased.dataset, erased.version, erased.rows, erased.replaced_by) == ("customers", 1, 2, 2)
    assert erased.blobs_removed == 2 and erased.blobs_kept == []
    old, new = owner.datasets.versions("customers")
    assert (old.erased_into, new.version, new.rows) == (2, 2, 2)
    assert old.erased_at is not None and new.erased_at is None
    assert sorted(owner.datasets.read(new).column("email").to_pylist()) == [ALAN, GRACE]
    assert ADA not in json.dumps(old.columns) and all("top" not in c for c in old.columns)
    assert owner.datasets.get("customers").version == 2
    with pytest.raises(NotFound, match="datasets:/customers/2"):
        owner.datasets.read(before)  # as fetched before the erasure
    with pytest.raises(NotFound, match=r"erased.*datasets:/customers/2 holds its other rows"):
        owner.datasets.reference_profile(old)
    assert [v.version for v in owner.datasets.versions("regions")] == [1]  # no such column: untouched

    graph = owner.lineage.graph(("dataset", old.digest))
    assert [(e.relation, e.dst_key, e.label) for e in graph.edges if e.src_key == old.digest] == [
        (ERASED, new.digest, "datasets:/customers/1")
    ]

    [entry] = owner.audit.entries(action="privacy.erase")
    assert (entry.target, entry.reason) == ("entity:email", "request #42")
    assert entry.after["rows"] == 8 and entry.after["datasets"][0]["replaced_by"] == 2
    assert ADA not in json.dumps([entry.before, entry.after, entry.details, entry.reason])
    assert owner.audit.verify().problems == []

    with pytest.raises(InvalidInput, match="version 1, whose data was erased"):
        owner.datasets.register("customers", original)  # the very rows again: not brought back


def test_under_encryption_the_value_is_gone_not_merely_sealed(store: MetadataStore, tmp_path: Path) -> None:
    keyring = Keyring.parse(f"k1:{base64.b64encode(os.urandom(32)).decode()}")
    assert keyring is not None
    artifacts, copies = tmp_path / "artifacts", keyring.copies.path
    owner = _populated(store, BlobStore(str(artifacts), keyring=keyring))
    area = owner.backends.tables
    for table in (PREDICTIONS, FEEDBACK, ERRORS):
        area.read(table)  # readers' decrypted copies of every log file
    owner.datasets.read(owner.datasets.get("customers"))
    assert _files_holding(artifacts, ADA) == []  # sealed on disk...
    stored = _decrypted_holding(artifacts, keyring, ADA)  # ...yet there, and in readers' copies
    assert any(p.startswith("tables/") for p in stored) and any(p.startswith("blobs/") for p in stored)
    held = _files_holding(copies, ADA)
    assert any(p.startswith("tables/") for p in held) and any(p.startswith("blobs/") for p in held)

    report = owner.privacy.erase("email", ADA)
    assert report.rows == 8 and [d.replaced_by for d in report.datasets] == [2]
    assert _files_holding(tmp_path, ADA) == []
    assert _decrypted_holding(artifacts, keyring, ADA) == []  # gone, not just encrypted
    assert _files_holding(copies, ADA) == [] and not any((copies / p).exists() for p in held)
    tables = [p for p in (artifacts / "tables").rglob("*") if p.is_file()]
    assert tables and all(_key_id(p) == "k1" for p in tables)  # the rewritten files are sealed too

    kept = area.read(PREDICTIONS, [("deployment", "churn-prod")]).to_pandas()
    assert sorted(zip(kept["request_id"], kept["input.email"], strict=True)) == [("r2", GRACE), ("r3", ALAN)]
    labels = area.read(FEEDBACK).to_pandas()
    assert sorted(zip(labels["request_id"], labels["row"], strict=True)) == [("r2", 0), ("r3", 0)]
    assert list(area.read(ERRORS).to_pandas()["request_id"]) == ["r5"]
    assert area.files(PREDICTIONS, [("deployment", "scores")]) == []
    new = owner.datasets.get("customers")
    assert new.version == 2 and sorted(owner.datasets.read(new).column("email").to_pylist()) == [ALAN, GRACE]
    assert _files_holding(copies, ADA) == []  # the copies made to read it back hold only the others


def test_a_dry_run_reports_and_changes_nothing(owner: LocalServices, tmp_path: Path) -> None:
    files = _snapshot(tmp_path / "artifacts")
    report = owner.privacy.erase("email", ADA, dry_run=True)
    assert report.dry_run and report.rows == 8
    assert [(d.dataset, d.version, d.rows, d.replaced_by) for d in report.datasets] == [
        ("customers", 1, 2, None)
    ]
    assert _snapshot(tmp_path / "artifacts") == files
    assert [v.version for v in owner.datasets.versions("customers")] == [1]
    assert owner.audit.entries(action="privacy.erase") == []


def test_numbers_match_a_number_column_and_nothing_matches_twice(owner: LocalServices) -> None:
    report = owner.privacy.erase("age", "85")  # Grace, by a number given as text
    assert [(d.dataset, d.rows) for d in report.datasets] == [("customers", 1)]
    assert [log.deployment for log in report.logs] == []  # the log's ages are 36, 37: no match
    assert sorted(owner.datasets.read(owner.datasets.get("customers")).column("email").to_pylist()) == [
        ADA, ADA, ALAN,
    ]  # fmt: skip
    again = owner.privacy.erase("age", "85.0")
    assert again.rows == 0 and again.datasets == []


def test_only_an_administrator_may_erase(
    owner: LocalServices, store: MetadataStore, blobs: BlobStore
) -> None:
    grant(store, "default", olga=Role.OWNER)
    olga = Backends(store, blobs).services(Principal("olga"))
    with pytest.raises(PermissionDenied, match="administrator"):
        olga.privacy.erase("email", ADA)
    assert owner.audit.entries(action="privacy.erase") == []


def test_erasure_through_the_server_is_for_administrators(owner: LocalServices, store: MetadataStore) -> None:
    backends = owner.backends
    admin = bootstrap_admin(backends)
    assert admin is not None
    access = backends.services(local_owner()).access
    access.create_user("olga")
    access.set_role("default", "olga", Role.OWNER)
    olga = access.create_token("olga")[1]
    body = {"column": "email", "value": ADA, "reason": "request #7"}
    with running_api(backends) as url:
        refused = httpx.post(f"{url}/api/v1/erasures", json=body, headers={"Authorization": f"Bearer {olga}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
        assert ADA not in refused.text
        bad = httpx.post(
            f"{url}/api/v1/erasures",
            json={**body, "column": ""},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert bad.status_code == 422
        remote = RemoteServices(ServerConnection(url, admin))
        try:
            report = remote.privacy.erase("email", ADA, reason="request #7")
            assert [(d.dataset, d.replaced_by) for d in report.datasets] == [("customers", 2)]
            assert report.logs[0].predictions == 2
            with pytest.raises(NotFound, match="datasets:/customers/2"):
                remote.datasets.read(remote.datasets.get("customers@1"))
        finally:
            remote.close()
    [entry] = owner.audit.entries(action="privacy.erase")
    assert entry.actor == "admin"


def test_the_cli_erases_and_reports(owner: LocalServices, cli: Invoke, tmp_path: Path) -> None:
    code, out, err = cli("erase", "--entity", f"email={ADA}", "--dry-run")
    assert code == 0, err
    assert "would remove 8 rows" in out and ADA not in out
    code, out, err = cli("erase", "--entity", f"email={ADA}", "--reason", "request #9", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["datasets"][0]["replaced_by"] == 2 and not report["dry_run"]
    assert _files_holding(tmp_path, ADA) == []
    code, _, err = cli("erase", "--entity", "email")
    assert code == 1 and "COLUMN=VALUE" in err
