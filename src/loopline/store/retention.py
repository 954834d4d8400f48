"""The retention policy, the blobs the metadata refers to, and purging deleted runs.

Every place the metadata names a blob is listed here, once: `BLOB_COLUMNS` (a column that
holds a digest) and `BLOB_JSON_COLUMNS` (a JSON column some of whose values are digests).
Garbage collection keeps whatever they name; a test fails when a column named like a digest
or a blob is in neither these lists nor `NOT_BLOB_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TypeVar

from sqlalchemy import Column, Connection, delete, func, or_, select, update

from loopline.core.lifecycle import RetentionPolicy
from loopline.store.database import Database
from loopline.store.runs import RunKeys
from loopline.store.schema import (
    artifacts,
    data_validations,
    dataset_versions,
    evaluations,
    latest_metrics,
    lineage_edges,
    logged_models,
    metric_batches,
    metric_rollups,
    metrics,
    model_version_files,
    model_versions,
    monitors,
    params,
    pipeline_runs,
    retention_policy,
    runs,
    step_runs,
    tags,
)

BLOB_COLUMNS: tuple[Column[str], ...] = (
    artifacts.c.digest,  # a run's files, step outputs among them
    model_version_files.c.digest,  # a model version's files
    model_versions.c.digest,  # its description file (also among its files)
    dataset_versions.c.data_blob,  # a dataset version's rows (Parquet)
    dataset_versions.c.reference_blob,  # and its reference profile
    monitors.c.reference_blob,  # a monitor's reference profiles and calibration
)
"""Columns whose value is the digest of a blob the row needs."""

BLOB_JSON_COLUMNS: dict[str, str] = {
    "evaluations.result": "the digests of an evaluation's plots, under `artifacts`",
    "step_runs.output": "a step output stored as a blob (Parquet, .npy): the pipeline cache",
}
"""JSON columns that hold blob digests among other values (searched as text)."""

NOT_BLOB_COLUMNS: dict[str, str] = {
    "data_validations.contract_digest": "the hash of a data contract's text, kept in the row",
    "feature_views.digest": "the hash of a feature view's definition, kept in the row",
    "evaluations.dataset_digest": "the content hash of the rows evaluated on",
    "dataset_versions.digest": "the content hash of a version's rows (its blob is data_blob)",
    "retention_policy.unreferenced_blob_hours": "an age, not a digest",
}
"""Columns named like a digest that name no blob."""

T = TypeVar("T")
_RUN_CHILDREN = (data_validations, params, tags, latest_metrics, metric_rollups, artifacts, logged_models)
_CHUNK = 500  # values per IN (...): well under every backend's limit on parameters


class SqlRetentionStore:
    """The retention policy (one row), the blob references, and the removal of deleted runs."""

    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys

    def policy(self) -> RetentionPolicy | None:
        """The policy set, or None if none ever was."""

        def work(conn: Connection) -> RetentionPolicy | None:
            row = conn.execute(select(retention_policy).where(retention_policy.c.id == 1)).one_or_none()
            if row is None:
                return None
            return RetentionPolicy(
                row.deleted_runs_days, row.prediction_log_days, row.unreferenced_blob_hours,
                row.updated_at, row.updated_by,
            )  # fmt: skip

        return self._db.read(work)

    def set_policy(self, policy: RetentionPolicy) -> None:
        """Replace the policy (its `updated_*` are required)."""
        values = {
            "deleted_runs_days": policy.deleted_runs_days,
            "prediction_log_days": policy.prediction_log_days,
            "unreferenced_blob_hours": policy.unreferenced_blob_hours,
            "updated_at": policy.updated_at,
            "updated_by": policy.updated_by,
        }
        insert = self._db.insert(retention_policy).values(id=1, **values)
        self._db.write(
            lambda conn: conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))
        )

    # deleted runs -------------------------------------------------------------------------

    def deleted_runs(self, deleted_before: int) -> list[tuple[str, str | None]]:
        """Runs deleted before `deleted_before` (ms), each with why it must stay (None: it may
        be purged). A run stays while a model version came from it (the version's lineage and
        metrics point at it), while it has child runs that are not purged with it, and, on
        SQLite, while it is the newest run (SQLite would give its key to the next run)."""

        def work(conn: Connection) -> list[tuple[str, str | None]]:
            old = conn.execute(
                select(runs.c.pk, runs.c.id).where(
                    runs.c.deleted_at.is_not(None), runs.c.deleted_at < deleted_before
                )
            ).all()
            if not old:
                return []
            pks = {pk for pk, _ in old}
            why: dict[int, str] = {}
            for pk in _existing(conn, model_versions.c.run_pk, pks):
                why[pk] = "a registered model version came from it"
            if self._db.dialect == "sqlite":
                newest = conn.execute(select(func.max(runs.c.pk))).scalar_one()
                if newest in pks:
                    why.setdefault(newest, "it is the newest run; it is purged once a newer run exists")
            children: list[tuple[int, int]] = []
            for chunk in _chunks(sorted(pks)):
                rows = conn.execute(select(runs.c.pk, runs.c.parent_pk).where(runs.c.parent_pk.in_(chunk)))
                children.extend((child, parent) for child, parent in rows)
            changed = True
            while changed:  # a parent stays with any child that stays
                changed = False
                for child, parent in children:
                    if (child not in pks or child in why) and parent not in why:
                        why[parent] = "it has child runs that are kept"
                        changed = True
            return [(run_id, why.get(pk)) for pk, run_id in sorted(old)]

        return self._db.read(work)

    def purge_runs(self, run_ids: Sequence[str]) -> int:
        """Remove the runs and everything that is only theirs (params, metrics, tags, artifact
        entries, logged models, validations, lineage edges, their pipeline runs); returns how
        many artifact entries went. Their blobs stay until gc finds them unreferenced."""

        def work(conn: Connection) -> int:
            removed = 0
            for chunk in _chunks(list(run_ids)):  # children may be in another chunk than their parent
                conn.execute(update(runs).where(runs.c.id.in_(chunk)).values(parent_pk=None))
            for chunk in _chunks(list(run_ids)):
                pks = list(conn.execute(select(runs.c.pk).where(runs.c.id.in_(chunk))).scalars())
                removed += conn.execute(delete(artifacts).where(artifacts.c.run_pk.in_(pks))).rowcount
                for table in _RUN_CHILDREN:
                    conn.execute(delete(table).where(table.c.run_pk.in_(pks)))
                conn.execute(delete(metrics).where(metrics.c.run_pk.in_(pks)))
                conn.execute(delete(metric_batches).where(metric_batches.c.run_pk.in_(pks)))
                conn.execute(delete(step_runs).where(step_runs.c.pipeline_run_id.in_(chunk)))
                conn.execute(delete(pipeline_runs).where(pipeline_runs.c.id.in_(chunk)))
                conn.execute(update(step_runs).where(step_runs.c.run_id.in_(chunk)).values(run_id=None))
                for kind, key in ((lineage_edges.c.src_kind, lineage_edges.c.src_key),
                                  (lineage_edges.c.dst_kind, lineage_edges.c.dst_key)):  # fmt: skip
                    conn.execute(delete(lineage_edges).where(kind == "run", key.in_(chunk)))
                conn.execute(delete(runs).where(runs.c.pk.in_(pks)))
            return removed

        removed = self._db.write(work)
        for run_id in run_ids:
            self._keys.forget(run_id)
        return removed

    # blob references -----------------------------------------------------------------------

    def referenced_among(self, digests: Collection[str], ignoring_runs: Sequence[str] = ()) -> set[str]:
        """Those of `digests` that something in the metadata refers to, as of now; with
        `ignoring_runs`, as if those runs were purged (what a dry run reports). The rows of
        erased dataset versions refer to nothing: their data is to be gone."""
        ignored = select(runs.c.pk).where(runs.c.id.in_(ignoring_runs))

        def work(conn: Connection) -> set[str]:
            found: set[str] = set()
            for chunk in _chunks(sorted(digests)):
                for column in BLOB_COLUMNS:
                    stmt = select(column).where(column.in_(chunk))
                    if column.table is dataset_versions:
                        stmt = stmt.where(dataset_versions.c.erased_at.is_(None))
                    if column.table is artifacts and ignoring_runs:
                        stmt = stmt.where(artifacts.c.run_pk.not_in(ignored))
                    found.update(conn.execute(stmt.distinct()).scalars())
                for text in _json_texts(conn, chunk, ignoring_runs):
                    found.update(d for d in chunk if d in text)
            return found

        return self._db.read(work)

    def count_artifacts(self, run_ids: Sequence[str]) -> int:
        """How many artifact entries the runs have (what purging them removes)."""

        def work(conn: Connection) -> int:
            total = 0
            for chunk in _chunks(list(run_ids)):
                owned = artifacts.c.run_pk.in_(select(runs.c.pk).where(runs.c.id.in_(chunk)))
                total += conn.execute(select(func.count()).select_from(artifacts).where(owned)).scalar_one()
            return total

        return self._db.read(work)

    def oldest_registration_in_progress(self) -> int | None:
        """When the oldest model version still PENDING began (ms), if any: its files may be
        stored already, with nothing in the metadata naming them yet."""
        stmt = select(func.min(model_versions.c.created_at)).where(model_versions.c.status == "PENDING")
        return self._db.read(lambda conn: conn.execute(stmt).scalar_one_or_none())


def _json_texts(conn: Connection, digests: Sequence[str], ignoring_runs: Sequence[str]) -> Iterable[str]:
    """The JSON texts of `BLOB_JSON_COLUMNS` that mention any of `digests` (but those of the
    pipeline runs among `ignoring_runs`)."""
    for column in (evaluations.c.result, step_runs.c.output):
        stmt = select(column).where(or_(*(column.contains(d, autoescape=True) for d in digests)))
        if column.table is step_runs and ignoring_runs:
            stmt = stmt.where(step_runs.c.pipeline_run_id.not_in(ignoring_runs))
        yield from (text for text in conn.execute(stmt).scalars() if text)


def _existing(conn: Connection, column: Column[int], values: Collection[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(sorted(values)):
        found.update(conn.execute(select(column).where(column.in_(chunk)).distinct()).scalars())
    return found


def _chunks(values: Sequence[T]) -> Iterable[list[T]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])
