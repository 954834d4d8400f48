"""Entities and versioned feature views in SQL."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.errors import AlreadyExists, Conflict, NotFound
from loopline.core.features import Entity, FeatureView, RegisteredView
from loopline.store.database import Database
from loopline.store.schema import feature_entities, feature_views


def _view(row: Any) -> RegisteredView:
    return RegisteredView(
        view=FeatureView.from_dict(orjson.loads(row.definition)),
        version=row.version,
        digest=row.digest,
        join_keys=tuple(orjson.loads(row.join_keys)),
        created_at=row.created_at,
        created_by=row.created_by,
    )


class SqlFeatureRegistry:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put_entity(self, entity: Entity, at: int, by: str) -> bool:
        """Store `entity`; False if it is stored already as it is. Its join keys never change."""

        def work(conn: Connection) -> bool:
            row = conn.execute(
                select(feature_entities).where(feature_entities.c.name == entity.name)
            ).one_or_none()
            if row is None:
                conn.execute(
                    feature_entities.insert().values(
                        name=entity.name, join_keys=orjson.dumps(list(entity.join_keys)).decode(),
                        description=entity.description, created_at=at, created_by=by,
                    )
                )  # fmt: skip
                return True
            if tuple(orjson.loads(row.join_keys)) != entity.join_keys:
                raise Conflict(
                    f"entity {entity.name!r} is joined by {orjson.loads(row.join_keys)}, not by "
                    f"{list(entity.join_keys)}: an entity keeps its join keys; define a new one"
                )
            if row.description == entity.description:
                return False
            stmt = update(feature_entities).where(feature_entities.c.name == entity.name)
            conn.execute(stmt.values(description=entity.description))
            return True

        return self._db.write(work)

    def entity(self, name: str) -> Entity:
        row = self._db.read(
            lambda conn: conn.execute(
                select(feature_entities).where(feature_entities.c.name == name)
            ).one_or_none()
        )
        if row is None:
            raise NotFound(f"entity {name!r} does not exist")
        return Entity(row.name, tuple(orjson.loads(row.join_keys)), row.description)

    def entities(self) -> list[Entity]:
        rows = self._db.read(
            lambda conn: conn.execute(select(feature_entities).order_by(feature_entities.c.name)).all()
        )
        return [Entity(r.name, tuple(orjson.loads(r.join_keys)), r.description) for r in rows]

    def add_version(self, view: FeatureView, join_keys: tuple[str, ...], at: int, by: str) -> RegisteredView:
        """The next version of `view`."""

        def work(conn: Connection) -> None:
            latest = conn.execute(
                select(func.max(feature_views.c.version)).where(feature_views.c.name == view.name)
            ).scalar()
            conn.execute(
                feature_views.insert().values(
                    name=view.name, version=(latest or 0) + 1, digest=view.digest,
                    definition=orjson.dumps(view.to_dict()).decode(),
                    join_keys=orjson.dumps(list(join_keys)).decode(), created_at=at, created_by=by,
                )
            )  # fmt: skip

        try:
            self._db.write(work)
        except IntegrityError:  # another apply took the number first
            raise AlreadyExists(
                f"feature view {view.name!r} changed while it was applied; apply again"
            ) from None
        return self.view(view.name)

    def view(self, name: str, version: int | None = None) -> RegisteredView:
        """A version of view `name`; the newest by default."""
        stmt = select(feature_views).where(feature_views.c.name == name)
        stmt = stmt.where(feature_views.c.version == version) if version is not None else stmt
        row = self._db.read(
            lambda conn: conn.execute(stmt.order_by(feature_views.c.version.desc()).limit(1)).one_or_none()
        )
        if row is None:
            which = f"version {version} of feature view" if version is not None else "feature view"
            raise NotFound(f"{which} {name!r} does not exist")
        return _view(row)

    def versions(self, name: str) -> list[RegisteredView]:
        stmt = select(feature_views).where(feature_views.c.name == name).order_by(feature_views.c.version)
        return [_view(row) for row in self._db.read(lambda conn: conn.execute(stmt).all())]

    def views(self) -> list[RegisteredView]:
        """The newest version of every view."""
        newest = (
            select(feature_views.c.name, func.max(feature_views.c.version).label("version"))
            .group_by(feature_views.c.name)
            .subquery()
        )
        stmt = (
            select(feature_views)
            .join(
                newest,
                (newest.c.name == feature_views.c.name) & (newest.c.version == feature_views.c.version),
            )
            .order_by(feature_views.c.name)
        )
        return [_view(row) for row in self._db.read(lambda conn: conn.execute(stmt).all())]
