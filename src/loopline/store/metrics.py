"""Metric history and latest values in SQL."""

from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import Connection, and_, or_, select

from loopline.core.clock import now_ms
from loopline.core.entities import Metric, MetricSeries
from loopline.store.database import Database
from loopline.store.metric_series import read_series, rollup_rows, rollup_upsert
from loopline.store.runs import RunKeys
from loopline.store.schema import latest_metrics, metric_batches, metrics

_HISTORY_COLUMNS = "run_pk, key, value, step, timestamp"


def _stored(value: float) -> float | None:
    return None if math.isnan(value) else value  # NULL holds NaN: SQLite cannot store NaN


class SqlMetricStore:
    def __init__(self, db: Database, keys: RunKeys) -> None:
        self._db = db
        self._keys = keys
        insert = db.insert(latest_metrics)
        excluded = insert.excluded
        newer = or_(
            excluded.step > latest_metrics.c.step,
            and_(
                excluded.step == latest_metrics.c.step,
                excluded.timestamp >= latest_metrics.c.timestamp,
            ),
        )
        self._upsert_latest = insert.on_conflict_do_update(
            index_elements=["run_pk", "key"],
            set_={"value": excluded.value, "step": excluded.step, "timestamp": excluded.timestamp},
            where=newer,
        )
        self._upsert_rollups = rollup_upsert(db)

    def log_metrics(self, run_id: str, batch: Sequence[Metric], batch_id: str) -> bool:
        def work(conn: Connection) -> bool:
            pk = self._keys.resolve(conn, run_id)
            claim = (
                self._db.insert(metric_batches)
                .values(batch_id=batch_id, run_pk=pk, received_at=now_ms())
                .on_conflict_do_nothing(index_elements=["batch_id"])
                .returning(metric_batches.c.batch_id)
            )
            if conn.execute(claim).first() is None:
                return False  # this batch was stored before: a retry
            if not batch:
                return True
            self._append_history(conn, [(pk, m.key, _stored(m.value), m.step, m.timestamp) for m in batch])
            latest: dict[str, Metric] = {}
            for m in batch:
                seen = latest.get(m.key)
                if seen is None or (m.step, m.timestamp) >= (seen.step, seen.timestamp):
                    latest[m.key] = m
            # Keys in a fixed order: concurrent upserts on PostgreSQL then cannot deadlock.
            rows = [
                {
                    "run_pk": pk,
                    "key": key,
                    "value": _stored(m.value),
                    "step": m.step,
                    "timestamp": m.timestamp,
                }
                for key, m in sorted(latest.items())
            ]
            conn.execute(self._upsert_latest, rows)
            conn.execute(self._upsert_rollups, rollup_rows(pk, batch))
            return True

        return self._db.write(work)

    def _append_history(self, conn: Connection, rows: list[tuple[int, str, float | None, int, int]]) -> None:
        """The hot path of metric logging, below the SQL expression layer: COPY on PostgreSQL,
        a prepared executemany on SQLite. Both still bind every value as a parameter."""
        if self._db.dialect == "postgresql":
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            with cursor.copy(f"COPY {metrics.name} ({_HISTORY_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql(
                f"INSERT INTO {metrics.name} ({_HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows
            )

    def metric_series(
        self, run_id: str, key: str, buckets: int, axis: str, start: int | None, end: int | None
    ) -> MetricSeries:
        def work(conn: Connection) -> MetricSeries:
            return read_series(conn, self._keys.resolve(conn, run_id), key, buckets, axis, start, end)

        return self._db.read(work)

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        def work(conn: Connection) -> list[Metric]:
            pk = self._keys.resolve(conn, run_id)
            stmt = (
                select(metrics.c.value, metrics.c.step, metrics.c.timestamp)
                .where(metrics.c.run_pk == pk, metrics.c.key == key)
                .order_by(metrics.c.step, metrics.c.timestamp)
            )
            return [
                Metric(key, math.nan if value is None else value, step, timestamp)
                for value, step, timestamp in conn.execute(stmt)
            ]

        return self._db.read(work)
