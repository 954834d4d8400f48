"""The lineage graph in SQL: edges between (kind, key) nodes, recorded once each."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, or_, select

from loopline.core.registry import LineageEdge
from loopline.store.database import Database
from loopline.store.schema import lineage_edges


class SqlLineageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_edges(self, edges: Sequence[LineageEdge]) -> None:
        if not edges:
            return
        rows = [
            {
                "src_kind": e.src_kind,
                "src_key": e.src_key,
                "relation": e.relation,
                "dst_kind": e.dst_kind,
                "dst_key": e.dst_key,
                "label": e.label,
                "created_at": e.created_at,
            }
            for e in edges
        ]
        insert = self._db.insert(lineage_edges).on_conflict_do_nothing()
        self._db.write(lambda conn: conn.execute(insert, rows))

    def keys_starting(self, kind: str, prefix: str, limit: int = 2) -> list[str]:
        """Up to `limit` keys of `kind` nodes that start with `prefix`."""

        def work(conn: Connection) -> list[str]:
            sources = select(lineage_edges.c.src_key.label("key")).where(
                lineage_edges.c.src_kind == kind, lineage_edges.c.src_key.startswith(prefix, autoescape=True)
            )
            targets = select(lineage_edges.c.dst_key.label("key")).where(
                lineage_edges.c.dst_kind == kind, lineage_edges.c.dst_key.startswith(prefix, autoescape=True)
            )
            union = sources.union(targets).subquery()
            return list(conn.execute(select(union.c.key).limit(limit)).scalars())

        return self._db.read(work)

    def edges_touching(self, nodes: Sequence[tuple[str, str]]) -> list[LineageEdge]:
        """Every edge that starts or ends at one of `nodes`."""
        if not nodes:
            return []

        def work(conn: Connection) -> list[LineageEdge]:
            src = or_(*(and_(lineage_edges.c.src_kind == k, lineage_edges.c.src_key == v) for k, v in nodes))
            dst = or_(*(and_(lineage_edges.c.dst_kind == k, lineage_edges.c.dst_key == v) for k, v in nodes))
            stmt = select(lineage_edges).where(or_(src, dst)).order_by(lineage_edges.c.created_at)
            return [
                LineageEdge(r.src_kind, r.src_key, r.relation, r.dst_kind, r.dst_key, r.label, r.created_at)
                for r in conn.execute(stmt)
            ]

        return self._db.read(work)
