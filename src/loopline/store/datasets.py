"""Datasets in SQL: names, and versions keyed by the content hash of their rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.datasets import DatasetVersion
from loopline.core.errors import NotFound
from loopline.store.database import Database
from loopline.store.schema import dataset_versions, datasets

_COLUMNS = (datasets.c.name, *dataset_versions.c)


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        name=row.name,
        version=row.version,
        digest=row.digest,
        rows=row.rows,
        size=row.size,
        columns=json.loads(row.columns),
        source=row.source,
        data_blob=row.data_blob,
        reference_blob=row.reference_blob,
        created_at=row.created_at,
        created_by=row.created_by,
        description=row.description,
        tags=json.loads(row.tags),
        erased_at=row.erased_at,
        erased_into=row.erased_into,
    )


class SqlDatasetStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_version(self, draft: DatasetVersion) -> tuple[DatasetVersion, bool]:
        """Store `draft` as the next version of its dataset, unless a version with the same
        digest exists: then that one is returned, with False. Safe under concurrent writers."""

        def work(conn: Connection) -> DatasetVersion | None:
            dataset_id = conn.execute(select(datasets.c.id).where(datasets.c.name == draft.name)).scalar()
            if dataset_id is None:
                dataset_id = conn.execute(
                    datasets.insert()
                    .values(name=draft.name, last_version=0, created_at=draft.created_at)
                    .values(created_by=draft.created_by)
                    .returning(datasets.c.id)
                ).scalar_one()
            if self._find(conn, draft.name, draft.digest) is not None:
                return None
            version = conn.execute(
                update(datasets)
                .where(datasets.c.id == dataset_id)
                .values(last_version=datasets.c.last_version + 1)
                .returning(datasets.c.last_version)
            ).scalar_one()
            conn.execute(
                dataset_versions.insert().values(
                    dataset_id=dataset_id,
                    version=version,
                    digest=draft.digest,
                    rows=draft.rows,
                    size=draft.size,
                    columns=json.dumps(draft.columns, default=str),
                    source=draft.source,
                    data_blob=draft.data_blob,
                    reference_blob=draft.reference_blob,
                    description=draft.description,
                    tags=json.dumps(draft.tags, sort_keys=True),
                    created_at=draft.created_at,
                    created_by=draft.created_by,
                )
            )
            return self._find(conn, draft.name, draft.digest)

        try:
            created = self._db.write(work)
        except IntegrityError:  # another writer stored the same name or the same rows first
            created = None
        if created is not None:
            return created, True
        existing = self._db.read(lambda conn: self._find(conn, draft.name, draft.digest))
        if existing is None:  # lost a race for the dataset's name only: go again
            return self.add_version(draft)
        return existing, False

    def _find(self, conn: Connection, name: str, digest: str) -> DatasetVersion | None:
        row = conn.execute(
            select(*_COLUMNS)
            .join_from(dataset_versions, datasets)
            .where(datasets.c.name == name, dataset_versions.c.digest == digest)
        ).one_or_none()
        return None if row is None else _version(row)

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version of dataset `name`; the newest when `version` is None."""

        def work(conn: Connection) -> DatasetVersion:
            stmt = select(*_COLUMNS).join_from(dataset_versions, datasets).where(datasets.c.name == name)
            if version is None:  # the newest whose rows are still there, if any is
                erased = dataset_versions.c.erased_at.is_not(None)
                stmt = stmt.order_by(erased, dataset_versions.c.version.desc()).limit(1)
            else:
                stmt = stmt.where(dataset_versions.c.version == version)
            row = conn.execute(stmt).one_or_none()
            if row is not None:
                return _version(row)
            known = conn.execute(select(datasets.c.last_version).where(datasets.c.name == name)).scalar()
            if known is None:
                raise NotFound(f"dataset {name!r} does not exist (see `loopline datasets list`)")
            raise NotFound(f"dataset {name!r} has no version {version} (versions 1 to {known})")

        return self._db.read(work)

    def list_versions(self, name: str) -> list[DatasetVersion]:
        stmt = (
            select(*_COLUMNS)
            .join_from(dataset_versions, datasets)
            .where(datasets.c.name == name)
            .order_by(dataset_versions.c.version)
        )
        found = self._db.read(lambda conn: [_version(r) for r in conn.execute(stmt)])
        if not found:
            self.get_version(name)  # raises the helpful NotFound
        return found

    def list_latest(self) -> list[DatasetVersion]:
        """The newest version of every dataset, by name."""
        newest = (
            select(dataset_versions.c.dataset_id, func.max(dataset_versions.c.version).label("version"))
            .group_by(dataset_versions.c.dataset_id)
            .subquery()
        )
        stmt = (
            select(*_COLUMNS)
            .join_from(dataset_versions, datasets)
            .join(
                newest,
                (newest.c.dataset_id == dataset_versions.c.dataset_id)
                & (newest.c.version == dataset_versions.c.version),
            )
            .order_by(datasets.c.name)
        )
        return self._db.read(lambda conn: [_version(r) for r in conn.execute(stmt)])

    def mark_erased(
        self, name: str, version: int, into: int | None, at: int, columns: list[dict[str, Any]]
    ) -> None:
        """Record that an erasure replaced the version by version `into` (None: no row was
        left), and keep only `columns` of its per-column summary (statistics held values)."""
        self.get_version(name, version)  # raises the helpful NotFound
        dataset = select(datasets.c.id).where(datasets.c.name == name).scalar_subquery()
        stmt = (
            update(dataset_versions)
            .where(dataset_versions.c.dataset_id == dataset, dataset_versions.c.version == version)
            .where(dataset_versions.c.erased_at.is_(None))
            .values(erased_at=at, erased_into=into, columns=json.dumps(columns, default=str))
        )
        self._db.write(lambda conn: conn.execute(stmt))

    def find_digest(self, digest: str) -> list[DatasetVersion]:
        """Every version, of any dataset, holding exactly these rows."""
        stmt = select(*_COLUMNS).join_from(dataset_versions, datasets)
        stmt = stmt.where(dataset_versions.c.digest == digest)
        return self._db.read(lambda conn: [_version(r) for r in conn.execute(stmt)])
