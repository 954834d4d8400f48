"""Aliases in SQL: where each points, and every move it ever made."""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, select

from loopline.core.errors import Conflict
from loopline.core.registry import AliasEvent
from loopline.store.database import Database
from loopline.store.registry import model_key, version_key
from loopline.store.schema import alias_events, model_aliases, model_versions


class SqlAliasStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def move_alias(self, event: AliasEvent) -> None:
        """Point (or, with `to_version` None, remove) an alias and record the move, atomically.

        The move only happens if the alias still points where the event says it came
        from: two promotions racing cannot both win."""

        def work(conn: Connection) -> None:
            model_id = model_key(conn, event.model)
            current = conn.execute(
                select(model_versions.c.version)
                .join_from(model_aliases, model_versions)
                .where(model_aliases.c.model_id == model_id, model_aliases.c.alias == event.alias)
            ).scalar_one_or_none()
            if current != event.from_version:
                raise Conflict(
                    f"alias {event.alias!r} of {event.model!r} moved meanwhile (now at version {current}); "
                    "look again and retry"
                )
            conn.execute(
                delete(model_aliases).where(
                    model_aliases.c.model_id == model_id, model_aliases.c.alias == event.alias
                )
            )
            if event.to_version is not None:
                version_id = version_key(conn, event.model, event.to_version)
                conn.execute(
                    model_aliases.insert().values(model_id=model_id, alias=event.alias, version_id=version_id)
                )
            conn.execute(
                alias_events.insert().values(
                    model_id=model_id,
                    alias=event.alias,
                    from_version=event.from_version,
                    to_version=event.to_version,
                    actor=event.actor,
                    at=event.at,
                    reason=event.reason,
                    forced=event.forced,
                    report=None if event.report is None else json.dumps(event.report, default=str),
                )
            )

        self._db.write(work)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        def work(conn: Connection) -> list[AliasEvent]:
            stmt = select(alias_events).where(alias_events.c.model_id == model_key(conn, name))
            if alias is not None:
                stmt = stmt.where(alias_events.c.alias == alias)
            return [
                AliasEvent(
                    model=name,
                    alias=row.alias,
                    from_version=row.from_version,
                    to_version=row.to_version,
                    actor=row.actor,
                    at=row.at,
                    reason=row.reason,
                    forced=row.forced,
                    report=None if row.report is None else json.loads(row.report),
                )
                for row in conn.execute(stmt.order_by(alias_events.c.id))
            ]

        return self._db.read(work)
