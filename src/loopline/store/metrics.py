"""Metric history and latest values in SQL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from loopline.core.clock import now_ms
from loopline.core.entities import Metric, MetricSeries, SeriesBucket
from loopline.store.database import Database
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

    def metric_series(
        self, run_id: str, key: str, buckets: int, axis: str, start: int | None, end: int | None
    ) -> MetricSeries:
        """The history of `key` between `start` and `end` on `axis` (step or time), cut into
        at most `buckets` equal stretches, each reduced in the database to its min, max and
        newest value: the rows never travel to Python."""

        def work(conn: Connection) -> MetricSeries:
            pk = self._keys.resolve(conn, run_id)
            x = metrics.c.step if axis == "step" else metrics.c.timestamp
            where = [metrics.c.run_pk == pk, metrics.c.key == key]
            if start is not None:
                where.append(x >= start)
            if end is not None:
                where.append(x <= end)
            lo, hi, points = conn.execute(select(func.min(x), func.max(x), func.count()).where(*where)).one()
            if not points:
                return MetricSeries(key, axis, 0, [])
            if points <= buckets:
                rows = conn.execute(select(x, metrics.c.value).where(*where).order_by(x, metrics.c.step))
                return MetricSeries(key, axis, points, [SeriesBucket(at, at, 1, v, v, v) for at, v in rows])
            # Integer arithmetic on both databases: (x - lo) * buckets fits in 64 bits for any
            # millisecond timestamp, and the division truncates towards zero as x >= lo.
            bucket = ((x - lo) * buckets // (hi - lo + 1)).label("bucket")
            stmt = (
                select(
                    bucket,
                    func.min(x),
                    func.max(x),
                    func.count(),
                    func.min(metrics.c.value),
                    func.max(metrics.c.value),
                    func.max(metrics.c.step),
                )
                .where(*where)
                .group_by(bucket)
                .order_by(bucket)
            )
            summary = conn.execute(stmt).all()
            last = self._values_at_steps(conn, where, [row[6] for row in summary])
            return MetricSeries(
                key,
                axis,
                points,
                [
                    SeriesBucket(first, final, count, low, high, last.get(step))
                    for _, first, final, count, low, high, step in summary
                ],
            )

        return self._db.read(work)

    @staticmethod
    def _values_at_steps(conn: Connection, where: list[Any], steps: list[int]) -> dict[int, float | None]:
        """The newest value logged at each of `steps` (through the (run, key, step) index)."""
        found: dict[int, float | None] = {}
        for chunk in range(0, len(steps), 500):
            stmt = (
                select(metrics.c.step, metrics.c.value)
                .where(*where, metrics.c.step.in_(steps[chunk : chunk + 500]))
                .order_by(metrics.c.step, metrics.c.timestamp)
            )
            found.update({step: value for step, value in conn.execute(stmt)})
        return found
