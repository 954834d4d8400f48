"""Which named files a run has, and the blobs they point at."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from loopline.core.entities import ArtifactEntry
from loopline.core.errors import NotFound
from loopline.store.database import Database
from loopline.store.runs import RunKeys
from loopline.store.schema import artifacts


class SqlArtifactIndex:
    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys

    def add_artifact(self, run_id: str, entry: ArtifactEntry) -> None:
        """Record `entry`; logging the same name again points it at the new blob."""

        def work(conn: Connection) -> None:
            insert = self._db.insert(artifacts).values(
                run_pk=self._keys.resolve(conn, run_id),
                name=entry.name,
                digest=entry.digest,
                size=entry.size,
                media_type=entry.media_type,
                created_at=entry.created_at,
            )
            excluded = insert.excluded
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["run_pk", "name"],
                    set_={
                        "digest": excluded.digest,
                        "size": excluded.size,
                        "media_type": excluded.media_type,
                        "created_at": excluded.created_at,
                    },
                )
            )

        self._db.write(work)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        def work(conn: Connection) -> list[ArtifactEntry]:
            stmt = select(artifacts).where(artifacts.c.run_pk == self._keys.resolve(conn, run_id))
            if prefix:
                stmt = stmt.where(artifacts.c.name.startswith(prefix, autoescape=True))
            return [_entry(row) for row in conn.execute(stmt.order_by(artifacts.c.name))]

        return self._db.read(work)

    def get_artifact(self, run_id: str, name: str) -> ArtifactEntry:
        def work(conn: Connection) -> ArtifactEntry:
            pk = self._keys.resolve(conn, run_id)
            stmt = select(artifacts).where(artifacts.c.run_pk == pk, artifacts.c.name == name)
            row = conn.execute(stmt).one_or_none()
            if row is None:
                raise NotFound(f"run {run_id} has no artifact {name!r}")
            return _entry(row)

        return self._db.read(work)


def _entry(row: Any) -> ArtifactEntry:
    return ArtifactEntry(
        name=row.name,
        digest=row.digest,
        size=row.size,
        media_type=row.media_type,
        created_at=row.created_at,
    )
