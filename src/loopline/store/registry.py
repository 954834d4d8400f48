"""The model registry in SQL: models, versions with their files, tags, aliases and the
history of every alias move."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.errors import AlreadyExists, Conflict, NotFound
from loopline.core.registry import ModelVersion, RegisteredModel, VersionStatus
from loopline.store.database import Database
from loopline.store.experiments import project_key
from loopline.store.keys import among
from loopline.store.runs import RunKeys
from loopline.store.schema import (
    model_aliases,
    model_tags,
    model_version_files,
    model_version_metrics,
    model_version_tags,
    model_versions,
    projects,
    registered_models,
    runs,
)


def model_key(conn: Connection, name: str) -> int:
    stmt = select(registered_models.c.id).where(
        registered_models.c.name == name, registered_models.c.deleted_at.is_(None)
    )
    model_id = conn.execute(stmt).scalar_one_or_none()
    if model_id is None:
        raise NotFound(f"registered model {name!r} does not exist")
    return int(model_id)


def version_key(conn: Connection, name: str, version: int) -> int:
    stmt = select(model_versions.c.id).where(
        model_versions.c.model_id == model_key(conn, name), model_versions.c.version == version
    )
    version_id = conn.execute(stmt).scalar_one_or_none()
    if version_id is None:
        raise NotFound(f"model {name!r} has no version {version}")
    return int(version_id)


class SqlRegistryStore:
    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys

    # models ----------------------------------------------------------------------------

    def create_model(
        self, name: str, display_name: str, project: str, description: str, created_by: str, created_at: int
    ) -> RegisteredModel:
        def work(conn: Connection) -> None:
            conn.execute(
                registered_models.insert().values(
                    name=name,
                    display_name=display_name,
                    project_id=project_key(self._db, conn, project),
                    description=description,
                    last_version=0,
                    created_at=created_at,
                    created_by=created_by,
                )
            )

        try:
            self._db.write(work)
        except IntegrityError:
            raise AlreadyExists(
                f"model name {name!r} is taken: model names are one namespace across projects (so that "
                f"models:/{name} names one model everywhere); choose another"
            ) from None
        return self.get_model(name)

    def get_model(self, name: str) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            model_id = model_key(conn, name)
            return self._load_models(conn, [model_id])[0]

        return self._db.read(work)

    def list_models(self, in_projects: Collection[str] | None = None) -> list[RegisteredModel]:
        """Every model, or those of `in_projects`."""

        def work(conn: Connection) -> list[RegisteredModel]:
            stmt = (
                select(registered_models.c.id)
                .where(registered_models.c.deleted_at.is_(None))
                .order_by(registered_models.c.name)
            )
            if in_projects is not None:
                stmt = stmt.join(projects).where(projects.c.name.in_(list(in_projects)))
            return self._load_models(conn, list(conn.execute(stmt).scalars()))

        return self._db.read(work)

    def project_of_model(self, name: str) -> str:
        stmt = (
            select(projects.c.name)
            .join_from(registered_models, projects)
            .where(registered_models.c.name == name, registered_models.c.deleted_at.is_(None))
        )
        found = self._db.read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        if found is None:
            raise NotFound(f"registered model {name!r} does not exist")
        return str(found)

    def _load_models(self, conn: Connection, ids: list[int]) -> list[RegisteredModel]:
        if not ids:
            return []
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        stmt = select(model_tags).where(among(conn, model_tags.c.model_id, ids))
        for model_id, key, value in conn.execute(stmt):
            tags[model_id][key] = value
        aliases: dict[int, dict[str, int]] = defaultdict(dict)
        stmt = (
            select(model_aliases.c.model_id, model_aliases.c.alias, model_versions.c.version)
            .join_from(model_aliases, model_versions)
            .where(among(conn, model_aliases.c.model_id, ids))
        )
        for model_id, alias, version in conn.execute(stmt):
            aliases[model_id][alias] = version
        stmt = (
            select(registered_models, projects.c.name.label("project"))
            .join(projects)
            .where(among(conn, registered_models.c.id, ids))
        )
        rows = {r.id: r for r in conn.execute(stmt)}
        return [
            RegisteredModel(
                name=rows[i].name,
                display_name=rows[i].display_name,
                description=rows[i].description,
                created_at=rows[i].created_at,
                created_by=rows[i].created_by,
                latest_version=rows[i].last_version,
                tags=tags[i],
                aliases=aliases[i],
                project=rows[i].project,
            )
            for i in ids
        ]

    def update_model(self, name: str, description: str | None, tags: Mapping[str, str]) -> None:
        def work(conn: Connection) -> None:
            model_id = model_key(conn, name)
            if description is not None:
                conn.execute(
                    update(registered_models)
                    .where(registered_models.c.id == model_id)
                    .values(description=description)
                )
            _upsert_tags(self._db, conn, model_tags, "model_id", model_id, tags)

        self._db.write(work)

    def delete_model(self, name: str, deleted_at: int) -> None:
        def work(conn: Connection) -> None:
            model_id = model_key(conn, name)
            held = conn.execute(
                select(model_aliases.c.alias).where(model_aliases.c.model_id == model_id)
            ).scalars()
            if aliases := sorted(held):
                raise Conflict(f"model {name!r} still has aliases {aliases}; remove them before deleting it")
            conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(deleted_at=deleted_at)
            )

        self._db.write(work)

    # versions --------------------------------------------------------------------------

    def begin_version(
        self,
        name: str,
        *,
        run_id: str | None,
        flavor: str,
        task: str | None,
        description: str,
        model_json: Mapping[str, Any],
        size: int,
        created_by: str,
        created_at: int,
        tags: Mapping[str, str],
    ) -> int:
        """Take the next version number and record the version as PENDING, in one transaction."""

        def work(conn: Connection) -> int:
            model_id = model_key(conn, name)
            next_version = conn.execute(
                update(registered_models)
                .where(registered_models.c.id == model_id)
                .values(last_version=registered_models.c.last_version + 1)
                .returning(registered_models.c.last_version)
            ).scalar_one()
            version_id = conn.execute(
                model_versions.insert()
                .values(
                    model_id=model_id,
                    version=next_version,
                    status=VersionStatus.PENDING.value,
                    run_pk=None if run_id is None else self._keys.resolve(conn, run_id),
                    flavor=flavor,
                    task=task,
                    description=description,
                    model_json=json.dumps(model_json, sort_keys=True),
                    size=size,
                    created_at=created_at,
                    created_by=created_by,
                )
                .returning(model_versions.c.id)
            ).scalar_one()
            _upsert_tags(self._db, conn, model_version_tags, "version_id", version_id, tags)
            return int(next_version)

        return self._db.write(work)

    def finish_version(
        self,
        name: str,
        version: int,
        files: Mapping[str, tuple[str, int]],
        digest: str,
        ready_at: int,
        run_metrics: Mapping[str, float],
    ) -> None:
        """Record the stored files and mark the version READY, in one transaction."""

        def work(conn: Connection) -> None:
            version_id = version_key(conn, name, version)
            conn.execute(
                model_version_files.insert(),
                [
                    {"version_id": version_id, "path": p, "digest": d, "size": s}
                    for p, (d, s) in files.items()
                ],
            )
            if run_metrics:
                conn.execute(
                    model_version_metrics.insert(),
                    [
                        {"version_id": version_id, "source": "run", "key": k, "value": _finite(v)}
                        for k, v in run_metrics.items()
                    ],
                )
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == version_id)
                .values(status=VersionStatus.READY.value, digest=digest, ready_at=ready_at)
            )

        self._db.write(work)

    def fail_version(self, name: str, version: int) -> None:
        def work(conn: Connection) -> None:
            version_id = version_key(conn, name, version)
            conn.execute(
                update(model_versions)
                .where(
                    model_versions.c.id == version_id, model_versions.c.status == VersionStatus.PENDING.value
                )
                .values(status=VersionStatus.FAILED.value)
            )

        self._db.write(work)

    def fail_stale_versions(self, created_before: int) -> list[tuple[str, int]]:
        """Mark FAILED the versions still PENDING that began before `created_before` (their
        registration died); returns them as (model, version)."""

        def work(conn: Connection) -> list[tuple[str, int]]:
            stale = (
                select(model_versions.c.id, registered_models.c.name, model_versions.c.version)
                .join(registered_models, registered_models.c.id == model_versions.c.model_id)
                .where(
                    model_versions.c.status == VersionStatus.PENDING.value,
                    model_versions.c.created_at < created_before,
                )
            )
            found = conn.execute(stale).all()
            if found:
                conn.execute(
                    update(model_versions)
                    .where(
                        model_versions.c.id.in_([row.id for row in found]),
                        model_versions.c.status == VersionStatus.PENDING.value,
                    )
                    .values(status=VersionStatus.FAILED.value)
                )
            return [(row.name, row.version) for row in found]

        return self._db.write(work)

    def get_version(self, name: str, version: int) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            return self._load_versions(conn, name, [version_key(conn, name, version)])[0]

        return self._db.read(work)

    def list_versions(self, name: str) -> list[ModelVersion]:
        def work(conn: Connection) -> list[ModelVersion]:
            stmt = (
                select(model_versions.c.id)
                .where(model_versions.c.model_id == model_key(conn, name))
                .order_by(model_versions.c.version)
            )
            return self._load_versions(conn, name, list(conn.execute(stmt).scalars()))

        return self._db.read(work)

    def latest_ready_version(self, name: str) -> int | None:
        def work(conn: Connection) -> int | None:
            stmt = select(func.max(model_versions.c.version)).where(
                model_versions.c.model_id == model_key(conn, name),
                model_versions.c.status == VersionStatus.READY.value,
                model_versions.c.deleted_at.is_(None),
            )
            found = conn.execute(stmt).scalar_one_or_none()
            return None if found is None else int(found)

        return self._db.read(work)

    def versions_of_run(self, run_id: str) -> list[tuple[str, int]]:
        def work(conn: Connection) -> list[tuple[str, int]]:
            stmt = (
                select(registered_models.c.name, model_versions.c.version)
                .join_from(model_versions, registered_models)
                .where(model_versions.c.run_pk == self._keys.resolve(conn, run_id))
                .order_by(registered_models.c.name, model_versions.c.version)
            )
            return [(n, int(v)) for n, v in conn.execute(stmt)]

        return self._db.read(work)

    def find_by_digest(self, digest: str) -> list[tuple[str, int]]:
        """The (model, version) pairs whose content hash is `digest`."""

        def work(conn: Connection) -> list[tuple[str, int]]:
            stmt = (
                select(registered_models.c.name, model_versions.c.version)
                .join_from(model_versions, registered_models)
                .where(model_versions.c.digest == digest)
                .order_by(registered_models.c.name, model_versions.c.version)
            )
            return [(n, int(v)) for n, v in conn.execute(stmt)]

        return self._db.read(work)

    def _load_versions(self, conn: Connection, name: str, ids: list[int]) -> list[ModelVersion]:
        if not ids:
            return []
        files: dict[int, dict[str, tuple[str, int]]] = defaultdict(dict)
        stmt = select(model_version_files).where(among(conn, model_version_files.c.version_id, ids))
        for row in conn.execute(stmt):
            files[row.version_id][row.path] = (row.digest, row.size)
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for version_id, key, value in conn.execute(
            select(model_version_tags).where(among(conn, model_version_tags.c.version_id, ids))
        ):
            tags[version_id][key] = value
        aliases: dict[int, list[str]] = defaultdict(list)
        for alias, version_id in conn.execute(
            select(model_aliases.c.alias, model_aliases.c.version_id).where(
                among(conn, model_aliases.c.version_id, ids)
            )
        ):
            aliases[version_id].append(alias)
        metrics: dict[int, dict[str, float]] = defaultdict(dict)
        stmt = (
            select(model_version_metrics)
            .where(among(conn, model_version_metrics.c.version_id, ids))
            .order_by(model_version_metrics.c.source.desc())  # "run" last: evaluations win
        )
        for row in conn.execute(stmt):
            metrics[row.version_id].setdefault(row.key, float("nan") if row.value is None else row.value)
        stmt = (
            select(model_versions, runs.c.id.label("run_id"))
            .outerjoin(runs, runs.c.pk == model_versions.c.run_pk)
            .where(among(conn, model_versions.c.id, ids))
        )
        rows = {r.id: r for r in conn.execute(stmt)}
        return [
            ModelVersion(
                model=name,
                version=rows[i].version,
                status=VersionStatus(rows[i].status),
                flavor=rows[i].flavor,
                task=rows[i].task,
                description=rows[i].description,
                run_id=rows[i].run_id,
                digest=rows[i].digest,
                size=rows[i].size,
                created_at=rows[i].created_at,
                created_by=rows[i].created_by,
                model_json=json.loads(rows[i].model_json),
                files=files[i],
                tags=tags[i],
                aliases=tuple(sorted(aliases[i])),
                metrics=metrics[i],
                deleted=rows[i].deleted_at is not None,
            )
            for i in ids
        ]

    def update_version(
        self, name: str, version: int, description: str | None, tags: Mapping[str, str]
    ) -> None:
        def work(conn: Connection) -> None:
            version_id = version_key(conn, name, version)
            if description is not None:
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.id == version_id)
                    .values(description=description)
                )
            _upsert_tags(self._db, conn, model_version_tags, "version_id", version_id, tags)

        self._db.write(work)

    def add_version_metrics(self, name: str, version: int, source: str, values: Mapping[str, float]) -> None:
        def work(conn: Connection) -> None:
            version_id = version_key(conn, name, version)
            conn.execute(
                delete(model_version_metrics).where(
                    model_version_metrics.c.version_id == version_id, model_version_metrics.c.source == source
                )
            )
            if values:
                conn.execute(
                    model_version_metrics.insert(),
                    [
                        {"version_id": version_id, "source": source, "key": k, "value": _finite(v)}
                        for k, v in values.items()
                    ],
                )

        self._db.write(work)

    def delete_version(self, name: str, version: int, deleted_at: int) -> None:
        def work(conn: Connection) -> None:
            version_id = version_key(conn, name, version)
            held = conn.execute(select(model_aliases.c.alias).where(model_aliases.c.version_id == version_id))
            if aliases := sorted(held.scalars()):
                raise Conflict(f"version {version} of {name!r} holds aliases {aliases}; move them first")
            conn.execute(
                update(model_versions).where(model_versions.c.id == version_id).values(deleted_at=deleted_at)
            )

        self._db.write(work)


def _finite(value: float) -> float | None:
    return None if value != value else value  # NaN is stored as NULL, as for run metrics


def _upsert_tags(
    db: Database, conn: Connection, table: Any, owner: str, owner_id: int, tags: Mapping[str, str]
) -> None:
    if not tags:
        return
    insert = db.insert(table)
    conn.execute(
        insert.on_conflict_do_update(index_elements=[owner, "key"], set_={"value": insert.excluded.value}),
        [{owner: owner_id, "key": k, "value": v} for k, v in sorted(tags.items())],
    )
