"""What an erasure asks of the database: who else refers to a blob, which columns still
hold a text, and giving the space of deleted rows back so no page keeps their bytes."""

from __future__ import annotations

import json

from sqlalchemy import Connection, String, Text, func, or_, select

from loopline.store.database import Database
from loopline.store.schema import (
    artifacts,
    dataset_versions,
    datasets,
    evaluations,
    metadata,
    model_version_files,
    model_versions,
    monitors,
    registered_models,
    runs,
    step_runs,
)

_ESCAPE = "\\"


def _like(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, its wildcards taken literally."""
    for special in (_ESCAPE, "%", "_"):
        value = value.replace(special, _ESCAPE + special)
    return f"%{value}%"


class SqlPrivacyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def blob_referrers(self, digest: str) -> list[str]:
        """The records, for people, that still refer to blob `digest`: dataset versions not
        erased, run artifacts, model version files, monitors, evaluations (their plots) and
        cached step outputs (the places `store.retention.BLOB_COLUMNS` lists)."""

        def work(conn: Connection) -> list[str]:
            found = [
                f"dataset version datasets:/{name}/{version}"
                for name, version in conn.execute(
                    select(datasets.c.name, dataset_versions.c.version)
                    .join_from(dataset_versions, datasets)
                    .where(
                        or_(
                            dataset_versions.c.data_blob == digest,
                            dataset_versions.c.reference_blob == digest,
                        ),
                        dataset_versions.c.erased_at.is_(None),
                    )
                )
            ]
            found += [
                f"artifact {name!r} of run {run_id}"
                for run_id, name in conn.execute(
                    select(runs.c.id, artifacts.c.name)
                    .join_from(artifacts, runs, artifacts.c.run_pk == runs.c.pk)
                    .where(artifacts.c.digest == digest)
                )
            ]
            found += [
                f"file {path!r} of model version models:/{name}/{version}"
                for name, version, path in conn.execute(
                    select(registered_models.c.name, model_versions.c.version, model_version_files.c.path)
                    .join_from(model_version_files, model_versions)
                    .join(registered_models, model_versions.c.model_id == registered_models.c.id)
                    .where(model_version_files.c.digest == digest)
                )
            ]
            found += [
                f"monitor {name!r}"
                for (name,) in conn.execute(
                    select(monitors.c.name).where(monitors.c.reference_blob == digest)
                )
            ]
            for column, what in (
                (evaluations.c.result, "evaluation(s)"),
                (step_runs.c.output, "cached step output(s)"),
            ):
                count = conn.execute(
                    select(func.count()).select_from(column.table).where(column.like(_like(digest), _ESCAPE))
                ).scalar_one()
                found += [f"{count} {what}"] if count else []
            return found

        return self._db.read(work)

    def holding(self, value: str) -> list[tuple[str, int]]:
        """(table.column, rows) of every text column whose rows contain `value`, as it is or as
        JSON writes it."""
        forms = {value, json.dumps(value)[1:-1]}

        def work(conn: Connection) -> list[tuple[str, int]]:
            found = []
            for table in metadata.sorted_tables:
                for column in table.columns:
                    if not isinstance(column.type, String | Text):
                        continue
                    matches = or_(*(column.like(_like(form), _ESCAPE) for form in forms))
                    count = conn.execute(select(func.count()).select_from(table).where(matches)).scalar_one()
                    if count:
                        found.append((f"{table.name}.{column.name}", int(count)))
            return found

        return self._db.read(work)

    def release_freed_space(self, tables: list[str]) -> bool:
        """Rewrite the database so no free page keeps the bytes of deleted or changed rows.
        SQLite: VACUUM, then a checkpoint that empties the write-ahead log. PostgreSQL:
        VACUUM FULL of `tables` (its own write-ahead log and backups are the server's).
        False when the log could not be emptied as other connections were reading."""
        raw = self._db.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            if self._db.dialect == "sqlite":
                driver.execute("VACUUM")
                busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                return busy is None or busy[0] == 0
            known = {t.name for t in metadata.sorted_tables}
            driver.autocommit = True  # VACUUM runs outside a transaction
            try:
                for name in tables:
                    if name in known:  # a name of our schema, never a caller's text
                        driver.execute(f"VACUUM FULL {name}")
            finally:
                driver.autocommit = False  # back to the pool as it came
            return True
        finally:
            raw.close()
