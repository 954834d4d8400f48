"""Models logged in MLflow's format, in SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from loopline.core.entities import LoggedModel
from loopline.core.errors import NotFound
from loopline.store.database import Database
from loopline.store.runs import RunKeys
from loopline.store.schema import logged_models, runs

_COLUMNS = select(logged_models, runs.c.id.label("run_id"), runs.c.experiment_id).join_from(
    logged_models, runs, runs.c.pk == logged_models.c.run_pk
)


def _model(row: Any) -> LoggedModel:
    return LoggedModel(
        id=row.id,
        experiment_id=row.experiment_id,
        run_id=row.run_id,
        name=row.name,
        model_type=row.model_type,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
        tags=orjson.loads(row.tags),
        params=orjson.loads(row.params),
    )


class SqlLoggedModelStore:
    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys

    def create(self, model: LoggedModel) -> LoggedModel:
        def work(conn: Connection) -> None:
            values = {
                "id": model.id,
                "run_pk": self._keys.resolve(conn, model.run_id),
                "name": model.name,
                "model_type": model.model_type,
                "status": model.status,
                "created_at": model.created_at,
                "updated_at": model.updated_at,
                "created_by": model.created_by,
                "tags": orjson.dumps(model.tags).decode(),
                "params": orjson.dumps(model.params).decode(),
            }
            conn.execute(logged_models.insert().values(values))

        self._db.write(work)
        return self.get(model.id)

    def get(self, model_id: str) -> LoggedModel:
        def work(conn: Connection) -> LoggedModel:
            row = conn.execute(_COLUMNS.where(logged_models.c.id == model_id)).one_or_none()
            if row is None:
                raise NotFound(f"logged model {model_id!r} does not exist")
            return _model(row)

        return self._db.read(work)

    def update(
        self,
        model_id: str,
        at: int,
        *,
        status: str | None = None,
        tags: Mapping[str, str] | None = None,
        removed_tags: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        """Change the status, merge tags and params (removing `removed_tags`)."""

        def work(conn: Connection) -> None:
            row = conn.execute(
                select(logged_models.c.tags, logged_models.c.params)
                .where(logged_models.c.id == model_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFound(f"logged model {model_id!r} does not exist")
            merged_tags = {**orjson.loads(row.tags), **(tags or {})}
            for key in removed_tags:
                merged_tags.pop(key, None)
            values: dict[str, Any] = {
                "updated_at": at,
                "tags": orjson.dumps(merged_tags).decode(),
                "params": orjson.dumps({**orjson.loads(row.params), **(params or {})}).decode(),
            }
            if status is not None:
                values["status"] = status
            conn.execute(update(logged_models).where(logged_models.c.id == model_id).values(values))

        self._db.write(work)
        return self.get(model_id)

    def search(self, experiment_ids: Sequence[int], limit: int, offset: int) -> list[LoggedModel]:
        """The experiments' logged models, newest first."""
        stmt = (
            _COLUMNS.where(runs.c.experiment_id.in_(experiment_ids))
            .order_by(logged_models.c.created_at.desc(), logged_models.c.id)
            .limit(limit)
            .offset(offset)
        )
        return self._db.read(lambda conn: [_model(row) for row in conn.execute(stmt)])
