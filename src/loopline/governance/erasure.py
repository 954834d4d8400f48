"""Erasing one entity's personal data: its rows leave the prediction logs and the dataset
versions, the audit trail says what was removed (never the value), and the database is
rewritten so that no free page keeps the bytes.

A dataset version that held the entity is replaced by a new version of the same dataset
without those rows, registered the usual way (so it gets its profile), with a lineage edge
`erased` from the old version to it. The old version keeps its record, marked erased and
stripped of its statistics; its files go unless another record refers to them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow.compute as pc

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.clock import now_ms
from loopline.core.datasets import DatasetVersion
from loopline.core.errors import InvalidInput, PermissionDenied
from loopline.core.privacy import ERASED, DatasetErasure, Erasure, LogErasure, Unerased, entity_column
from loopline.core.registry import LineageEdge
from loopline.governance.audit import AuditTrail
from loopline.governance.authorization import Authorizer
from loopline.predictions.erasure import LogEraser, is_number, matching
from loopline.services import Datasets
from loopline.store import MetadataStore

MAX_VALUE = 10_000
_CHANGED_TABLES = ["dataset_versions", "datasets", "lineage_edges", "audit_log"]


@dataclass(frozen=True)
class _Found:
    version: DatasetVersion
    rows: int


class ErasureService:
    """Erasure as `authorizer.principal`, who must be an administrator."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        tables: TableArea,
        *,
        datasets: Datasets,
        authorizer: Authorizer,
        audit: AuditTrail,
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self._datasets = datasets
        self.principal = authorizer.principal
        self._audit = audit

    def erase(self, column: str, value: str, *, dry_run: bool = False, reason: str = "") -> Erasure:
        """Remove every row whose `column` equals `value` from the prediction logs and the
        dataset versions (see the module's docstring); `dry_run` only reports."""
        if not self.principal.is_owner:
            raise PermissionDenied("only an administrator may erase personal data")
        column = entity_column(column)
        if not value or len(value) > MAX_VALUE:
            raise InvalidInput(f"the value to erase must be 1 to {MAX_VALUE:,} characters")
        at = now_ms()
        found = self._find_in_datasets(column, value)
        logs = LogEraser(self._tables, column, value, dry_run=dry_run).run()
        if dry_run:
            planned = [DatasetErasure(f.version.name, f.version.version, f.rows, None, 0) for f in found]
            return Erasure(column, True, reason, at, logs, planned, self._left_behind(column, value))
        replaced = self._store.atomically(lambda: self._replace(found, logs, column, value, reason, at))
        datasets = [
            self._remove_files(f.version, f.rows, into) for f, into in zip(found, replaced, strict=True)
        ]
        released = self._store.privacy.release_freed_space(_CHANGED_TABLES)
        left = self._left_behind(column, value)
        if not released:
            left.append(
                Unerased(
                    "the metadata database's write-ahead log",
                    "other connections were reading, so it could not be emptied; stop the servers and "
                    "workers of this store and run the erasure again (it then finds nothing and empties it)",
                )
            )
        return Erasure(column, False, reason, at, logs, datasets, left)

    def _find_in_datasets(self, column: str, value: str) -> list[_Found]:
        found = []
        for latest in self._store.datasets.list_latest():
            for version in self._store.datasets.list_versions(latest.name):
                if version.erased_at is not None or column not in version.schema:
                    continue
                mask = matching(self._datasets.read(version, [column])[column], value)
                rows = 0 if mask is None else int(pc.sum(mask).as_py() or 0)
                if rows:
                    found.append(_Found(version, rows))
        return found

    def _replace(
        self, found: list[_Found], logs: list[LogErasure], column: str, value: str, reason: str, at: int
    ) -> list[int | None]:
        """One transaction: the new versions, the old ones marked erased, their lineage, and
        the audit entry; returns the version that replaced each."""
        replaced: list[int | None] = []
        for f in found:
            old = f.version
            table = self._datasets.read(old)
            mask = matching(table[column], value)
            assert mask is not None
            kept = table.filter(pc.invert(mask))
            into = None
            if kept.num_rows:
                new, _ = self._datasets.register(old.name, kept, description=old.description, tags=old.tags)
                edge = LineageEdge("dataset", old.digest, ERASED, "dataset", new.digest, old.uri, now_ms())
                self._store.lineage.add_edges([edge])
                into = new.version
            self._store.datasets.mark_erased(old.name, old.version, into, at, _schema_only(old.columns))
            replaced.append(into)
        after: dict[str, Any] = {
            "rows": sum(log.rows for log in logs) + sum(f.rows for f in found),
            "logs": [
                {
                    "deployment": log.deployment,
                    "predictions": log.predictions,
                    "feedback": log.feedback,
                    "errors": log.errors,
                    "files": log.files_rewritten + log.files_removed,
                }
                for log in logs
            ],
            "datasets": [
                {"dataset": f.version.name, "version": f.version.version, "rows": f.rows, "replaced_by": into}
                for f, into in zip(found, replaced, strict=True)
            ],
        }
        self._audit.record("privacy.erase", f"entity:{column}", after=after, reason=reason)
        return replaced

    def _remove_files(self, old: DatasetVersion, rows: int, into: int | None) -> DatasetErasure:
        """Delete the erased version's data and profile, unless another record refers to them."""
        removed, kept = 0, []
        for digest in dict.fromkeys((old.data_blob, old.reference_blob)):
            referrers = self._store.privacy.blob_referrers(digest)
            if referrers:
                kept += referrers
            elif self._blobs.remove(digest):
                removed += 1
        return DatasetErasure(old.name, old.version, rows, into, removed, sorted(set(kept)))

    def _left_behind(self, column: str, value: str) -> list[Unerased]:
        """Places the value may still be, that an erasure does not rewrite."""
        left = []
        forms = {value.encode(), orjson.dumps(value)[1:-1]}
        for monitor in self._store.monitors.list_all():
            raw = gzip.decompress(
                self._blobs.read(monitor.reference_blob, f"monitor {monitor.name} (reference)")
            )
            if any(form in raw for form in forms):
                left.append(
                    Unerased(
                        f"monitor {monitor.name!r}",
                        "its reference profile counts the value among a column's categories; create the "
                        "monitor again (replacing it) from the dataset version that replaced its reference",
                    )
                )
        for entity in self._store.features.entities():
            if column in entity.join_keys:
                left.append(
                    Unerased(
                        f"feature entity {entity.name!r}",
                        "its online values are keyed by this column and are not erased here; remove the "
                        "rows from the views' sources and materialize again",
                    )
                )
        if not is_number(value):  # a number would be found in any text that spells it
            for where, rows in self._store.privacy.holding(value):
                left.append(Unerased(f"metadata database: {where} ({rows} rows)", _WHY.get(where, _OTHER)))
        return left


_OTHER = "loopline does not rewrite this column: edit or delete the record that holds it"
_WHY = {
    "audit_log.before": "audit entries are sealed in a hash chain and are never rewritten",
    "audit_log.after": "audit entries are sealed in a hash chain and are never rewritten",
    "audit_log.reason": "audit entries are sealed in a hash chain and are never rewritten",
    "audit_log.details": "audit entries are sealed in a hash chain and are never rewritten",
    "params.value": "run parameters are a run's record; delete the run",
    "tags.value": "run tags are a run's record; change the tag",
    "data_validations.report": "a validation's sample rows are its run's evidence; delete the run",
}


def _schema_only(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A column summary without the statistics (top values, ranges) that held values."""
    return [{k: c[k] for k in ("name", "type", "kind") if k in c} for c in columns]
