"""A metric's history as a chart draws it: at most a few hundred buckets of min, max and
newest value, computed in the database.

Histories up to RAW_LIMIT values in the range are bucketed by one GROUP BY over the
(run, key, step) index. Longer ones are read from `metric_rollups`, the history summed up per
ROLLUP_STEPS steps as it was written: a million values are a thousand rows. By step, the
partial rollups at the ends of a zoomed range are replaced by the raw values there, so the
answer is exact; by wall time, a rollup falls in the bucket of its newest value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, case, func, or_, select

from loopline.core.entities import Metric, MetricSeries, SeriesBucket
from loopline.store.database import Database
from loopline.store.schema import ROLLUP_STEPS, metric_rollups, metrics

RAW_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class _Piece:
    """A run of consecutive values: one value, or a rollup of many."""

    x_first: int
    x_last: int
    count: int
    low: float | None
    high: float | None
    last: float | None


# writing ------------------------------------------------------------------------------


def rollup_rows(run_pk: int, batch: Sequence[Metric]) -> list[dict[str, Any]]:
    """The batch summed up per (key, bucket), to merge into `metric_rollups`; keys and buckets
    sorted, so that concurrent writers on PostgreSQL cannot deadlock. On the logging hot path:
    one pass, plain lists."""
    # per (key, bucket): count, min, max, first step, last step, first ts, last ts, last value
    sums: dict[tuple[str, int], list[Any]] = {}
    for key, value, step, ts in batch:
        number = None if value != value else value  # NaN is stored as NULL
        ident = (key, step // ROLLUP_STEPS)
        row = sums.get(ident)
        if row is None:
            sums[ident] = [1, number, number, step, step, ts, ts, number]
            continue
        row[0] += 1
        if number is not None:
            if row[1] is None or number < row[1]:
                row[1] = number
            if row[2] is None or number > row[2]:
                row[2] = number
        row[3] = min(row[3], step)
        row[5] = min(row[5], ts)
        if step > row[4] or (step == row[4] and ts >= row[6]):  # the newest, as latest_metrics
            row[4], row[6], row[7] = step, ts, number
    return [
        dict(zip(_ROLLUP_COLUMNS, (run_pk, key, bucket, *row), strict=True))
        for (key, bucket), row in sorted(sums.items())
    ]


_ROLLUP_COLUMNS = ("run_pk", "key", "bucket", "count", "min", "max", "first_step", "last_step",
                   "first_timestamp", "last_timestamp", "last_value")  # fmt: skip


def rollup_upsert(db: Database) -> Insert:
    """Merges a batch's rollup rows into the stored ones."""
    insert = db.insert(metric_rollups)
    new, old = insert.excluded, metric_rollups.c
    newer = or_(
        new.last_step > old.last_step,
        (new.last_step == old.last_step) & (new.last_timestamp >= old.last_timestamp),
    )

    def least(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return case((b.is_(None), a), (a.is_(None), b), (a < b, a), else_=b)

    def greatest(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return case((b.is_(None), a), (a.is_(None), b), (a > b, a), else_=b)

    return insert.on_conflict_do_update(
        index_elements=["run_pk", "key", "bucket"],
        set_={
            "count": old.count + new.count,
            "min": least(old.min, new.min),
            "max": greatest(old.max, new.max),
            "first_step": least(old.first_step, new.first_step),
            "first_timestamp": least(old.first_timestamp, new.first_timestamp),
            "last_step": case((newer, new.last_step), else_=old.last_step),
            "last_timestamp": case((newer, new.last_timestamp), else_=old.last_timestamp),
            "last_value": case((newer, new.last_value), else_=old.last_value),
        },
    )


# reading ------------------------------------------------------------------------------


def read_series(
    conn: Connection, run_pk: int, key: str, buckets: int, axis: str, start: int | None, end: int | None
) -> MetricSeries:
    """`key` of run `run_pk` over [start, end] on `axis`, in at most `buckets` buckets."""
    by_step = axis == "step"
    first_x = metric_rollups.c.first_step if by_step else metric_rollups.c.first_timestamp
    last_x = metric_rollups.c.last_step if by_step else metric_rollups.c.last_timestamp
    where = [metric_rollups.c.run_pk == run_pk, metric_rollups.c.key == key]
    if start is not None:
        where.append(last_x >= start)
    if end is not None:
        where.append(first_x <= end)
    columns = (first_x, last_x, metric_rollups.c.count, metric_rollups.c.min, metric_rollups.c.max,
               metric_rollups.c.last_value)  # fmt: skip
    rollups = [_Piece(*row) for row in conn.execute(select(*columns).where(*where).order_by(last_x))]
    if sum(p.count for p in rollups) <= RAW_LIMIT:
        return _from_history(conn, run_pk, key, buckets, axis, start, end)
    lo = start if start is not None else rollups[0].x_first
    hi = end if end is not None else max(p.x_last for p in rollups)
    inside = [p for p in rollups if p.x_first >= lo and p.x_last <= hi]
    if by_step:  # the cut rollups at the ends, value by value
        for p in rollups:
            if p.x_first < lo or p.x_last > hi:
                inside += _values(conn, run_pk, key, max(p.x_first, lo), min(p.x_last, hi))
    elif not inside:
        inside = rollups
    return _bucketed(key, axis, sorted(inside, key=lambda p: p.x_last), buckets)


def _values(conn: Connection, run_pk: int, key: str, first: int, last: int) -> list[_Piece]:
    stmt = (
        select(metrics.c.step, metrics.c.value)
        .where(metrics.c.run_pk == run_pk, metrics.c.key == key, metrics.c.step.between(first, last))
        .order_by(metrics.c.step, metrics.c.timestamp)
    )
    return [_Piece(step, step, 1, value, value, value) for step, value in conn.execute(stmt)]


def _bucketed(key: str, axis: str, pieces: list[_Piece], buckets: int) -> MetricSeries:
    """Pieces in `buckets` equal stretches of the axis, each at the stretch of its newest value."""
    total = sum(p.count for p in pieces)
    if not pieces:
        return MetricSeries(key, axis, 0, [])
    lo, hi = pieces[0].x_first, max(p.x_last for p in pieces)
    grouped: dict[int, list[_Piece]] = {}
    for p in pieces:
        grouped.setdefault((p.x_last - lo) * buckets // (hi - lo + 1), []).append(p)
    out = []
    for _, group in sorted(grouped.items()):
        lows = [p.low for p in group if p.low is not None]
        highs = [p.high for p in group if p.high is not None]
        newest = max(group, key=lambda p: p.x_last)
        out.append(
            SeriesBucket(
                min(p.x_first for p in group),
                newest.x_last,
                sum(p.count for p in group),
                min(lows) if lows else None,
                max(highs) if highs else None,
                newest.last,
            )
        )
    return MetricSeries(key, axis, total, out)


def _from_history(
    conn: Connection, run_pk: int, key: str, buckets: int, axis: str, start: int | None, end: int | None
) -> MetricSeries:
    """Up to RAW_LIMIT values, bucketed by one GROUP BY; the newest value of each bucket by
    its highest step, looked up through the index."""
    x = metrics.c.step if axis == "step" else metrics.c.timestamp
    where = [metrics.c.run_pk == run_pk, metrics.c.key == key]
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
    steps = [row[6] for row in summary]
    last: dict[int, float | None] = {}
    for chunk in range(0, len(steps), 500):
        newest = (
            select(metrics.c.step, metrics.c.value)
            .where(*where, metrics.c.step.in_(steps[chunk : chunk + 500]))
            .order_by(metrics.c.step, metrics.c.timestamp)
        )
        last.update({step: value for step, value in conn.execute(newest)})
    return MetricSeries(
        key,
        axis,
        points,
        [
            SeriesBucket(first, final, n, low, high, last.get(step))
            for _, first, final, n, low, high, step in summary
        ],
    )
