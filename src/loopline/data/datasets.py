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
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
from loopline.core.errors import Conflict, DataValidationFailed, InvalidInput, NotFound
from loopline.core.names import dataset_name
from loopline.core.validation import check_key, check_tag_value
from loopline.data.ingest import StagedTable, read_version, stage
from loopline.data.personal_data import apply_treatments, treatments
from loopline.data.validation import SAMPLES, StoredTable
from loopline.data.validation import validate as check_contract
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import OPERATIONS_PROJECT, Authorizer
from loopline.profiling.diff import DatasetDiff, diff_versions
from loopline.profiling.pii import PersonalData, detect_parquet
from loopline.profiling.profile import ReferenceProfile, profile_batches
from loopline.profiling.summary import summarize
from loopline.services import DataSource, Progress
from loopline.specs.contract import Contract
from loopline.store import MetadataStore

T = TypeVar("T")


class DatasetService:
    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        *,
        authorizer: Authorizer,
        audit: AuditTrail,
        hash_key: bytes | None = None,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._hash_key = hash_key  # HMAC key of columns a contract hashes (LOOPLINE_PII_HASH_KEY)
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
        contract: Contract | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Store `data` (a frame, a CSV or Parquet path, or with `sql_url` a SQL query) as the
        next version of dataset `name`; returns it and whether it is new. Identical rows
        give back the version that holds them. Under a `contract`, data that breaks it is
        refused (DataValidationFailed) and the columns it masks or hashes are stored so."""
        self._access.operations(Role.EDITOR)
        name = dataset_name(name)
        checked_tags = {check_key("tag key", k): check_tag_value(k, v) for k, v in (tags or {}).items()}
        with tempfile.TemporaryDirectory(prefix="loopline-dataset-") as tmp:
            target = Path(tmp, "data.parquet")
            staged = stage(data, target, sql_url, encoding, progress)
            in_memory = isinstance(data, pd.DataFrame) and sql_url is None
            personal = detect_parquet(staged.path)  # before masking: what the raw columns held
            if contract is not None:
                _check_contract(staged, contract, name)
                treated = apply_treatments(staged, contract, self._hash_key, Path(tmp, "treated.parquet"))
                in_memory = in_memory and treated is staged  # the frame holds what is stored
                staged = treated
            for existing in self._store.datasets.find_digest(staged.digest):
                if existing.name == name and existing.erased_at is not None:
                    raise InvalidInput(
                        f"dataset {name!r}: these rows are those of version {existing.version}, whose data "
                        "was erased; an erased version is not registered again"
                    )
                if existing.name == name:
                    return existing, False
            if staged.rows == 0:
                raise InvalidInput(f"dataset {name!r}: the data has no rows")
            if in_memory and isinstance(data, pd.DataFrame):  # no need to read the rows back
                frame = data.rename(columns=str)  # the names the table got
                profile = profile_batches(lambda: [frame], _profiled(staged.schema))
            else:
                profile = profile_parquet(staged.path, staged.schema)
            columns = summarize(staged.path, staged.schema, profile)
            _mark_personal_data(columns, personal, treatments(contract) if contract else {})
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
        return self._present(
            version, lambda: self._blobs.local_file(version.data_blob, f"{version.uri} (data)")
        )

    def _present(self, version: DatasetVersion, read: Callable[[], T]) -> T:
        """What `read` reads of the version's files; an erased version (as given, or as the
        store knows it now) says so and names the version that holds its other rows."""
        _refuse_erased(version)
        try:
            return read()
        except NotFound:
            _refuse_erased(self._store.datasets.get_version(version.name, version.version))
            raise

    def read(self, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
        """The version's rows (or some of its columns) as an Arrow table."""
        return read_version(self.local_path(version), version, columns)

    def reference_profile(self, version: DatasetVersion) -> ReferenceProfile:
        raw = self._present(
            version, lambda: self._blobs.read(version.reference_blob, f"{version.uri} (reference profile)")
        )
        return ReferenceProfile.from_dict(orjson.loads(gzip.decompress(raw)))

    def diff(self, old: DatasetVersion, new: DatasetVersion) -> DatasetDiff:
        return diff_versions(old, new, self.reference_profile(old), self.reference_profile(new))


def _check_contract(staged: StagedTable, contract: Contract, name: str) -> None:
    """Refuse data that breaks `contract`, before anything is stored."""
    report = check_contract(StoredTable(staged.path, f"the data for {name}"), contract)
    if not report.passed:
        first = report.failures[0]
        where = f" in column {first.column!r}" if first.column else ""
        raise DataValidationFailed(
            f"dataset {name!r}: the data breaks {len(report.failures)} rule(s) of its contract and was "
            f"not stored; first: {first.check}{where}, {first.count:,} row(s): {first.detail}",
            report,
        )


def _mark_personal_data(
    columns: list[dict[str, Any]], found: dict[str, PersonalData], treated: dict[str, str]
) -> None:
    """Note in each column's summary the personal data found in it, and how it was stored.
    The summary (kept in the metadata database, shown by every listing) of a column holding
    raw personal data keeps its counts but none of its values: no range, top values,
    quantiles or histogram. The reference profile, a blob, keeps them for drift."""
    for column in columns:
        name = column["name"]
        if name in found or name in treated:
            note = found[name].to_dict() if name in found else {}
            if name in treated:
                note["stored"] = "masked" if treated[name] == "mask" else "hashed"
            else:
                for key in _VALUE_STATISTICS:
                    column.pop(key, None)
            column["personal_data"] = note


_VALUE_STATISTICS = ("min", "max", "top", "quantiles", "histogram")


def _refuse_erased(version: DatasetVersion) -> None:
    if version.erased_at is None:
        return
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(version.erased_at / 1000))
    rest = (
        "no row was left"
        if version.erased_into is None
        else f"datasets:/{version.name}/{version.erased_into} holds its other rows"
    )
    raise NotFound(f"dataset version {version.uri} was erased on {when}: its rows are gone; {rest}")


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
