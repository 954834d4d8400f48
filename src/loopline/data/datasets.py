"""The dataset registry: named tables versioned by the hash of their content, stored as
Parquet in the artifact store with their schema, a summary per column, and the drift
reference profile that monitoring compares live traffic with.

Registering the same rows twice gives the same version. A version's blobs are stored and
verified before its row is written, so a crash leaves at most unreferenced blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.datasets import (
    VALIDATION_TAG,
    DatasetVersion,
    DataValidation,
    ValidationReport,
    parse_dataset_ref,
)
from loopline.core.entities import RunStatus
from loopline.core.errors import Conflict, InvalidInput
from loopline.core.names import dataset_name
from loopline.core.validation import check_key, check_tag_value
from loopline.data.ingest import read_version, stage
from loopline.data.validation import SAMPLES, StoredTable
from loopline.data.validation import validate as check_contract
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import OPERATIONS_PROJECT, Authorizer
from loopline.profiling.diff import DatasetDiff, diff_versions
from loopline.profiling.profile import ReferenceProfile, profile_batches
from loopline.profiling.summary import summarize
from loopline.services import DataSource, Progress
from loopline.specs.contract import Contract
from loopline.store import MetadataStore


class DatasetService:
    def __init__(
        self, store: MetadataStore, blobs: BlobStore, *, authorizer: Authorizer, audit: AuditTrail
    ) -> None:
        self._store = store
        self._blobs = blobs
        self.principal = authorizer.principal
        self._access = authorizer
        self._audit = audit

    def register(
        self,
        name: str,
        data: DataSource,
        *,
        sql_url: str | None = None,
        description: str = "",
        tags: Mapping[str, Any] | None = None,
        encoding: str = "utf-8",
        progress: Progress | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Store `data` (a frame, a CSV or Parquet path, or with `sql_url` a SQL query) as the
        next version of dataset `name`; returns it and whether it is new. Identical rows
        give back the version that holds them."""
        self._access.operations(Role.EDITOR)
        name = dataset_name(name)
        checked_tags = {check_key("tag key", k): check_tag_value(k, v) for k, v in (tags or {}).items()}
        with tempfile.TemporaryDirectory(prefix="loopline-dataset-") as tmp:
            target = Path(tmp, "data.parquet")
            staged = stage(data, target, sql_url, encoding, progress)
            for existing in self._store.datasets.find_digest(staged.digest):
                if existing.name == name:
                    return existing, False
            if staged.rows == 0:
                raise InvalidInput(f"dataset {name!r}: the data has no rows")
            if isinstance(data, pd.DataFrame) and sql_url is None:  # in memory already: no need to read back
                frame = data.rename(columns=str)  # the names the table got
                profile = profile_batches(lambda: [frame], _profiled(staged.schema))
            else:
                profile = profile_parquet(staged.path, staged.schema)
            columns = summarize(staged.path, staged.schema, profile)
            data_blob = self._blobs.put_file(staged.path)
            reference = self._blobs.put_bytes(gzip.compress(orjson.dumps(profile.to_dict()), 1, mtime=0))
        draft = DatasetVersion(
            name=name,
            version=0,
            digest=staged.digest,
            rows=staged.rows,
            size=data_blob.size,
            columns=columns,
            source=staged.source,
            data_blob=data_blob.digest,
            reference_blob=reference.digest,
            created_at=now_ms(),
            created_by=self.principal.name,
            description=description,
            tags=checked_tags,
        )
        return self._store.atomically(lambda: self._add(draft))

    def _add(self, draft: DatasetVersion) -> tuple[DatasetVersion, bool]:
        version, created = self._store.datasets.add_version(draft)
        if created:
            self._audit.record(
                "dataset.register", version.uri, after={"digest": version.digest, "rows": version.rows}
            )
        return version, created

    def get(self, ref: str, version: int | None = None) -> DatasetVersion:
        """A version by reference (`name`, `name@3`, `datasets:/name/3`); the newest by default."""
        name, parsed = parse_dataset_ref(ref)
        self._access.operations(Role.VIEWER)
        return self._store.datasets.get_version(name, version if version is not None else parsed)

    def list_datasets(self) -> list[DatasetVersion]:
        if not self._access.visible(OPERATIONS_PROJECT):
            return []
        return self._store.datasets.list_latest()

    def versions(self, name: str) -> list[DatasetVersion]:
        self._access.operations(Role.VIEWER)
        return self._store.datasets.list_versions(dataset_name(name))

    def versions_with_digest(self, digest: str) -> list[DatasetVersion]:
        self._access.operations(Role.VIEWER)
        return self._store.datasets.find_digest(digest)

    def validate(
        self,
        data: Any,
        contract: Contract,
        *,
        run_id: str | None = None,
        samples: int = SAMPLES,
        source: str | None = None,
    ) -> ValidationReport:
        """Check `data` (a frame, a CSV or Parquet path, or a stored `DatasetVersion`) against
        `contract`. With `run_id` the verdict is recorded on that run, which must still be
        RUNNING: that record (not a tag anyone could edit) is what the `data_validation`
        promotion gate reads. The run's tag `data_validation` shows it to people."""
        if run_id is not None:
            self._access.require_run(run_id, Role.EDITOR)
        if isinstance(data, DatasetVersion):
            self._access.operations(Role.VIEWER)
            data = StoredTable(self.local_path(data), data.uri)
        report = check_contract(data, contract, samples=samples, source=source)
        if run_id is not None:
            self._store.atomically(lambda: self._record(run_id, report, contract))
        return report

    def _record(self, run_id: str, report: ValidationReport, contract: Contract) -> None:
        run = self._store.runs.get_run(run_id)
        if run.status is not RunStatus.RUNNING:
            raise Conflict(
                f"run {run_id} already ended as {run.status.value}: a validation is recorded while its run "
                "trains, never stamped on a finished one"
            )
        digest = hashlib.sha256(contract.to_yaml().encode()).hexdigest()
        validation = DataValidation(
            0, run_id, report.passed, report.source, digest, report.to_dict(), now_ms(), self.principal.name
        )
        stored = self._store.runs.add_validation(validation)
        passed = all(v.passed for v in self._store.runs.validations(run_id))  # one failure stays
        self._store.runs.set_tags(run_id, {VALIDATION_TAG: "passed" if passed else "failed"})
        after = {
            "validation": stored.id,
            "passed": report.passed,
            "source": report.source,
            "contract": digest,
        }
        self._audit.record("run.validation", f"run:{run_id}", after=after)

    def validations(self, run_id: str) -> list[DataValidation]:
        """The validations recorded on a run, oldest first."""
        self._access.require_run(run_id, Role.VIEWER)
        return self._store.runs.validations(run_id)

    def local_path(self, version: DatasetVersion) -> Path:
        """The version's Parquet file, verified, for DuckDB or Arrow to read."""
        return self._blobs.local_file(version.data_blob, f"{version.uri} (data)")

    def read(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """The version's rows (or some of its columns) as an Arrow table."""
        return read_version(self.local_path(version), version, columns)

    def reference_profile(self, version: DatasetVersion) -> ReferenceProfile:
        raw = self._blobs.read(version.reference_blob, f"{version.uri} (reference profile)")
        return ReferenceProfile.from_dict(orjson.loads(gzip.decompress(raw)))

    def diff(self, old: DatasetVersion, new: DatasetVersion) -> DatasetDiff:
        return diff_versions(old, new, self.reference_profile(old), self.reference_profile(new))


def profile_parquet(path: Path, schema: pa.Schema, seed: int = 0) -> ReferenceProfile:
    """The reference profile of a Parquet file, read batch by batch (twice)."""
    names = _profiled(schema)

    def batches() -> Iterator[pd.DataFrame]:
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(
            batch_size=128 * 1024, columns=names
        ):
            yield batch.to_pandas()

    return profile_batches(batches, names, seed)


def _profiled(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if not pa.types.is_nested(f.type)]
