"""Evaluations of model versions in SQL: the full result as JSON, keyed by dataset."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from loopline.store.database import Database
from loopline.store.registry import version_key
from loopline.store.schema import evaluations


class SqlEvaluationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_evaluation(
        self,
        name: str,
        version: int,
        *,
        dataset_digest: str,
        dataset_name: str,
        task: str,
        result: dict[str, Any],
        created_at: int,
        created_by: str,
    ) -> int:
        def work(conn: Connection) -> int:
            version_id = version_key(conn, name, version)
            insert = evaluations.insert().values(
                version_id=version_id,
                dataset_digest=dataset_digest,
                dataset_name=dataset_name,
                task=task,
                result=json.dumps(result, default=str),
                created_at=created_at,
                created_by=created_by,
            )
            return int(conn.execute(insert.returning(evaluations.c.id)).scalar_one())

        return self._db.write(work)

    def list_evaluations(self, name: str, version: int) -> list[dict[str, Any]]:
        def work(conn: Connection) -> list[dict[str, Any]]:
            version_id = version_key(conn, name, version)
            stmt = (
                select(evaluations).where(evaluations.c.version_id == version_id).order_by(evaluations.c.id)
            )
            return [
                {
                    "id": row.id,
                    "dataset_digest": row.dataset_digest,
                    "dataset_name": row.dataset_name,
                    "task": row.task,
                    "created_at": row.created_at,
                    "created_by": row.created_by,
                    **json.loads(row.result),
                }
                for row in conn.execute(stmt)
            ]

        return self._db.read(work)
